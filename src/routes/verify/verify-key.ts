import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { PERMISSIONS } from "../../domain/catalog";
import { parseAddress } from "../../domain/cidr";
import { VERIFY_MODES } from "../../domain/lease";
import { clientIp, recordFailure, refuseLimited } from "../../verification/abuse-limit";
import { VERIFY_CODES, verifyKey, type Verification } from "../../verification/verify-key";
import { AppRoleSchema, nullableMetadata, errorResponses, rateLimitedResponse, Id, json, KindSchema, LegacyModeSchema, OrgRoleSchema, ScopeSchema, Timestamp, iso } from "../schemas";

/** A presented key is never longer than this; anything longer is refused before hashing. */
const MAX_PRESENTED_KEY_LENGTH = 256;

const VerifyBody = z
  .strictObject({
    key: z.string().max(MAX_PRESENTED_KEY_LENGTH, `must be at most ${MAX_PRESENTED_KEY_LENGTH} characters`).openapi({
      description: "The key to verify, as the client presented it.",
      example: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e",
    }),
    permission: z.enum(PERMISSIONS).optional().openapi({ description: "A permission the key must hold.", example: "app:upload" }),
    app: Id.optional().openapi({ description: "The app the permission is needed on.", example: "01jd8x9b2c3d4e5f6g7h" }),
    mode: z.enum(VERIFY_MODES).optional().openapi({
      description:
        "How fresh the answer must be. `lease` (default): from a lease of the key's authority, held by this location for at most " +
        "T (2 s); a revoke, regenerate, reducing edit, policy change or app deletion that has returned is in force everywhere. " +
        "`strict`: the key's authority is asked every time. `cached`: from KV, close to the caller, up to KV's propagation delay " +
        "(about 60 s) behind a change made elsewhere. See docs/consistency.md.",
      example: "lease",
    }),
    strict: z.boolean().optional().openapi({
      description: "`true` is the same as `mode: \"strict\"` (kept for existing callers).",
      example: false,
    }),
    cost: z
      .number()
      .int("must be a whole number")
      .min(1, "must be at least 1")
      .max(1_000, "must be at most 1000")
      .optional()
      .openapi({ description: "Credits this use spends from a key that has credits (default 1).", example: 1 }),
    ip: z
      .string()
      .max(45, "must be at most 45 characters")
      .refine((ip) => parseAddress(ip) !== null, "must be an IPv4 or IPv6 address")
      .optional()
      .openapi({
        description:
          "For a service verifying on behalf of its own caller: that caller's address, judged against the key's allowed " +
          "networks. Without it, the address of the request to this endpoint is judged.",
        example: "203.0.113.7",
      }),
  })
  .openapi("VerifyRequest");

const VerifyResult = z
  .object({
    valid: z.boolean(),
    code: z.enum(VERIFY_CODES),
    message: z.string().optional().openapi({ description: "Why the key was refused." }),
    keyId: Id.optional(),
    orgId: Id.optional(),
    name: z.string().optional(),
    kind: KindSchema.optional(),
    orgRole: OrgRoleSchema.optional(),
    appRoles: z.array(z.object({ appId: Id, role: AppRoleSchema })).optional(),
    scopes: z.array(ScopeSchema).optional(),
    mode: LegacyModeSchema.optional(),
    permissions: z
      .array(z.object({ permission: z.enum(PERMISSIONS), app: Id.nullable() }))
      .optional()
      .openapi({ description: "Every grant the key holds: a permission, org-wide (`app: null`) or on one app." }),
    expiresAt: Timestamp.nullable().optional(),
    rotating: z.boolean().optional().openapi({
      description:
        "True when the presented secret is the key's previous one, still verifying during a rotation overlap: the client " +
        "should switch to the new secret before `rotationEndsAt`.",
    }),
    rotationEndsAt: Timestamp.optional().openapi({ description: "With `rotating`: when the presented secret stops verifying." }),
    rateLimit: z
      .object({ limit: z.number().int(), periodSeconds: z.number().int(), remaining: z.number().int(), resetAt: Timestamp })
      .optional()
      .openapi({ description: "With RATE_LIMITED: the key's spent window, and when it resets." }),
    metadata: nullableMetadata("The key's metadata, as set at create or edit; null when it has none.").optional(),
  })
  .openapi("VerifyResult", {
    example: {
      valid: true,
      code: "VALID",
      keyId: "01jd8x7a0b1c2d3e4f5g",
      orgId: "01jd8x6w2m9k3v7q4r5t",
      name: "CI/CD Deploy",
      kind: "scoped",
      scopes: ["app:publish"],
      permissions: [{ permission: "app:publish", app: null }],
      expiresAt: null,
    },
  });

