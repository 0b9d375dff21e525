import { DurableObject } from "cloudflare:workers";
import { leaseMs } from "../domain/lease";
import { ApiError, StorageUnavailableError, type ErrorCode } from "../errors";
import { db } from "../storage/db";
import { publishSoon } from "../storage/events";
import { guardEnv, settledEnv } from "../storage/guarded-bindings";

/**
 * What an authority method answers. Errors do not keep their class across the Durable Object
 * boundary, so a refusal or a storage fault travels as data and {@link ask} turns it back into the
 * `ApiError` or `StorageUnavailableError` the app answers with (404/403/409, or 503 with
 * `Retry-After`).
 */
export type Outcome<T> =
  | { ok: true; value: T }
  | { ok: false; code: ErrorCode; message: string; details?: unknown; store?: StorageUnavailableError["store"] };

/** KV refuses a second write to one key within a second (429): writes of one name are spaced by this. */
export const KV_WRITE_SPACING_MS = 1_000;
/** A record written again with the same value within this long is not written: it is there already. */
const SAME_VALUE_REWRITE_MS = 60_000;
/** A KV write refused or failed is tried again, this many times, then left to the record's TTL. */
const KV_WRITE_ATTEMPTS = 4;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function storageFault(err: unknown): StorageUnavailableError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof StorageUnavailableError) return e;
  }
  return undefined;
}

interface KvChain {
  lastAt: number;
  /** The value last written (undefined before any): writing it again would change nothing. */
  lastValue?: string | null;
  next: { value: string | null; ttlSeconds?: number; always?: boolean } | null;
  running: Promise<void> | null;
}

/**
 * What the key and org authorities share: one serialized operation at a time, writes that are awaited
 * until they settle (never abandoned on a timeout), KV writes spaced and coalesced per name, and
 * leases that a change waits out before it answers.
 */
export abstract class SerializedObject extends DurableObject<Env> {
  private queue: Promise<unknown> = Promise.resolve();
  /** Until when (this object's clock) a lease it granted on the current state may be held at an edge. */
  private leasedUntil = 0;
  private kvChains = new Map<string, KvChain>();

  /** Test seam: bindings used instead of the object's own (slow, failing or modelled storage). */
  bindings: Env | null = null;
  /** Test seam for every object at once: maps the object's own bindings to the ones it uses. */
  static storage: ((env: Env) => Env) | null = null;

  /** Drops what the object holds in memory, so the next operation starts again from D1. */
  protected abstract forget(): void;

  protected get own(): Env {
    return this.bindings ?? SerializedObject.storage?.(this.env) ?? this.env;
  }

  /** Reads: behind the storage seam, with its timeouts (an abandoned read changes nothing). */
  protected get reads() {
    return db(guardEnv(this.own).DB);
  }

  /** Writes: faults become `StorageUnavailableError`, but a slow write is waited for, never abandoned. */
  protected get writes() {
    const env = settledEnv(this.own);
    return { database: db(env.DB), kv: env.KEYS_KV };
  }

  protected get leaseMs(): number {
    return leaseMs(this.env.LEASE_MS);
  }

  /**
   * Runs `task` after every earlier one. Refusals (`ApiError`) and storage faults come back as an
   * {@link Outcome}; after any failure the object forgets its state.
   */
  protected serialized<T>(task: () => Promise<T>): Promise<Outcome<T>> {
    const run = this.queue.then(async (): Promise<Outcome<T>> => {
      try {
        return { ok: true, value: await task() };
      } catch (err) {
        this.forget();
        if (err instanceof ApiError) return { ok: false, code: err.code, message: err.message, details: err.details };
        const fault = storageFault(err);
        if (fault) return { ok: false, code: "SERVICE_UNAVAILABLE", message: "Storage is unavailable.", store: fault.store };
        console.error(JSON.stringify({ level: "error", error: err instanceof Error ? err.name : "unknown", in: this.constructor.name }));
        return { ok: false, code: "INTERNAL", message: "Internal error." };
      }
    });
    this.queue = run;
    return run;
  }

