import { and, eq, sql } from "drizzle-orm";
import type { AppRole, LegacyMode, OrgRole, Permission } from "../domain/catalog";
import type { KeyAccess } from "../domain/permissions";
import { NO_POLICY, type OrgPolicy } from "../domain/policy";
import type { Db } from "./db";
import { apiKeys, keyAppRoles, orgPolicies } from "./schema";

/**
 * What the KV cache holds for one key hash, under `key:<sha256 hex>`. Never any key material: the
 * hash is the KV key name and is not repeated here. `docs/storage.md` documents it.
 */
export type KeyRecord =
  | ({ status: "active"; keyId: string; orgId: string; name: string; createdAt: number; expiresAt: number | null } & KeyAccess)
  | { status: "revoked"; keyId: string; orgId: string }
  | { status: "unknown" };

export const KEY_RECORD_PREFIX = "key:";
export const POLICY_RECORD_PREFIX = "policy:";
/** Tombstones and negative records only save work; KV's minimum TTL is 60 s, one hour keeps them cheap. */
export const TOMBSTONE_TTL_SECONDS = 3600;

export const keyRecordName = (hash: string) => KEY_RECORD_PREFIX + hash;
export const policyRecordName = (orgId: string) => POLICY_RECORD_PREFIX + orgId;

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
    .select({ key: apiKeys, appRoles: appRolesJson, requireExpiration: orgPolicies.requireExpiration, maxLifetimeDays: orgPolicies.maxLifetimeDays })
    .from(apiKeys)
    .leftJoin(orgPolicies, eq(orgPolicies.orgId, apiKeys.orgId))
    .where(where)
    .get();
  if (!found) return { row: null, policy: NO_POLICY };
  const policy = found.requireExpiration === null ? NO_POLICY : { requireExpiration: found.requireExpiration, maxLifetimeDays: found.maxLifetimeDays };
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

/** The cache record for a key row. */
export function recordOf(row: KeyRow): KeyRecord {
  if (row.revokedAt !== null) return { status: "revoked", keyId: row.id, orgId: row.orgId };
  return {
    status: "active",
    keyId: row.id,
    orgId: row.orgId,
    name: row.name,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    ...accessOf(row),
  };
}

export async function loadPolicy(database: Db, orgId: string): Promise<OrgPolicy> {
  const row = await database.select().from(orgPolicies).where(eq(orgPolicies.orgId, orgId)).get();
  return row ? { requireExpiration: row.requireExpiration, maxLifetimeDays: row.maxLifetimeDays } : NO_POLICY;
}
