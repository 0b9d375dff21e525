import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { PERMISSIONS } from "../../domain/catalog";
import { parseAddress } from "../../domain/cidr";
import { VERIFY_MODES } from "../../domain/lease";
import { allows } from "../../domain/permissions";
import { ApiError } from "../../errors";
import { presentedKey, verifyPresentedKey, WWW_AUTHENTICATE_REALM } from "../../middleware/authenticate";
import { clientIp, recordFailure, refuseLimited } from "../../verification/abuse-limit";
import { VERIFY_CODES, verifyKey, type VerifiedKey, type Verification, type VerifyCode } from "../../verification/verify-key";
import { AppRoleSchema, nullableMetadata, errorResponses, rateLimitedResponse, Id, json, KindSchema, LegacyModeSchema, OrgRoleSchema, ScopeSchema, Timestamp, iso } from "../schemas";

/** A presented key is never longer than this; anything longer is refused before hashing. */
const MAX_PRESENTED_KEY_LENGTH = 256;
/** The most credits one use may spend: a bound on what a single call can take from a key. */
export const MAX_VERIFY_COST = 1_000;
/** The permission of a verifier credential: it may assert `ip`, `cost` and the strict mode. */
export const VERIFIER_PERMISSION = "keys:verify";
const NEEDS_VERIFIER = "Needs a verifier credential (`Authorization: Bearer` a key of the org holding `keys:verify`); refused (401) without one.";

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
        "`strict`: the key's authority is asked every time (one Durable Object call per verification). `cached`: from KV, close " +
        "to the caller, up to KV's propagation delay (about 60 s) behind a change made elsewhere. See docs/consistency.md. " +
        `\`strict\` needs a verifier credential (\`Authorization: Bearer\` a key of the org holding \`keys:verify\`) and is ` +
        "refused (401) without one; `lease` and `cached` need none.",
      example: "lease",
    }),
    strict: z.boolean().optional().openapi({
      description: "`true` is the same as `mode: \"strict\"` (kept for existing callers), and needs the same verifier credential.",
      example: false,
    }),
    cost: z
      .number()
      .int("must be a whole number")
      .min(1, "must be at least 1")
      .max(MAX_VERIFY_COST, `must be at most ${MAX_VERIFY_COST}`)
      .optional()
      .openapi({
        description:
          `Credits this use spends from a key that has credits, 1 to ${MAX_VERIFY_COST} (default 1). ${NEEDS_VERIFIER} ` +
          "Without a credential every verification spends exactly one.",
        example: 1,
      }),
    ip: z
      .string()
      .max(45, "must be at most 45 characters")
      .refine((ip) => parseAddress(ip) !== null, "must be an IPv4 or IPv6 address")
      .optional()
      .openapi({
        description:
          "For a service verifying on behalf of its own caller: that caller's address, judged against the key's allowed " +
          `networks, and the address its failures count against. ${NEEDS_VERIFIER} Without a credential the address the ` +
          "request to this endpoint comes from (`CF-Connecting-IP`) is judged.",
        example: "203.0.113.7",
      }),
  })
  .openapi("VerifyRequest");

/**
 * What `KeyVerifier.verify` accepts besides the key: the endpoint's own fields and rules, so the two
 * cannot drift. Strict like the body: a field the endpoint does not take (a clock, `unmetered`) is refused.
 */
export const VerifyOptionsSchema = VerifyBody.omit({ key: true });
export type VerifyRequestOptions = z.input<typeof VerifyOptionsSchema>;

