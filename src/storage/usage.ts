import { and, eq, gte, isNull, lt, sql } from "drizzle-orm";
import type { Db } from "./db";
import { apiKeys, keyUsage } from "./schema";

/**
 * Usage roll-ups in D1 (`key_usage`): one row per key, UTC day and verify code (the `hour` column holds
 * the day's start; rows written before issue 22 hold hours, and every query here sums whole days, so
 * both read alike). Each key's authority writes its key's rows (`putDailyUsage`), at most once per
 * `USAGE_ROLLUP_MS`; the org views (top keys, daily totals) read them. Kept 90 days (the daily check
 * prunes). The hourly detail lives in the authorities (src/durable-objects/key-usage.ts).
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const USAGE_RETENTION_DAYS = 90;

export interface UsageCount {
  keyId: string;
  orgId: string;
  hour: number;
  outcome: string;
  count: number;
}

/** Adds `counts` to the stored ones, in one statement (the rows as one JSON parameter): rows as isolates wrote them before issue 22 (the tests seed history with it). */
export async function addUsage(database: Db, counts: UsageCount[]): Promise<void> {
  if (!counts.length) return;
  await database.run(sql`
    insert into ${keyUsage} (key_id, org_id, hour, outcome, count)
    select value->>'keyId', value->>'orgId', value->>'hour', value->>'outcome', value->>'count' from json_each(${JSON.stringify(counts)}) where true
    on conflict (key_id, hour, outcome) do update set count = count + excluded.count`);
}

/**
 * Writes a key's daily roll-ups (the `hour` column holds the day's start): absolute figures from the
 * key's authority, which holds every count of the key, so a roll-up written twice changes nothing. One
 * statement (the rows as one JSON parameter), at most once per `USAGE_ROLLUP_MS` per key.
 */
export async function putDailyUsage(database: Db, keyId: string, orgId: string, days: { day: number; outcome: string; count: number }[]): Promise<void> {
  if (!days.length) return;
  await database.run(sql`
    insert into ${keyUsage} (key_id, org_id, hour, outcome, count)
    select ${keyId}, ${orgId}, value->>'day', value->>'outcome', value->>'count' from json_each(${JSON.stringify(days)}) where true
    on conflict (key_id, hour, outcome) do update set count = excluded.count`);
}

/** The refused verifications among a group's counts: every outcome but VALID. */
const REFUSED = sql<number>`sum(case when ${keyUsage.outcome} = 'VALID' then 0 else ${keyUsage.count} end)`;

/** The org's keys with the most verifications (or refusals) in [from, to), with their names. */
export async function topKeys(database: Db, orgId: string, from: number, to: number, by: "requests" | "refusals", limit: number) {
  const total = sql<number>`sum(${keyUsage.count})`;
  return database
    .select({ keyId: keyUsage.keyId, name: apiKeys.name, total, refused: REFUSED })
    .from(keyUsage)
    .leftJoin(apiKeys, eq(apiKeys.id, keyUsage.keyId))
    .where(and(eq(keyUsage.orgId, orgId), gte(keyUsage.hour, from), lt(keyUsage.hour, to)))
    .groupBy(keyUsage.keyId)
    .orderBy(sql`${by === "requests" ? total : REFUSED} desc`, keyUsage.keyId)
    .limit(limit)
    .all();
}

/** Deletes counts older than the retention. */
export async function pruneUsage(database: Db, now: number): Promise<void> {
  await database.delete(keyUsage).where(lt(keyUsage.hour, now - USAGE_RETENTION_DAYS * DAY_MS));
}

/**
 * Daily totals (UTC days) in [from, to) of those of `keyIds` that are live keys of the org, in one
 * query: a key with no verifications has one row with a null day; a key revoked, deleted or of another
 * org has none. The ids go in as one JSON parameter (D1 binds at most 100).
 */
export async function dailyTotals(database: Db, orgId: string, keyIds: string[], from: number, to: number) {
  const day = sql<number | null>`${keyUsage.hour} - ${keyUsage.hour} % ${DAY_MS}`;
  return database
    .select({
      keyId: apiKeys.id,
      day,
      total: sql<number>`coalesce(sum(${keyUsage.count}), 0)`,
      refused: sql<number>`coalesce(${REFUSED}, 0)`,
    })
    .from(apiKeys)
    .leftJoin(keyUsage, and(eq(keyUsage.keyId, apiKeys.id), gte(keyUsage.hour, from), lt(keyUsage.hour, to)))
    .where(and(eq(apiKeys.orgId, orgId), sql`${apiKeys.id} in (select value from json_each(${JSON.stringify(keyIds)}))`, isNull(apiKeys.revokedAt)))
    .groupBy(apiKeys.id, sql`2`)
    .all();
}
