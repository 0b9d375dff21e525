import { and, eq, isNull, lt, or } from "drizzle-orm";
import { decryptSecret, encryptSecret, hashKey, timingSafeEqual } from "../domain/crypto";
import { displayPrefix, mintKey } from "../domain/key-format";
import { networksWithin } from "../domain/allowed-networks";
import type { Metadata } from "../domain/metadata";
import type { CreditRefill, SliceReturn } from "../domain/credits";
import { sliceGranted, windowOf, type RateLimit } from "../domain/rate-limit";
import { meteringShortfall, type MeteringBound } from "../domain/metering";
import { missingToManage, type Grant } from "../domain/permissions";
import { outlives, type OrgPolicy } from "../domain/policy";
import { ApiError, StorageUnavailableError } from "../errors";
import {
  accessOf,
  hasOtherAdminKey,
  inOverlap,
  isAdminKey,
  keyRecordName,
  loadKeyRow,
  loadKeyRowAndPolicy,
  recordOf,
  recordTtl,
  type KeyRecord,
  type KeyRow,
} from "../storage/key-record";
import { auditEntry, changesOf, iso, type AuditContext } from "../storage/audit";
import { changeStatements } from "../storage/events";
import { apiKeys, auditLog, keyAppRoles } from "../storage/schema";
import { leaseMs } from "../domain/lease";
import { ask, AUTHORITY_TIMEOUT_MS, ForeignRefusal, SerializedObject, type Outcome } from "./serialized-object";
import { CreditLedger, type Balance } from "./key-metering";
import { UsageLedger, usageRollupMs, type UsageReport } from "./key-usage";

export { type Outcome };

export { auditEntry, type AuditContext };

/**
 * The caller of a management operation: its audit identity and, checked inside the serialized
 * operation against the row it acts on, its access. `grants: null` is the system itself (tests,
 * app deletion), which is not limited by a key's access.
 */
export interface Actor extends AuditContext {
  grants: Grant[] | null;
  expiresAt: number | null;
  /** The caller's own allowed networks (null: anywhere): it never hands out a secret usable beyond them. */
  allowedNetworks?: string[] | null;
  /** The caller's metering: it never hands out a secret metered less (needed by regenerate and reveal). */
  metering?: MeteringBound;
}

/** A change of a key's access or metadata, applied by {@link KeyAuthority.update}. */
export interface KeyChange {
  name?: string;
  orgRole?: "none" | "member" | "admin";
  appRoles?: Record<string, "reader" | "uploader" | "developer" | "admin">;
  scopes?: string[];
  expiresAt?: number | null;
  notBefore?: number | null;
  /** Canonical ranges; empty: anywhere. */
  allowedNetworks?: string[];
  metadata?: Metadata | null;
  /** `[]`: none of its own. */
  rateLimits?: RateLimit[];
  /** The balance to set (null: unmetered), and its refill. */
  credits?: number | null;
  creditsRefill?: CreditRefill | null;
}

/**
 * How a revoke or a disable is recorded when it is not the plain API action: a secret scanning
 * report records `key.leaked`, with where the key was found.
 */
export interface ChangeOptions {
  force?: boolean;
  audit?: { action: string; details: Record<string, unknown> };
}

/** The longest rotation overlap: the old secret verifies beside the new one for at most a week. */
export const MAX_OVERLAP_MS = 7 * 86_400_000;

/** A cache fill's answer: the record it wrote, and the org's policy read in the same D1 query (null unless active). */
export interface Fill {
  record: KeyRecord;
  policy: OrgPolicy | null;
}

const notFound = () => new ApiError("NOT_FOUND", "No such key.");
/** No key of the caller's org by this id: nothing of it was leased to the caller's org, so nothing to wait for. */
const noSuchKey = () => new ForeignRefusal("NOT_FOUND", "No such key.");

/** The audit details of a revoke or disable: the key's name, whether forced, and the caller's own details. */
const changeDetails = (row: KeyRow, options: ChangeOptions) => ({ name: row.name, ...options.audit?.details, ...(options.force ? { force: true } : {}) });

/** The columns of a key with no previous secret (no rotation overlap). */
const NO_PREVIOUS = { previousKeyHash: null, previousKeyPrefix: null, previousExpiresAt: null, previousLastUsedAt: null };

/** A lease on a key's state: what the edge may answer from, for `ms` from when it asked. */
export interface KeyLease {
  record: KeyRecord;
  /** How long the edge may hold it (0 for an answer that must not be held). */
  ms: number;
  /** False when the usage the request carried could not be stored: the isolate keeps it and sends it again. */
  counted?: false;
}

/** A slice of a key's rate-limit budget, and where each of its windows stands after it. */
export interface RateGrant {
  granted: number;
  windows: { limit: number; periodSeconds: number; remaining: number; resetAt: number }[];
}

/** `lastUsedAt` reaches D1 at most this often per key, whatever the number of isolates and locations. */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;

/**
 * One object per key, named by the key id carried in the key itself. It is the key's authority: the
 * edge holds leases on its state (see `src/domain/lease.ts`), and every change (regenerate, revoke,
 * edit, app removal) runs here, serialized; every answer to one (refusals too) waits out the leases
 * granted on the old state, except an app's removal, whose wait the org's authority does for all keys
 * at once. It keeps the key's row in memory (D1 is read when the object starts or after a failure),
 * writes the key's KV records for the cached mode, and gathers `lastUsedAt` from the edges into at
 * most one D1 write a minute.
 */
