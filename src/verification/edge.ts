import type { OrgPolicy } from "../domain/policy";
import type { KeyRecord } from "../storage/key-record";
import type { CreditSlice } from "./credits";
import type { Slice } from "./rate-limit";
import type { PendingUsage } from "./usage";

/**
 * How long (ms) a request waits for a call another request began before it asks itself: longer than
 * any authority call may take (5 s for a lease, a fill or a strict check; 10 s plus T for the rest).
 */
export const COALESCE_PATIENCE_MS = 15_000;

/**
 * What one isolate holds between requests: the leases it was granted, and small facts that never go
 * stale. A worker has one (`isolateEdge`); the location model in `test/` makes one per location, each
 * its own memory, over the same authorities.
 *
 * Every map is bounded: past its limit it is cleared (a flood of distinct keys costs calls, not memory).
 */
export class Edge {
  /** key hash → the record leased for it, held until `until` (this isolate's clock, started before asking). */
  readonly keyLeases = new Map<string, { record: KeyRecord; until: number; ms: number }>();
  /** key ids with a lease above: only for those is the hash worth computing before the keyed tag. */
  readonly leasedKeyIds = new Set<string>();
  /** org id → its leased policy. */
  readonly orgLeases = new Map<string, { policy: OrgPolicy; until: number; ms: number }>();
  /** `orgId:appId` → whether the app is the org's, leased with the org. */
  readonly appLeases = new Map<string, { owns: boolean; until: number }>();
  /** Cached mode: appId → its org from D1 (null: no such app), until `until`; apps never change orgs. */
  readonly appOrgs = new Map<string, { orgId: string | null; until: number }>();
  /** keyId → orgId: never changes, so the org's lease can be renewed alongside the key's. */
  readonly orgOfKey = new Map<string, string>();
  /** keyId → its verifications counted and not yet sent to its authority (src/verification/usage.ts). */
  readonly usage = new Map<string, PendingUsage>();
  /** The pending flush of `usage`, if one is scheduled. */
  usageFlush: Promise<void> | null = null;
  /** This isolate's name in the ids of its usage reports (made on first use: no random values at startup), and how many it made. */
  private name: string | undefined;
  get id(): string {
    return (this.name ??= crypto.randomUUID());
  }
  reports = 0;
  /** keyId → this isolate's slice of the key's rate-limit budget (src/verification/rate-limit.ts). */
  readonly rateSlices = new Map<string, Slice>();
  /** keyId → this isolate's slice of a metered key's credits (src/verification/credits.ts). */
  readonly creditSlices = new Map<string, CreditSlice>();
  /** One call in flight per lease: a burst of first uses makes one authority call, not one each. */
  private readonly inflight = new Map<string, Promise<unknown>>();

  static readonly LIMIT = 50_000;

  /**
   * Runs `ask` unless a call with the same `name` is in flight, whose answer is shared instead.
   * @example edge.coalesce(`key:${hash}`, () => askAuthority(...))
   */
  coalesce<T>(name: string, ask: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(name) as Promise<T> | undefined;
    if (running) return Edge.sharedOrOwn(running, ask);
    const started = ask().finally(() => this.inflight.delete(name));
    this.inflight.set(name, started);
    return started;
  }

  /**
   * A call another request began is waited for at most {@link COALESCE_PATIENCE_MS}, then this request
   * asks itself. The call belongs to the request that began it: if that request is cancelled (its
   * client went away), the call never settles, and a request waiting on it with nothing of its own
   * pending would be ended by the runtime as hung. Every authority call times out sooner than this, so
   * a call that is merely slow is still shared.
   */
  private static sharedOrOwn<T>(running: Promise<T>, ask: () => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const own = new Promise<T>((resolve, reject) => {
      timer = setTimeout(() => ask().then(resolve, reject), COALESCE_PATIENCE_MS);
    });
    // The losing side of the race must not become an unhandled rejection.
    own.catch(() => undefined);
    return Promise.race([running.finally(() => clearTimeout(timer)), own]);
  }

  /** Sets `value` in `map`, clearing the map first when it is full. */
  static remember<K, V>(map: Map<K, V>, key: K, value: V): void {
    if (map.size >= Edge.LIMIT && !map.has(key)) map.clear();
    map.set(key, value);
  }

  holdKey(hash: string, keyId: string, record: KeyRecord, until: number, ms: number): void {
    Edge.remember(this.keyLeases, hash, { record, until, ms });
    if (this.leasedKeyIds.size >= Edge.LIMIT) this.leasedKeyIds.clear();
    this.leasedKeyIds.add(keyId);
  }

  /** The record leased for `hash`, if the lease is live at `now`. */
  heldKey(hash: string, now: number): KeyRecord | undefined {
    const held = this.keyLeases.get(hash);
    return held && now < held.until ? held.record : undefined;
  }
}

/** This isolate's edge. */
export const isolateEdge = new Edge();
