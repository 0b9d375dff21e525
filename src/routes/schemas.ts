import { z } from "@hono/zod-openapi";
import { APP_ROLES, EXPIRY_PRESETS_DAYS, LEGACY_MODES, ORG_ROLES, SCOPES } from "../domain/catalog";
import { ID_PATTERN, KEY_PATTERN_SOURCE } from "../domain/key-format";
import { MAX_NETWORKS } from "../domain/allowed-networks";
import { MAX_CREDITS } from "../domain/credits";
import { METADATA_MAX_BYTES, METADATA_MAX_DEPTH, metadataIssue, type Metadata } from "../domain/metadata";
import { MAX_LIFETIME_DAYS_LIMIT } from "../domain/policy";
import { MAX_LIMIT, MAX_PERIOD_SECONDS, MAX_RATE_LIMITS } from "../domain/rate-limit";
import { ERROR_STATUS } from "../errors";

/**
 * Schemas shared by several endpoints. Each endpoint's own request and response schemas live in its
 * route file; these are the building blocks, and their `.openapi()` text is the API documentation.
 */

export const NAME_MAX_LENGTH = 100;
// Control characters (C0, DEL, C1) and lone surrogates make names unreadable in lists and logs.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** A display name: trimmed, 1–100 characters, no control characters. */
export const Name = z
  .string()
  .trim()
  .min(1, "must not be empty")
  .max(NAME_MAX_LENGTH, `must be at most ${NAME_MAX_LENGTH} characters`)
  .refine((s) => !CONTROL_CHARS.test(s), "must not contain control characters")
  .refine((s) => s.isWellFormed(), "must be valid Unicode")
  .openapi({ example: "CI/CD Deploy" });

export const Id = z.string().regex(ID_PATTERN, "must be an id (20 characters of lowercase base32)");

export const OrgIdParam = z.object({
  orgId: Id.openapi({ param: { name: "orgId", in: "path" }, example: "01jd8x6w2m9k3v7q4r5t" }),
});
export const KeyIdParams = OrgIdParam.extend({
  keyId: Id.openapi({ param: { name: "keyId", in: "path" }, example: "01jd8x7a0b1c2d3e4f5g" }),
});

export const Timestamp = z.string().datetime().openapi({ example: "2026-11-22T14:00:00.000Z" });
export { iso } from "../storage/audit";

export const OrgRoleSchema = z.enum(ORG_ROLES).openapi({
  description: "Organization-wide role: `none` (only per-app access), `member` (read), `admin` (everything, every app).",
});
export const AppRoleSchema = z.enum(APP_ROLES).openapi({
  description: "Role on one app: `reader` ⊂ `uploader` ⊂ `developer` ⊂ `admin`.",
});
export const ScopeSchema = z.enum(SCOPES).openapi({ description: "A scope from the fixed catalog." });
export const LegacyModeSchema = z.enum(LEGACY_MODES).openapi({ description: "Legacy mode: `read` ⊂ `upload` ⊂ `write` ⊂ `all`." });

export const AppRoleAssignment = z.strictObject({ appId: Id, role: AppRoleSchema });

export const KindSchema = z.enum(["rbac", "scoped", "legacy"]);

/** Key metadata as requests carry it: validated as data (size, depth, no prototype keys) by the domain. */
const metadataValue = z
  // Judged on the parsed JSON itself: a record schema would copy it first, and copying an own
  // `__proto__` key sets the copy's prototype instead, hiding the key from the check.
  .unknown()
  .superRefine((value, ctx) => {
    const issue = metadataIssue(value);
    if (issue) ctx.addIssue({ code: "custom", message: issue });
  })
  .transform((value) => value as Metadata);

const METADATA_EXAMPLE = { customerId: "cus_123", plan: "pro" };

export const MetadataSchema = metadataValue.openapi("Metadata", {
  type: "object",
  additionalProperties: {},
  description:
    `A JSON object of at most ${METADATA_MAX_BYTES} bytes (as UTF-8 JSON), nested at most ${METADATA_MAX_DEPTH} levels, ` +
    "without `__proto__`, `constructor` or `prototype` keys. Returned by verification and forwarded upstream in " +
    "`x-keygate-key-metadata` (base64url JSON); never indexed or searched.",
  example: METADATA_EXAMPLE,
});

