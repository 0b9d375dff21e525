import { FIRST_CREDIT_SLICE, nextSliceWanted, type SliceReturn } from "../domain/credits";
import { askAuthority } from "../durable-objects/key-authority";
import { Edge } from "./edge";

/**
 * Spending a metered key's credits at the edge: the isolate spends from slices its key's authority
 * took from the balance for it (no I/O while one lasts). A slice is a lease: it is spent from only
 * until it ends (T after the isolate asked), so a change of the balance, which waits out the slices
 * granted before it, is in force everywhere when it returns. The isolate gives back what it did not
 * spend when it next asks. Slices start at one use and grow with the isolate's rate; a busy isolate
 * asks for the next one off the response path when a quarter is left. No grace: when the authority
 * cannot be reached, the verification fails closed (503), as it would without credits.
 */

/** One slice: its id at the authority, the uses left in it, and when its lease ends (this isolate's clock). */
interface Grant {
  id: string;
  amount: number;
  left: number;
  until: number;
  /** The lease it was granted for: a busy isolate asks for the next slice in its last quarter. */
  ms: number;
}

export interface CreditSlice {
  grants: Grant[];
  /** What the next request for a slice asks for (see `nextSliceWanted`). */
  wanted: number;
  /** The uses that requests waiting on the response path need: a burst asks for all of them at once. */
  waiting: number;
}

/**
 * A slice is spent from this much less than its lease: Workers' `Date.now()` does not advance while a
 * request computes between I/O (the same guard as the key's lease in verify-key.ts).
 */
const SLICE_CLOCK_GUARD_MS = 20;

function sliceOf(edge: Edge, keyId: string): CreditSlice {
  let slice = edge.creditSlices.get(keyId);
  if (!slice) Edge.remember(edge.creditSlices, keyId, (slice = { grants: [], wanted: FIRST_CREDIT_SLICE, waiting: 0 }));
  return slice;
}

const live = (g: Grant, at: number) => at < g.until;

/** A request asks this many times at most before it is refused (under contention for the last uses). */
const MAX_ATTEMPTS = 8;

/**
 * Asks the key's authority for a slice of at least `need` (one call per key and isolate at a time),
 * giving back the grants that ended (or, on the response path, every grant: what is left in them
 * cannot pay the use that waits). Answers how many uses were granted.
 */
function refill(env: Env, edge: Edge, keyId: string, slice: CreditSlice, need: number, now: number, onPath: boolean): Promise<number> {
  return edge.coalesce(`credits:${keyId}`, async () => {
    const at = Date.now();
    const back = slice.grants.filter((g) => onPath || !live(g, at) || g.left === 0);
    slice.grants = slice.grants.filter((g) => !back.includes(g));
    const last = back.at(-1);
    slice.wanted = nextSliceWanted(slice.wanted, last && { amount: last.amount, unspent: last.left, live: live(last, at) });
    const returned: SliceReturn[] = back.filter((g) => g.left > 0).map((g) => ({ id: g.id, unspent: g.left }));
    const started = Date.now(); // before asking: the slice ends here no later than at the authority
    const grant = await askAuthority(env, keyId, (a) => a.takeCredits(keyId, need, Math.max(need, slice.wanted, slice.waiting), now, returned));
    if (grant.granted > 0) slice.grants.push({ id: grant.id, amount: grant.granted, left: grant.granted, until: started + grant.ms - SLICE_CLOCK_GUARD_MS, ms: grant.ms });
    return grant.granted;
  });
}

/** Whether `cost` more uses of `keyId` are paid for; spends them when they are. */
export async function spend(
  env: Env,
  edge: Edge,
  keyId: string,
  cost: number,
  now: number,
  waitUntil: ((promise: Promise<unknown>) => void) | undefined,
): Promise<boolean> {
  const slice = sliceOf(edge, keyId);
  let waiting = false;
  try {
    // Coalesced callers share one slice: each takes its own uses from it, and asks again while the
    // authority grants something (each answer grants at least one use, so a burst is served in turn).
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const at = Date.now();
      const grant = slice.grants.find((g) => live(g, at) && g.left >= cost);
      if (grant) {
        grant.left -= cost;
        const held = slice.grants.filter((g) => live(g, at) && g.left > 0);
        const left = held.reduce((sum, g) => sum + g.left, 0);
        const ending = held.every((g) => g.until - at < g.ms / 4);
        // Only an isolate whose demand outran a slice fetches ahead (when a quarter of its uses or of its
        // lease is left): a key used now and then holds nothing, and a busy one never waits on the path.
        if (waitUntil && slice.wanted > FIRST_CREDIT_SLICE && (left < slice.wanted / 4 || ending)) {
          waitUntil(refill(env, edge, keyId, slice, 1, now, false).catch(() => undefined));
        }
        return true;
      }
      if (!waiting) {
        waiting = true;
        slice.waiting += cost;
      }
      if ((await refill(env, edge, keyId, slice, cost, now, true)) === 0 && !slice.grants.some((g) => live(g, Date.now()) && g.left >= cost)) {
        return false; // the balance cannot pay
      }
    }
    return false;
  } finally {
    if (waiting) slice.waiting -= cost;
  }
}
