import type { Grant } from "./permissions";
import type { RateLimit } from "./rate-limit";

/**
 * Org key policy: require an expiration, cap a key's lifetime, require allowed networks on the keys
 * that can administer. Enforced at create, at edit and at use; at use it is evaluated on every
 * request, never trusted from a cache.
 */

export interface OrgPolicy {
  requireExpiration: boolean;
  /** Longest allowed lifetime, from the key's creation, in days; null for no cap. */
  maxLifetimeDays: number | null;
  /**
   * Keys holding `org:admin` or `apiKeyManagement` must carry allowed networks. Optional because
   * records written before it existed lack it (absent is false).
   */
  requireNetworksForAdmin?: boolean;
  /** What a secret scanning report of one of the org's keys does to it (absent: revoke). */
  leakedKeyAction?: LeakedKeyAction;
  /** Days without use after which a key is flagged (`key.unused`); null or absent: never. */
  unusedKeyDays?: number | null;
  /** With `unusedKeyDays`: such a key is expired too, not only flagged. */
  expireUnusedKeys?: boolean;
  /** Rate limits of every key that has none of its own; null or absent: none. */
  rateLimits?: RateLimit[] | null;
}

export const LEAKED_KEY_ACTIONS = ["revoke", "disable"] as const;
export type LeakedKeyAction = (typeof LEAKED_KEY_ACTIONS)[number];

export const NO_POLICY: Required<OrgPolicy> = {
  requireExpiration: false,
  maxLifetimeDays: null,
  requireNetworksForAdmin: false,
  leakedKeyAction: "revoke",
  unusedKeyDays: null,
  expireUnusedKeys: false,
  rateLimits: null,
};

/** The permissions that make a key an administrator's, for `requireNetworksForAdmin`. */
const ADMIN_PERMISSIONS: readonly string[] = ["org:admin", "apiKeyManagement"];

/** Whether grants include administration (`org:admin` or `apiKeyManagement`, on any app or org-wide). */
export const administers = (grants: readonly Grant[]) => grants.some((g) => ADMIN_PERMISSIONS.includes(g.permission));
export const MAX_LIFETIME_DAYS_LIMIT = 3650;
const DAY_MS = 86_400_000;

export type PolicyViolation = { code: "EXPIRATION_REQUIRED" | "LIFETIME_TOO_LONG" | "NETWORKS_REQUIRED"; message: string };

/**
 * Why a key with this creation time, expiry, grants and networks breaks `policy`, or null when it
 * complies. Without `grants`, the network rule is not judged (the caller has no access to judge).
 * @example policyViolation(policy, { createdAt, expiresAt: null }) // { code: "EXPIRATION_REQUIRED", … }
 */
export function policyViolation(
  policy: OrgPolicy,
  key: { createdAt: number; expiresAt: number | null; grants?: readonly Grant[]; allowedNetworks?: readonly string[] | null },
): PolicyViolation | null {
  if (policy.requireExpiration && key.expiresAt === null) {
    return { code: "EXPIRATION_REQUIRED", message: "The organization's policy requires keys to have an expiration date." };
  }
  if (policy.maxLifetimeDays !== null) {
    const limit = key.createdAt + policy.maxLifetimeDays * DAY_MS;
    if (key.expiresAt === null || key.expiresAt > limit) {
      return {
        code: "LIFETIME_TOO_LONG",
        message: `The organization's policy caps key lifetime at ${policy.maxLifetimeDays} days.`,
      };
    }
  }
  if (policy.requireNetworksForAdmin && key.grants && administers(key.grants) && !key.allowedNetworks?.length) {
    return {
      code: "NETWORKS_REQUIRED",
      message: "The organization's policy requires keys with org:admin or apiKeyManagement to be limited to allowed networks.",
    };
  }
  return null;
}

/** An expiration as the API accepts it: none, a preset number of days, or a timestamp. */
export type ExpirationInput = null | { days: 30 | 60 | 90 | 365 } | { at: number };

/** The absolute expiry (ms) of an expiration input, counted from `now`. */
export function resolveExpiry(input: ExpirationInput | undefined, now: number): number | null {
  if (!input) return null;
  return "days" in input ? now + input.days * DAY_MS : input.at;
}

/**
 * Whether a key expiring at `expiresAt` (null: never) would outlive a caller expiring at
 * `callerExpiresAt`. Expiry is access: no caller hands out a secret, or a lifetime, beyond its own.
 * @example outlives(null, Date.now() + 86_400_000) // true: a never-expiring key outlives a 24 h caller
 */
export function outlives(expiresAt: number | null, callerExpiresAt: number | null): boolean {
  return callerExpiresAt !== null && (expiresAt === null || expiresAt > callerExpiresAt);
}
