import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { requireSecret } from "../../domain/crypto";
import { grantsOf, type KeyAccess } from "../../domain/permissions";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { loadPolicy } from "../../storage/key-record";
import { publishSoon } from "../../storage/events";
import { createKey, toKeyObject } from "../../storage/keys";
import {
  errorResponses,
  EXPIRATION_EXCLUSIVE,
  ExpirationFields,
  json,
  KeyWithSecret,
  LegacyModeSchema,
  AllowedNetworksField,
  MetadataSchema,
  Name,
  RateLimitsField,
  CreditsFields,
  OrgIdParam,
  OrgRoleSchema,
} from "../schemas";
import {
  AppRolesField,
  assertAppsOfOrg,
  assertCanGrant,
  assertCreditsInput,
  assertMeteringWithinCaller,
  assertNetworksWithinCaller,
  assertPolicy,
  assertWithinCallerLifetime,
  expiryFromInput,
  invalidFields,
  isMissingAppError,
  legacyAccess,
  meteringBoundOf,
  networksFromInput,
  NotBeforeField,
  notBeforeFromInput,
  rbacAccess,
  scopedAccess,
  ScopesField,
} from "./access-input";

/**
 * Fields every kind of key takes. The defaulted fields (`secure`, and `orgRole` below) are named schemas,
 * referenced from each body: generators such as openapi-typescript make an inline property with a `default`
 * required in a shared schema (it is always there in a response), and a client must be able to leave them out.
 */
const CommonFields = {
  name: Name.openapi({ description: "A label for the key, trimmed, 1–100 characters.", example: "CI/CD Deploy" }),
  secure: z.boolean().default(true).openapi("SecureFlag", {
    description:
      "Secure keys (the default) are stored only as a SHA-256 hash: shown in this response and never again. " +
      "A non-secure key is stored encrypted and can be revealed again by a key manager.",
    example: true,
  }),
  ...ExpirationFields,
  notBefore: NotBeforeField.optional(),
  allowedNetworks: AllowedNetworksField.optional(),
  metadata: MetadataSchema.optional(),
  rateLimits: RateLimitsField.optional(),
  ...CreditsFields,
};

const RbacKeyBody = z
  .strictObject({
    kind: z.literal("rbac"),
    ...CommonFields,
    orgRole: OrgRoleSchema.default("none").openapi("NewKeyOrgRole", {
      description: "Organization-wide role of the new key: `none` (the default: only per-app access), `member` (read), `admin` (everything, every app).",
    }),
    appRoles: AppRolesField.optional(),
  })
  .openapi("CreateRbacKey", {
    ...EXPIRATION_EXCLUSIVE,
    description: "An RBAC key: an org role, plus per-app roles unless the org role is `admin`.",
    example: { kind: "rbac", name: "CI/CD Deploy", orgRole: "none", appRoles: [{ appId: "01jd8x9b2c3d4e5f6g7h", role: "uploader" }], expiresInDays: 90 },
  });

const ScopedKeyBody = z
  .strictObject({ kind: z.literal("scoped"), ...CommonFields, scopes: ScopesField })
  .openapi("CreateScopedKey", {
    ...EXPIRATION_EXCLUSIVE,
    description: "A scoped key: one or more scopes from the fixed catalog, each granted org-wide.",
    example: { kind: "scoped", name: "CI pipeline", scopes: ["app:publish", "project:deploy"], expiresInDays: 30 },
  });

const LegacyKeyBody = z
  .strictObject({ kind: z.literal("legacy"), ...CommonFields, mode: LegacyModeSchema })
  .openapi("CreateLegacyKey", {
    ...EXPIRATION_EXCLUSIVE,
    description: "A legacy mode-based key (`read`, `upload`, `write`, `all`). It can later be regenerated or revoked, never edited.",
    example: { kind: "legacy", name: "Old uploader", mode: "upload" },
  });

