import { graceOf, limitsKey, sliceWanted, windowOf, type RateLimit } from "../domain/rate-limit";
import { askAuthority, type RateGrant } from "../durable-objects/key-authority";
import { Edge } from "./edge";

/**
 * Rate limits at the edge: an isolate admits from a slice of the key's budget that the key's authority
 * granted (no I/O while it lasts), asks for the next slice off the response path when a quarter is
 * left, and on the path only when it ran out. Verifications that wait on the path share one call, which
 * asks for all of them, and ask again when what it brought was not enough for each. The accuracy this
 * gives is in src/domain/rate-limit.ts and docs/rate-limits.md.
 */

/** How long an admission waits for the authority before the isolate falls back on its grace. */
const RATE_AUTHORITY_TIMEOUT_MS = 1_000;
/**
 * How many calls one admission waits on at most. Each call asks for every verification waiting when it
 * starts, so one that joined a call already under way is provided for by the next; a third answers
 * "spent" or the window turned. The bound only keeps a pathological stream from holding a request.
 */
const MAX_ASKS = 4;

/** An isolate's slice of one key's budget. */
export interface Slice {
  limits: string;
  /** Verifications it may still admit, until `until` (the end of the earliest of its windows). */
  left: number;
  granted: number;
  /** Verifications of this isolate waiting for the authority: the next call asks for them all. */
  waiting: number;
  until: number;
  windows: RateGrant["windows"];
  /** Admitted without the authority (it was unreachable) in the window ending at `graceUntil`. */
  graceUsed: number;
  graceUntil: number;
}

export type Admission =
  | { admitted: true }
  | { admitted: false; window: { limit: number; periodSeconds: number; remaining: 0; resetAt: number } };

function sliceOf(edge: Edge, keyId: string, limits: readonly RateLimit[]): Slice {
  const key = limitsKey(limits);
  let slice = edge.rateSlices.get(keyId);
  if (!slice || slice.limits !== key) {
    slice = { limits: key, left: 0, granted: 0, waiting: 0, until: 0, windows: [], graceUsed: 0, graceUntil: 0 };
    Edge.remember(edge.rateSlices, keyId, slice);
  }
  return slice;
}

/** Asks the authority for the next slice (one call per key and isolate at a time) and keeps it. */
function refill(env: Env, edge: Edge, keyId: string, limits: RateLimit[], slice: Slice): Promise<void> {
  return edge.coalesce(`rate:${keyId}`, async () => {
    const need = slice.waiting;
    const grant = await askAuthority(env, keyId, (a) => a.takeRate(limits, sliceWanted(limits), need), RATE_AUTHORITY_TIMEOUT_MS);
    const until = Math.min(...grant.windows.map((w) => w.resetAt));
    // Units of an ended window are not carried into the next: they were counted against the old one.
    slice.left = until === slice.until ? slice.left + grant.granted : grant.granted;
    slice.granted = grant.granted;
    slice.until = until;
    slice.windows = grant.windows;
  });
}

/** The window that refused, as the answer reports it: the spent one that resets last. */
function refusal(slice: Slice, limits: readonly RateLimit[], now: number): Admission {
  const spent = slice.windows.filter((w) => w.remaining <= 0);
  const window = spent.length
    ? spent.reduce((a, b) => (a.resetAt >= b.resetAt ? a : b))
    : { ...limits[0]!, resetAt: windowOf(limits[0]!, now).end };
  return { admitted: false, window: { limit: window.limit, periodSeconds: window.periodSeconds, remaining: 0, resetAt: window.resetAt } };
}

/**
 * Whether one more verification of `keyId` fits its rate limits. Admits from the isolate's slice; when
 * the slice is spent, waits for the authority with every other verification that found it spent, takes
 * one of what it granted, and asks again when the others took it all first; when the authority does not
 * answer in time, admits on the isolate's own grace (1% of the limit per window), then refuses.
 */
export async function admit(
  env: Env,
  edge: Edge,
  keyId: string,
  limits: RateLimit[],
  now: number,
  waitUntil: ((promise: Promise<unknown>) => void) | undefined,
): Promise<Admission> {
  const slice = sliceOf(edge, keyId, limits);
  if (slice.until <= now) slice.left = 0; // a slice lives within its window
  if (slice.left > 0) {
    slice.left--;
    if (waitUntil && slice.left < slice.granted / 4) waitUntil(refill(env, edge, keyId, limits, slice).catch(() => undefined));
    return { admitted: true };
  }
  // Counted from here until it is answered, so that each call to the authority asks for all who wait.
  slice.waiting++;
  try {
    for (let ask = 0; ask < MAX_ASKS; ask++) {
      try {
        await refill(env, edge, keyId, limits, slice);
      } catch {
        return graceAdmission(slice, limits, now);
      }
      if (slice.left > 0 && slice.until > now) {
        slice.left--;
        return { admitted: true };
      }
      if (slice.granted === 0) break; // the authority has nothing left in the window
    }
    return refusal(slice, limits, now);
  } finally {
    slice.waiting--;
  }
}

/** The authority is slow or unreachable: a little progress on the isolate's own account. */
function graceAdmission(slice: Slice, limits: readonly RateLimit[], now: number): Admission {
  const until = Math.min(...limits.map((l) => windowOf(l, now).end));
  if (slice.graceUntil !== until) Object.assign(slice, { graceUsed: 0, graceUntil: until });
  if (slice.graceUsed < Math.min(...limits.map(graceOf))) {
    slice.graceUsed++;
    return { admitted: true };
  }
  return refusal({ ...slice, windows: [] }, limits, now);
}