// The generator drops the nullability of an unknown it is told is an object, and its metadata type (OpenAPI 3.1)
// has no `nullable`: said here, for the 3.0 document.
const OAS30_NULLABLE = { nullable: true };

/**
 * Metadata where null is a value (a key without metadata, an edit that removes it), the same checks written
 * out instead of a `$ref`: OpenAPI 3.0 makes a referenced schema nullable only through an `allOf` beside a
 * bare `nullable`, which validators refuse ("nullable without type") and then skip the examples that use it.
 */
export const nullableMetadata = (description: string) =>
  metadataValue.nullable().openapi({ type: "object", additionalProperties: {}, ...OAS30_NULLABLE, description, example: METADATA_EXAMPLE });

/** Rate limits as requests carry them: at most 3 windows, one per period. */
export const RateLimitsField = z
  .array(
    z
      .strictObject({
        limit: z.number().int("must be a whole number").min(1, "must be at least 1").max(MAX_LIMIT, `must be at most ${MAX_LIMIT}`),
        periodSeconds: z
          .number()
          .int("must be a whole number")
          .min(1, "must be at least 1")
          .max(MAX_PERIOD_SECONDS, `must be at most ${MAX_PERIOD_SECONDS} (31 days)`),
      })
      .openapi("RateLimit", { example: { limit: 100, periodSeconds: 10 } }),
  )
  .max(MAX_RATE_LIMITS, `must list at most ${MAX_RATE_LIMITS} limits`)
  .refine((limits) => new Set(limits.map((l) => l.periodSeconds)).size === limits.length, "must give each period once")
  .openapi({
    description:
      "Verifications allowed per window, e.g. 100 per 10 s and 10,000 per day: over one, verification answers RATE_LIMITED and " +
      "the gateway 429 with Retry-After and RateLimit headers. Windows are fixed, aligned to the epoch. What all locations " +
      "admit together never exceeds a limit while the key's authority answers (docs/rate-limits.md). Empty: none of its own. " +
      "Limits are access: each of the calling key's effective limits (its own, or the policy's) must be matched by an equal " +
      "or stricter one (403 `METERING_BEYOND_CALLER`).",
    example: [
      { limit: 100, periodSeconds: 10 },
      { limit: 10000, periodSeconds: 86400 },
    ],
  });

/** Credits as requests set them: the balance (null: unmetered) and an optional refill. */
export const CreditsFields = {
  credits: z
    .number()
    .int("must be a whole number")
    .min(0, "must not be negative")
    .max(MAX_CREDITS, `must be at most ${MAX_CREDITS}`)
    .nullable()
    .optional()
    .openapi({
      description:
        "Uses left: each allowed verification spends one (or its `cost`); at zero the key answers USAGE_EXCEEDED. null: " +
        "unmetered. Setting it sets the balance. A calling key with credits gives keys (itself included) no more than its own " +
        "balance and never null (403 `METERING_BEYOND_CALLER`).",
      example: 10000,
    }),
  creditsRefill: z
    .strictObject({
      amount: z.number().int("must be a whole number").min(1, "must be at least 1").max(MAX_CREDITS, `must be at most ${MAX_CREDITS}`),
      interval: z.enum(["day", "month"]),
    })
    .nullable()
    .optional()
    .openapi("CreditRefill", {
      description: "Set the balance back to `amount` at the start of each day or month (UTC). Needs `credits`.",
      example: { amount: 10000, interval: "month" },
    }),
};

/** Allowed networks as requests carry them; the domain parses and canonicalizes each range. */
export const AllowedNetworksField = z
  .array(z.string().max(64, "must be at most 64 characters"))
  .max(MAX_NETWORKS, `must list at most ${MAX_NETWORKS} networks`)
  .openapi({
    description:
      `Up to ${MAX_NETWORKS} IPv4/IPv6 CIDR ranges (a bare address is /32 or /128) the key may be used from; a request from ` +
      "elsewhere answers IP_NOT_ALLOWED. Host bits must be zero. Empty: anywhere. Stored in canonical form.",
    example: ["203.0.113.0/24", "2001:db8::/32"],
  });

