import { Hono, type Context } from "hono";
import { requireKey, type KeygateEnv } from "./keygate";

/**
 * A small API of its own (builds of an app, deployments) that trusts keygate's keys: each route names
 * the permission it needs, and handlers read who called from `c.get("keygate")`.
 */
const app = new Hono<KeygateEnv>();

app.get("/", (c) =>
  c.json({
    service: "keygate example: protected API",
    routes: ["GET /apps/:appId/builds (app:read)", "POST /apps/:appId/builds (app:upload)", "POST /deploy (project:deploy, strict)"],
  }),
);

// A permission on one app: the app is the path's :appId, so a role on another app does not count.
const onApp = (c: Context<KeygateEnv>) => c.req.param("appId");

app.get("/apps/:appId/builds", requireKey({ permission: "app:read", appId: onApp }), (c) => {
  const key = c.get("keygate");
  return c.json({ appId: c.req.param("appId"), builds: [], readBy: { keyId: key.keyId, orgId: key.orgId, name: key.name } });
});

app.post("/apps/:appId/builds", requireKey({ permission: "app:upload", appId: onApp }), (c) => {
  const key = c.get("keygate");
  return c.json({ appId: c.req.param("appId"), build: { id: crypto.randomUUID(), uploadedBy: key.keyId } }, 201);
});

// Deploying must never act on a key revoked a moment ago, wherever it runs: ask the key's authority.
app.post("/deploy", requireKey({ permission: "project:deploy", mode: "strict" }), (c) => {
  const key = c.get("keygate");
  return c.json({ deployed: true, by: { keyId: key.keyId, orgId: key.orgId, name: key.name, kind: key.kind, permissions: key.permissions } });
});

export default app;
