import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { ErrorSchema, errorResponses, json, KeyIdParams, noContent } from "../schemas";
import { actorOf, ForceQuery } from "./access-input";
import { askKeyOfOrg } from "./key-directory";

const route = createRoute({
  method: "delete",
  path: "/v1/orgs/{orgId}/keys/{keyId}",
  operationId: "revokeKey",
  tags: ["Keys"],
  summary: "Revoke (delete) a key",
  description:
    "Revokes the key irreversibly. When this call returns, the key no longer verifies: its cached record " +
    "has been replaced by its key authority. Needs `apiKeyManagement` and at least the key's own access, judged " +
    "on the key as it is when the revocation runs. Revoking a revoked key answers 404 and invalidates its cached " +
    "records again (safe to retry after a 503); that 404 comes only once no lease on the key's earlier state is live " +
    "(an earlier revoke may still be waiting them out), so a retry's 404 means the key no longer verifies anywhere. " +
    "Every other answer (403, 409, 503) waits the same way. The organization's last live admin key is refused with 409 " +
    "(`details.reason` LAST_ADMIN_KEY) unless `force=true`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams, query: ForceQuery },
  responses: {
    204: noContent("Revoked. Any request using the key now fails."),
    ...errorResponses,
    409: json(ErrorSchema, "The key is the organization's last live admin key; repeat with `force=true` to revoke it anyway."),
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const { force } = c.req.valid("query");
  // The authority reads the key, checks the caller's rights on it and revokes it in one serialized
  // operation: a key raised meanwhile is judged as it now is.
  await askKeyOfOrg(c.env, orgId, keyId, (a) => a.revoke(keyId, orgId, actorOf(c.var.caller, c.var.requestId), { force: force === "true" }));
  return c.body(null, 204);
};

export const registerRevokeKey = (app: App) => app.openapi(route, handler);
