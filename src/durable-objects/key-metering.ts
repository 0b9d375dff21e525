import { and, eq, isNotNull } from "drizzle-orm";
import type { Db } from "../storage/db";
import { apiKeys } from "../storage/schema";
import { balanceAt, creditsGranted, MAX_OUTSTANDING_SLICES, SLICE_RETURN_WINDOW_MS, type CreditRefill, type SliceReturn } from "../domain/credits";

/**
 * A key's credits in its authority's own storage (SQLite-backed Durable Object storage: local and
 * transactional). The balance, when it was last refilled, and every slice handed out and not yet given
 * back are rows here, changed together in one transaction per slice: a restart of the authority
 * between a slice and its return finds the slice and takes its unspent part back exactly once, and
 * nothing is handed out that is not first taken from the balance (no overspend, never negative).
 *
 * D1 (`api_keys.credits`) holds a copy for listing, marked with when it was made (`credits_as_of`),
 * written at most once per `CREDITS_D1_WRITE_INTERVAL_MS` per key by the authority's alarm, and at
 * once by an edit that sets the balance.
 */

/** The balance reaches D1 at most this often per key, whatever the traffic: the list's figure is that old at most. */
export const CREDITS_D1_WRITE_INTERVAL_MS = 60_000;

/** The balance as the authority holds it: null credits is an unmetered key. */
export interface Balance {
  credits: number | null;
  refilledAt: number | null;
}

/** What a request for a slice decided, before it is recorded (see {@link CreditLedger.plan}). */
export interface SlicePlan {
  granted: number;
  credits: number;
  refilledAt: number | null;
  /** The returned slices taken back, and those past their return window: both removed with the grant. */
  settled: string[];
}

interface BalanceRow extends Record<string, SqlStorageValue> {
  key_id: string;
  credits: number | null;
  refilled_at: number | null;
  flushed_at: number;
  dirty: number;
}

export class CreditLedger {
  private balance: (Balance & { keyId: string; flushedAt: number; dirty: boolean }) | undefined;
  private readonly sql: SqlStorage;

  constructor(private readonly storage: DurableObjectStorage) {
    this.sql = storage.sql;
    this.sql.exec(`create table if not exists credit_balance (
      id integer primary key check (id = 1), key_id text not null, credits integer, refilled_at integer,
      flushed_at integer not null default 0, dirty integer not null default 0)`);
    this.sql.exec("create table if not exists credit_slices (id text primary key, amount integer not null, until integer not null)");
  }

  /**
   * The balance held here; a fresh authority (nothing stored yet) takes D1's figure once, from `row`,
   * the key's row as D1 has it, and from then on never reads it again.
   */
  current(row: Balance & { id: string }): Balance {
    this.stored();
    if (!this.balance) {
      this.sql.exec("insert into credit_balance (id, key_id, credits, refilled_at) values (1, ?, ?, ?)", row.id, row.credits, row.refilledAt);
      this.balance = { keyId: row.id, credits: row.credits, refilledAt: row.refilledAt, flushedAt: 0, dirty: false };
    }
    return { credits: this.balance.credits, refilledAt: this.balance.refilledAt };
  }

  /** The balance stored here, if any (an alarm after a restart finds what it owes D1 without the key's row). */
  private stored() {
    if (!this.balance) {
      const row = this.sql.exec<BalanceRow>("select key_id, credits, refilled_at, flushed_at, dirty from credit_balance").toArray()[0];
      if (row) this.balance = { keyId: row.key_id, credits: row.credits, refilledAt: row.refilled_at, flushedAt: row.flushed_at, dirty: row.dirty === 1 };
    }
    return this.balance;
  }

  /**
   * What to hand an isolate that needs `need` and would like `wanted`, after the refill due as of
   * `now` and the unspent parts of `returned` (each slice taken back once, only if recorded here and
   * not past its return window; any other counts as spent). Nothing changes until {@link record}.
   */
  plan(row: Balance & { id: string; creditsRefill: CreditRefill | null }, need: number, wanted: number, now: number, returned: readonly SliceReturn[]): SlicePlan {
    const held = this.current(row);
    const credits = held.credits ?? 0;
    const settled: string[] = [];
    let back = 0;
    const seen = new Set<string>();
    for (const r of Array.isArray(returned) ? returned.slice(0, MAX_OUTSTANDING_SLICES) : []) {
      if (typeof r?.id !== "string" || seen.has(r.id)) continue;
      seen.add(r.id);
      const slice = this.sql.exec<{ amount: number }>("select amount from credit_slices where id = ?", r.id).toArray()[0];
      if (!slice) continue;
      settled.push(r.id);
      if (Number.isSafeInteger(r.unspent) && r.unspent >= 0 && r.unspent <= slice.amount) back += r.unspent;
    }
    for (const { id } of this.sql.exec<{ id: string }>("select id from credit_slices where until < ?", Date.now() - SLICE_RETURN_WINDOW_MS)) {
      if (!seen.has(id)) settled.push(id);
    }
    const balance = balanceAt({ credits, refill: row.creditsRefill, refilledAt: held.refilledAt }, now);
    // A refill sets the balance to its amount: what was handed out before it does not come back on top.
    const available = balance.credits + (balance.refilled ? 0 : back);
    const granted = creditsGranted(need, wanted, available);
    return { granted, credits: available - granted, refilledAt: balance.refilledAt, settled };
  }