/** How a request sets an expiration: a preset number of days or an explicit future time. */
export const ExpirationFields = {
  expiresInDays: z
    .union(EXPIRY_PRESETS_DAYS.map((d) => z.literal(d)) as unknown as [z.ZodLiteral<30>, z.ZodLiteral<60>, z.ZodLiteral<90>, z.ZodLiteral<365>])
    .optional()
    .openapi({ description: "Expire after a preset number of days.", example: 90 }),
  expiresAt: Timestamp.nullable()
    .optional()
    .openapi({ description: "Expire at this time (must be in the future), or null for no expiry." }),
};

/**
 * `expiresInDays` and `expiresAt` are exclusive, as the OpenAPI document says it: spread into the
 * `.openapi()` of every body with `ExpirationFields`. The handlers refuse both with a 400 naming each.
 */
export const EXPIRATION_EXCLUSIVE = {
  not: { properties: { expiresInDays: {}, expiresAt: {} }, required: ["expiresInDays", "expiresAt"] },
};

export const KEY_EXAMPLE = {
  id: "01jd8x7a0b1c2d3e4f5g",
  orgId: "01jd8x6w2m9k3v7q4r5t",
  name: "CI/CD Deploy",
  kind: "rbac" as const,
  secure: true,
  prefix: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9",
  orgRole: "none" as const,
  appRoles: [{ appId: "01jd8x9b2c3d4e5f6g7h", role: "uploader" as const }],
  scopes: null,
  mode: null,
  status: "active" as const,
  createdAt: "2026-11-22T14:00:00.000Z",
  updatedAt: "2026-11-22T14:00:00.000Z",
  lastUsedAt: null,
  expiresAt: "2027-02-20T14:00:00.000Z",
  notBefore: null,
  disabledAt: null,
  allowedNetworks: [],
  rateLimits: [],
  credits: null,
  metadata: { customerId: "cus_123", plan: "pro" },
  rotation: null,
};

export const KeyObject = z
  .object({
    id: Id,
    orgId: Id,
    name: z.string(),
    kind: KindSchema,
    secure: z.boolean().openapi({ description: "Secure keys are stored only as a hash and can never be revealed." }),
    prefix: z.string().openapi({ description: "The non-secret start of the key.", example: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9" }),
    orgRole: OrgRoleSchema.nullable(),
    appRoles: z.array(z.object({ appId: Id, role: AppRoleSchema })),
    scopes: z.array(ScopeSchema).nullable(),
    mode: LegacyModeSchema.nullable(),
    status: z.enum(["active", "expired", "disabled", "pending"]).openapi({
      description: "`active`; `disabled` (paused, see enable); `expired`; `pending` (its `notBefore` is still ahead).",
    }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    lastUsedAt: Timestamp.nullable().openapi({ description: "The key's last use, by any of its secrets (to the minute)." }),
    expiresAt: Timestamp.nullable(),
    notBefore: Timestamp.nullable().openapi({ description: "The key verifies from this time on (NOT_YET_VALID before); null: since creation." }),
    disabledAt: Timestamp.nullable().openapi({ description: "When the key was disabled; null when it is not." }),
    credits: z
      .object({
        remaining: z.number().int().openapi({
          description:
            "Uses neither spent nor reserved. An isolate serving the key reserves a slice of its credits for T (the lease " +
            "time): one use at first, more as its rate grows (at most 100), so a key used once shows exactly one spent. " +
            "What a slice did not spend comes back when its isolate next asks (within a minute of the slice's end), else it " +
            "counts as spent: `remaining` is low by at most two slices (the one spent from and the next) per isolate that served the key. Setting the balance " +
            "voids every slice: no use beyond the new balance is admitted once the edit returns. The balance is held by " +
            "the key's authority: a key's own GET (and every answer to an edit of it) shows it as of the request; a list " +
            "shows the copy the authority makes in the database at most once a minute, as of `asOf`.",
        }),
        asOf: Timestamp.openapi({
          description:
            "When `remaining` was read from the key's authority: the request's own time in a key's GET and in answers " +
            "to edits; in lists, when the authority last copied it (at most a minute behind while the key is used).",
        }),
        refill: z.object({ amount: z.number().int(), interval: z.enum(["day", "month"]) }).nullable(),
        nextRefillAt: Timestamp.nullable(),
      })
      .nullable()
      .openapi({ description: "The key's credits; null: unmetered." }),
    rateLimits: z.array(z.object({ limit: z.number().int(), periodSeconds: z.number().int() })).openapi({
      description: "The key's own rate limits; empty: none (the organization's policy may set some for every key).",
    }),
    allowedNetworks: z.array(z.string()).openapi({
      description: "CIDR ranges the key may be used from, canonical form; empty: anywhere.",
      example: ["203.0.113.0/24", "2001:db8::/32"],
    }),
    metadata: nullableMetadata("The key's metadata (see `Metadata`); null when it has none."),
    rotation: z
      .object({
        previousPrefix: z.string().openapi({ description: "The start of the previous secret, which still verifies (as rotating)." }),
        endsAt: Timestamp.openapi({ description: "When the previous secret stops verifying." }),
        previousLastUsedAt: Timestamp.nullable().openapi({
          description: "The previous secret's last use since the rotation began (to the minute): null when no client has used it since.",
        }),
      })
      .nullable()
      .openapi({ description: "A rotation overlap in progress (see regenerate's `overlapSeconds`), or null." }),
  })
  .openapi("Key", { example: KEY_EXAMPLE });

export const KeyWithSecret = KeyObject.extend({
  key: z.string().openapi({
    description: `The full key, shown only in this response. Format: \`${KEY_PATTERN_SOURCE}\`.`,
    example: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e",
  }),
}).openapi("KeyWithSecret", { example: { ...KEY_EXAMPLE, key: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e" } });

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERROR_STATUS) as [keyof typeof ERROR_STATUS]),
      message: z.string(),
      requestId: z.string(),
      details: z
        .record(z.string(), z.unknown())
        .optional()
        .openapi({
          type: "object",
          additionalProperties: {},
          description: "Facts about the failure: `issues` (each bad field), `missing` (permissions lacked), `reason`, `code`, `secret`, `allow`…",
        }),
    }),
  })
  .openapi("Error");

