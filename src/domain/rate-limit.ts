/**
 * Per-key rate limits: fixed windows aligned to the epoch (`periodSeconds` long), each allowing
 * `limit` verifications. The key's authority keeps the count of each window and hands the isolates
 * slices of what is left; an isolate admits from its slice with no I/O and refuses when the authority
 * has nothing left to give. The accuracy this gives (docs/rate-limits.md):
 *
 * - while the authority answers, the admitted count of a window never exceeds its limit: every admitted
 *   verification was granted by the authority first;
 * - when an isolate cannot reach the authority, it admits at most `graceOf(limit)` in that window on its
 *   own, so the excess is at most that many per isolate that lost its authority;
 * - a slice an isolate does not spend is not given to another before the window ends: the shortfall is
 *   at most one slice per isolate, and slices shrink as the window's budget runs out;
 * - verifications waiting on an isolate's call share what it grants, and the call asks for all of them:
 *   a burst is refused only once the window's budget is gone (no shortfall from the burst itself).
 */

export interface RateLimit {
  limit: number;
  periodSeconds: number;
}

export const MAX_RATE_LIMITS = 3;
export const MAX_PERIOD_SECONDS = 31 * 86_400;
export const MAX_LIMIT = 1_000_000_000;
/** The largest slice an isolate asks for: one authority call per this many verifications at most. */
const MAX_SLICE = 1_000;

/** The window of `limit` that `now` falls in: [start, end) in ms. */
export function windowOf(limit: RateLimit, now: number): { start: number; end: number } {
  const size = limit.periodSeconds * 1000;
  const start = now - (now % size);
  return { start, end: start + size };
}

/** How many an isolate asks for at once: a tenth of the limit, between 1 and 1,000. */
export const sliceWanted = (limits: readonly RateLimit[]) => Math.max(1, Math.min(MAX_SLICE, ...limits.map((l) => Math.ceil(l.limit / 10))));

/**
 * How many the authority grants when `remaining` are left in the window: never more than remain. Of
 * `wanted` (what the isolate would like to hold ahead of demand) a quarter of what remains at most, so
 * the last of a window's budget is shared out in ever smaller slices among the isolates that ask; but
 * all of `need` (verifications waiting on this very call, admitted as soon as it answers) when that
 * much remains, so a burst is not refused while budget is left, and no part of it sits unspent.
 */
export function sliceGranted(wanted: number, remaining: number, need = 0): number {
  // The authority's count must stay a whole number whatever an RPC caller sends.
  const waiting = Number.isSafeInteger(need) && need > 0 ? need : 0;
  const ahead = Math.min(wanted, remaining, Math.max(1, Math.ceil(remaining / 4)));
  return Math.max(0, Math.min(waiting, remaining), ahead);
}

/** What an isolate may admit on its own in a window when it cannot reach the authority: 1% of the limit, at least 1. */
export const graceOf = (limit: RateLimit) => Math.max(1, Math.floor(limit.limit / 100));

/** A list's identity, to notice that an isolate's slice was taken under other limits. */
export const limitsKey = (limits: readonly RateLimit[]) => limits.map((l) => `${l.limit}/${l.periodSeconds}`).join(",");
