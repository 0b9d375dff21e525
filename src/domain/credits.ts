/**
 * Usage credits: a key may carry a number of remaining uses, spent one per allowed verification (or a
 * route's cost), optionally refilled to an amount at the start of each day or month (UTC). The key's
 * authority holds the balance (in D1) and hands isolates small slices of it; a slice is taken from the
 * balance when it is handed out, so the uses admitted never exceed the credits granted: no overspend,
 * and the balance never goes below zero. What an isolate holds when it is evicted is lost to the key
 * (at most one slice, `MAX_CREDIT_SLICE` uses): the documented shortfall.
 */

export interface CreditRefill {
  amount: number;
  interval: "day" | "month";
}

export const MAX_CREDITS = 1_000_000_000;
export const MAX_CREDIT_SLICE = 100;
/** What an isolate asks for when a slice runs out: enough for a burst, little to lose. */
export const CREDIT_SLICE_WANTED = 20;

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
