import { sql } from "drizzle-orm";
import type { Metadata } from "../domain/metadata";
import type { CreditRefill } from "../domain/credits";
import type { RateLimit } from "../domain/rate-limit";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * The D1 schema: the source of truth for organizations, apps, keys, policy and the audit log.
 * `docs/storage.md` describes every table; `test/schema-drift.test.ts` proves `migrations/` matches it.
 * Times are integer milliseconds since the epoch (UTC).
 */

export const orgs = sqliteTable("orgs", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: integer("created_at").notNull(),
});

export const apps = sqliteTable(
  "apps",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id),
    name: text("name").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("apps_org_name").on(t.orgId, t.name)],
);

export const apiKeys = sqliteTable(
  "api_keys",
  {
    /** Time-ordered id, also carried inside the secret so the hot path can address its authority. */
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id),
    name: text("name").notNull(),
    kind: text("kind", { enum: ["rbac", "scoped", "legacy"] }).notNull(),
    /** Secure keys keep only `keyHash`; others also keep `secretCiphertext` (AES-GCM) for reveal. */
    secure: integer("secure", { mode: "boolean" }).notNull(),
    /** Hex SHA-256 of the full key string; the KV cache is keyed by it. */
    keyHash: text("key_hash").notNull(),
    /** The short, non-secret start of the key shown in lists. */
    keyPrefix: text("key_prefix").notNull(),
    secretCiphertext: text("secret_ciphertext"),
    orgRole: text("org_role", { enum: ["none", "member", "admin"] }),
    mode: text("mode", { enum: ["read", "upload", "write", "all"] }),
    /** JSON array of scope names, for scoped keys. */
    scopes: text("scopes", { mode: "json" }).$type<string[]>(),
    expiresAt: integer("expires_at"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    lastUsedAt: integer("last_used_at"),
    revokedAt: integer("revoked_at"),
    createdBy: text("created_by"),
    /** A reversible pause: while set, every verification answers DISABLED. */
    disabledAt: integer("disabled_at"),
    /** The key verifies from this time on (NOT_YET_VALID before). */
    notBefore: integer("not_before"),
    /** JSON array of canonical CIDR ranges the key may be used from; null for anywhere. */
    allowedNetworks: text("allowed_networks", { mode: "json" }).$type<string[]>(),
    /** JSON object (≤ 1 KiB) returned by verification and forwarded upstream; never indexed. */
    metadata: text("metadata", { mode: "json" }).$type<Metadata>(),
    /** JSON array of `{ limit, periodSeconds }` (at most 3); null: the org policy's, if any. */
    rateLimits: text("rate_limits", { mode: "json" }).$type<RateLimit[]>(),
    /**
     * Uses left (null: unmetered), as of `creditsAsOf`: a copy for listing. The balance itself lives in
     * the key's authority's own storage (src/durable-objects/key-metering.ts), which writes it here at
     * most once a minute, and at once when an edit sets it.
     */
    credits: integer("credits"),
    /** When `credits` (and `credits_refilled_at`) were last copied from the key's authority (ms). */
    creditsAsOf: integer("credits_as_of"),
    /** JSON `{ amount, interval: "day" | "month" }`: `credits` is set back to `amount` when an interval begins. */
    creditsRefill: text("credits_refill", { mode: "json" }).$type<CreditRefill>(),
    /** When `credits` was last refilled (ms): the next refill is at the start of the interval after it. */
    creditsRefilledAt: integer("credits_refilled_at"),
    /**
     * Rotation with overlap: the secret before the last regeneration keeps verifying (reported as
     * rotating) until `previousExpiresAt`. Its hash is not unique-indexed: only the authority reads it.
     */
    previousKeyHash: text("previous_key_hash"),
    previousKeyPrefix: text("previous_key_prefix"),
    previousExpiresAt: integer("previous_expires_at"),
    previousLastUsedAt: integer("previous_last_used_at"),
  },
  (t) => [
    uniqueIndex("api_keys_hash").on(t.keyHash),
    // Cursor pagination of one org's keys (optionally by kind) walks these indexes, newest first.
    index("api_keys_org_id").on(t.orgId, t.revokedAt, t.id),
    index("api_keys_org_kind_id").on(t.orgId, t.kind, t.revokedAt, t.id),
  ],
);

export const keyAppRoles = sqliteTable(
  "key_app_roles",
  {
    keyId: text("key_id")
      .notNull()
      .references(() => apiKeys.id),
    appId: text("app_id")
      .notNull()
      .references(() => apps.id),
    role: text("role", { enum: ["reader", "uploader", "developer", "admin"] }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.appId] }), index("key_app_roles_app").on(t.appId)],
);

