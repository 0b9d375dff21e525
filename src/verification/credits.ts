import { CREDIT_SLICE_WANTED } from "../domain/credits";
import { askAuthority } from "../durable-objects/key-authority";
import { Edge } from "./edge";

/**
 * Spending a metered key's credits at the edge: the isolate spends from a slice its key's authority
 * took from the balance for it (no I/O while it lasts), asks for the next one off the response path
 * when a quarter is left, and on the path when the slice cannot pay. No grace: when the authority
 * cannot be reached, the verification fails closed (503), as it would without credits.
 */

export interface CreditSlice {
  left: number;
  granted: number;
}

function sliceOf(edge: Edge, keyId: string): CreditSlice {
  let slice = edge.creditSlices.get(keyId);
  if (!slice) Edge.remember(edge.creditSlices, keyId, (slice = { left: 0, granted: 0 }));
  return slice;
}

function refill(env: Env, edge: Edge, keyId: string, slice: CreditSlice, need: number, now: number): Promise<void> {
  return edge.coalesce(`credits:${keyId}`, async () => {
    const grant = await askAuthority(env, keyId, (a) => a.takeCredits(keyId, need, CREDIT_SLICE_WANTED, now));
    slice.left += grant.granted;
    slice.granted = grant.granted;
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
  // Coalesced callers share one slice: each takes its own uses from it, and asks again if it was short.
  for (let attempt = 0; attempt < 3; attempt++) {
    if (slice.left >= cost) {
      slice.left -= cost;
      if (waitUntil && slice.left < slice.granted / 4) waitUntil(refill(env, edge, keyId, slice, 1, now).catch(() => undefined));
      return true;
    }
    const before = slice.left;
    await refill(env, edge, keyId, slice, cost - slice.left, now);
    if (slice.left === before && slice.left < cost) return false; // the balance cannot pay
  }
  return false;
}
