import type { KeyAuthority } from "../durable-objects/key-authority";
import type { UsageReport } from "../durable-objects/key-usage";
import { HOUR_MS } from "../storage/usage";
import { Edge } from "./edge";

/**
 * Usage counting at the edge: every verification of a key that exists adds one to the isolate's counts
 * of that key (no I/O on the request's path: a lease hit stays I/O-free). The counts go to the key's
 * authority, which keeps them per hour and rolls them up into D1 (src/durable-objects/key-usage.ts):
 *
 * - with the lease renewals the isolate makes anyway (`lease()` carries the key's counts): no request
 *   of their own for a key in steady use;
 * - for a key with no renewal due, on their own, off the response path, within `USAGE_FLUSH_MS` of the
 *   first count: the first count after a quiet spell schedules a flush through the request's `waitUntil`.
 *
 * Each report has an id and the authority applies it once, so a report whose answer was lost is sent
 * again (with the next) without being counted twice. What an isolate holds when it is evicted is lost:
 * at most `USAGE_FLUSH_MS` of its own counts.
 */

/** How long counts wait in the isolate at most (`USAGE_FLUSH_MS`, default 10 s). */
export function usageFlushMs(value: string | undefined): number {
  const ms = Number(value);
  return Number.isFinite(ms) && ms >= 10 && ms <= 25_000 ? ms : 10_000;
}

/**
 * One key's counts in this isolate: by `hour outcome`, since when (the oldest), the latest allowed use
 * (and of a rotation's previous secret), and reports to send again.
 */