  /**
   * Records `plan` in one transaction: the new balance, the slices it settled gone, and the slice it
   * grants (`id`, spendable until `until`) kept until it comes back. The oldest slices beyond
   * `MAX_OUTSTANDING_SLICES` count as spent. Answers whether the balance changed (D1's copy is stale).
   */
  record(plan: SlicePlan, slice: { id: string; until: number } | null): boolean {
    const before = this.balance!;
    const changed = plan.credits !== before.credits || plan.refilledAt !== before.refilledAt;
    this.storage.transactionSync(() => {
      for (const id of plan.settled) this.sql.exec("delete from credit_slices where id = ?", id);
      if (slice && plan.granted > 0) {
        this.sql.exec("insert into credit_slices (id, amount, until) values (?, ?, ?)", slice.id, plan.granted, slice.until);
        this.sql.exec(
          "delete from credit_slices where id in (select id from credit_slices order by until desc limit -1 offset ?)",
          MAX_OUTSTANDING_SLICES,
        );
      }
      if (changed) this.sql.exec("update credit_balance set credits = ?, refilled_at = ?, dirty = 1", plan.credits, plan.refilledAt);
    });
    if (changed) this.balance = { ...before, credits: plan.credits, refilledAt: plan.refilledAt, dirty: true };
    return changed;
  }

  /**
   * Sets the balance (an edit). With `forgetSlices` (the balance itself was set), every slice handed
   * out of the old one is forgotten: what it held no longer exists, and the edit waits out their
   * leases, so no isolate spends from them after. A refill set alone changes no balance, and its
   * slices still come back. D1 gets the same figure in the edit's own batch, which then calls
   * {@link flushed}; until it does, the copy is owed (a batch that failed leaves it owed).
   */
  set(row: Balance & { id: string }, balance: Balance, forgetSlices: boolean): void {
    this.current(row);
    this.storage.transactionSync(() => {
      if (forgetSlices) this.sql.exec("delete from credit_slices");
      this.sql.exec("update credit_balance set credits = ?, refilled_at = ?, dirty = 1", balance.credits, balance.refilledAt);
    });
    this.balance = { ...this.balance!, ...balance, dirty: true };
  }

  /** When D1's copy may next be written (null: it is up to date, or nothing is loaded). */
  flushDue(): number | null {
    const held = this.stored();
    return held?.dirty ? held.flushedAt + CREDITS_D1_WRITE_INTERVAL_MS : null;
  }

  /** The figure to copy to D1 now, and the key's id, if one is due at `now`; {@link flushed} records that it was. */
  toFlush(now: number): (Balance & { keyId: string }) | null {
    const due = this.flushDue();
    if (due === null || now < due) return null;
    return { keyId: this.balance!.keyId, credits: this.balance!.credits, refilledAt: this.balance!.refilledAt };
  }

  /** Copies the balance to D1 (`api_keys.credits`, with `credits_as_of`) when a copy is due at `now`. */
  async copyTo(database: Db, now: number): Promise<void> {
    const copy = this.toFlush(now);
    if (!copy) return;
    await database
      .update(apiKeys)
      .set({ credits: copy.credits, creditsRefilledAt: copy.refilledAt, creditsAsOf: now })
      .where(and(eq(apiKeys.id, copy.keyId), isNotNull(apiKeys.credits)));
    this.flushed(copy, now);
  }

  flushed(copied: Balance, at: number): void {
    const still = this.balance!.credits !== copied.credits || this.balance!.refilledAt !== copied.refilledAt;
    this.sql.exec("update credit_balance set flushed_at = ?, dirty = ?", at, still ? 1 : 0);
    this.balance = { ...this.balance!, flushedAt: at, dirty: still };
  }

  /** Forgets what is in memory (after a failure): the next use reads storage again. */
  forget(): void {
    this.balance = undefined;
  }
}
