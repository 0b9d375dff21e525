import type { Db } from "../storage/db";
import { DAY_MS, HOUR_MS, putDailyUsage, USAGE_RETENTION_DAYS } from "../storage/usage";

/**
 * A key's usage counts in its authority's own storage (SQLite-backed: local and transactional). The
 * isolates send their counts with the lease renewals they make anyway, or (for a key with no renewal
 * due) on their own within `USAGE_FLUSH_MS`; each report carries an id and is applied once, in one
 * transaction, so a report sent again after a lost answer is not counted twice.
 *
 * Here: the key's counts per hour and outcome, for `USAGE_RETENTION_DAYS` (the key's usage API reads
 * them). D1 gets the key's daily roll-ups (`key_usage`, one row per key, UTC day and outcome, absolute
 * figures) at most once per `USAGE_ROLLUP_MS` per key, in one statement: D1's writes grow with the keys
 * in use, never with traffic or with the number of isolates.
 */

/** What an isolate sends: its counts of one key since its last report, by (hour start, outcome). */
export interface UsageReport {
  /** Unique per report: a report applied once is ignored when it comes again. */
  id: string;
  orgId: string;
  counts: [hour: number, outcome: string, count: number][];
  /** The latest allowed use of the key in the isolate since its last report, for `lastUsedAt`. */
  lastUsed?: number;
  /** The same for a rotation's previous secret, with that secret's hash, for `previousLastUsedAt`. */
  previous?: { hash: string; at: number };
}

/**
 * A report id is remembered this long. An id is needed again only when a report was applied but its
 * answer lost; the isolate sends it again with its next renewal or flush, within 1.5 × USAGE_FLUSH_MS
 * (15 s). Two minutes keep ~80 ids per isolate serving the key (a renewal each ~T).
 */
const REPORT_ID_MEMORY_MS = 2 * 60_000;
/** The most (hour, outcome) pairs one report may carry: an isolate's counts of one key over minutes. */
const MAX_REPORT_COUNTS = 500;

/** How often D1 gets a key's roll-up (`USAGE_ROLLUP_MS`; default one hour: one statement per key and hour). */
export function usageRollupMs(value: string | undefined): number {
  const ms = Number(value);
  return Number.isFinite(ms) && ms >= 10 && ms <= 3_600_000 ? ms : 3_600_000;
}

/** A day's count of one outcome, as D1's roll-up holds it. */
export interface DailyCount {
  day: number;
  outcome: string;
  count: number;
}

const validCount = (c: unknown): c is [number, string, number] =>
  Array.isArray(c) &&
  Number.isSafeInteger(c[0]) &&
  c[0] % HOUR_MS === 0 &&
  typeof c[1] === "string" &&
  /^[A-Z_]{1,32}$/.test(c[1]) &&
  Number.isSafeInteger(c[2]) &&
  c[2] > 0;

export class UsageLedger {
  private readonly sql: SqlStorage;
  private state: { keyId: string; orgId: string; rolledAt: number; dirtyFrom: number | null } | undefined;

  constructor(private readonly storage: DurableObjectStorage) {
    this.sql = storage.sql;
    // WITHOUT ROWID: the key is the row (one b-tree, not a table and an index): ~30 B a row.
    this.sql.exec("create table if not exists usage_hours (hour integer not null, outcome text not null, count integer not null, primary key (hour, outcome)) without rowid");
    this.sql.exec("create table if not exists usage_reports (id text primary key, at integer not null) without rowid");
    this.sql.exec("create index if not exists usage_reports_at on usage_reports (at)");
    this.sql.exec(`create table if not exists usage_state (
      id integer primary key check (id = 1), key_id text not null, org_id text not null,
      rolled_at integer not null default 0, dirty_from integer)`);
  }

  private loaded() {
    if (!this.state) {
      const row = this.sql
        .exec<{ key_id: string; org_id: string; rolled_at: number; dirty_from: number | null }>("select key_id, org_id, rolled_at, dirty_from from usage_state")
        .toArray()[0];
      if (row) this.state = { keyId: row.key_id, orgId: row.org_id, rolledAt: row.rolled_at, dirtyFrom: row.dirty_from };
    }
    return this.state;
  }

