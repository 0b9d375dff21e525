import { and, eq, gt, isNull, lte, ne, or, sql } from "drizzle-orm";
import type { AppRole, LegacyMode, OrgRole, Permission } from "../domain/catalog";
import type { Metadata } from "../domain/metadata";
import type { RateLimit } from "../domain/rate-limit";
import type { KeyAccess } from "../domain/permissions";
import { NO_POLICY, type OrgPolicy } from "../domain/policy";
import type { Db } from "./db";
import { apiKeys, apps, keyAppRoles, orgPolicies } from "./schema";

/**
 * What the KV cache holds for one key hash, under `key:<sha256 hex>`. Never any key material: the
 * hash is the KV key name and is not repeated here. `docs/storage.md` documents it.
 *
 * `version` is the row's `updatedAt`, which every change makes strictly greater: the authority never
 * writes a record older than one it has already written or committed (see `KeyAuthority`).
 */
export type KeyRecord =
  | ({
      status: "active";
      keyId: string;
      orgId: string;
      name: string;
      createdAt: number;
      expiresAt: number | null;
      version: number;
      /** Paused: verifications answer DISABLED. Absent in records written before it existed. */
      disabled?: boolean;
      /** Valid from this time on (null: since creation). */
      notBefore?: number | null;
      /** Canonical CIDR ranges the key may be used from (null: anywhere). */
      allowedNetworks?: string[] | null;
      metadata?: Metadata | null;
      /** The key's own rate limits (null: the org policy's, if any). */
      rateLimits?: RateLimit[] | null;
      /** It has credits: every allowed use is paid from them, through its authority's slices. */
      metered?: boolean;
      /** On the record of the previous secret during a rotation overlap: it verifies until then. */
      rotatingUntil?: number;
    } & KeyAccess)
  | { status: "revoked"; keyId: string; orgId: string; version: number }
  | { status: "unknown" };

export const KEY_RECORD_PREFIX = "key:";
export const POLICY_RECORD_PREFIX = "policy:";
export const APP_RECORD_PREFIX = "app:";
/** Tombstones and negative records only save work; KV's minimum TTL is 60 s, one hour keeps them cheap. */
export const TOMBSTONE_TTL_SECONDS = 3600;
/**
 * Active records expire too, so a record that should not exist (a write that landed out of order
 * despite everything) outlives its cause by at most this long. A miss after it costs one fill.
 */
export const ACTIVE_RECORD_TTL_SECONDS = 900;

export const keyRecordName = (hash: string) => KEY_RECORD_PREFIX + hash;
export const policyRecordName = (orgId: string) => POLICY_RECORD_PREFIX + orgId;
/** `app:<appId>` → `{ orgId }`: which org an app belongs to, for org-wide grants used on an app. */
export const appRecordName = (appId: string) => APP_RECORD_PREFIX + appId;
export interface AppRecord {
  orgId: string;
}

/** The KV write options of a record: every record expires (see the TTLs above). */
export function recordTtl(record: KeyRecord): { expirationTtl: number } {
  return { expirationTtl: record.status === "active" ? ACTIVE_RECORD_TTL_SECONDS : TOMBSTONE_TTL_SECONDS };
}

/** The D1 row of a key with its app roles, as the authority and the management routes read it. */
export type KeyRow = typeof apiKeys.$inferSelect & { appRoles: Record<string, AppRole> };

export async function loadKeyRow(database: Db, keyId: string, orgId?: string): Promise<KeyRow | null> {
  return (await loadKeyRowAndPolicy(database, keyId, orgId)).row;
}

// The key's app roles as one JSON object, so the row and its roles come back in one query.
const appRolesJson = sql<string>`(select json_group_object(${keyAppRoles.appId}, ${keyAppRoles.role}) from ${keyAppRoles} where ${keyAppRoles.keyId} = ${apiKeys.id})`;

/**
 * A key's row, its app roles and its org's policy in one D1 query: a cache fill needs all three, and
 * on local workerd every D1 round trip costs as much as the rest of the request.
 */
export async function loadKeyRowAndPolicy(database: Db, keyId: string, orgId?: string): Promise<{ row: KeyRow | null; policy: OrgPolicy }> {
  const where = orgId ? and(eq(apiKeys.id, keyId), eq(apiKeys.orgId, orgId)) : eq(apiKeys.id, keyId);
  const found = await database
    .select({
      key: apiKeys,
      appRoles: appRolesJson,
      requireExpiration: orgPolicies.requireExpiration,
      maxLifetimeDays: orgPolicies.maxLifetimeDays,
      requireNetworksForAdmin: orgPolicies.requireNetworksForAdmin,
      rateLimits: orgPolicies.rateLimits,
    })
    .from(apiKeys)
    .leftJoin(orgPolicies, eq(orgPolicies.orgId, apiKeys.orgId))
    .where(where)
    .get();
  if (!found) return { row: null, policy: NO_POLICY };
  const policy =
    found.requireExpiration === null
      ? NO_POLICY
      : {
          requireExpiration: found.requireExpiration,
          maxLifetimeDays: found.maxLifetimeDays,
          requireNetworksForAdmin: found.requireNetworksForAdmin ?? false,
          rateLimits: found.rateLimits,
        };
  return { row: { ...found.key, appRoles: JSON.parse(found.appRoles ?? "{}") as Record<string, AppRole> }, policy };
}

