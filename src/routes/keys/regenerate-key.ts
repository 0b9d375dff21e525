import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authorityFor } from "../../durable-objects/key-authority";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { db } from "../../storage/db";
import { toKeyObject } from "../../storage/keys";
import { errorResponses, json, KeyIdParams, KeyWithSecret } from "../schemas";
import { manageableKey } from "./access-input";

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys/{keyId}/regenerate",
  tags: ["Keys"],
  summary: "Regenerate a key's secret",
  description:
    "Gives the key a new secret, returned once as `key`. The old secret stops verifying before this call " +
    "returns; the id, name and access stay. A secure key stays secure (only its hash is stored). " +
    "Needs `apiKeyManagement` and at least the key's own access.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams },
  responses: {
    200: json(KeyWithSecret, "The key with its new secret, shown only in this response."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  await manageableKey(db(c.env.DB), c.var.caller, orgId, keyId);
  const result = await authorityFor(c.env, keyId).regenerate(keyId, orgId, {
    actorKeyId: c.var.caller.keyId,
    requestId: c.var.requestId,
  });
  if (!result) throw new ApiError("NOT_FOUND", "No such key.");
  return c.json({ ...toKeyObject(result.row), key: result.key }, 200);
};

export const registerRegenerateKey = (app: App) => app.openapi(route, handler);
