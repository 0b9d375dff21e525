import type { Scope } from "../domain/catalog";
import { encryptSecret, hashKey } from "../domain/crypto";
import { displayPrefix, mintKey, newId, shardOf } from "../domain/key-format";
import type { Metadata } from "../domain/metadata";
import { nextRefill, type CreditRefill } from "../domain/credits";
import type { RateLimit } from "../domain/rate-limit";
import type { KeyAccess } from "../domain/permissions";
import { accessDetails, auditEntry, iso, type AuditContext } from "./audit";
import { databaseFor, type Db, type Shards } from "./db";
import { changeStatements } from "./events";
import type { KeyRow } from "./key-record";
import { apiKeys, auditLog, keyAppRoles, orgs, orgPolicies } from "./schema";

export interface NewKey {
  orgId: string;
  name: string;
  secure: boolean;
  expiresAt: number | null;
  access: KeyAccess;
  createdBy: string | null;
  notBefore?: number | null;
  /** Canonical CIDR ranges (validated by the caller); empty or absent: anywhere. */
  allowedNetworks?: string[] | null;
  metadata?: Metadata | null;
  rateLimits?: RateLimit[] | null;
  credits?: number | null;
  creditsRefill?: CreditRefill | null;
}

/** The Worker secrets a new key needs: its tag, and the encryption of a non-secure key at rest. */
export type KeySecrets = Pick<Env, "KEY_TAG_SECRET" | "KEY_ENCRYPTION_SECRET">;

/**
 * The row for a new key and its secret; nothing is written yet. Throws `MISCONFIGURED` when
 * `KEY_TAG_SECRET` (or, for a non-secure key, `KEY_ENCRYPTION_SECRET`) is missing or short.
 */
export async function prepareKey(secrets: KeySecrets, input: NewKey, now = Date.now()) {
  // In the org's database, and its id says so: the key's authority and verification find it from the id.
  const id = newId(now, shardOf(input.orgId));
  const key = await mintKey(id, secrets.KEY_TAG_SECRET);
  const { access } = input;
  const row: KeyRow = {
    id,
    orgId: input.orgId,
    name: input.name,
    kind: access.kind,
    secure: input.secure,
    keyHash: await hashKey(key),
    keyPrefix: displayPrefix(key),
    secretCiphertext: input.secure ? null : await encryptSecret(secrets.KEY_ENCRYPTION_SECRET, key, id),
    orgRole: access.kind === "rbac" ? access.orgRole : null,
    mode: access.kind === "legacy" ? access.mode : null,
    scopes: access.kind === "scoped" ? access.scopes : null,
    appRoles: access.kind === "rbac" && access.orgRole !== "admin" ? access.appRoles : {},
    expiresAt: input.expiresAt,
    createdAt: now,
    updatedAt: now,
    lastUsedAt: null,
    revokedAt: null,
    createdBy: input.createdBy,
    disabledAt: null,
    notBefore: input.notBefore ?? null,
    allowedNetworks: input.allowedNetworks?.length ? input.allowedNetworks : null,
    metadata: input.metadata ?? null,
    rateLimits: input.rateLimits?.length ? input.rateLimits : null,
    credits: input.credits ?? null,
    creditsRefill: input.credits != null ? (input.creditsRefill ?? null) : null,
    creditsRefilledAt: input.credits != null && input.creditsRefill ? now : null,
    creditsAsOf: input.credits != null ? now : null,
    previousKeyHash: null,
    previousKeyPrefix: null,
    previousExpiresAt: null,
    previousLastUsedAt: null,
  };
  return { key, row };
}

/** The D1 statements that insert a prepared key with its app roles and audit entry. */
export function insertKeyStatements(database: Db, row: KeyRow, audit: AuditContext) {
  const { appRoles, ...columns } = row;
  return [
    database.insert(apiKeys).values(columns),
    ...Object.entries(appRoles).map(([appId, role]) => database.insert(keyAppRoles).values({ keyId: row.id, appId, role })),
    ...changeStatements(database, auditEntry(row.orgId, audit, "key.create", row.id, accessDetails(row))),
  ] as const;
}