  /** Grants a lease on the current state: returns T, and remembers that a change must wait it out. */
  protected grantLease(): number {
    const ms = this.leaseMs;
    this.leasedUntil = Math.max(this.leasedUntil, Date.now() + ms);
    return ms;
  }

  /**
   * A change: `task` runs serialized (no lease is granted on the old state while it runs, and the
   * leases granted after it carry the new state), then the call waits until every lease granted
   * before it has ended, then answers. No wait at all when no lease is outstanding.
   */
  protected async change<T>(task: () => Promise<T>): Promise<Outcome<T>> {
    let until = 0;
    const outcome = await this.serialized(async () => {
      const value = await task();
      until = this.leasedUntil;
      return value;
    });
    // The change's event is in the outbox (same batch): send it now, off the caller's path.
    if (outcome.ok) publishSoon(this.own, (p) => this.ctx.waitUntil(p));
    const wait = until - Date.now();
    if (outcome.ok && wait > 0) await sleep(wait);
    return outcome;
  }

  /**
   * Writes (or, with `null`, deletes) one KV name without the caller waiting. Writes of one name run
   * one after another, at least a second apart (KV's limit), and only the newest waiting one is made:
   * an older state can never land after a newer one; an unchanged value is not written again within a
   * minute unless `always`. A refused or failed write is retried, then left to the record's TTL; it
   * never fails the operation that asked for it.
   */
  protected kvWrite(name: string, value: string | null, ttlSeconds?: number, always = false): void {
    let chain = this.kvChains.get(name);
    if (!chain) {
      chain = { lastAt: 0, next: null, running: null };
      this.kvChains.set(name, chain);
    }
    chain.next = { value, ttlSeconds, always };
    if (!chain.running) chain.running = this.drain(name, chain);
  }

  /** Resolves when every KV write asked for so far has landed or been given up (tests, alarms). */
  async kvSettled(): Promise<void> {
    await Promise.all([...this.kvChains.values()].map((c) => c.running));
  }

  private async drain(name: string, chain: KvChain): Promise<void> {
    let attempts = 0;
    while (chain.next) {
      // The same record again within a minute (concurrent fills of one key): it is there already.
      if (!chain.next.always && chain.next.value === chain.lastValue && Date.now() - chain.lastAt < SAME_VALUE_REWRITE_MS) {
        chain.next = null;
        break;
      }
      const wait = chain.lastAt + KV_WRITE_SPACING_MS - Date.now();
      if (wait > 0) await sleep(wait);
      const write = chain.next;
      if (!write) break;
      chain.next = null;
      try {
        const { kv } = this.writes;
        if (write.value === null) await kv.delete(name);
        else await kv.put(name, write.value, write.ttlSeconds ? { expirationTtl: write.ttlSeconds } : undefined);
        chain.lastValue = write.value;
        attempts = 0;
      } catch {
        attempts++;
        if (!chain.next && attempts < KV_WRITE_ATTEMPTS) chain.next = write;
      }
      chain.lastAt = Date.now();
    }
    chain.running = null;
    if (this.kvChains.size > 1_000) this.kvChains.delete(name);
  }
}

/**
 * How long a caller waits for an authority. An authority waits for its own writes to settle (it never
 * abandons one) and a change waits out its leases (at most T), so a slow store makes the caller give
 * up here with a 503 while the operation may still complete: a retry is safe.
 */
export const AUTHORITY_TIMEOUT_MS = 10_000;

/**
 * Calls an authority and unwraps its {@link Outcome}: refusals become `ApiError`; storage faults, an
 * unreachable object and a call slower than `timeoutMs` become `StorageUnavailableError` (503).
 */
export async function ask<S, T>(stub: S, call: (stub: S) => Promise<Outcome<T>>, timeoutMs = AUTHORITY_TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let outcome: Outcome<T>;
  try {
    outcome = await Promise.race([
      call(stub),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the authority did not answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    throw new StorageUnavailableError("authority", err);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
  if (outcome.ok) return outcome.value;
  if (outcome.code === "SERVICE_UNAVAILABLE") throw new StorageUnavailableError(outcome.store ?? "authority", new Error(outcome.message));
  throw new ApiError(outcome.code, outcome.message, outcome.details);
}