export class KeyAuthority extends SerializedObject {
  /** The key's row as of the last serialized operation: leases and strict verification answer from it. */
  private row: KeyRow | undefined;
  /** The org's policy, read with the row (the cached mode's fills hand it to the verifier). */
  private policy: OrgPolicy | undefined;
  /** The newest version (`updatedAt`) this object has read or committed: it never acts on an older read. */
  private version = 0;
  /** The latest use the edges reported, the last one written to D1, and when that write was made. */
  private lastUsed = 0;
  private lastUsedFlushed = 0;
  private lastUsedWritten = 0;
  /** The same for the previous secret during a rotation overlap, tracked apart, with that secret's hash. */
  private previousUsed = 0;
  private previousUsedFlushed = 0;
  private previousHash: string | null = null;

  /**
   * What each rate-limit window of the key has granted: periodSeconds → the window's start and count.
   * Kept in the object's own storage too, so a restart does not hand out a window's budget twice.
   */
  private rate: Map<number, { start: number; used: number }> | undefined;

  /**
   * The key's credits: the balance and the slices handed out and not yet given back, in the object's
   * own storage (src/durable-objects/key-metering.ts); D1 gets a copy at most once a minute.
   */
  private credits: CreditLedger | undefined;
  private get ledger(): CreditLedger {
    return (this.credits ??= new CreditLedger(this.ctx.storage));
  }
  /** The key's usage counts per hour, in the object's own storage; D1 gets daily roll-ups. */
  private counts: UsageLedger | undefined;
  private get usage(): UsageLedger {
    return (this.counts ??= new UsageLedger(this.ctx.storage));
  }
  /** Slice ids are unique to this instance and count up: stored slices of earlier instances never collide. */
  private readonly sliceEpoch = crypto.randomUUID().slice(0, 8);
  private sliceCount = 0;

  /** Test seam: awaited between the D1 read and the KV write of a fill (see test/authority-race.test.ts). */
  fillPause: (() => Promise<void>) | null = null;
  /** Test seam: the same pause for every object (the randomized stress test varies it per fill). */
  static fillPauseAll: (() => Promise<void>) | null = null;

  protected forget(): void {
    this.row = undefined;
    this.policy = undefined;
    this.credits?.forget();
    this.counts?.forget();
  }

  private async load(keyId: string, orgId?: string): Promise<KeyRow | null> {
    const row = await loadKeyRow(this.reads, keyId, orgId);
    if (row) this.seen(row);
    return row && this.withBalance(row);
  }

  /**
   * `row` (as D1 has it) with the balance this object holds, as of now: D1's `credits` is a copy at
   * most a minute old, read only by a fresh object that holds no balance yet.
   */
  private withBalance(row: KeyRow): KeyRow {
    const held = this.ledger.current({ id: row.id, credits: row.credits, refilledAt: row.creditsRefilledAt });
    return { ...row, credits: held.credits, creditsRefilledAt: held.refilledAt, creditsAsOf: Date.now() };
  }

  /** Notes a version read from D1; a read older than what this object committed is not trusted. */
  private seen(row: KeyRow): void {
    if (row.updatedAt < this.version) throw new StorageUnavailableError("d1", new Error("D1 answered with an older version of the key"));
    this.version = row.updatedAt;
  }

  /** The next version of `row`: strictly increasing, so two changes in one millisecond are still two versions. */
  private nextVersion(row: KeyRow): number {
    return Math.max(Date.now(), row.updatedAt + 1, this.version + 1);
  }

  private async currentRow(keyId: string): Promise<KeyRow | null> {
    if (this.row !== undefined) return this.row;
    const { row, policy } = await loadKeyRowAndPolicy(this.reads, keyId);
    // Only a row that exists is kept: "no such key" is never cached in memory.
    if (!row) return null;
    this.seen(row);
    this.row = this.withBalance(row);
    this.policy = policy;
    return this.row;
  }

  /**
   * The record for `hash` from memory or D1, without touching KV: the key's current secret, or its
   * previous one while a rotation keeps it (the record says until when; the verifier judges the time).
   */
  private async recordFor(keyId: string, hash: string): Promise<KeyRecord> {
    const row = await this.currentRow(keyId);
    if (!row) return { status: "unknown" };
    if (timingSafeEqual(row.keyHash, hash)) return recordOf(row);
    if (row.previousKeyHash !== null && row.revokedAt === null && timingSafeEqual(row.previousKeyHash, hash)) return recordOf(row, true);
    return { status: "unknown" };
  }

  /** The KV record of a hash for the cached mode: one write, spaced and coalesced per name. */
  private writeRecord(hash: string, record: KeyRecord, always = false): void {
    this.kvWrite(keyRecordName(hash), JSON.stringify(record), recordTtl(record).expirationTtl, always);
  }

  /**
   * The KV records of `next`: its secret's, its previous secret's while a rotation keeps one, and a
   * tombstone for each hash of `before` that `next` no longer accepts.
   */
  private writeRecords(before: KeyRow, next: KeyRow): void {
    const tombstone: KeyRecord = { status: "revoked", keyId: next.id, orgId: next.orgId, version: next.updatedAt };
    this.writeRecord(next.keyHash, recordOf(next));
    if (next.previousKeyHash !== null) this.writeRecord(next.previousKeyHash, next.revokedAt === null ? recordOf(next, true) : tombstone);
    for (const hash of [before.keyHash, before.previousKeyHash]) {
      if (hash !== null && hash !== next.keyHash && hash !== next.previousKeyHash) this.writeRecord(hash, tombstone);
    }
  }

