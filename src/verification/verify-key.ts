import type { Permission } from "../domain/catalog";
import { StorageUnavailableError } from "../errors";
import { hashKey } from "../domain/crypto";
import { parseKey } from "../domain/key-format";
import { allows, grantsOf, type Grant, type KeyAccess } from "../domain/permissions";
import { policyViolation, type OrgPolicy } from "../domain/policy";
import { authorityFor, type Fill } from "../durable-objects/key-authority";
import { db } from "../storage/db";
import { keyRecordName, loadPolicy, policyRecordName, type KeyRecord } from "../storage/key-record";
import { recordLastUsed } from "./last-used";

export const VERIFY_CODES = [
  "VALID",
  "MALFORMED",
  "NOT_FOUND",
  "EXPIRED",
  "REVOKED",
  "POLICY_VIOLATION",
  "INSUFFICIENT_PERMISSIONS",
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

/** The identity and access of a key that exists and is not revoked. */
export type VerifiedKey = {
  keyId: string;
  orgId: string;
  name: string;
  expiresAt: number | null;
  createdAt: number;
  grants: Grant[];
} & KeyAccess;

export type Verification =
  | { valid: true; code: "VALID"; key: VerifiedKey }
  | { valid: false; code: VerifyCode; message: string; key?: VerifiedKey };

export interface VerifyOptions {
  /** The permission the request needs, if any. */
  permission?: Permission;
  /** The app the permission is needed on; without it only org-wide grants count. */
  app?: string;
  /** Ask the key's authority directly instead of the KV cache: zero staleness, more latency. */
  strict?: boolean;
  /** Where `lastUsedAt` writes are deferred to, off the response path. */
  waitUntil?: (promise: Promise<unknown>) => void;
  now?: number;
}

export { StorageUnavailableError };

/**
 * A failed call to the key's authority (a Durable Object, not behind the storage seam) is a storage
 * fault like any other. D1 and KV faults already arrive as `StorageUnavailableError` from the seam:
 * every entry point (`src/index.ts`, `KeyVerifier`) passes the guarded bindings.
 */
async function guarded<T>(store: StorageUnavailableError["store"], work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw new StorageUnavailableError(store, err);
  }
}

// keyId → orgId never changes, so the policy can be read with the key's record once an isolate has
// seen a key. Bounded so a flood of distinct keys cannot grow it without limit.
const ORG_OF_KEY_LIMIT = 50_000;
const orgOfKey = new Map<string, string>();

async function readPolicy(env: Env, orgId: string): Promise<OrgPolicy> {
  const cached = await env.KEYS_KV.get<OrgPolicy>(policyRecordName(orgId), "json");
  return cached ?? (await loadPolicy(db(env.DB), orgId));
}

/**
 * The key's KV record and, once this isolate knows the key's org, the org's policy record in the
 * same bulk read: a hit costs one KV round trip, not two.
 */
async function readCached(env: Env, hash: string, orgId: string | undefined): Promise<{ record: KeyRecord | null; policy: OrgPolicy | null }> {
  if (!orgId) return { record: await env.KEYS_KV.get<KeyRecord>(keyRecordName(hash), "json"), policy: null };
  const both = await env.KEYS_KV.get<KeyRecord | OrgPolicy>([keyRecordName(hash), policyRecordName(orgId)], "json");
  return {
    record: (both.get(keyRecordName(hash)) as KeyRecord | undefined) ?? null,
    policy: (both.get(policyRecordName(orgId)) as OrgPolicy | undefined) ?? null,
  };
}

/**
 * The one verifier: the verify endpoint, management authentication and the gateway all call it.
 * Format and checksum first (no storage read when they fail), then SHA-256, then the KV record,
 * filled through the key's authority on a miss; expiry and org policy are decided now, from the
 * current time and the current policy, never from the cache. Pass the bindings through `guardEnv`
 * (the entry points do) so storage faults surface as `StorageUnavailableError`, never as `VALID`.
 *
 * @example
 * const result = await verifyKey(env, presented, { permission: "app:upload", app: appId });
 * if (!result.valid) return deny(result.code);
 */
export async function verifyKey(env: Env, presented: string, options: VerifyOptions = {}): Promise<Verification> {
  const parsed = parseKey(presented);
  if (!parsed) return { valid: false, code: "MALFORMED", message: "The key is not a well-formed API key." };
  return verifyHash(env, parsed.keyId, await hashKey(presented), options);
}

/**
 * `verifyKey` after parsing and hashing: for callers that hold a key's id and hash but not the key
 * itself (a console session). Same path, same answers.
 */
export async function verifyHash(env: Env, keyId: string, hash: string, options: VerifyOptions = {}): Promise<Verification> {
  const knownOrg = orgOfKey.get(keyId);
  let record: KeyRecord;
  // The policy, when it came with the record: read in the same KV round trip on a hit, or from D1
  // by the authority's fill on a miss. Otherwise it is read below.
  let policy: OrgPolicy | null = null;
  const authority = () => authorityFor(env, keyId);
  if (options.strict) {
    record = await guarded("authority", async (): Promise<KeyRecord> => await authority().check(keyId, hash));
  } else {
    const cached = await readCached(env, hash, knownOrg);
    if (cached.record) {
      record = cached.record;
      // keyId → orgId never changes, but a record is only trusted with the policy of its own org.
      if (record.status !== "unknown" && record.orgId === knownOrg) policy = cached.policy;
    } else ({ record, policy } = await guarded("authority", async (): Promise<Fill> => await authority().fill(keyId, hash)));
  }

  if (record.status === "unknown") return { valid: false, code: "NOT_FOUND", message: "The key does not exist." };
  if (record.status === "revoked") return { valid: false, code: "REVOKED", message: "The key has been revoked." };

  if (!knownOrg) {
    if (orgOfKey.size >= ORG_OF_KEY_LIMIT) orgOfKey.clear();
    orgOfKey.set(record.keyId, record.orgId);
  }
  const { status: _status, ...rest } = record;
  const key: VerifiedKey = { ...rest, grants: grantsOf(record) };
  const now = options.now ?? Date.now();

  if (record.expiresAt !== null && record.expiresAt <= now) {
    return { valid: false, code: "EXPIRED", message: "The key has expired.", key };
  }
  policy ??= await readPolicy(env, record.orgId);
  const violation = policyViolation(policy, record);
  if (violation) return { valid: false, code: "POLICY_VIOLATION", message: violation.message, key };

  if (options.permission && !allows(key.grants, options.permission, options.app)) {
    const where = options.app ? ` on app ${options.app}` : "";
    return {
      valid: false,
      code: "INSUFFICIENT_PERMISSIONS",
      message: `The key lacks the ${options.permission} permission${where}.`,
      key,
    };
  }
  recordLastUsed(env, key.keyId, now, options.waitUntil);
  return { valid: true, code: "VALID", key };
}