/** A response header, as the OpenAPI document declares it. */
const header = (description: string, type: "string" | "integer" = "string") => ({ description, schema: { type } });

/** Sent on every response, success or error: quote it when reporting a problem. Required, so typed clients need no check. */
export const REQUEST_ID_HEADER = {
  "x-request-id": {
    ...header("This request's id, also in the error envelope and the audit log: quote it when reporting a problem."),
    required: true,
  },
};
const RETRY_AFTER = (description: string) => ({ "Retry-After": header(description, "integer") });

/** An error response: the envelope, the request id, and `headers` the status always carries. */
export const errorResponse = (description: string, headers: Record<string, ReturnType<typeof header>> = {}) => ({
  content: { "application/json": { schema: ErrorSchema } },
  headers: { ...REQUEST_ID_HEADER, ...headers },
  description,
});

/** 429 of the per-address failure limit, with the seconds until the window ends. */
export const rateLimitedResponse = (description: string) =>
  errorResponse(description, RETRY_AFTER("Seconds until this address may try again."));

/** 503 of a storage fault, with the seconds to wait before retrying. */
export const storageUnavailableResponse = errorResponse(
  "`SERVICE_UNAVAILABLE`: storage is unavailable; nothing was changed. Retry after `Retry-After` seconds.",
  RETRY_AFTER("Seconds to wait before retrying."),
);

/** A success response without a body. */
export const noContent = (description: string) => ({ headers: REQUEST_ID_HEADER, description });

/** The error responses every authenticated endpoint can give. */
export const errorResponses = {
  400: errorResponse("Invalid request: `details.issues` names each bad field."),
  401: errorResponse("Missing, malformed, unknown, expired or revoked key.", {
    "WWW-Authenticate": header('The RFC 6750 challenge: `Bearer realm="keygate"`, with `error="invalid_token"` when a key was presented.'),
  }),
  403: errorResponse("The key lacks the permission this needs."),
  404: errorResponse("No such object in the caller's organization."),
  413: errorResponse("Request body too large."),
  415: errorResponse("Request body is not JSON."),
  429: rateLimitedResponse(
    "Too many failed authentications from this address (`RATE_LIMITED`, with `Retry-After`): until the window ends the " +
      "address is refused before any credential it presents is looked up, a valid management key included.",
  ),
  500: errorResponse("`MISCONFIGURED`: a Worker secret this needs is missing or shorter than 32 bytes; nothing was done."),
  503: storageUnavailableResponse,
} as const;

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  headers: REQUEST_ID_HEADER,
  description,
});

export const MAX_LIFETIME = MAX_LIFETIME_DAYS_LIMIT;