const ONLY_VALID = "Only with VALID: a refusal tells nothing of the key.";
const VerifyResult = z
  .object({
    valid: z.boolean(),
    code: z.enum(VERIFY_CODES),
    message: z.string().optional().openapi({ description: "Why the key was refused." }),
    keyId: Id.optional().openapi({
      description: "With VALID; on a refusal of a key of its org, only to an authenticated verifier (for its logs).",
    }),
    orgId: Id.optional().openapi({ description: "As `keyId`." }),
    name: z.string().optional().openapi({ description: ONLY_VALID }),
    kind: KindSchema.optional(),
    orgRole: OrgRoleSchema.optional(),
    appRoles: z.array(z.object({ appId: Id, role: AppRoleSchema })).optional(),
    scopes: z.array(ScopeSchema).optional(),
    mode: LegacyModeSchema.optional(),
    permissions: z
      .array(z.object({ permission: z.enum(PERMISSIONS), app: Id.nullable() }))
      .optional()
      .openapi({ description: `Every grant the key holds: a permission, org-wide (\`app: null\`) or on one app. ${ONLY_VALID}` }),
    expiresAt: Timestamp.nullable().optional().openapi({ description: ONLY_VALID }),
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
    metadata: nullableMetadata(`The key's metadata, as set at create or edit; null when it has none. ${ONLY_VALID}`).optional(),
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
    "about the presented key, and only VALID describes it (identity, grants, metadata); a refusal carries its code and " +
    "message, and MALFORMED and NOT_FOUND carry no identity (a key this deployment never minted is NOT_FOUND). " +
    "Anyone may ask without a credential: the address the request comes from is judged, the use costs one credit, and " +
    "`ip`, `cost` and the strict mode are refused (401). A verifier (a service verifying its own callers' keys) sends " +
    "`Authorization: Bearer` a key of its org holding `keys:verify`: then `ip`, `cost` and `mode` are honoured, for keys of " +
    "that org only (any other key answers NOT_FOUND, with nothing spent), and a refusal also names the key (`keyId`, " +
    "`orgId`). The credential is verified like a management call's (unmetered, its own networks judged against the " +
    "connecting address), from its lease: revoking it is in force everywhere when the revoke returns. " +
    "Failures count toward the per-address limit (a verifier's, against the address it judged): past it the address is " +
    "answered 429 before any storage is read, whatever it presents, until the window ends. One exception keeps clients " +
    "behind a shared address working: in the `lease` mode, a key whose live lease this location already holds (a secret " +
    "in use right now) is still answered from that lease.",
  // A credential is optional: without one the endpoint asserts nothing the caller could lie about.
  security: [{}, { apiKey: [] }] as Record<string, string[]>[],
  request: { body: { content: { "application/json": { schema: VerifyBody } }, required: true } },
  responses: {
    200: json(VerifyResult, "The verdict."),
    ...errorResponses,
    401: {
      ...errorResponses[401],
      description:
        "The verifier credential is refused (missing when `ip`, `cost` or the strict mode is sent — `details.reason: " +
        "VERIFIER_REQUIRED`, `details.fields` — or malformed, unknown, expired or revoked).",
    },
    403: {
      ...errorResponses[403],
      description: "The verifier credential lacks `keys:verify`, or is used from outside its allowed networks.",
    },
    429: rateLimitedResponse("Too many failed verifications from this address: nothing it presents is looked up until the window ends."),
  },
});

