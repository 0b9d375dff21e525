import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { askAuthority, type KeyChange } from "../../durable-objects/key-authority";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { accessOf, loadKeyRow, loadPolicy } from "../../storage/key-record";
import { toKeyObject } from "../../storage/keys";
import { noSuchKey } from "./key-directory";
import { grantsOf } from "../../domain/permissions";
import {
  AllowedNetworksField,
  ErrorSchema,
  errorResponses,
  EXPIRATION_EXCLUSIVE,
  ExpirationFields,
  json,
  KeyIdParams,
  KeyObject,
  nullableMetadata,
  Name,
  OrgRoleSchema,
  RateLimitsField,
  CreditsFields,
} from "../schemas";
import {
  AppRolesField,
  assertAppsOfOrg,
  assertCanGrant,
  assertCanManage,
  assertCreditsInput,
  assertMeteringWithinCaller,
  assertNetworksWithinCaller,
  assertPolicy,
  assertWithinCallerLifetime,
  editedAccess,
  expiryFromInput,
  meteringBoundOf,
  networksFromInput,
  NotBeforeField,
  notBeforeFromInput,
  ScopesField,
} from "./access-input";

export const UpdateKeyBody = z
  .strictObject({
    name: Name.optional(),
    orgRole: OrgRoleSchema.optional().openapi({ description: "RBAC keys only. Raising a key to `admin` drops its app roles." }),
    appRoles: AppRolesField.optional().openapi({
      description: "RBAC keys only: replaces all of the key's app roles. Leave out to keep them.",
    }),
    scopes: ScopesField.optional().openapi({ description: "Scoped keys only: replaces the key's scopes." }),
    ...ExpirationFields,
    notBefore: NotBeforeField.optional(),
    allowedNetworks: AllowedNetworksField.optional().openapi({ description: "Replaces the key's allowed networks; `[]`: anywhere." }),
    rateLimits: RateLimitsField.optional().openapi({ description: "Replaces the key's own rate limits; `[]`: none of its own." }),
    ...CreditsFields,
    metadata: nullableMetadata("Replaces the key's metadata (see `Metadata`); null removes it.").optional(),
  })
  .refine((body) => Object.keys(body).length > 0, "must change at least one field")
  .openapi("UpdateKey", {
    ...EXPIRATION_EXCLUSIVE,
    minProperties: 1,
    description: "The fields to change; the others stay. Fields that do not apply to the key's kind are refused.",
    example: { name: "CI/CD Deploy (prod)", appRoles: [{ appId: "01jd8x9b2c3d4e5f6g7h", role: "developer" }], expiresInDays: 90 },
  });
export type UpdateKeyBody = z.infer<typeof UpdateKeyBody>;

