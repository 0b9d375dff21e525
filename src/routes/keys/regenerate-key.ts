import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { MAX_OVERLAP_MS } from "../../durable-objects/key-authority";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { loadKeyRow, loadPolicy } from "../../storage/key-record";
import { toKeyObject } from "../../storage/keys";
import { errorResponse, errorResponses, EXPIRATION_EXCLUSIVE, ExpirationFields, json, KeyIdParams, KeyWithSecret } from "../schemas";
import { actorOf, assertPolicy, assertWithinCallerLifetime, expiryFromInput, meteringBoundOf } from "./access-input";
import { askKeyOfOrg, noSuchKey } from "./key-directory";

const MAX_OVERLAP_SECONDS = MAX_OVERLAP_MS / 1000;

const RegenerateBody = z
  .strictObject({
    ...ExpirationFields,
    overlapSeconds: z
      .number()
      .int("must be a whole number of seconds")
      .min(0, "must not be negative")
      .max(MAX_OVERLAP_SECONDS, `must be at most ${MAX_OVERLAP_SECONDS} (7 days)`)
      .optional()
      .openapi({
        description:
          "Rotation with overlap: the old secret keeps verifying for this many seconds (at most 7 days, never past the key's " +
          "expiry), reported as rotating (`rotating: true` in verify, `x-keygate-key-rotating: true` upstream), so running " +
          "clients can switch without an outage. 0 or absent: the old secret stops verifying before this call returns. " +
          "Refused (409 `KEY_DISABLED`) on a disabled key: a key disabled after a leak must never get its leaked secret back.",
        example: 86400,
      }),
  })
  .openapi("RegenerateKey", {
    ...EXPIRATION_EXCLUSIVE,
    description:
      "Optional: a new expiration for the key, set together with its new secret (the way to bring back an expired key), " +
      "and an overlap during which the old secret still verifies.",
    example: { expiresInDays: 90, overlapSeconds: 86400 },
  });

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys/{keyId}/regenerate",
  operationId: "regenerateKey",
  tags: ["Keys"],
  summary: "Regenerate a key's secret",
  description:
    "Gives the key a new secret, returned once as `key`. The old secret stops verifying before this call " +
    "returns, unless `overlapSeconds` keeps it verifying (as rotating) for a while: see the key's `rotation`, and " +
    "end-overlap to end it early. The id, name and access stay. A secure key stays secure (only its hash is stored). " +
    "Needs `apiKeyManagement` and at least the key's own access and lifetime, judged on the key as it is when the " +
    "regeneration runs. An optional body sets a new expiration with the new secret (the organization's policy and the " +
    "caller's own expiry apply).",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams, body: { content: { "application/json": { schema: RegenerateBody } }, required: false } },
  responses: {
    200: json(KeyWithSecret, "The key with its new secret, shown only in this response."),
    ...errorResponses,
    409: errorResponse("`KEY_DISABLED`: `overlapSeconds` on a disabled key, whose current secret is never kept (regenerate without it)."),
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const body = c.req.valid("json");
  const caller = c.var.caller;
  const expiresAt = expiryFromInput(body, Date.now());
  const database = databaseFor(c.env, orgId);
  if (expiresAt !== undefined) {
    // The policy counts a key's lifetime from its creation, which never changes.
    const [row, policy] = await Promise.all([loadKeyRow(database, keyId, orgId), loadPolicy(database, orgId)]);
    if (!row || row.revokedAt !== null) throw await noSuchKey(c.env, keyId, row);
    assertPolicy(policy, { createdAt: row.createdAt, expiresAt }, body);
    assertWithinCallerLifetime(caller, expiresAt, body);
  }
  const overlapMs = (body.overlapSeconds ?? 0) * 1000;
  // The key's metering is judged against the caller's by the authority, on the key as it is then.
  const actor = actorOf(caller, c.var.requestId, await meteringBoundOf(database, caller));
  const result = await askKeyOfOrg(c.env, orgId, keyId, (a) => a.regenerate(keyId, orgId, actor, expiresAt, overlapMs));
  return c.json({ ...toKeyObject(result.row), key: result.key }, 200);
};

export const registerRegenerateKey = (app: App) => app.openapi(route, handler);
