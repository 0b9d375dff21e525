import { newApp } from "./app";
import { registerRoutes } from "./routes";
import { guardEnv } from "./storage/guarded-bindings";

export { KeyAuthority } from "./durable-objects/key-authority";

const app = registerRoutes(newApp());

export default {
  // Every request sees D1 and KV only through the storage seam: faults become 503, never a 500.
  fetch: (request, env, ctx) => app.fetch(request, guardEnv(env), ctx),
} satisfies ExportedHandler<Env>;