/** The access a stored key carries, in the evaluator's shape. */
export function accessOf(row: KeyRow): KeyAccess {
  switch (row.kind) {
    case "rbac":
      return { kind: "rbac", orgRole: (row.orgRole ?? "none") as OrgRole, appRoles: row.orgRole === "admin" ? {} : row.appRoles };
    case "scoped":
      return { kind: "scoped", scopes: (row.scopes ?? []) as Permission[] };
    case "legacy":
      return { kind: "legacy", mode: (row.mode ?? "read") as LegacyMode };
  }
}

/**
 * The cache record for a key row: of its current secret, or with `previous`, of the secret it had
 * before its last regeneration, which verifies (as rotating) until the overlap ends.
 */
export function recordOf(row: KeyRow, previous = false): KeyRecord {
  if (row.revokedAt !== null) return { status: "revoked", keyId: row.id, orgId: row.orgId, version: row.updatedAt };
  return {
    status: "active",
    keyId: row.id,
    orgId: row.orgId,
    name: row.name,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    version: row.updatedAt,
    disabled: row.disabledAt !== null,
    notBefore: row.notBefore,
    allowedNetworks: row.allowedNetworks,
    metadata: row.metadata,
    rateLimits: row.rateLimits,
    metered: row.credits !== null,
    ...(previous ? { rotatingUntil: row.previousExpiresAt ?? 0 } : {}),
    ...accessOf(row),
  };
}

/** Whether `row` is in a rotation overlap: it has a previous secret whose overlap has not ended. */
export const inOverlap = (row: KeyRow, now: number) => row.previousKeyHash !== null && (row.previousExpiresAt ?? 0) > now;

/** The org an app belongs to, from D1: null when there is no such app. */
export async function loadAppOrg(database: Db, appId: string): Promise<string | null> {
  const row = await database.select({ orgId: apps.orgId }).from(apps).where(eq(apps.id, appId)).get();
  return row?.orgId ?? null;
}

/**
 * Whether another live admin key (org role admin or legacy `all`, not revoked, disabled, expired or
 * not yet valid) than `keyId` exists in `orgId`: revoking or disabling the last one would leave the
 * org with no way back.
 */
export async function hasOtherAdminKey(database: Db, orgId: string, keyId: string, now: number): Promise<boolean> {
  const found = await database
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(
      and(
        eq(apiKeys.orgId, orgId),
        ne(apiKeys.id, keyId),
        isNull(apiKeys.revokedAt),
        isNull(apiKeys.disabledAt),
        or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)),
        or(isNull(apiKeys.notBefore), lte(apiKeys.notBefore, now)),
        or(eq(apiKeys.orgRole, "admin"), eq(apiKeys.mode, "all")),
      ),
    )
    .limit(1)
    .get();
  return found !== undefined;
}

/** Whether the row is an admin key in the sense of {@link hasOtherAdminKey}. */
export const isAdminKey = (row: KeyRow) => row.orgRole === "admin" || row.mode === "all";

export async function loadPolicy(database: Db, orgId: string): Promise<OrgPolicy> {
  const row = await database.select().from(orgPolicies).where(eq(orgPolicies.orgId, orgId)).get();
  return row
    ? {
        requireExpiration: row.requireExpiration,
        maxLifetimeDays: row.maxLifetimeDays,
        requireNetworksForAdmin: row.requireNetworksForAdmin,
        leakedKeyAction: row.leakedKeyAction,
        unusedKeyDays: row.unusedKeyDays,
        expireUnusedKeys: row.expireUnusedKeys,
        rateLimits: row.rateLimits,
      }
    : NO_POLICY;
}

/** Whether `keyId` is a key of `orgId` in the directory (D1), revoked or not: one indexed read. */
export async function keyInDirectory(database: Db, keyId: string, orgId: string): Promise<boolean> {
  const found = await database.select({ id: apiKeys.id }).from(apiKeys).where(and(eq(apiKeys.id, keyId), eq(apiKeys.orgId, orgId))).get();
  return found !== undefined;
}
