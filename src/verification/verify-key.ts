import { addressAllowed } from "../domain/allowed-networks";
import type { Permission } from "../domain/catalog";
import { hashKey } from "../domain/crypto";
import { hasValidTag, parseKey } from "../domain/key-format";
import type { VerifyMode } from "../domain/lease";
import type { Metadata } from "../domain/metadata";
import { allows, grantsOf, needsAppOrg, type Grant, type KeyAccess } from "../domain/permissions";
import { policyViolation, type OrgPolicy } from "../domain/policy";
import { askAuthority } from "../durable-objects/key-authority";
import { askOrgAuthority } from "../durable-objects/org-authority";
import { StorageUnavailableError } from "../errors";
import { databaseFor, hasDatabaseFor } from "../storage/db";
import { appRecordName, keyRecordName, loadAppOrg, loadPolicy, policyRecordName, type AppRecord, type KeyRecord } from "../storage/key-record";
import { Edge, isolateEdge } from "./edge";
import { spend } from "./credits";
import { admit } from "./rate-limit";
import { countUse, giveBack, noteUse, takeUsage } from "./usage";

export const VERIFY_CODES = [
  "VALID",
  "MALFORMED",
  "NOT_FOUND",
  "EXPIRED",
  "REVOKED",
  "DISABLED",
  "NOT_YET_VALID",
  "POLICY_VIOLATION",
  "IP_NOT_ALLOWED",
  "INSUFFICIENT_PERMISSIONS",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

/** The identity and access of a key that exists and is not revoked. */
export type VerifiedKey = {
  keyId: string;
  orgId: string;
  name: string;
  expiresAt: number | null;
  createdAt: number;
  notBefore?: number | null;
  allowedNetworks?: string[] | null;
  metadata: Metadata | null;
  /** Presented with the key's previous secret, during a rotation overlap (until `rotatingUntil`). */
  rotating: boolean;
  rotatingUntil?: number;
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
      /** RATE_LIMITED: the window that is spent, and when it resets (ms). */
      rateLimit?: { limit: number; periodSeconds: number; remaining: 0; resetAt: number };
    };

export interface VerifyOptions {
  /** The permission the request needs, if any. */
  permission?: Permission;
  /** The app the permission is needed on; without it only org-wide grants count. */
  app?: string;
  /**
   * The caller's address, judged against the key's allowed networks. Unknown (absent) is outside
   * every list: a key limited to networks is refused when the address is not known.
   */
  ip?: string;
  /**
   * How fresh the answer must be (see docs/consistency.md): `lease` (the default) answers from a lease
   * of the key's authority, in force everywhere once a change returns; `strict` asks the authority every
   * time; `cached` answers from KV, up to KV's propagation delay behind a change.
   */
  mode?: VerifyMode;
  /** The same as `mode: "strict"`. */
  strict?: boolean;
  /**
   * Not metered: no rate limits, no credits, no usage count. Management calls and console sessions
   * authenticate with a key; they are not the API traffic its limits, credits and usage measure.
   */
  unmetered?: boolean;
  /** Credits this verification spends from a metered key (default 1). */
  cost?: number;
  /**
   * Only keys of this organization: an authenticated verifier asks about its own org's keys. Any other
   * key is answered like an unknown one (NOT_FOUND, no identity), with nothing spent or counted on it.
   */
  orgId?: string;
  /** Where uses are reported to the key's authority, off the response path. */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** The isolate's state; the location model gives each location its own. */
  edge?: Edge;
  now?: number;
}

export { StorageUnavailableError };

/** How long verification waits for an authority (a lease, a fill or a strict check) before answering 503. */
const VERIFY_AUTHORITY_TIMEOUT_MS = 5_000;
/**
 * A lease is held this much less than granted. Workers' `Date.now()` does not advance while a request
 * computes between I/O, so the clock a lease is judged by may lag real time by that computation; this
 * keeps the edge's copy ending before the authority's even then.
 */
const LEASE_CLOCK_GUARD_MS = 20;
/** An unknown or revoked hash never becomes valid: its answer is held this long (not a lease: nothing waits on it). */
const NEGATIVE_HOLD_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// The cached mode: KV records, up to KV's propagation delay behind a change
// ---------------------------------------------------------------------------------------------

/** KV's minimum `cacheTtl` (s): how long a location may answer from its copy of a record. */
export const KV_CACHE_TTL_SECONDS = 60;

async function readPolicy(env: Env, orgId: string): Promise<OrgPolicy> {
  const cached = await env.KEYS_KV.get<OrgPolicy>(policyRecordName(orgId), { type: "json", cacheTtl: KV_CACHE_TTL_SECONDS });
  return cached ?? (await loadPolicy(databaseFor(env, orgId), orgId));
}

// appId → orgId never changes while the app exists. Kept briefly in the isolate (an app's deletion
// reaches it within the TTL); unknown apps are kept too, so a flood of made-up app ids costs one D1
// read each per isolate and minute at most.
const APP_ORG_TTL_MS = 60_000;

function cachedAppOrg(edge: Edge, appId: string, now: number): string | null | undefined {
  const entry = edge.appOrgs.get(appId);
  return entry && entry.until > now ? entry.orgId : undefined;
}

/** The org of `appId` (null: no such app): this isolate's memory, the `app:` record if it came with the bulk read, else D1. */
async function orgOfApp(env: Env, edge: Edge, appId: string, prefetched: AppRecord | null | undefined, now: number): Promise<string | null> {
  const known = cachedAppOrg(edge, appId, now);
  if (known !== undefined) return known;
  // An `app:` record is KV's copy, already up to cacheTtl old: remembering it as well would add this
  // TTL to KV's and break the cached mode's bound after an app's deletion. Only D1's answers are kept.
  if (prefetched) return prefetched.orgId;
  // The app's id names its org's database; an id of no database here is no app.
  const orgId = hasDatabaseFor(env, appId) ? await loadAppOrg(databaseFor(env, appId), appId) : null;
  Edge.remember(edge.appOrgs, appId, { orgId, until: now + APP_ORG_TTL_MS });
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
  if (!orgId) return { record: await env.KEYS_KV.get<KeyRecord>(keyRecordName(hash), { type: "json", cacheTtl: KV_CACHE_TTL_SECONDS }), policy: null, app: undefined };
  const names = [keyRecordName(hash), policyRecordName(orgId)];
  if (appId) names.push(appRecordName(appId));
  const found = await env.KEYS_KV.get<KeyRecord | OrgPolicy | AppRecord>(names, { type: "json", cacheTtl: KV_CACHE_TTL_SECONDS });
  return {
    record: (found.get(names[0]!) as KeyRecord | undefined) ?? null,
    policy: (found.get(names[1]!) as OrgPolicy | undefined) ?? null,
    app: appId ? ((found.get(names[2]!) as AppRecord | undefined) ?? null) : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// The lease mode (default) and the strict mode: the authorities
// ---------------------------------------------------------------------------------------------

/**
 * A lease in its last quarter is renewed in the background (off the response path) by the request
 * that notices, so a key in steady use never waits on its authority; the request itself answers from
 * the lease, which is still live.
 */
const RENEW_AHEAD_FRACTION = 0.25;
const renewsAhead = (until: number, ms: number, now: number) => until - now < ms * RENEW_AHEAD_FRACTION;

/**
 * Asks through `edge.coalesce(name, …)`: one call per name in flight, however many verifications need
 * it. An answer shared with a call another verification began earlier may be older than a change that
 * returned before this one began (the answer was slow): it is used only while its lease is live,
 * otherwise this verification asks itself. Its own call's answer is always good for it.
 */
async function askOnce<T extends { until: number }>(edge: Edge, name: string, call: () => Promise<T>): Promise<T> {
  let asked = false;
  const ask = () =>
    edge.coalesce(name, () => {
      asked = true;
      return call();
    });
  const answer = await ask();
  return asked || Date.now() < answer.until ? answer : ask();
}

/** The key's state from a live lease, or from a new one (one call per key and isolate however many ask at once). */
async function leasedKey(env: Env, edge: Edge, keyId: string, hash: string, now: number, waitUntil: VerifyOptions["waitUntil"]): Promise<KeyRecord> {
  const call = async () => {
    const started = Date.now(); // before asking: the edge's lease ends no later than the authority's
    // The key's counts ride the renewal (no request of their own); back to the isolate if it fails.
    const usage = takeUsage(edge, keyId);
    let lease;
    try {
      lease = await askAuthority(env, keyId, (a) => a.lease(keyId, hash, usage), VERIFY_AUTHORITY_TIMEOUT_MS);
    } catch (err) {
      giveBack(edge, keyId, usage);
      throw err;
    }
    if (lease.counted === false) giveBack(edge, keyId, usage);
    const ms = lease.record.status === "active" ? lease.ms - LEASE_CLOCK_GUARD_MS : NEGATIVE_HOLD_MS;
    edge.holdKey(hash, keyId, lease.record, started + ms, ms);
    return { record: lease.record, until: started + ms };
  };
  const held = edge.keyLeases.get(hash);
  if (held && now < held.until) {
    if (waitUntil && held.record.status === "active" && renewsAhead(held.until, held.ms, now)) waitUntil(edge.coalesce(`key:${hash}`, call).catch(() => undefined));
    return held.record;
  }
  return (await askOnce(edge, `key:${hash}`, call)).record;
}

/** The org's policy, and whether `appId` is one of its apps, from live leases or a new one. */
async function leasedOrg(
  env: Env,
  edge: Edge,
  orgId: string,
  appId: string | undefined,
  now: number,
  waitUntil: VerifyOptions["waitUntil"],
): Promise<{ policy: OrgPolicy; ownsApp?: boolean }> {
  const name = `org:${orgId}:${appId ?? ""}`;
  const call = async () => {
    const started = Date.now();
    const lease = await askOrgAuthority(env, orgId, (a) => a.lease(orgId, appId), VERIFY_AUTHORITY_TIMEOUT_MS);
    const ms = lease.ms - LEASE_CLOCK_GUARD_MS;
    const until = started + ms;
    Edge.remember(edge.orgLeases, orgId, { policy: lease.policy, until, ms });
    if (appId !== undefined) Edge.remember(edge.appLeases, `${orgId}:${appId}`, { owns: lease.ownsApp === true, until });
    return { ...lease, until };
  };
  const org = edge.orgLeases.get(orgId);
  const app = appId === undefined ? undefined : edge.appLeases.get(`${orgId}:${appId}`);
  if (org && now < org.until && (appId === undefined || (app && now < app.until))) {
    const until = Math.min(org.until, app?.until ?? org.until);
    if (waitUntil && renewsAhead(until, org.ms, now)) waitUntil(edge.coalesce(name, call).catch(() => undefined));
    return { policy: org.policy, ownsApp: app?.owns };
  }
  return askOnce(edge, name, call);
}

const modeOf = (options: VerifyOptions): VerifyMode => options.mode ?? (options.strict ? "strict" : "lease");

/**
 * The one verifier: the verify endpoint, management authentication, the console and the gateway all
 * call it. Format and checksum first, then (unless this isolate holds a lease on the very hash) the
 * keyed tag, so a key that was never minted reads no storage; then SHA-256 and the key's state in the
 * requested mode. Expiry, the org's policy and app ownership are decided now, never cached as a verdict.
 * Pass the bindings through `guardEnv` (the entry points do) so storage faults surface as
 * `StorageUnavailableError`, never as `VALID`.
 *
 * @example
 * const result = await verifyKey(env, presented, { permission: "app:upload", app: appId });
 * if (!result.valid) return deny(result.code);
 */
export async function verifyKey(env: Env, presented: string, options: VerifyOptions = {}): Promise<Verification> {
  const parsed = parseKey(presented);
  if (!parsed) return { valid: false, code: "MALFORMED", message: "The key is not a well-formed API key.", beforeStorage: true };
  const edge = options.edge ?? isolateEdge;
  // A live lease on this exact hash proves the key was minted here: the tag's HMAC is not needed.
  let hash: string | undefined;
  if (modeOf(options) === "lease" && edge.leasedKeyIds.has(parsed.keyId)) {
    hash = await hashKey(presented);
    if (edge.heldKey(hash, options.now ?? Date.now())) return verifyHash(env, parsed.keyId, hash, options);
  }
  // The keyed tag: a key this deployment never minted (a forgery with a correct public checksum) is
  // refused here, before any storage access, and answered like an unknown key, so the answer is no
  // oracle for the tag. A missing or short KEY_TAG_SECRET throws MISCONFIGURED.
  // A key minted here for a database this deployment no longer has names nothing it holds.
  if (!(await hasValidTag(presented, env.KEY_TAG_SECRET)) || !hasDatabaseFor(env, parsed.keyId)) {
    return { valid: false, code: "NOT_FOUND", message: "The key does not exist.", beforeStorage: true };
  }
  return verifyHash(env, parsed.keyId, hash ?? (await hashKey(presented)), options);
}

/**
 * `verifyKey` after parsing and hashing: for callers that hold a key's id and hash but not the key
 * itself (a console session). Same path, same answers.
 */
export async function verifyHash(env: Env, keyId: string, hash: string, options: VerifyOptions = {}): Promise<Verification> {
  const edge = options.edge ?? isolateEdge;
  const mode = modeOf(options);
  const now = options.now ?? Date.now();
  const knownOrg = edge.orgOfKey.get(keyId);
  let record: KeyRecord;
  // Cached mode only: the policy (and app record) that came with the KV read or the fill.
  let policy: OrgPolicy | null = null;
  let appRecord: AppRecord | null | undefined;
  if (mode === "strict") {
    record = await askAuthority(env, keyId, (a) => a.check(keyId, hash), VERIFY_AUTHORITY_TIMEOUT_MS);
  } else if (mode === "lease") {
    record = await leasedKey(env, edge, keyId, hash, now, options.waitUntil);
  } else {
    // The app's org record rides along with the bulk read only when this isolate does not know it.
    const appToRead = options.app !== undefined && cachedAppOrg(edge, options.app, now) === undefined ? options.app : undefined;
    const cached = await readCached(env, hash, knownOrg, appToRead);
    appRecord = cached.app;
    if (cached.record) {
      record = cached.record;
      // keyId → orgId never changes, but a record is only trusted with the policy of its own org.
      if (record.status !== "unknown" && record.orgId === knownOrg) policy = cached.policy;
    } else {
      // One fill per key and isolate however many miss at once (the cached mode's bound allows sharing it).
      ({ record, policy } = await edge.coalesce(`fill:${hash}`, () => askAuthority(env, keyId, (a) => a.fill(keyId, hash), VERIFY_AUTHORITY_TIMEOUT_MS)));
    }
  }

  if (record.status === "unknown") return { valid: false, code: "NOT_FOUND", message: "The key does not exist." };
  // Before judging: a verifier of another org learns nothing of the key, and the key loses nothing to it.
  if (options.orgId !== undefined && record.orgId !== options.orgId) return { valid: false, code: "NOT_FOUND", message: "The key does not exist." };
  if (!knownOrg) Edge.remember(edge.orgOfKey, record.keyId, record.orgId);
  // Every outcome of a key that exists is counted (usage analytics), in memory, flushed later.
  const verdict = await judge(env, edge, record, hash, options, mode, now, policy, appRecord);
  if (!options.unmetered) countUse(env, edge, record.keyId, record.orgId, verdict.code, now, options.waitUntil);
  return verdict;
}

/** The verdict on a key that exists, from its record, as of `now`. */
async function judge(
  env: Env,
  edge: Edge,
  record: Exclude<KeyRecord, { status: "unknown" }>,
  hash: string,
  options: VerifyOptions,
  mode: VerifyMode,
  now: number,
  cachedPolicy: OrgPolicy | null,
  appRecord: AppRecord | null | undefined,
): Promise<Verification> {
  if (record.status === "revoked") return { valid: false, code: "REVOKED", message: "The key has been revoked." };
  let policy = cachedPolicy;
  const { status: _status, version: _version, disabled, ...rest } = record;
  const rotating = record.rotatingUntil !== undefined;
  if (rotating && record.rotatingUntil! <= now) {
    return { valid: false, code: "REVOKED", message: "This secret was replaced when the key was regenerated, and its overlap has ended." };
  }
  const key: VerifiedKey = { ...rest, metadata: rest.metadata ?? null, rotating, grants: grantsOf(record) };

  if (disabled) return { valid: false, code: "DISABLED", message: "The key is disabled.", key };
  if (record.notBefore != null && record.notBefore > now) {
    // No date: a refusal tells whoever presents the key nothing of it (its start is the key's like its expiry).
    return { valid: false, code: "NOT_YET_VALID", message: "The key is not valid yet.", key };
  }
  if (record.expiresAt !== null && record.expiresAt <= now) {
    return { valid: false, code: "EXPIRED", message: "The key has expired.", key };
  }
  // An org-wide grant holds on the apps of the key's own org only; another org's app and an app
  // that does not exist are refused alike. Only looked up when an org-wide grant would decide.
  const appToCheck = options.permission && needsAppOrg(key.grants, options.permission, options.app) ? options.app : undefined;
  let appOfKeyOrg = true;
  if (mode === "cached") {
    policy ??= await readPolicy(env, record.orgId);
    if (appToCheck !== undefined) appOfKeyOrg = (await orgOfApp(env, edge, appToCheck, appRecord, now)) === record.orgId;
  } else {
    // Org-wide state is leased from the org's authority in both modes: a policy change or an app's
    // deletion waits out those leases, so a live one is as current as asking.
    const org = await leasedOrg(env, edge, record.orgId, appToCheck, now, options.waitUntil);
    policy = org.policy;
    if (appToCheck !== undefined) appOfKeyOrg = org.ownsApp === true;
  }
  const violation = policyViolation(policy, key);
  if (violation) return { valid: false, code: "POLICY_VIOLATION", message: violation.message, key };
  if (!addressAllowed(key.allowedNetworks, options.ip)) {
    const from = options.ip === undefined ? "an unknown address" : options.ip.length <= 45 ? options.ip : "this address";
    return { valid: false, code: "IP_NOT_ALLOWED", message: `The key may not be used from ${from}.`, key };
  }

  if (options.permission && !allows(key.grants, options.permission, options.app, appOfKeyOrg)) {
    const where = options.app ? ` on app ${options.app}` : "";
    return {
      valid: false,
      code: "INSUFFICIENT_PERMISSIONS",
      message: `The key lacks the ${options.permission} permission${where}.`,
      key,
    };
  }
  const limits = record.rateLimits ?? policy.rateLimits;
  if (limits?.length && !options.unmetered) {
    const admission = await admit(env, edge, key.keyId, limits, now, options.waitUntil);
    if (!admission.admitted) {
      const { limit, periodSeconds, resetAt } = admission.window;
      return {
        valid: false,
        code: "RATE_LIMITED",
        message: `The key's limit of ${limit} per ${periodSeconds} s is spent until ${new Date(resetAt).toISOString()}.`,
        key,
        rateLimit: admission.window,
      };
    }
  }
  // Credits last: only a use every other rule allows is paid for.
  if (record.metered && !options.unmetered && !(await spend(env, edge, key.keyId, options.cost ?? 1, now, options.waitUntil))) {
    return { valid: false, code: "USAGE_EXCEEDED", message: "The key has no credits left for this use.", key };
  }
  // For lastUsedAt: travels with the key's counts to its authority (which writes D1 at most once a minute).
  noteUse(env, edge, key.keyId, key.orgId, rotating ? hash : undefined, now, options.waitUntil);
  return { valid: true, code: "VALID", key };
}
