import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { askAuthority } from "../../durable-objects/key-authority";
import { loadKeyRow } from "../../storage/key-record";
import { toKeyObject } from "../../storage/keys";
import { errorResponses, json, KeyIdParams, KeyObject } from "../schemas";

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/keys/{keyId}",
  operationId: "getKey",
  tags: ["Keys"],
  summary: "Get a key",
  description:
    "One key of the organization: name, prefix, kind, roles/scopes/mode, status, `lastUsedAt` and `expiresAt`. " +
    "Never the secret. Revoked keys and other organizations' keys answer 404. Needs `apiKeyManagement`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams },
  responses: {
    200: json(KeyObject, "The key."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  // The org is part of the lookup, so another org's key is exactly as absent as a key that never existed.
  const row = await loadKeyRow(databaseFor(c.env, orgId), keyId, orgId);
  if (!row || row.revokedAt !== null) throw new ApiError("NOT_FOUND", "No such key.");
  // The balance lives in the key's authority (one call, answered from its own storage); D1's copy
  // may be up to a minute old. Lists show that copy, marked with its `asOf`.
  if (row.credits === null) return c.json(toKeyObject(row), 200);
  const balance = await askAuthority(c.env, keyId, (a) => a.balance(keyId, orgId));
  return c.json(toKeyObject({ ...row, credits: balance.credits, creditsRefilledAt: balance.refilledAt, creditsAsOf: balance.asOf }), 200);
};

export const registerGetKey = (app: App) => app.openapi(route, handler);
