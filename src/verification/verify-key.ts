import type { Permission } from "../domain/catalog";
import { StorageUnavailableError } from "../errors";
import { hashKey } from "../domain/crypto";
import { hasValidTag, parseKey } from "../domain/key-format";
import { allows, grantsOf, needsAppOrg, type Grant, type KeyAccess } from "../domain/permissions";
import { policyViolation, type OrgPolicy } from "../domain/policy";
import { askAuthority } from "../durable-objects/key-authority";
import { db } from "../storage/db";
import { appRecordName, keyRecordName, loadAppOrg, loadPolicy, policyRecordName, type AppRecord, type KeyRecord } from "../storage/key-record";
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
  | {
      valid: false;
      code: VerifyCode;
      message: string;
      key?: VerifiedKey;
      /** Refused with no storage read (malformed, or a forged tag): the isolate alone counts it. */
      beforeStorage?: true;
    };

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

/** How long verification waits for a key's authority (a fill or a strict check) before answering 503. */
const VERIFY_AUTHORITY_TIMEOUT_MS = 5_000;

// keyId → orgId never changes, so the policy can be read with the key's record once an isolate has
// seen a key. Bounded so a flood of distinct keys cannot grow it without limit.
const ORG_OF_KEY_LIMIT = 50_000;
const orgOfKey = new Map<string, string>();

async function readPolicy(env: Env, orgId: string): Promise<OrgPolicy> {
  const cached = await env.KEYS_KV.get<OrgPolicy>(policyRecordName(orgId), "json");
  return cached ?? (await loadPolicy(db(env.DB), orgId));
}

// appId → orgId never changes while the app exists. Kept briefly (an app's deletion reaches this
// isolate within the TTL) and bounded; unknown apps are kept too, so a flood of made-up app ids costs
// one D1 read each per isolate and minute at most.
const APP_ORG_TTL_MS = 60_000;
const APP_ORG_LIMIT = 10_000;
const appOrgs = new Map<string, { orgId: string | null; until: number }>();

function cachedAppOrg(appId: string, now: number): string | null | undefined {
  const entry = appOrgs.get(appId);
  if (entry === undefined) return undefined;
  if (entry.until > now) return entry.orgId;
  appOrgs.delete(appId);
  return undefined;
}

/** The org of `appId` (null: no such app): this isolate's memory, the `app:` record if it came with the bulk read, else D1. */
async function orgOfApp(env: Env, appId: string, prefetched: AppRecord | null | undefined, now: number): Promise<string | null> {
  const known = cachedAppOrg(appId, now);
  if (known !== undefined) return known;
  const orgId = prefetched ? prefetched.orgId : await loadAppOrg(db(env.DB), appId);
  if (appOrgs.size >= APP_ORG_LIMIT) appOrgs.clear();
  appOrgs.set(appId, { orgId, until: now + APP_ORG_TTL_MS });
  return orgId;
}

/**
 * The key's KV record and, once this isolate knows the key's org, the org's policy record (and the
 * `app:` record of the app the request names, unless this isolate knows it) in the same bulk read:
 * a hit costs one KV round trip, not two.
 */
async function readCached(
  env: Env,
  hash: string,
  orgId: string | undefined,
  appId: string | undefined,
): Promise<{ record: KeyRecord | null; policy: OrgPolicy | null; app: AppRecord | null | undefined }> {
  if (!orgId) return { record: await env.KEYS_KV.get<KeyRecord>(keyRecordName(hash), "json"), policy: null, app: undefined };
  const names = [keyRecordName(hash), policyRecordName(orgId)];
  if (appId) names.push(appRecordName(appId));
  const found = await env.KEYS_KV.get<KeyRecord | OrgPolicy | AppRecord>(names, "json");
  return {
    record: (found.get(names[0]!) as KeyRecord | undefined) ?? null,
    policy: (found.get(names[1]!) as OrgPolicy | undefined) ?? null,
    app: appId ? ((found.get(names[2]!) as AppRecord | undefined) ?? null) : undefined,
  };
}

/**
 * The one verifier: the verify endpoint, management authentication and the gateway all call it.
 * Format and checksum, then the keyed tag (no storage read when they fail), then SHA-256, then the KV record,
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
  if (!parsed) return { valid: false, code: "MALFORMED", message: "The key is not a well-formed API key.", beforeStorage: true };
  // The keyed tag: a key this deployment never minted (a forgery with a correct public checksum) is
  // refused here, before hashing or any storage access, and answered like an unknown key, so the
  // answer is no oracle for the tag. A missing or short KEY_TAG_SECRET throws MISCONFIGURED.
  if (!(await hasValidTag(presented, env.KEY_TAG_SECRET))) {
    return { valid: false, code: "NOT_FOUND", message: "The key does not exist.", beforeStorage: true };
  }
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
  const now = options.now ?? Date.now();
  // The app's org record rides along with the bulk read only when this isolate does not know it.
  const appToRead = options.app !== undefined && cachedAppOrg(options.app, now) === undefined ? options.app : undefined;
  let appRecord: AppRecord | null | undefined;
  if (options.strict) {
    record = await askAuthority(env, keyId, (a) => a.check(keyId, hash), VERIFY_AUTHORITY_TIMEOUT_MS);
  } else {
    const cached = await readCached(env, hash, knownOrg, appToRead);
    appRecord = cached.app;
    if (cached.record) {
      record = cached.record;
      // keyId → orgId never changes, but a record is only trusted with the policy of its own org.
      if (record.status !== "unknown" && record.orgId === knownOrg) policy = cached.policy;
    } else ({ record, policy } = await askAuthority(env, keyId, (a) => a.fill(keyId, hash), VERIFY_AUTHORITY_TIMEOUT_MS));
  }

  if (record.status === "unknown") return { valid: false, code: "NOT_FOUND", message: "The key does not exist." };
  if (record.status === "revoked") return { valid: false, code: "REVOKED", message: "The key has been revoked." };

  if (!knownOrg) {
    if (orgOfKey.size >= ORG_OF_KEY_LIMIT) orgOfKey.clear();
    orgOfKey.set(record.keyId, record.orgId);
  }
  const { status: _status, version: _version, ...rest } = record;
  const key: VerifiedKey = { ...rest, grants: grantsOf(record) };

  if (record.expiresAt !== null && record.expiresAt <= now) {
    return { valid: false, code: "EXPIRED", message: "The key has expired.", key };
  }
  policy ??= await readPolicy(env, record.orgId);
  const violation = policyViolation(policy, record);
  if (violation) return { valid: false, code: "POLICY_VIOLATION", message: violation.message, key };

  // An org-wide grant holds on the apps of the key's own org only; another org's app and an app
  // that does not exist are refused alike.
  const appOfKeyOrg =
    options.permission && needsAppOrg(key.grants, options.permission, options.app)
      ? (await orgOfApp(env, options.app!, appRecord, now)) === record.orgId
      : true;
  if (options.permission && !allows(key.grants, options.permission, options.app, appOfKeyOrg)) {
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
