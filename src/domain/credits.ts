/**
 * Usage credits: a key may carry a number of remaining uses, spent one per allowed verification (or a
 * route's cost), optionally refilled to an amount at the start of each day or month (UTC). The key's
 * authority holds the balance (in D1) and hands isolates small slices of it; a slice is taken from the
 * balance when it is handed out, so the uses admitted never exceed the credits granted: no overspend,
 * and the balance never goes below zero.
 *
 * A slice is a lease (src/domain/lease.ts): the isolate spends from it only for T after it asked, and a
 * change of the key's credits waits out the slices granted before it, so a lowered balance is in force
 * everywhere when the edit returns. Slices are sized by demand: an isolate's first is one use, and it
 * doubles while the isolate spends a whole slice within its lease (at most `MAX_CREDIT_SLICE`). The
 * isolate gives back what it did not spend when it next asks; what is never given back within
 * `SLICE_RETURN_WINDOW_MS` of the slice's end counts as spent (at most two slices per isolate, the one
 * it spends and the next: the documented shortfall, docs/rate-limits.md).
 */
export interface CreditRefill {
  amount: number;
  interval: "day" | "month";
}

export const MAX_CREDITS = 1_000_000_000;
export const MAX_CREDIT_SLICE = 100;
/** An isolate's first slice of a key: one use, so a key used once shows exactly one spent. */
export const FIRST_CREDIT_SLICE = 1;
/**
 * How long after its lease ended a slice's unspent part is still taken back; later it counts as spent.
 * An isolate that sat idle gives its remainder back with its next request within this time.
 */
export const SLICE_RETURN_WINDOW_MS = 60_000;
/** An authority remembers at most this many outstanding slices per key; older ones count as spent. */
export const MAX_OUTSTANDING_SLICES = 1_000;

/** The unspent part of a slice an isolate gives back, named by the id its authority gave it. */
export interface SliceReturn {
  id: string;
  unspent: number;
}

/**
 * The next slice size an isolate asks for, from how it used its last: double when it spent a whole
 * slice while the slice was live (its demand outruns the size), what it spent when the slice ran out
 * of time with uses left, unchanged otherwise.
 * @example nextSliceWanted(4, { amount: 4, unspent: 0, live: true }) // 8
 */
export function nextSliceWanted(wanted: number, last: { amount: number; unspent: number; live: boolean } | undefined): number {
  if (!last) return wanted;
  if (last.unspent === 0 && last.live) return Math.min(MAX_CREDIT_SLICE, wanted * 2);
  if (!last.live) return Math.max(FIRST_CREDIT_SLICE, last.amount - last.unspent);
  return wanted;
}

/** The start (ms, UTC) of the refill interval `now` falls in. */
export function intervalStart(interval: CreditRefill["interval"], now: number): number {
  const d = new Date(now);
  return interval === "day" ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) : Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** The start of the interval after the one `now` falls in: when the next refill is due. */
export function nextRefill(interval: CreditRefill["interval"], now: number): number {
  const d = new Date(intervalStart(interval, now));
  return interval === "day" ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * The balance as of `now`: refilled to the amount when an interval has begun since the last refill.
 * @example balanceAt({ credits: 3, refill: { amount: 100, interval: "day" }, refilledAt: yesterday }, now) // { credits: 100, refilledAt: today 00:00 }
 */
export function balanceAt(
  state: { credits: number; refill: CreditRefill | null; refilledAt: number | null },
  now: number,
): { credits: number; refilledAt: number | null; refilled: boolean } {
  if (!state.refill) return { credits: state.credits, refilledAt: state.refilledAt, refilled: false };
  const start = intervalStart(state.refill.interval, now);
  if (state.refilledAt !== null && state.refilledAt >= start) return { credits: state.credits, refilledAt: state.refilledAt, refilled: false };
  return { credits: state.refill.amount, refilledAt: start, refilled: true };
}

/**
 * How many uses to hand an isolate that needs `need` now and would like `wanted`: none when the balance
 * cannot pay `need`; otherwise at least `need`, and beyond it at most a quarter of the balance, so the
 * last credits are shared out in ever smaller slices.
 */
export function creditsGranted(need: number, wanted: number, balance: number): number {
  if (balance < need) return 0;
  return Math.min(balance, Math.max(need, Math.min(wanted, MAX_CREDIT_SLICE, Math.ceil(balance / 4))));
}