const route = createRoute({
  method: "patch",
  path: "/v1/orgs/{orgId}/keys/{keyId}",
  operationId: "updateKey",
  tags: ["Keys"],
  summary: "Edit a key",
  description:
    "Changes the name, org role, app roles, scopes, expiration, start (`notBefore`), allowed networks or metadata of an RBAC " +
    "or scoped key; legacy keys cannot be edited (409). " +
    "The calling key must hold all of the key's current access and all of its new access (403 with `details.missing`). " +
    "The change is in force when this returns: the key's very next request is judged by its new access. " +
    "Credits and rate limits are access too: a metered calling key cannot leave a key, itself included, metered less than " +
    "itself (403 `METERING_BEYOND_CALLER`). " +
    "A new expiration must meet the organization's key policy. Needs `apiKeyManagement`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: {
    params: KeyIdParams,
    body: { content: { "application/json": { schema: UpdateKeyBody } }, required: true },
  },
  responses: {
    200: json(KeyObject, "The key as it now is."),
    ...errorResponses,
    409: json(ErrorSchema, "A legacy key (never edited), or the key changed while this edit was made (read it again and retry)."),
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const body = c.req.valid("json");
  const caller = c.get("caller");
  const database = databaseFor(c.env, orgId);

  const row = await loadKeyRow(database, keyId, orgId);
  if (!row || row.revokedAt !== null) throw await noSuchKey(c.env, keyId, row);
  if (row.kind === "legacy") {
    throw new ApiError("CONFLICT", "Legacy keys cannot be edited: create an RBAC or scoped key instead, then revoke this one.");
  }
  assertCanManage(caller, row);

  // Everything that can refuse the edit runs before the authority writes anything.
  const now = Date.now();
  const access = editedAccess(accessOf(row), body);
  const expiresAt = expiryFromInput(body, now);
  await assertAppsOfOrg(database, orgId, body.appRoles);
  if (expiresAt !== undefined) {
    // An expired key's old secret is not brought back by an edit: regenerate gives it a new one.
    if (row.expiresAt !== null && row.expiresAt <= now) {
      throw new ApiError("CONFLICT", "The key has expired: an edit does not bring it back. Regenerate it with a new expiration instead.", {
        reason: "KEY_EXPIRED",
      });
    }
    assertPolicy(await loadPolicy(database, orgId), { createdAt: row.createdAt, expiresAt }, body);
    assertWithinCallerLifetime(caller, expiresAt, body);
  }
  const allowedNetworks = networksFromInput(body.allowedNetworks);
  if (allowedNetworks !== undefined) assertNetworksWithinCaller(caller, allowedNetworks);
  if (allowedNetworks !== undefined || body.orgRole !== undefined || body.appRoles !== undefined || body.scopes !== undefined) {
    // The policy's network rule judges the key as it will be; its expiry rules only a new expiry (above).
    const { requireNetworksForAdmin } = await loadPolicy(database, orgId);
    assertPolicy(
      { requireExpiration: false, maxLifetimeDays: null, requireNetworksForAdmin },
      { createdAt: row.createdAt, expiresAt: null, grants: grantsOf(access), allowedNetworks: allowedNetworks ?? row.allowedNetworks },
      body,
    );
  }
  const notBefore = notBeforeFromInput(body.notBefore, expiresAt !== undefined ? expiresAt : row.expiresAt, now);
  assertCanGrant(caller, access);

  const change: KeyChange = {};
  if (body.name !== undefined) change.name = body.name;
  if (access.kind === "rbac") {
    if (body.orgRole !== undefined) change.orgRole = access.orgRole;
    if (body.appRoles !== undefined) change.appRoles = access.appRoles;
  }
  if (access.kind === "scoped" && body.scopes !== undefined) change.scopes = access.scopes;
  if (expiresAt !== undefined) change.expiresAt = expiresAt;
  if (notBefore !== undefined) change.notBefore = notBefore;
  if (allowedNetworks !== undefined) change.allowedNetworks = allowedNetworks;
  if (body.metadata !== undefined) change.metadata = body.metadata;
  if (body.rateLimits !== undefined) change.rateLimits = body.rateLimits;
  if (body.credits !== undefined) change.credits = body.credits;
  if (body.creditsRefill !== undefined) change.creditsRefill = body.creditsRefill;
  assertCreditsInput(body.credits === undefined ? row.credits : body.credits, body.creditsRefill);
  if (body.credits !== undefined || body.creditsRefill !== undefined || body.rateLimits !== undefined) {
    // Judged on the key as it will be; the version check below keeps the authority from applying it to another.
    assertMeteringWithinCaller(await meteringBoundOf(database, caller), {
      credits: body.credits !== undefined ? body.credits : row.credits,
      creditsRefill: body.credits === null ? null : body.creditsRefill !== undefined ? body.creditsRefill : row.creditsRefill,
      rateLimits: body.rateLimits !== undefined ? body.rateLimits : row.rateLimits,
    });
  }

  // The authority commits D1 and replaces the KV record before answering, and applies the change
  // only to the version of the key the checks above judged (409 when it changed meanwhile).
  const updated = await askAuthority(c.env, keyId, (a) =>
    a.update(keyId, orgId, change, { actorKeyId: caller.keyId, requestId: c.get("requestId") }, row.updatedAt),
  );
  return c.json(toKeyObject(updated), 200);
};

export const registerUpdateKey = (app: App) => app.openapi(route, handler);