  /** 403 unless `actor` may manage `row` (access and lifetime), checked on the row the operation acts on. */
  private assertCanManage(actor: Actor, row: KeyRow, handsOutSecret: boolean): void {
    if (actor.grants === null) return;
    const missing = missingToManage(actor.grants, accessOf(row));
    if (missing.length) throw new ApiError("FORBIDDEN", "This key cannot manage a key with access beyond its own.", { missing });
    if (handsOutSecret && outlives(row.expiresAt, actor.expiresAt)) {
      throw new ApiError("FORBIDDEN", "This key cannot hand out a secret that outlives its own expiry.", { reason: "OUTLIVES_CALLER" });
    }
    if (handsOutSecret && !networksWithin(row.allowedNetworks, actor.allowedNetworks)) {
      throw new ApiError("FORBIDDEN", "This key cannot hand out a secret usable beyond its own allowed networks.", { reason: "NETWORKS_BEYOND_CALLER" });
    }
    if (handsOutSecret) {
      // A caller whose metering is not known hands out nothing (fail closed: a route that forgot it).
      if (!actor.metering) throw new Error("the caller's metering is needed to hand out a secret");
      const issues = meteringShortfall(actor.metering, { credits: row.credits, creditsRefill: row.creditsRefill, rateLimits: row.rateLimits });
      if (issues.length) {
        throw new ApiError("FORBIDDEN", "This key cannot hand out a secret metered less than itself.", { reason: "METERING_BEYOND_CALLER", issues });
      }
    }
  }

  /**
   * Notes a use an edge reports with its counts (src/verification/usage.ts). D1 hears of it at most once a minute: at once when the last write is
   * a minute old, otherwise by the object's alarm at the end of that minute.
   */
  private async noteUse(keyId: string, usedAt: number, previousHash: string | undefined): Promise<void> {
    const previous = previousHash !== undefined && usedAt > this.previousUsed;
    // The first use of a rotation's old secret is written at once: "a client still uses it" is news.
    const firstOfRotation = previous && previousHash !== this.previousHash;
    if (previous) {
      this.previousUsed = usedAt;
      this.previousHash = previousHash;
    }
    if (usedAt <= this.lastUsed && !previous) return;
    this.lastUsed = Math.max(this.lastUsed, usedAt);
    this.keyId = keyId;
    const due = this.lastUsedWritten + LAST_USED_WRITE_INTERVAL_MS;
    if (firstOfRotation || Date.now() >= due) await this.flushLastUsed();
    else if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(due);
  }
  private keyId: string | undefined;