export const CreateKeyBody = z.discriminatedUnion("kind", [RbacKeyBody, ScopedKeyBody, LegacyKeyBody]).openapi("CreateKey");
export type CreateKeyBody = z.infer<typeof CreateKeyBody>;

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys",
  operationId: "createKey",
  tags: ["Keys"],
  summary: "Create a key",
  description:
    "Creates an RBAC, scoped or legacy key and returns it with the full secret in `key`, shown only in this response. " +
    "Needs `apiKeyManagement`; the new key can never have access the calling key lacks (403 with `details.missing`). " +
    "The organization's key policy applies (400 with `details.code` EXPIRATION_REQUIRED, LIFETIME_TOO_LONG or " +
    "NETWORKS_REQUIRED). A calling key limited to allowed networks gives only keys limited within them (403 " +
    "`NETWORKS_BEYOND_CALLER`), and a metered calling key (credits or rate limits, its own or the policy's) gives only keys " +
    "metered at least as strictly (403 `METERING_BEYOND_CALLER`, see `credits` and `rateLimits`). `notBefore` schedules the key's start; `allowedNetworks` limits where it works; " +
    "`metadata` travels with every verification. " +
    "500 `MISCONFIGURED` when the deployment's `KEY_TAG_SECRET` (or, for a non-secure key, `KEY_ENCRYPTION_SECRET`) " +
    "is missing or shorter than 32 bytes: nothing is written.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: {
    params: OrgIdParam,
    body: { content: { "application/json": { schema: CreateKeyBody } }, required: true },
  },
  responses: {
    201: json(KeyWithSecret, "The new key, with its full secret shown this once."),
    ...errorResponses,
  },
});

function accessOfBody(body: CreateKeyBody): KeyAccess {
  switch (body.kind) {
    case "rbac":
      return rbacAccess(body.orgRole, body.appRoles ?? []);
    case "scoped":
      return scopedAccess(body.scopes);
    case "legacy":
      return legacyAccess(body.mode);
  }
}

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const body = c.req.valid("json");
  const caller = c.get("caller");
  const now = Date.now();

  // Everything that can refuse the request runs before the one write, so a refusal writes nothing.
  // A non-secure key is stored encrypted: never under a missing or short secret (500 MISCONFIGURED).
  if (!body.secure) requireSecret("KEY_ENCRYPTION_SECRET", c.env.KEY_ENCRYPTION_SECRET);
  const access = accessOfBody(body);
  const expiresAt = expiryFromInput(body, now) ?? null;
  const database = databaseFor(c.env, orgId);
  const appRoles = body.kind === "rbac" ? body.appRoles : undefined;
  const notBefore = notBeforeFromInput(body.notBefore, expiresAt, now) ?? null;
  assertCreditsInput(body.credits, body.creditsRefill);
  const allowedNetworks = networksFromInput(body.allowedNetworks) ?? [];
  const [policy, metering] = await Promise.all([loadPolicy(database, orgId), meteringBoundOf(database, caller), assertAppsOfOrg(database, orgId, appRoles)]);
  assertPolicy(policy, { createdAt: now, expiresAt, grants: grantsOf(access), allowedNetworks }, body);
  assertWithinCallerLifetime(caller, expiresAt, body);
  assertNetworksWithinCaller(caller, allowedNetworks);
  assertMeteringWithinCaller(metering, { credits: body.credits ?? null, creditsRefill: body.creditsRefill ?? null, rateLimits: body.rateLimits ?? null });
  assertCanGrant(caller, access);

  let created;
  try {
    created = await createKey(
      database,
      c.env,
      {
        orgId,
        name: body.name,
        secure: body.secure,
        expiresAt,
        access,
        createdBy: caller.keyId,
        notBefore,
        allowedNetworks,
        metadata: body.metadata ?? null,
        rateLimits: body.rateLimits ?? null,
        credits: body.credits ?? null,
        creditsRefill: body.creditsRefill ?? null,
      },
      { actorKeyId: caller.keyId, requestId: c.get("requestId") },
    );
  } catch (err) {
    // An app deleted between the check above and the batch: the batch wrote nothing.
    if (isMissingAppError(err)) throw invalidFields([{ field: "appRoles", message: "names an app that no longer exists" }]);
    throw err;
  }
  c.header("Cache-Control", "no-store");
  publishSoon(c.env, orgId, (p) => c.executionCtx.waitUntil(p));
  return c.json({ ...toKeyObject(created.row), key: created.key }, 201);
};

export const registerCreateKey = (app: App) => app.openapi(route, handler);
