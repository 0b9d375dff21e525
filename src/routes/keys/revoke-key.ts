import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authorityFor } from "../../durable-objects/key-authority";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { db } from "../../storage/db";
import { errorResponses, KeyIdParams } from "../schemas";
import { manageableKey } from "./access-input";

const route = createRoute({
  method: "delete",
  path: "/v1/orgs/{orgId}/keys/{keyId}",
  tags: ["Keys"],
  summary: "Revoke (delete) a key",
  description:
    "Revokes the key irreversibly. When this call returns, the key no longer verifies: its cached record " +
    "has been replaced by its key authority. Needs `apiKeyManagement` and at least the key's own access. " +
    "Revoking a revoked or unknown key answers 404.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams },
  responses: {
    204: { description: "Revoked. Any request using the key now fails." },
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  await manageableKey(db(c.env.DB), c.var.caller, orgId, keyId);
  const revoked = await authorityFor(c.env, keyId).revoke(keyId, orgId, {
    actorKeyId: c.var.caller.keyId,
    requestId: c.var.requestId,
  });
  // A concurrent revoke got there first: the key is gone either way, but this call did not do it.
  if (!revoked) throw new ApiError("NOT_FOUND", "No such key.");
  return c.body(null, 204);
};

export const registerRevokeKey = (app: App) => app.openapi(route, handler);
