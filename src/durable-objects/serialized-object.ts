import { DurableObject } from "cloudflare:workers";
import { leaseMs } from "../domain/lease";
import { ApiError, StorageUnavailableError, type ErrorCode } from "../errors";
import { databaseFor } from "../storage/db";
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
 * A refusal about something this object holds nothing of for the caller (a key of another org, or no
 * key at all): it describes no state a lease was granted on, so it answers at once. Waiting there would
 * only tell a stranger whether someone else's key is in use.
 */
export class ForeignRefusal extends ApiError {}

/** Where the high-water mark of the leases an object granted is kept, in its own storage. */
const LEASE_MARK = "leaseMark";

/**
 * What the key and org authorities share: one serialized operation at a time, writes that are awaited
 * until they settle (never abandoned on a timeout), KV writes spaced and coalesced per name, and
 * leases that every answer to a change waits out, a restart of the object included.
 */
export abstract class SerializedObject extends DurableObject<Env> {
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Until when (this object's clock) a lease granted on a state before the current one may be held
   * at an edge, or a change this object answered for (an app's deletion, for its keys) is not yet in
   * force everywhere: every answer to a change waits until then.
   */
  private leasedUntil = 0;
  /**
   * The high-water mark of `leasedUntil` kept in the object's storage (undefined until read): a lease
   * ending past it is handed out only once a higher mark is durable, so an instance that starts after
   * an eviction, a crash or a deploy knows the leases its predecessor granted.
   */
  private storedMark: number | undefined;
  /** When this instance started: every lease an earlier instance granted was granted before. */
  private readonly startedAt = Date.now();
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

  /**
   * The name the object was addressed by (`idFromName`): a key's id or an org's id, whose first
   * character names the D1 database the org lives in (src/storage/db.ts). The runtime gives it to the
   * object itself (`ctx.id.name`, since March 2026), alarms included: no method needs to carry it.
   */
  protected get name(): string {
    const name = this.ctx.id.name;
    if (name === undefined) throw new Error("an authority is addressed by name (idFromName)");
    return name;
  }

  /** Reads, from the org's database: behind the storage seam, with its timeouts (an abandoned read changes nothing). */
  protected get reads() {
    return databaseFor(guardEnv(this.own), this.name);
  }

  /** Writes, to the org's database: faults become `StorageUnavailableError`, but a slow write is waited for, never abandoned. */
  protected get writes() {
    const env = settledEnv(this.own);
    return { database: databaseFor(env, this.name), kv: env.KEYS_KV };
  }

  /** T, from the object's bindings behind the seam (a test may lengthen it to measure against a busy machine). */
  protected get leaseMs(): number {
    return leaseMs(this.own.LEASE_MS);
  }

  /**
   * Runs `task` after every earlier one. Refusals (`ApiError`) and storage faults come back as an
   * {@link Outcome}; after any failure the object forgets its state. `settle` is called, still inside
   * the serialized turn, with the task's failure if it failed.
   */
  protected serialized<T>(task: () => Promise<T>, settle?: (failure?: unknown) => void): Promise<Outcome<T>> {
    const run = this.queue.then(async (): Promise<Outcome<T>> => {
      try {
        await this.restoreMark();
        const value = await task();
        settle?.();
        return { ok: true, value };
      } catch (err) {
        settle?.(err);
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

  /**
   * Before the first operation of an instance: the leases an earlier instance granted. They were all
   * granted before this one started, so they end by `startedAt + T`; and by the stored mark, a time on
   * the clock of the instance that wrote it, perhaps on another machine: allowing the two clocks to
   * differ by up to T, an object that granted nothing lately waits for nothing. When the mark cannot be
   * read, every lease is taken as outstanding until `startedAt + T`.
   */
  private async restoreMark(): Promise<void> {
    if (this.storedMark !== undefined) return;
    const ms = this.leaseMs;
    let mark: number;
    try {
      mark = (await this.ctx.storage.get<number>(LEASE_MARK)) ?? 0;
    } catch (err) {
      this.leasedUntil = Math.max(this.leasedUntil, this.startedAt + ms);
      throw new StorageUnavailableError("authority", err);
    }
    this.storedMark = mark;
    if (mark > 0) this.leasedUntil = Math.max(this.leasedUntil, Math.min(this.startedAt + ms, mark + ms));
  }

  /**
   * Makes `until` (this object's clock) part of what every answer to a change waits for, durably: a
   * mark covering it is in storage before this resolves (the output gate holds the answer that follows
   * until the write is confirmed). The mark is raised T/2 beyond what is needed, so a key in steady use
   * writes it at most once per T/2, not once per lease.
   */
  private async holdUntil(until: number): Promise<void> {
    if (until > (this.storedMark ?? 0)) {
      const mark = until + this.leaseMs / 2;
      try {
        await this.ctx.storage.put(LEASE_MARK, mark);
      } catch (err) {
        throw new StorageUnavailableError("authority", err);
      }
      this.storedMark = mark;
    }
    this.leasedUntil = Math.max(this.leasedUntil, until);
  }

  /** Grants a lease on the current state: returns T, once a change is sure to wait it out (restarts included). */
  protected async grantLease(): Promise<number> {
    const ms = this.leaseMs;
    // Counted from before the mark's write: the edge started its clock before asking, earlier still.
    await this.holdUntil(Date.now() + ms);
    return ms;
  }

  /**
   * Makes every later answer to a change wait `ms` more from now, as for a lease: a change this object
   * answers for that is still being waited out elsewhere (an app's deletion, for the leases of its
   * keys). A duration, not a time: two objects' clocks agree in rate, not in what they read.
   */
  protected holdFor(ms: number): Promise<void> {
    return ms > 0 ? this.holdUntil(Date.now() + ms) : Promise.resolve();
  }

  /** How long (ms) leases granted so far, and changes held for, still run: 0 when none does. */
  protected leasesLeftMs(): number {
    return Math.max(0, this.leasedUntil - Date.now());
  }

  /**
   * A change: `task` runs serialized (no lease is granted on the old state while it runs, and the
   * leases granted after it carry the new state), then the call waits until every lease granted
   * before it has ended, then answers. Every answer waits so, a refusal or a storage fault too: a
   * refusal describes the state in force ("already revoked", "no overlap running"), which is only true
   * everywhere once the leases granted on the state before it have ended; and a fault may come after a
   * write that did land. No wait at all when no lease is outstanding, and none for a
   * {@link ForeignRefusal}.
   */
  protected async change<T>(task: () => Promise<T>): Promise<Outcome<T>> {
    let until = 0;
    const outcome = await this.serialized(task, (failure) => {
      if (!(failure instanceof ForeignRefusal)) until = this.leasedUntil;
    });
    // The change's event is in the outbox (same batch): send it now, off the caller's path.
    if (outcome.ok) publishSoon(this.own, this.name, (p) => this.ctx.waitUntil(p));
    const wait = until - Date.now();
    if (wait > 0) await sleep(wait);
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
