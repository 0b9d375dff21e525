import { eq } from "drizzle-orm";
import { db } from "../storage/db";
import { apiKeys } from "../storage/schema";

/** One D1 write a minute per key per isolate: `lastUsedAt` is visible in lists within a minute. */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;
const LAST_USED_TRACKED_LIMIT = 50_000; // bound the map under floods of distinct keys

const lastWritten = new Map<string, number>();

/**
 * Notes that `keyId` was used at `now`. Writes D1 at most once per interval per key in this isolate,
 * deferred through `waitUntil` so the response never waits for it. A failed write is dropped: the
 * next use after the interval tries again.
 */
export function recordLastUsed(env: Env, keyId: string, now: number, waitUntil?: (p: Promise<unknown>) => void): void {
  const last = lastWritten.get(keyId);
  if (last !== undefined && now - last < LAST_USED_WRITE_INTERVAL_MS) return;
  if (lastWritten.size >= LAST_USED_TRACKED_LIMIT) lastWritten.clear();
  lastWritten.set(keyId, now);
  const write = db(env.DB)
    .update(apiKeys)
    .set({ lastUsedAt: now })
    .where(eq(apiKeys.id, keyId))
    .run()
    .catch(() => lastWritten.delete(keyId));
  if (waitUntil) waitUntil(write);
}
