import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { askAuthority } from "../../durable-objects/key-authority";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { db } from "../../storage/db";
import { loadKeyRow, loadPolicy } from "../../storage/key-record";
import { toKeyObject } from "../../storage/keys";
import { errorResponses, EXPIRATION_EXCLUSIVE, ExpirationFields, json, KeyIdParams, KeyWithSecret } from "../schemas";
import { actorOf, assertPolicy, assertWithinCallerLifetime, expiryFromInput } from "./access-input";

const RegenerateBody = z.strictObject({ ...ExpirationFields }).openapi("RegenerateKey", {
  ...EXPIRATION_EXCLUSIVE,
  description: "Optional: a new expiration for the key, set together with its new secret (the way to bring back an expired key).",
  example: { expiresInDays: 90 },
});

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys/{keyId}/regenerate",
  operationId: "regenerateKey",
  tags: ["Keys"],
  summary: "Regenerate a key's secret",
  description:
    "Gives the key a new secret, returned once as `key`. The old secret stops verifying before this call " +
    "returns; the id, name and access stay. A secure key stays secure (only its hash is stored). " +
    "Needs `apiKeyManagement` and at least the key's own access and lifetime, judged on the key as it is when the " +
    "regeneration runs. An optional body sets a new expiration with the new secret (the organization's policy and the " +
    "caller's own expiry apply).",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams, body: { content: { "application/json": { schema: RegenerateBody } }, required: false } },
  responses: {
    200: json(KeyWithSecret, "The key with its new secret, shown only in this response."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const body = c.req.valid("json");
  const caller = c.var.caller;
  const expiresAt = expiryFromInput(body, Date.now());
  if (expiresAt !== undefined) {
    // The policy counts a key's lifetime from its creation, which never changes.
    const database = db(c.env.DB);
    const [row, policy] = await Promise.all([loadKeyRow(database, keyId, orgId), loadPolicy(database, orgId)]);
    if (!row || row.revokedAt !== null) throw new ApiError("NOT_FOUND", "No such key.");
    assertPolicy(policy, { createdAt: row.createdAt, expiresAt }, body);
    assertWithinCallerLifetime(caller, expiresAt, body);
  }
  const result = await askAuthority(c.env, keyId, (a) => a.regenerate(keyId, orgId, actorOf(caller, c.var.requestId), expiresAt));
  return c.json({ ...toKeyObject(result.row), key: result.key }, 200);
};

export const registerRegenerateKey = (app: App) => app.openapi(route, handler);
