import { shardOf } from "../domain/key-format";
import { databaseFor } from "../storage/db";
import { addUsage, HOUR_MS, type UsageCount } from "../storage/usage";
import { Edge } from "./edge";

/**
 * Usage counting at the edge: every verification of a key that exists adds one to a counter in the
 * isolate's memory (no I/O on the request's path, a lease hit stays I/O-free); the first count after a
 * flush schedules the next flush, `USAGE_FLUSH_MS` later, through the request's `waitUntil`, which adds
 * the isolate's counts to D1 in one statement. A failed flush keeps its counts for the next one. What
 * an isolate holds when it is evicted before its flush is lost: at most `USAGE_FLUSH_MS` of its counts.
 */

/** How long counts wait in the isolate before a flush (`USAGE_FLUSH_MS`, default 10 s). */
export function usageFlushMs(value: string | undefined): number {
  const ms = Number(value);
  return Number.isFinite(ms) && ms >= 10 && ms <= 25_000 ? ms : 10_000;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts one verification outcome of `keyId`; schedules a flush when none is pending and one can be. */
export function countUse(
  env: Pick<Env, "DB" | "USAGE_FLUSH_MS">,
  edge: Edge,
  keyId: string,
  orgId: string,
  outcome: string,
  now: number,
  waitUntil: ((promise: Promise<unknown>) => void) | undefined,
): void {
  const name = `${keyId} ${orgId} ${now - (now % HOUR_MS)} ${outcome}`;
  Edge.remember(edge.usage, name, (edge.usage.get(name) ?? 0) + 1);
  if (edge.usageFlush || !waitUntil) return;
  edge.usageFlush = sleep(usageFlushMs(env.USAGE_FLUSH_MS)).then(() => flushUsage(env, edge));
  waitUntil(edge.usageFlush);
}

/** Writes the isolate's counts to D1 and clears them; on failure they stay for the next flush. */
export async function flushUsage(env: Pick<Env, "DB">, edge: Edge): Promise<void> {
  const counts: UsageCount[] = [];
  for (const [name, count] of edge.usage) {
    const [keyId, orgId, hour, outcome] = name.split(" ");
    counts.push({ keyId: keyId!, orgId: orgId!, hour: Number(hour), outcome: outcome!, count });
  }
  edge.usage.clear();
  // One statement per database: each count goes to its org's (the org id names it).
  const byDatabase = new Map<number, UsageCount[]>();
  for (const c of counts) byDatabase.set(shardOf(c.orgId), [...(byDatabase.get(shardOf(c.orgId)) ?? []), c]);
  await Promise.all(
    [...byDatabase.values()].map(async (group) => {
      try {
        await addUsage(databaseFor(env, group[0]!.orgId), group);
      } catch {
        for (const c of group) {
          const name = `${c.keyId} ${c.orgId} ${c.hour} ${c.outcome}`;
          Edge.remember(edge.usage, name, (edge.usage.get(name) ?? 0) + c.count);
        }
      }
    }),
  );
  edge.usageFlush = null;
}
