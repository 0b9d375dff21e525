import type { CreditRefill } from "./credits";
import type { RateLimit } from "./rate-limit";

/**
 * Metering is access: a key with credits or rate limits is a key allowed that many uses, and a key
 * that could hand out (or give itself) a key with more would escape its own metering, as a key could
 * escape its expiry or its networks. The escalation rule, on create, edit, regenerate and reveal:
 *
 * - a caller with credits gives only keys with credits, no more than its own balance; a refill only
 *   when the caller has one, of no larger an amount and no shorter an interval (a month's caller
 *   does not give a daily refill);
 * - each of the caller's effective rate limits (its own, or the org policy's when it has none) is
 *   matched by an equal or stricter limit among the key's effective ones: one whose windows nest in
 *   or around the caller's (one period a whole multiple of the other; windows are aligned to the
 *   epoch, so the nested windows lie inside one of the larger) and that admits no more per caller
 *   window. The policy's default binds a caller that cannot change the policy; one that holds
 *   `org:admin` could lift the default for every key anyway, so for it a default is a default: it
 *   may give a key its own, looser limits.
 *
 * An unmetered caller (no credits, no effective limits) may give any metering, or none.
 */

/** What a key's metering is, as stored: its balance and refill, and its own limits (null: the policy's). */
export interface Metering {
  credits: number | null;
  creditsRefill: CreditRefill | null;
  rateLimits: readonly RateLimit[] | null;
}

/**
 * A caller's metering: its balance and refill, the limits it is bound by (its own, or the policy's
 * unless it may change the policy), and the policy's default limits (what a key without its own gets).
 */
export interface MeteringBound {
  credits: number | null;
  creditsRefill: CreditRefill | null;
  rateLimits: readonly RateLimit[];
  policyRateLimits: readonly RateLimit[] | null;
}

/**
 * The bound of a caller metered as `own`, under a policy whose default limits are `policyRateLimits`.
 * @example meteringBound({ credits: 5, creditsRefill: null, rateLimits: null }, [{ limit: 10, periodSeconds: 60 }], false)
 */
export function meteringBound(own: Metering, policyRateLimits: readonly RateLimit[] | null, mayChangePolicy: boolean): MeteringBound {
  return {
    credits: own.credits,
    creditsRefill: own.credits === null ? null : own.creditsRefill,
    rateLimits: effectiveLimits(own.rateLimits, mayChangePolicy ? null : policyRateLimits),
    policyRateLimits,
  };
}

/** The field a shortfall is about, and what the caller's metering needs of it. */
export interface MeteringShortfall {
  field: "credits" | "creditsRefill" | "rateLimits";
  message: string;
}

/** The limits that apply to a key: its own, or the policy's when it has none. */
export const effectiveLimits = (own: readonly RateLimit[] | null, policy: readonly RateLimit[] | null): readonly RateLimit[] =>
  own?.length ? own : (policy ?? []);

/**
 * Whether `limit` admits no more than `bound` in any of `bound`'s windows: same or longer period that
 * is a whole multiple, with no higher limit; or a shorter period that divides it, whose windows
 * together in one of `bound`'s admit no more.
 * @example stricterOrEqual({ limit: 10, periodSeconds: 10 }, { limit: 100, periodSeconds: 60 }) // true: at most 60 a minute
 */
export function stricterOrEqual(limit: RateLimit, bound: RateLimit): boolean {
  if (limit.periodSeconds % bound.periodSeconds === 0) return limit.limit <= bound.limit;
  if (bound.periodSeconds % limit.periodSeconds === 0) return limit.limit * (bound.periodSeconds / limit.periodSeconds) <= bound.limit;
  return false;
}

const INTERVAL_RANK = { day: 0, month: 1 } as const;

/**
 * What `key` lacks of the metering its caller is bound by (empty: nothing): each field the key would
 * be metered less than the caller on.
 * @example meteringShortfall({ credits: 10, creditsRefill: null, rateLimits: [], policyRateLimits: null }, { credits: null, creditsRefill: null, rateLimits: null })
 * // [{ field: "credits", message: "must be set, at most 10 (the calling key's balance)" }]
 */
export function meteringShortfall(caller: MeteringBound, key: Metering): MeteringShortfall[] {
  const issues: MeteringShortfall[] = [];
  if (caller.credits !== null) {
    if (key.credits === null || key.credits > caller.credits) {
      issues.push({ field: "credits", message: `must be set, at most ${caller.credits} (the calling key's balance)` });
    }
    const refill = key.creditsRefill;
    const own = caller.creditsRefill;
    if (refill && (!own || refill.amount > own.amount || INTERVAL_RANK[refill.interval] < INTERVAL_RANK[own.interval])) {
      issues.push({
        field: "creditsRefill",
        message: own
          ? `must refill at most ${own.amount} per ${own.interval}, no more often (the calling key's refill)`
          : "must be null: the calling key's credits are not refilled",
      });
    }
  }
  const keyLimits = effectiveLimits(key.rateLimits, caller.policyRateLimits);
  const unmatched = caller.rateLimits.filter((bound) => !keyLimits.some((l) => stricterOrEqual(l, bound)));
  if (unmatched.length) {
    const list = unmatched.map((l) => `${l.limit} per ${l.periodSeconds} s`).join(", ");
    issues.push({ field: "rateLimits", message: `must include a limit as strict as each of the calling key's: ${list}` });
  }
  return issues;
}
