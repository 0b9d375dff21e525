import { newApp } from "./app";
import { registerRoutes } from "./routes";

export { KeyAuthority } from "./durable-objects/key-authority";

const app = registerRoutes(newApp());

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
