import { newApp } from "./app";
import { registerConsole } from "./console";
import { GATEWAY_PREFIX } from "./gateway/config";
import { handleGateway } from "./gateway/proxy";
import { handleScheduled } from "./lifecycle/scheduled";
import { registerRoutes } from "./routes";
import { guardEnv } from "./storage/guarded-bindings";
import { queueHandler } from "./webhooks/consumer";

export { KeyAuthority } from "./durable-objects/key-authority";
export { OrgAuthority } from "./durable-objects/org-authority";
export { KeyVerifier } from "./verification/key-verifier";

const app = registerConsole(registerRoutes(newApp()));

export default {
  // Every request sees D1 and KV only through the storage seam: faults become 503, never a 500.
  async fetch(request, env, ctx) {
    const guarded = guardEnv(env);
    if (new URL(request.url).pathname.startsWith(GATEWAY_PREFIX)) {
      const proxied = await handleGateway(request, guarded, ctx);
      if (proxied) return proxied;
    }
    return app.fetch(request, guarded, ctx);
  },
  // The EVENTS queue: webhook fan-out and delivery (src/webhooks/consumer.ts).
  queue: queueHandler,
  async scheduled(controller, env) {
    await handleScheduled(controller, guardEnv(env));
  },
} satisfies ExportedHandler<Env>;