  /**
   * Adds `reports` of `keyId`'s counts, each once (by its id), in one transaction. Answers whether
   * anything was added (a roll-up to D1 is then owed).
   */
  add(keyId: string, reports: readonly UsageReport[], now: number): boolean {
    const valid = (Array.isArray(reports) ? reports : []).filter(
      (r) => typeof r?.id === "string" && r.id.length <= 64 && typeof r.orgId === "string" && Array.isArray(r.counts) && r.counts.length <= MAX_REPORT_COUNTS,
    );
    if (!valid.length) return false;
    let earliest: number | null = null;
    this.storage.transactionSync(() => {
      this.sql.exec("delete from usage_reports where at < ?", now - REPORT_ID_MEMORY_MS);
      for (const report of valid) {
        if (this.sql.exec("insert into usage_reports (id, at) values (?, ?) on conflict do nothing", report.id, now).rowsWritten === 0) continue;
        for (const [hour, outcome, count] of report.counts.filter(validCount)) {
          this.sql.exec("insert into usage_hours (hour, outcome, count) values (?, ?, ?) on conflict do update set count = count + excluded.count", hour, outcome, count);
          earliest = earliest === null ? hour : Math.min(earliest, hour);
        }
      }
      if (earliest === null) return;
      const held = this.loaded();
      const dirtyFrom = held?.dirtyFrom == null ? earliest : Math.min(held.dirtyFrom, earliest);
      if (held) this.sql.exec("update usage_state set dirty_from = ?", dirtyFrom);
      else this.sql.exec("insert into usage_state (id, key_id, org_id, dirty_from) values (1, ?, ?, ?)", keyId, valid[0]!.orgId, dirtyFrom);
      this.state = { keyId, orgId: held?.orgId ?? valid[0]!.orgId, rolledAt: held?.rolledAt ?? 0, dirtyFrom };
    });
    return earliest !== null;
  }

  /** When D1's roll-up may next be written (null: nothing is owed). */
  rollupDue(intervalMs: number): number | null {
    const held = this.loaded();
    return held?.dirtyFrom != null ? held.rolledAt + intervalMs : null;
  }

  /** The key's daily totals owed to D1 at `now` (every day since the earliest count changed), if due. */
  toRollUp(now: number, intervalMs: number): { keyId: string; orgId: string; days: DailyCount[] } | null {
    const due = this.rollupDue(intervalMs);
    if (due === null || now < due) return null;
    const from = this.state!.dirtyFrom! - (this.state!.dirtyFrom! % DAY_MS);
    const days = this.sql
      .exec<{ day: number; outcome: string; count: number }>(
        "select hour - hour % ? as day, outcome, sum(count) as count from usage_hours where hour >= ? group by 1, 2",
        DAY_MS,
        from,
      )
      .toArray()
      .map((r) => ({ day: r.day, outcome: r.outcome, count: r.count }));
    return { keyId: this.state!.keyId, orgId: this.state!.orgId, days };
  }

  /** Writes the key's daily roll-ups to D1 (one statement) when one is due at `now`, then prunes here. */
  async rollUp(database: Db, now: number, intervalMs: number): Promise<void> {
    const owed = this.toRollUp(now, intervalMs);
    if (!owed) return;
    await putDailyUsage(database, owed.keyId, owed.orgId, owed.days);
    this.rolledUp(now);
  }

  /** Records that D1 holds the roll-up made at `at`, and drops what is past its keeping. */
  rolledUp(at: number): void {
    this.storage.transactionSync(() => {
      this.sql.exec("update usage_state set rolled_at = ?, dirty_from = null", at);
      this.prune(at);
    });
    if (this.state) this.state = { ...this.state, rolledAt: at, dirtyFrom: null };
  }

  /** Drops the hours past `USAGE_RETENTION_DAYS` (the usage API's promise) and the report ids past their use. */
  prune(now: number): void {
    this.sql.exec("delete from usage_hours where hour < ?", now - USAGE_RETENTION_DAYS * DAY_MS);
    this.sql.exec("delete from usage_reports where at < ?", now - REPORT_ID_MEMORY_MS);
  }

  /** When the oldest hour kept here passes its keeping (null: none kept): a key gone quiet is pruned then. */
  pruneDue(): number | null {
    const oldest = this.sql.exec<{ hour: number | null }>("select min(hour) as hour from usage_hours").one().hour;
    return oldest === null ? null : oldest + USAGE_RETENTION_DAYS * DAY_MS + HOUR_MS;
  }

  /** The key's counts per bucket (`bucketMs`: an hour or a day) and outcome in [from, to). */
  series(from: number, to: number, bucketMs: number): { bucket: number; outcome: string; count: number }[] {
    return this.sql
      .exec<{ bucket: number; outcome: string; count: number }>(
        "select hour - hour % ? as bucket, outcome, sum(count) as count from usage_hours where hour >= ? and hour < ? group by 1, 2",
        bucketMs,
        from,
        to,
      )
      .toArray()
      .map((r) => ({ bucket: r.bucket, outcome: r.outcome, count: r.count }));
  }

  forget(): void {
    this.state = undefined;
  }
}