/**
 * Creates a key in one D1 batch (row, app roles and audit entry together, or nothing) and returns
 * the row and the full key, which the caller shows once. No KV write: the first verification fills
 * the cache through the key's authority.
 */
export async function createKey(database: Db, secrets: KeySecrets, input: NewKey, audit: AuditContext) {
  const prepared = await prepareKey(secrets, input);
  const [first, ...rest] = insertKeyStatements(database, prepared.row, audit);
  await database.batch([first, ...rest]);
  return prepared;
}

/**
 * Creates an organization with its first admin key, in one batch, in the database of `shard`: the
 * org's id (and so every id minted for it) starts with the shard's character, and the org stays there.
 * @example await createOrgWithAdminKey(c.env, chooseShard(c.env), "Acme", requestId)
 */
export async function createOrgWithAdminKey(env: Shards & KeySecrets, shard: number, name: string, requestId: string) {
  const now = Date.now();
  const org = { id: newId(now, shard), name, createdAt: now };
  const database = databaseFor(env, org.id);
  const prepared = await prepareKey(env, {
    orgId: org.id,
    name: "Admin key",
    secure: true,
    expiresAt: null,
    access: { kind: "rbac", orgRole: "admin", appRoles: {} },
    createdBy: null,
  }, now);
  const audit = { actorKeyId: null, requestId };
  const [first, ...rest] = insertKeyStatements(database, prepared.row, audit);
  await database.batch([
    database.insert(orgs).values(org),
    database.insert(orgPolicies).values({ orgId: org.id, requireExpiration: false, maxLifetimeDays: null, updatedAt: now }),
    database.insert(auditLog).values(auditEntry(org.id, audit, "org.create", org.id, { name }, "org")),
    first,
    ...rest,
  ]);
  return { org, ...prepared };
}

/** A key's status as lists show it: why it does not verify now, or `active`. */
export function keyStatus(row: Pick<KeyRow, "disabledAt" | "expiresAt" | "notBefore">, now: number) {
  if (row.disabledAt !== null) return "disabled" as const;
  if (row.expiresAt !== null && row.expiresAt <= now) return "expired" as const;
  if (row.notBefore !== null && row.notBefore > now) return "pending" as const;
  return "active" as const;
}

/** The API's view of a key: never a hash or ciphertext (so it does not even take them). */
export function toKeyObject(row: Omit<KeyRow, "keyHash" | "secretCiphertext" | "previousKeyHash">, now = Date.now()) {
  const rotating = row.previousExpiresAt !== null && row.previousExpiresAt > now;
  return {
    id: row.id,
    orgId: row.orgId,
    name: row.name,
    kind: row.kind,
    secure: row.secure,
    prefix: row.keyPrefix,
    orgRole: row.orgRole,
    appRoles: Object.entries(row.appRoles).map(([appId, role]) => ({ appId, role })),
    scopes: (row.scopes ?? null) as Scope[] | null,
    mode: row.mode,
    status: keyStatus(row, now),
    createdAt: iso(row.createdAt)!,
    updatedAt: iso(row.updatedAt)!,
    lastUsedAt: iso(row.lastUsedAt),
    expiresAt: iso(row.expiresAt),
    notBefore: iso(row.notBefore),
    disabledAt: iso(row.disabledAt),
    allowedNetworks: row.allowedNetworks ?? [],
    metadata: row.metadata,
    rateLimits: row.rateLimits ?? [],
    credits:
      row.credits === null
        ? null
        : {
            remaining: Math.max(0, row.credits),
            asOf: iso(row.creditsAsOf ?? row.updatedAt)!,
            refill: row.creditsRefill,
            nextRefillAt: row.creditsRefill ? iso(nextRefill(row.creditsRefill.interval, row.creditsRefilledAt ?? now)) : null,
          },
    rotation: rotating
      ? { previousPrefix: row.previousKeyPrefix ?? "", endsAt: iso(row.previousExpiresAt)!, previousLastUsedAt: iso(row.previousLastUsedAt) }
      : null,
  };
}
