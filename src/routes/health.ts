import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../app";
import type { AppEnv } from "../context";
import { json } from "./schemas";

const route = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "health",
  tags: ["Health"],
  summary: "Liveness",
  description: "Answers without touching storage: the worker is up. The benchmark's `noop` row (the runtime's own limit). Public: no credential.",
  security: [],
  responses: { 200: json(z.object({ ok: z.literal(true) }).openapi("Health", { example: { ok: true } }), "Up.") },
});

const handler: RouteHandler<typeof route, AppEnv> = (c) => c.json({ ok: true as const }, 200);

export const registerHealth = (app: App) => app.openapi(route, handler);