export const orgPolicies = sqliteTable("org_policies", {
  orgId: text("org_id")
    .primaryKey()
    .references(() => orgs.id),
  requireExpiration: integer("require_expiration", { mode: "boolean" }).notNull().default(false),
  maxLifetimeDays: integer("max_lifetime_days"),
  /** Keys with `org:admin` or `apiKeyManagement` must carry allowed networks. */
  requireNetworksForAdmin: integer("require_networks_for_admin", { mode: "boolean" }).notNull().default(false),
  /** What a secret scanning report of one of the org's keys does to it: revoke it, or disable it (reversible). */
  leakedKeyAction: text("leaked_key_action", { enum: ["revoke", "disable"] }).notNull().default("revoke"),
  /** A key unused (since its last use, or its creation) for this many days is flagged `key.unused`; null: never. */
  unusedKeyDays: integer("unused_key_days"),
  /** With `unused_key_days`: an unused key is also expired (through its authority), not only flagged. */
  expireUnusedKeys: integer("expire_unused_keys", { mode: "boolean" }).notNull().default(false),
  /** Rate limits of every key of the org that has none of its own (JSON array, as `api_keys.rate_limits`). */
  rateLimits: text("rate_limits", { mode: "json" }).$type<RateLimit[]>(),
  updatedAt: integer("updated_at").notNull(),
});

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    orgId: text("org_id").notNull(),
    actorKeyId: text("actor_key_id"),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    requestId: text("request_id").notNull(),
    /** JSON object of non-secret facts about the change (never key material). */
    details: text("details", { mode: "json" }).$type<Record<string, unknown>>(),
    createdAt: integer("created_at").notNull().default(sql`(unixepoch() * 1000)`),
  },
  (t) => [index("audit_log_org_id").on(t.orgId, t.id)],
);

/**
 * Signed secret scanning reports received, by the SHA-256 of their raw body: a report replayed (the
 * same signed body sent again, by anyone) is refused. Kept so that a captured report stays useless.
 */
export const secretScanReports = sqliteTable("secret_scan_reports", {
  bodyHash: text("body_hash").primaryKey(),
  keyIdentifier: text("key_identifier").notNull(),
  tokens: integer("tokens").notNull(),
  receivedAt: integer("received_at").notNull(),
});

/**
 * The outbox: one row per lifecycle event, inserted in the same D1 batch as the change it describes
 * (so an event exists exactly when its change committed), then published to the `EVENTS` queue. A
 * publisher claims rows (`claimed_at`) before sending and marks them `published_at` after; a claim
 * older than a minute is taken again, so an event is published at least once whatever fails.
 */
export const events = sqliteTable(
  "events",
  {
    /** Time-ordered id (`evt_…`), also the webhook payload's id. */
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    /** `key.created`, `key.revoked`, … (`EVENT_TYPES` in src/storage/events.ts). */
    type: text("type").notNull(),
    subjectType: text("subject_type").notNull(),
    subjectId: text("subject_id").notNull(),
    /** JSON object of non-secret facts (the audit entry's details, never key material). */
    data: text("data", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
    createdAt: integer("created_at").notNull(),
    claimedAt: integer("claimed_at"),
    publishedAt: integer("published_at"),
  },
  (t) => [index("events_unpublished").on(t.publishedAt, t.id), index("events_org").on(t.orgId, t.id)],
);

/** An organization's webhook endpoints: where its events are delivered, signed (Standard Webhooks). */
export const webhookEndpoints = sqliteTable(
  "webhook_endpoints",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id),
    url: text("url").notNull(),
    /** JSON array of event types, or `["*"]` for all. */
    eventTypes: text("event_types", { mode: "json" }).$type<string[]>().notNull(),
    description: text("description"),
    /** The `whsec_…` signing secret, AES-256-GCM under KEY_ENCRYPTION_SECRET: shown once, needed to sign. */
    secretCiphertext: text("secret_ciphertext").notNull(),
    createdAt: integer("created_at").notNull(),
    disabledAt: integer("disabled_at"),
  },
  (t) => [index("webhook_endpoints_org").on(t.orgId, t.id)],
);

/** One delivery of one event to one endpoint: its attempts, until it succeeds or is dead-lettered. */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    /** Time-ordered id (`msg_…`), sent as `webhook-id`: the same on every attempt, so receivers can deduplicate. */
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    endpointId: text("endpoint_id").notNull(),
    eventId: text("event_id").notNull(),
    status: text("status", { enum: ["pending", "succeeded", "failed", "dead"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastStatus: integer("last_status"),
    lastError: text("last_error"),
    nextAttemptAt: integer("next_attempt_at"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    uniqueIndex("webhook_deliveries_endpoint_event").on(t.endpointId, t.eventId),
    index("webhook_deliveries_org").on(t.orgId, t.id),
    // The minute's sweep of deliveries due long ago but never attempted.
    index("webhook_deliveries_due").on(t.status, t.nextAttemptAt),
  ],
);

/**
 * Verification outcomes per key per hour, kept 90 days: the isolates count in memory and add their
 * counts here off the response path (src/verification/usage.ts). Only keys that exist are counted.
 */
export const keyUsage = sqliteTable(
  "key_usage",
  {
    keyId: text("key_id").notNull(),
    orgId: text("org_id").notNull(),
    /**
     * Start of the UTC day (ms) of the key's authority's daily roll-up (issue 22); rows written before
     * held the hour's start. Every reader sums whole days, so both read alike.
     */
    hour: integer("hour").notNull(),
    /** The verify code: VALID, EXPIRED, REVOKED, INSUFFICIENT_PERMISSIONS, … */
    outcome: text("outcome").notNull(),
    count: integer("count").notNull(),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.hour, t.outcome] }), index("key_usage_org_hour").on(t.orgId, t.hour)],
);