/** The identity and access of a VALID key, as the API shows them. */
function identity(key: VerifiedKey) {
  return {
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

/** A refusal: its code and why, the spent window of RATE_LIMITED, and (for a verifier) which key. */
export type RefusalBody = {
  valid: false;
  code: Exclude<VerifyCode, "VALID">;
  message: string;
  keyId?: string;
  orgId?: string;
  rateLimit?: { limit: number; periodSeconds: number; remaining: 0; resetAt: string };
};

/**
 * The verdict as the API shows it. Only VALID describes the key: a refusal goes to whoever presents the
 * key, from anywhere, so it carries its code and message (and RATE_LIMITED's window, which the key's
 * holder needs to back off) but no name, grants, roles, expiry or metadata. `identifyRefusals` (an
 * authenticated verifier, `KeyVerifier`) adds the key's id and org to a refusal of a key that exists,
 * for the verifier's logs.
 * @example c.json(verdictBody(result, { identifyRefusals: verifier !== undefined }), 200)
 */
export function verdictBody(result: Verification, options: { identifyRefusals?: boolean } = {}) {
  if (result.valid) return { valid: true as const, code: "VALID" as const, ...identity(result.key) };
  const refusal: RefusalBody = { valid: false, code: result.code as RefusalBody["code"], message: result.message };
  if (options.identifyRefusals && result.key) Object.assign(refusal, { keyId: result.key.keyId, orgId: result.key.orgId });
  if (result.rateLimit) refusal.rateLimit = { ...result.rateLimit, resetAt: iso(result.rateLimit.resetAt)! };
  return refusal;
}

/**
 * The verifier credential, when one is presented: a key verified like a management caller's (a refused
 * one is 401/403 and a failed authentication) that must hold `keys:verify` (403 otherwise). From a
 * lease, not strictly: a revoke of the credential is in force everywhere when it returns all the same,
 * and a verifier's every verification must not cost an authority call for its own key.
 */
async function verifierOf(c: Context<AppEnv>): Promise<VerifiedKey | undefined> {
  if (presentedKey(c.req.raw.headers) === undefined) return undefined;
  const verifier = await verifyPresentedKey(c, "lease");
  if (!allows(verifier.grants, VERIFIER_PERMISSION)) {
    throw new ApiError("FORBIDDEN", `This key lacks the ${VERIFIER_PERMISSION} permission a verifier credential needs.`, {
      required: VERIFIER_PERMISSION,
    });
  }
  return verifier;
}

/** The fields of `body` that assert something about the request, which only a verifier may send. */
function assertedFields(body: z.infer<typeof VerifyBody>): string[] {
  const fields: string[] = [];
  if (body.ip !== undefined) fields.push("ip");
  if (body.cost !== undefined) fields.push("cost");
  if (body.mode === "strict") fields.push("mode");
  if (body.strict === true) fields.push("strict");
  return fields;
}

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const body = c.req.valid("json");
  const ip = clientIp(c.req.raw.headers);
  // A limited address is answered 429 before any storage (the credential's included), unless this
  // isolate leases the very secret it presents.
  const leaseMode = (body.mode ?? (body.strict ? "strict" : "lease")) === "lease";
  await refuseLimited(ip, "verify", leaseMode ? body.key : undefined);
  const verifier = await verifierOf(c);
  const asserted = assertedFields(body);
  if (!verifier && asserted.length) {
    // Refused, not ignored: a caller relying on its `ip` or `cost` must not get a verdict on other facts.
    throw new ApiError(
      "UNAUTHORIZED",
      `${asserted.join(", ")} ${asserted.length === 1 ? "needs" : "need"} a verifier credential: send Authorization: Bearer <a key of the org holding ${VERIFIER_PERMISSION}>.`,
      { reason: "VERIFIER_REQUIRED", fields: asserted },
      { "WWW-Authenticate": WWW_AUTHENTICATE_REALM },
    );
  }
  // The address judged: a verifier's word for its own caller's, otherwise the connecting one.
  const judged = (verifier && body.ip) || c.req.header("cf-connecting-ip");
  // The address a verifier vouches for is limited like a connecting one.
  if (verifier && body.ip) await refuseLimited(body.ip, "verify", leaseMode ? body.key : undefined);
  const result = await verifyKey(c.env, body.key, {
    ip: judged,
    cost: verifier ? body.cost : undefined,
    permission: body.permission,
    app: body.app,
    mode: body.mode,
    strict: body.strict,
    orgId: verifier?.orgId,
    waitUntil: (p) => c.executionCtx.waitUntil(p),
  });
  c.set("outcome", result.code);
  // A key that is not what it claims to be is a failed authentication; a valid key lacking a
  // permission is not (its holder proved possession). Past the limit, a failure is answered 429.
  // A verifier's failures count against the address it vouched for, not its own: one server verifying
  // for many clients is not one client guessing.
  if (!result.valid && !["INSUFFICIENT_PERMISSIONS", "RATE_LIMITED", "USAGE_EXCEEDED"].includes(result.code)) {
    recordFailure(c.env, judged ?? clientIp(c.req.raw.headers), "verify", result, (p) => c.executionCtx.waitUntil(p));
  }
  return c.json(verdictBody(result, { identifyRefusals: verifier !== undefined }), 200);
};

export const registerVerifyKey = (app: App) => app.openapi(route, handler);