  private async flushLastUsed(): Promise<void> {
    if (!this.keyId) return;
    const at = this.lastUsed;
    const previousAt = this.previousUsed;
    if (at <= this.lastUsedFlushed && previousAt <= this.previousUsedFlushed) return;
    this.lastUsedFlushed = at;
    this.previousUsedFlushed = previousAt;
    this.lastUsedWritten = Date.now();
    const { database } = this.writes;
    const keyId = this.keyId;
    const previousHash = this.previousHash ?? "";
    await database.batch([
      database
        .update(apiKeys)
        .set({ lastUsedAt: at })
        .where(and(eq(apiKeys.id, keyId), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, at)))),
      // Only on the rotation whose old secret was used: a late report never lands on a later rotation.
      database
        .update(apiKeys)
        .set({ previousLastUsedAt: previousAt })
        .where(
          and(
            eq(apiKeys.id, keyId),
            eq(apiKeys.previousKeyHash, previousHash),
            or(isNull(apiKeys.previousLastUsedAt), lt(apiKeys.previousLastUsedAt, previousAt)),
          ),
        ),
    ]);
  }

  /**
   * The object's one alarm, for every copy it owes D1: the latest reported use ({@link noteUse}) and
   * the balance (at most once a minute, {@link takeCredits}). Set again for whatever is not due yet.
   */
  override async alarm(): Promise<void> {
    // The alarm is shared: when it rings for the balance or the usage roll-up, a pending use waits for
    // its own minute (the once-a-minute bound); when nothing else is due, it rang for the use.
    const now = Date.now();
    const othersDue = (this.ledger.flushDue() ?? Infinity) <= now || (this.usage.rollupDue(this.rollupMs) ?? Infinity) <= now;
    const useDue = this.lastUsedWritten + LAST_USED_WRITE_INTERVAL_MS;
    if (now >= useDue || !othersDue) await this.flushLastUsed();
    const flushed = await this.serialized(async () => {
      await this.flushCredits();
      await this.rollUpUsage();
      this.usage.prune(Date.now());
    });
    const usePending = this.lastUsed > this.lastUsedFlushed || this.previousUsed > this.previousUsedFlushed;
    // A key gone quiet still drops its hourly detail when it passes its 90 days.
    const due = [this.ledger.flushDue(), this.usage.rollupDue(this.rollupMs), usePending ? useDue : null, this.usage.pruneDue()].filter(
      (d): d is number => d !== null,
    );
    if (due.length) await this.ctx.storage.setAlarm(flushed.ok ? Math.min(...due) : Date.now() + 1_000);
  }

  /** How often D1 gets this key's usage roll-up (`USAGE_ROLLUP_MS`). */
  private get rollupMs(): number {
    return usageRollupMs(this.own.USAGE_ROLLUP_MS);
  }

  /** Writes the key's daily roll-ups to D1 when one is due (one statement), then prunes old detail here. */
  private rollUpUsage(): Promise<void> {
    return this.usage.rollUp(this.writes.database, Date.now(), this.rollupMs);
  }

  /**
   * Adds the counts isolates sent (each report once), and makes sure a roll-up to D1 follows; notes the
   * latest uses they carry for `lastUsedAt` (written to D1 at most once a minute, see {@link noteUse}).
   */
  private async addUsage(keyId: string, reports: readonly UsageReport[] | undefined): Promise<void> {
    if (!Array.isArray(reports) || !reports.length) return;
    for (const r of reports) {
      if (Number.isSafeInteger(r?.lastUsed)) await this.noteUse(keyId, r.lastUsed!, undefined).catch(() => undefined);
      if (typeof r?.previous?.hash === "string" && Number.isSafeInteger(r.previous.at)) {
        await this.noteUse(keyId, r.previous.at, r.previous.hash).catch(() => undefined);
      }
    }
    try {
      if (!this.usage.add(keyId, reports, Date.now())) return;
    } catch (err) {
      throw new StorageUnavailableError("authority", err);
    }
    await this.alarmBy(Math.max(Date.now(), this.usage.rollupDue(this.rollupMs) ?? 0));
  }

  /**
   * Counts an isolate sends on their own: for a key it holds counts of and has no lease renewal due
   * to carry them (within `USAGE_FLUSH_MS`). Each report is applied once, so a resend is harmless.
   */
  report(keyId: string, reports: UsageReport[]): Promise<Outcome<true>> {
    return this.serialized(async () => {
      await this.addUsage(keyId, reports);
      return true as const;
    });
  }

  /** The key's counts per bucket and outcome in [from, to), from the hourly detail kept here. */
  usageSeries(keyId: string, orgId: string, from: number, to: number, bucketMs: number): Promise<Outcome<{ bucket: number; outcome: string; count: number }[]>> {
    return this.serialized(async () => {
      const row = await this.currentRow(keyId);
      if (!row || row.orgId !== orgId || row.revokedAt !== null) throw noSuchKey();
      return this.usage.series(from, to, bucketMs);
    });
  }

  /** Copies the balance to D1 when a copy is due (D1's figure is for listing; the balance is here). */
  private flushCredits(): Promise<void> {
    return this.ledger.copyTo(this.writes.database, Date.now());
  }

  /** Makes the alarm ring by `at` (an earlier one set stays). */
  private async alarmBy(at: number): Promise<void> {
    const set = await this.ctx.storage.getAlarm();
    if (set === null || set > at) await this.ctx.storage.setAlarm(at);
  }

  /**
   * A lease on the state of `hash` for the edge (the default mode). An active record is leased for T,
   * and a change waits out that lease; an unknown or revoked hash can never become valid again, so its
   * answer needs no lease to be waited out.
   */
  lease(keyId: string, hash: string, usage?: UsageReport[]): Promise<Outcome<KeyLease>> {
    return this.serialized(async () => {
      // The isolate's counts of the key ride its renewal: no request of their own. A fault storing them
      // never fails the lease (verification does not depend on counting): they go back to the isolate.
      const counted = await this.addUsage(keyId, usage).then(
        () => true,
        () => false,
      );
      const record = await this.recordFor(keyId, hash);
      const lease: KeyLease = { record, ms: record.status === "active" ? await this.grantLease() : 0 };
      if (!counted) lease.counted = false;
      return lease;
    });
  }

  /** Strict verification: the authority's own view, with no cache in between. */
  check(keyId: string, hash: string): Promise<Outcome<KeyRecord>> {
    return this.serialized(() => this.recordFor(keyId, hash));
  }

  /**
   * A slice of the key's rate-limit budget for an isolate: up to `wanted` verifications it may admit in
   * the current windows of `limits` (and all `need` that wait on this call, while the window has them),
   * counted here before they are handed out (so what all isolates admit never exceeds a window's limit).
   * 0 when a window is spent; the windows say when each resets.
   */
  takeRate(limits: RateLimit[], wanted: number, need = 0): Promise<Outcome<RateGrant>> {
    return this.serialized(async () => {
      const now = Date.now();
      this.rate ??= new Map(Object.entries((await this.ctx.storage.get<Record<string, { start: number; used: number }>>("rate")) ?? {}).map(([p, c]) => [Number(p), c]));
      const windows = limits.map((limit) => {
        const window = windowOf(limit, now);
        const held = this.rate!.get(limit.periodSeconds);
        return { limit, window, count: held && held.start === window.start ? held : { start: window.start, used: 0 } };
      });
      const granted = sliceGranted(wanted, Math.min(...windows.map((w) => w.limit.limit - w.count.used)), need);
      for (const w of windows) this.rate.set(w.limit.periodSeconds, { start: w.count.start, used: w.count.used + granted });
      if (granted > 0) await this.ctx.storage.put("rate", Object.fromEntries(this.rate));
      return {
        granted,
        windows: windows.map((w) => ({
          limit: w.limit.limit,
          periodSeconds: w.limit.periodSeconds,
          remaining: w.limit.limit - this.rate!.get(w.limit.periodSeconds)!.used,
          resetAt: w.window.end,
        })),
      };
    });
  }

  /**
   * A slice of the key's credits for an isolate: at least `need` uses (none when the balance cannot pay
   * them), up to `wanted`, taken from the balance in this object's storage before they are handed out,
   * after the refill due as of `now`. The slice is a lease: the isolate spends from it for `ms` at most,
   * and a change waits it out. `returned` gives back the unspent part of the isolate's earlier slices,
   * first: a part of a slice this object has no record of (never granted, past its return window, or
   * granted before the balance was last set) is ignored (counted as spent). The slices are recorded in
   * storage with the balance, so a restart forgets none. An unmetered key is granted what is asked.
   */
  takeCredits(
    keyId: string,
    need: number,
    wanted: number,
    now = Date.now(),
    returned: readonly SliceReturn[] = [],
  ): Promise<Outcome<{ granted: number; remaining: number | null; id: string; ms: number }>> {
    return this.serialized(async () => {
      const row = await this.currentRow(keyId);
      if (!row || row.revokedAt !== null) return { granted: 0, remaining: 0, id: "", ms: 0 };
      if (row.credits === null) return { granted: Math.max(need, wanted), remaining: null, id: "", ms: await this.grantLease() };
      const plan = this.ledger.plan({ id: keyId, credits: row.credits, refilledAt: row.creditsRefilledAt, creditsRefill: row.creditsRefill }, need, wanted, now, returned);
      // The lease first: a slice is recorded only once a change is sure to wait it out.
      const ms = plan.granted > 0 ? await this.grantLease() : 0;
      const id = plan.granted > 0 ? `${this.sliceEpoch}-${++this.sliceCount}` : "";
      if (this.ledger.record(plan, plan.granted > 0 ? { id, until: Date.now() + ms } : null)) {
        this.row = { ...row, credits: plan.credits, creditsRefilledAt: plan.refilledAt, creditsAsOf: Date.now() };
        await this.alarmBy(this.ledger.flushDue() ?? Date.now());
      }
      return { granted: plan.granted, remaining: plan.credits, id, ms };
    });
  }

  /** The key's balance as this object holds it now (the key's GET shows it; lists show D1's copy). */
  balance(keyId: string, orgId: string): Promise<Outcome<Balance & { asOf: number }>> {
    return this.serialized(async () => {
      const row = await this.currentRow(keyId);
      if (!row || row.orgId !== orgId || row.revokedAt !== null) throw noSuchKey();
      return { credits: row.credits, refilledAt: row.creditsRefilledAt, asOf: Date.now() };
    });
  }

  /**
   * Fills the KV record of `hash` after a cache miss of the cached mode, and returns it. Concurrent
   * fills of one key read D1 once (the row stays in memory) and write each record at most once a
   * second. Unknown and revoked hashes get a negative record too.
   */
  fill(keyId: string, hash: string): Promise<Outcome<Fill>> {
    return this.serialized(async () => {
      const record = await this.recordFor(keyId, hash);
      const pause = this.fillPause ?? KeyAuthority.fillPauseAll;
      if (pause) await pause();
      this.writeRecord(hash, record);
      // The org's policy came with the row (one query), so the verifier need not read it again.
      return { record, policy: record.status === "active" ? (this.policy ?? null) : null };
    });
  }

  /**
   * Revokes the key, irreversibly: D1 commits, the KV record becomes a tombstone (one write), and the
   * call answers once every lease on the key has ended. Revoking a revoked key writes its tombstone
   * again and answers 404, once every lease on the key has ended too (an earlier revoke may still be
   * waiting them out): whatever an earlier attempt left behind, nothing of the key stays valid.
   * The org's last live admin key is refused (409) unless `force`.
   */
  revoke(keyId: string, orgId: string, actor: Actor, options: ChangeOptions = {}): Promise<Outcome<true>> {
    return this.change(async () => {
      const row = await this.load(keyId, orgId);
      if (!row) throw noSuchKey();
      if (row.revokedAt !== null) {
        this.row = row;
        // Whatever a lost write left there.
        for (const hash of [row.keyHash, row.previousKeyHash]) if (hash !== null) this.writeRecord(hash, recordOf(row), true);
        throw notFound();
      }
      this.assertCanManage(actor, row, false);
      const now = Date.now();
      if (!options.force) await this.assertNotLastAdmin(row, now, "revoking");
      const version = this.nextVersion(row);
      this.row = undefined;
      const { database } = this.writes;
      await database.batch([
        database.update(apiKeys).set({ revokedAt: now, updatedAt: version }).where(eq(apiKeys.id, keyId)),
        ...changeStatements(database, auditEntry(orgId, actor, options.audit?.action ?? "key.revoke", keyId, changeDetails(row, options))),
      ]);
      this.version = version;
      this.row = { ...row, revokedAt: now, updatedAt: version };
      this.writeRecords(row, this.row);
      return true as const;
    });
  }

  /**
   * 409 when `row` is the organization's last live admin key: revoking or disabling it would leave no
   * key that can manage the organization. (An expired, disabled or not-yet-valid key is not live.)
   */
  private async assertNotLastAdmin(row: KeyRow, now: number, doing: string): Promise<void> {
    const live = row.disabledAt === null && !(row.expiresAt !== null && row.expiresAt <= now) && !(row.notBefore !== null && row.notBefore > now);
    if (!isAdminKey(row) || !live) return;
    if (await hasOtherAdminKey(this.reads, row.orgId, row.id, now)) return;
    throw new ApiError(
      "CONFLICT",
      `This is the organization's last live admin key: ${doing} it would leave no key that can manage the organization. ` +
        "Create another admin key first, or repeat the call with ?force=true if you mean it.",
      { reason: "LAST_ADMIN_KEY" },
    );
  }

  /**
   * Disables (pauses) or enables the key. Disabling is a reduction of access like a revoke: every
   * verification answers DISABLED once this returns, everywhere. The org's last live admin key is not
   * disabled unless `force`. Doing what is already done changes nothing and is not audited.
   */
  setDisabled(keyId: string, orgId: string, actor: Actor, disabled: boolean, options: ChangeOptions = {}): Promise<Outcome<KeyRow>> {
    return this.change(async () => {
      const row = await this.load(keyId, orgId);
      if (!row) throw noSuchKey();
      if (row.revokedAt !== null) throw notFound();
      this.assertCanManage(actor, row, false);
      if ((row.disabledAt !== null) === disabled) {
        this.row = row;
        return row;
      }
      const now = Date.now();
      if (disabled && !options.force) await this.assertNotLastAdmin(row, now, "disabling");
      const version = this.nextVersion(row);
      // A key is disabled for cause (a leak report, an incident): its previous secret, if a rotation
      // kept one, never comes back with it. Enabling ends the overlap, so a leaked previous secret, or
      // one kept by a rotation made while the key was paused, stays dead.
      const endsOverlap = !disabled && row.previousKeyHash !== null;
      const next: KeyRow = { ...row, ...(endsOverlap ? NO_PREVIOUS : {}), disabledAt: disabled ? now : null, updatedAt: version };
      this.row = undefined;
      const { database } = this.writes;
      await database.batch([
        database
          .update(apiKeys)
          .set({ ...(endsOverlap ? NO_PREVIOUS : {}), disabledAt: next.disabledAt, updatedAt: version })
          .where(eq(apiKeys.id, keyId)),
        ...changeStatements(
          database,
          auditEntry(orgId, actor, options.audit?.action ?? (disabled ? "key.disable" : "key.enable"), keyId, {
            ...changeDetails(row, options),
            ...(endsOverlap ? { overlapEnded: true, previousPrefix: row.previousKeyPrefix } : {}),
          }),
        ),
      ]);
      this.version = version;
      this.row = next;
      this.writeRecords(row, next);
      return next;
    });
  }

  /**
   * Ends a rotation's overlap now: the previous secret stops verifying, everywhere, before this
   * returns (the revocation guarantee). 409 when the key has no overlap running, answered as late as
   * a success: an overlap that just ended (or was just ended) may still be leased.
   */
  endOverlap(keyId: string, orgId: string, actor: Actor): Promise<Outcome<KeyRow>> {
    return this.change(async () => {
      const row = await this.load(keyId, orgId);
      if (!row) throw noSuchKey();
      if (row.revokedAt !== null) throw notFound();
      this.assertCanManage(actor, row, false);
      if (!inOverlap(row, Date.now())) {
        this.row = row;
        throw new ApiError("CONFLICT", "This key has no rotation overlap running: its previous secret no longer verifies.", { reason: "NO_OVERLAP" });
      }
      const version = this.nextVersion(row);
      const next: KeyRow = { ...row, ...NO_PREVIOUS, updatedAt: version };
      this.row = undefined;
      const { database } = this.writes;
      await database.batch([
        database.update(apiKeys).set({ ...NO_PREVIOUS, updatedAt: version }).where(eq(apiKeys.id, keyId)),
        ...changeStatements(
          database,
          auditEntry(orgId, actor, "key.end_overlap", keyId, {
            name: row.name,
            previousPrefix: row.previousKeyPrefix,
            scheduledEnd: iso(row.previousExpiresAt),
            previousLastUsedAt: iso(row.previousLastUsedAt),
          }),
        ),
      ]);
      this.version = version;
      this.row = next;
      this.writeRecords(row, next);
      return next;
    });
  }

  /**
   * Gives the key a new secret and returns it (the only time it is shown); id, name and access stay.
   * `expiresAt`, when given, is the key's new expiry (the way to bring back an expired key: with a new
   * secret, never the old one).
   *
   * Without `overlapMs`, the old secret's leases have ended when this returns. With it, the old secret
   * keeps verifying, reported as rotating, for that long (never past the key's expiry), so clients can
   * switch without an outage; {@link endOverlap} ends it early. One previous secret at a time: an
   * older one still in its overlap stops verifying when this returns.
   */
  regenerate(
    keyId: string,
    orgId: string,
    actor: Actor,
    expiresAt?: number | null,
    overlapMs = 0,
  ): Promise<Outcome<{ key: string; row: KeyRow }>> {
    return this.change(async () => {
      const row = await this.load(keyId, orgId);
      if (!row) throw noSuchKey();
      if (row.revokedAt !== null) throw notFound();
      const nextExpiry = expiresAt !== undefined ? expiresAt : row.expiresAt;
      this.assertCanManage(actor, { ...row, expiresAt: nextExpiry }, true);
      // A disabled key is usually disabled for cause (a leak report): keeping its secret working beside
      // the new one would bring that secret back when the key is enabled. Refused, not silently ignored.
      if (row.disabledAt !== null && overlapMs > 0) {
        this.row = row;
        throw new ApiError(
          "CONFLICT",
          "This key is disabled: regenerating it never keeps its current secret working. Regenerate without overlapSeconds, then enable the key.",
          { reason: "KEY_DISABLED" },
        );
      }
      const key = await mintKey(keyId, this.env.KEY_TAG_SECRET);
      const now = Date.now();
      const version = this.nextVersion(row);
      const overlapEnd = Math.min(now + Math.min(Math.max(overlapMs, 0), MAX_OVERLAP_MS), nextExpiry ?? Infinity);
      const previous =
        overlapEnd > now
          ? { previousKeyHash: row.keyHash, previousKeyPrefix: row.keyPrefix, previousExpiresAt: overlapEnd, previousLastUsedAt: null }
          : NO_PREVIOUS;
      const next: KeyRow = {
        ...row,
        keyHash: await hashKey(key),
        keyPrefix: displayPrefix(key),
        secretCiphertext: row.secure ? null : await encryptSecret(this.env.KEY_ENCRYPTION_SECRET, key, keyId),
        expiresAt: nextExpiry,
        ...previous,
        updatedAt: version,
      };
      this.row = undefined;
      const { database } = this.writes;
      const details: Record<string, unknown> = { name: row.name };
      if (nextExpiry !== row.expiresAt) details.changes = { expiresAt: { before: iso(row.expiresAt), after: iso(nextExpiry) } };
      if (previous.previousExpiresAt !== null) details.overlapEndsAt = iso(previous.previousExpiresAt);
      await database.batch([
        database
          .update(apiKeys)
          .set({
            keyHash: next.keyHash,
            keyPrefix: next.keyPrefix,
            secretCiphertext: next.secretCiphertext,
            expiresAt: nextExpiry,
            ...previous,
            updatedAt: version,
          })
          .where(eq(apiKeys.id, keyId)),
        ...changeStatements(database, auditEntry(orgId, actor, "key.regenerate", keyId, details)),
      ]);
      this.version = version;
      this.row = next;
      this.writeRecords(row, next);
      return { key, row: next };
    });
  }

  /**
   * The full key of a non-secure key, decrypted, with the caller's rights checked on the row as it
   * is now. Audited before the secret leaves: a reveal that cannot be recorded does not happen.
   */
  reveal(keyId: string, orgId: string, actor: Actor): Promise<Outcome<{ key: string }>> {
    return this.serialized(async () => {
      const row = await this.load(keyId, orgId);
      if (!row) throw noSuchKey();
      if (row.revokedAt !== null) throw notFound();
      this.assertCanManage(actor, row, true);
      if (row.secure || row.secretCiphertext === null) {
        throw new ApiError("CONFLICT", "This is a secure key: only its hash is stored, so it cannot be revealed. Regenerate it for a new secret.");
      }
      const key = await decryptSecret(this.env.KEY_ENCRYPTION_SECRET, row.secretCiphertext, row.id);
      await this.writes.database.insert(auditLog).values(auditEntry(orgId, actor, "key.reveal", keyId, { name: row.name }));
      return { key };
    });
  }

  /**
   * Applies an edit of name, access or expiry, writes the key's KV record, and answers once the leases
   * on the old access have ended. With `expectedUpdatedAt`, applies it only if the key has not changed
   * since the caller read it (the caller judged its right to edit against that version); 409 when it has.
   */
  update(keyId: string, orgId: string, change: KeyChange, actor: AuditContext, expectedUpdatedAt?: number): Promise<Outcome<KeyRow>> {
    return this.change(async () => {
      const row = await this.load(keyId, orgId);
      if (!row) throw noSuchKey();
      if (row.revokedAt !== null) throw notFound();
      if (expectedUpdatedAt !== undefined && row.updatedAt !== expectedUpdatedAt) {
        throw new ApiError("CONFLICT", "The key changed while this edit was being made: read it again and retry.");
      }
      const version = this.nextVersion(row);
      const next: KeyRow = {
        ...row,
        name: change.name ?? row.name,
        orgRole: change.orgRole ?? row.orgRole,
        scopes: change.scopes ?? row.scopes,
        expiresAt: change.expiresAt !== undefined ? change.expiresAt : row.expiresAt,
        notBefore: change.notBefore !== undefined ? change.notBefore : row.notBefore,
        allowedNetworks: change.allowedNetworks !== undefined ? (change.allowedNetworks.length ? change.allowedNetworks : null) : row.allowedNetworks,
        metadata: change.metadata !== undefined ? change.metadata : row.metadata,
        rateLimits: change.rateLimits !== undefined ? (change.rateLimits.length ? change.rateLimits : null) : row.rateLimits,
        credits: change.credits !== undefined ? change.credits : row.credits,
        creditsRefill: change.creditsRefill !== undefined ? change.creditsRefill : row.creditsRefill,
        // A balance or refill set now counts its interval from now: no refill until the next begins.
        creditsRefilledAt: change.credits !== undefined || change.creditsRefill !== undefined ? Date.now() : row.creditsRefilledAt,
        appRoles: change.appRoles ?? row.appRoles,
        updatedAt: version,
      };
      // A rotation's overlap never outlives the key.
      if (next.previousExpiresAt !== null && next.expiresAt !== null && next.previousExpiresAt > next.expiresAt) next.previousExpiresAt = next.expiresAt;
      if (next.orgRole === "admin") next.appRoles = {};
      const { database } = this.writes;
      // The balance is the authority's (src/durable-objects/key-metering.ts): D1's copy is written only
      // when the edit sets it, so an edit of anything else never puts an older copy back.
      const setsBalance = change.credits !== undefined || change.creditsRefill !== undefined;
      const now = Date.now();
      const statements = [
        database
          .update(apiKeys)
          .set({
            name: next.name,
            orgRole: next.orgRole,
            scopes: next.scopes,
            expiresAt: next.expiresAt,
            notBefore: next.notBefore,
            allowedNetworks: next.allowedNetworks,
            metadata: next.metadata,
            rateLimits: next.rateLimits,
            ...(setsBalance
              ? {
                  credits: next.credits,
                  creditsRefill: next.credits === null ? null : next.creditsRefill,
                  creditsRefilledAt: next.creditsRefilledAt,
                  creditsAsOf: now,
                }
              : {}),
            previousExpiresAt: next.previousExpiresAt,
            updatedAt: version,
          })
          .where(eq(apiKeys.id, keyId)),
        ...changeStatements(database, auditEntry(orgId, actor, "key.update", keyId, { name: next.name, changes: changesOf(row, next) })),
      ] as const;
      const roleStatements =
        change.appRoles !== undefined || next.orgRole === "admin"
          ? [
              database.delete(keyAppRoles).where(eq(keyAppRoles.keyId, keyId)),
              ...Object.entries(next.appRoles).map(([appId, role]) => database.insert(keyAppRoles).values({ keyId, appId, role })),
            ]
          : [];
      this.row = undefined;
      // A balance set now replaces whatever slices were handed out of the old one: their unspent parts
      // are not added to it (this change waits out their leases: no isolate spends from them after).
      // Forgotten before the write, so a write that fails but may have landed never lets them back.
      const balance = { credits: next.credits, refilledAt: next.creditsRefilledAt };
      if (setsBalance) this.ledger.set({ id: keyId, credits: row.credits, refilledAt: row.creditsRefilledAt }, balance, change.credits !== undefined);
      try {
        await database.batch([...statements, ...roleStatements]);
        if (setsBalance) this.ledger.flushed(balance, now);
      } catch (err) {
        // An app deleted between the caller's check and this batch: the batch wrote nothing.
        if (err instanceof Error && /FOREIGN KEY constraint failed/i.test(err.message)) {
          const message = "names an app that no longer exists";
          throw new ApiError("INVALID_REQUEST", `Invalid body: appRoles: ${message}`, { issues: [{ field: "appRoles", message }] });
        }
        throw err;
      }
      this.version = version;
      this.row = next;
      this.writeRecords(row, next);
      return next;
    });
  }

  /**
   * Drops the key's role on a deleted app and refreshes its record, for the org's authority, which runs
   * the app's deletion: it does not wait here, but answers how long (ms) the leases granted before the
   * drop still run, and the org's authority makes its answer wait that out together with its own
   * leases. A duration, not a time: the two objects' clocks agree in rate, not in what they read.
   */
  dropApp(keyId: string, appId: string): Promise<Outcome<number>> {
    return this.serialized(async () => {
      const before = await this.load(keyId);
      if (before) {
        const version = this.nextVersion(before);
        this.row = undefined;
        const { database } = this.writes;
        await database.batch([
          database.delete(keyAppRoles).where(and(eq(keyAppRoles.keyId, keyId), eq(keyAppRoles.appId, appId))),
          database.update(apiKeys).set({ updatedAt: version }).where(eq(apiKeys.id, keyId)),
        ]);
        this.version = version;
        const { [appId]: _dropped, ...appRoles } = before.appRoles;
        this.row = { ...before, appRoles, updatedAt: version };
        this.writeRecords(before, this.row);
      }
      return this.leasesLeftMs();
    });
  }

  /**
   * A change that changes nothing: answers once every lease granted so far has ended. For an answer
   * that reports a state already in force (a leak report on a key already revoked or disabled), which
   * is only true everywhere then.
   */
  settle(): Promise<Outcome<true>> {
    return this.change(async () => true as const);
  }
}

/**
 * The stub of `keyId`'s authority. The id is carried in the key itself, so the verifier needs no
 * lookup to find it.
 */
export function authorityFor(env: Env, keyId: string) {
  return env.KEY_AUTHORITY.get(env.KEY_AUTHORITY.idFromName(keyId));
}

/**
 * Calls `keyId`'s authority and unwraps its {@link Outcome} (see {@link ask}).
 * @example const { key } = await askAuthority(env, keyId, (a) => a.regenerate(keyId, orgId, actor));
 */
export function askAuthority<T>(
  env: Env,
  keyId: string,
  call: (authority: DurableObjectStub<KeyAuthority>) => Promise<Outcome<T>>,
  timeoutMs?: number,
): Promise<T> {
  // A change may wait out its leases (≤ T) on top of its own work.
  return ask(authorityFor(env, keyId) as DurableObjectStub<KeyAuthority>, call, timeoutMs ?? AUTHORITY_TIMEOUT_MS + leaseMs(env.LEASE_MS));
}