const route = createRoute({
  method: "post",
  path: "/v1/keys/verify",
  operationId: "verifyKey",
  tags: ["Verification"],
  summary: "Verify a key",
  description:
    "Tells whether the presented key is valid and, optionally, holds a permission (on an app). Always 200 with a " +
    `\`code\`: ${VERIFY_CODES.join(", ")}. It tells only ` +
    "about the presented key: MALFORMED and NOT_FOUND carry no identity (a key this deployment never minted is NOT_FOUND). " +
    "Failures count toward the per-address limit: past it the address is answered 429 before any storage is read, " +
    "whatever it presents, until the window ends. One exception keeps clients behind a shared address working: in the " +
    "`lease` mode, a key whose live lease this location already holds (a secret in use right now) is still answered " +
    "from that lease.",
  // Public: the key to verify travels in the body, and no credential is needed to ask.
  security: [],
  request: { body: { content: { "application/json": { schema: VerifyBody } }, required: true } },
  responses: {
    200: json(VerifyResult, "The verdict."),
    ...errorResponses,
    429: rateLimitedResponse("Too many failed verifications from this address: nothing it presents is looked up until the window ends."),
  },
});

/** The verdict as the API shows it: identity only for keys that exist and are not revoked. */
export function verdictBody(result: Verification) {
  const base = {
    valid: result.valid,
    code: result.code,
    ...(result.valid ? {} : { message: result.message }),
    ...(!result.valid && result.rateLimit ? { rateLimit: { ...result.rateLimit, resetAt: iso(result.rateLimit.resetAt)! } } : {}),
  };
  const key = result.key;
  if (!key) return base;
  return {
    ...base,
    keyId: key.keyId,
    orgId: key.orgId,
    name: key.name,
    kind: key.kind,
    ...(key.kind === "rbac"
      ? { orgRole: key.orgRole, appRoles: Object.entries(key.appRoles).map(([appId, role]) => ({ appId, role })) }
      : key.kind === "scoped"
        ? { scopes: key.scopes as z.infer<typeof ScopeSchema>[] }
        : { mode: key.mode }),
    permissions: key.grants,
    expiresAt: iso(key.expiresAt),
    rotating: key.rotating,
    ...(key.rotatingUntil !== undefined ? { rotationEndsAt: iso(key.rotatingUntil)! } : {}),
    metadata: key.metadata,
  };
}

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const body = c.req.valid("json");
  const ip = clientIp(c.req.raw.headers);
  // A limited address is answered 429 before any storage, unless this isolate leases the very secret.
  const leaseMode = (body.mode ?? (body.strict ? "strict" : "lease")) === "lease";
  await refuseLimited(ip, "verify", leaseMode ? body.key : undefined);
  const result = await verifyKey(c.env, body.key, {
    ip: body.ip ?? c.req.header("cf-connecting-ip"),
    cost: body.cost,
    permission: body.permission,
    app: body.app,
    mode: body.mode,
    strict: body.strict,
    waitUntil: (p) => c.executionCtx.waitUntil(p),
  });
  c.set("outcome", result.code);
  // A key that is not what it claims to be is a failed authentication; a valid key lacking a
  // permission is not (its holder proved possession). Past the limit, a failure is answered 429.
  if (!result.valid && !["INSUFFICIENT_PERMISSIONS", "RATE_LIMITED", "USAGE_EXCEEDED"].includes(result.code)) {
    recordFailure(c.env, ip, "verify", result, (p) => c.executionCtx.waitUntil(p));
  }
  return c.json(verdictBody(result), 200);
};

export const registerVerifyKey = (app: App) => app.openapi(route, handler);