export interface PendingUsage {
  orgId: string;
  counts: Map<string, number>;
  since: number;
  lastUsed?: number;
  previous?: { hash: string; at: number };
  unsent: UsageReport[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts one verification outcome of `keyId`; schedules a flush when none is pending and one can be. */
export function countUse(
  env: Pick<Env, "KEY_AUTHORITY" | "USAGE_FLUSH_MS">,
  edge: Edge,
  keyId: string,
  orgId: string,
  outcome: string,
  now: number,
  waitUntil: ((promise: Promise<unknown>) => void) | undefined,
): void {
  const pending = pendingOf(edge, keyId, orgId);
  const name = `${now - (now % HOUR_MS)} ${outcome}`;
  pending.counts.set(name, (pending.counts.get(name) ?? 0) + 1);
  scheduleFlush(env, edge, waitUntil);
}

/**
 * Notes an allowed use of `keyId` (with `previousHash`, of a rotation's previous secret) for its
 * `lastUsedAt`: it travels with the key's counts, to the key's authority, which writes D1 at most once
 * a minute per key. Unmetered uses (management calls, console sessions) are noted too, not counted.
 */
export function noteUse(
  env: Pick<Env, "KEY_AUTHORITY" | "USAGE_FLUSH_MS">,
  edge: Edge,
  keyId: string,
  orgId: string,
  previousHash: string | undefined,
  now: number,
  waitUntil: ((promise: Promise<unknown>) => void) | undefined,
): void {
  const pending = pendingOf(edge, keyId, orgId);
  if (previousHash === undefined) pending.lastUsed = Math.max(pending.lastUsed ?? 0, now);
  else pending.previous = { hash: previousHash, at: Math.max(pending.previous?.hash === previousHash ? pending.previous.at : 0, now) };
  scheduleFlush(env, edge, waitUntil);
}

function pendingOf(edge: Edge, keyId: string, orgId: string): PendingUsage {
  let pending = edge.usage.get(keyId);
  if (!pending) Edge.remember(edge.usage, keyId, (pending = { orgId, counts: new Map(), since: Date.now(), unsent: [] }));
  return pending;
}

/**
 * Schedules the flush, through the `waitUntil` of the request that finds none pending (only that
 * request's: a promise of one request never waits in another's context, which workerd refuses).
 */
function scheduleFlush(env: Pick<Env, "KEY_AUTHORITY" | "USAGE_FLUSH_MS">, edge: Edge, waitUntil: ((promise: Promise<unknown>) => void) | undefined): void {
  if (edge.usageFlush || !waitUntil) return;
  // A flush that fails (its request cancelled mid-way, say) never stops the next one from being
  // scheduled, and never becomes an unhandled rejection: what it did not send stays counted.
  const flush: Promise<void> = flushSoon(env, edge, usageFlushMs(env.USAGE_FLUSH_MS))
    .catch(() => undefined)
    .finally(() => {
      if (edge.usageFlush === flush) edge.usageFlush = null;
    });
  edge.usageFlush = flush;
  waitUntil(flush);
}

/**
 * Sends what no renewal carried: at `delay` the keys whose counts are half that old (younger ones
 * are likely to ride a renewal), at 1.5 × `delay` all that is left. No count waits longer than `delay`.
 */
async function flushSoon(env: Pick<Env, "KEY_AUTHORITY">, edge: Edge, delay: number): Promise<void> {
  await sleep(delay);
  await flushUsage(env, edge, Date.now() - delay / 2);
  await sleep(delay / 2);
  // Cleared first: a count arriving during this flush schedules the next one.
  edge.usageFlush = null;
  await flushUsage(env, edge);
}

/**
 * Takes `keyId`'s counts out of the isolate as reports for its authority (the unsent ones first), or
 * nothing. {@link giveBack} returns them when the call that carried them failed.
 * @example const usage = takeUsage(edge, keyId); try { await a.lease(keyId, hash, usage) } catch { giveBack(edge, keyId, usage) }
 */
export function takeUsage(edge: Edge, keyId: string): UsageReport[] | undefined {
  const pending = edge.usage.get(keyId);
  if (!pending) return undefined;
  edge.usage.delete(keyId);
  const reports = [...pending.unsent];
  if (pending.counts.size || pending.lastUsed !== undefined || pending.previous !== undefined) {
    const counts: UsageReport["counts"] = [];
    for (const [name, count] of pending.counts) {
      const [hour, outcome] = name.split(" ");
      counts.push([Number(hour), outcome!, count]);
    }
    const report: UsageReport = { id: `${edge.id.slice(0, 13)}-${++edge.reports}`, orgId: pending.orgId, counts };
    if (pending.lastUsed !== undefined) report.lastUsed = pending.lastUsed;
    if (pending.previous !== undefined) report.previous = pending.previous;
    reports.push(report);
  }
  return reports.length ? reports : undefined;
}

/** Puts reports back after the call carrying them failed: they go again, with the same ids, next time. */
export function giveBack(edge: Edge, keyId: string, reports: UsageReport[] | undefined): void {
  if (!reports?.length) return;
  let pending = edge.usage.get(keyId);
  if (!pending) Edge.remember(edge.usage, keyId, (pending = { orgId: reports[0]!.orgId, counts: new Map(), since: Date.now(), unsent: [] }));
  pending.unsent.push(...reports);
}

/**
 * Sends the counts of every key whose oldest count is from `before` or earlier (default: all) to the
 * key's authority, one call per key; a failed call keeps its reports for the next flush.
 */
export async function flushUsage(env: Pick<Env, "KEY_AUTHORITY">, edge: Edge, before = Infinity): Promise<void> {
  const due = [...edge.usage].filter(([, pending]) => pending.since <= before).map(([keyId]) => keyId);
  await Promise.all(
    due.map(async (keyId) => {
      const reports = takeUsage(edge, keyId);
      if (!reports) return;
      try {
        // The stub as `authorityFor` makes it (not imported: this module stays free of the object's runtime, for the bench).
        const stub = env.KEY_AUTHORITY.get(env.KEY_AUTHORITY.idFromName(keyId)) as unknown as DurableObjectStub<KeyAuthority>;
        const outcome = await stub.report(keyId, reports);
        if (!outcome.ok) giveBack(edge, keyId, reports);
      } catch {
        giveBack(edge, keyId, reports);
      }
    }),
  );
}
