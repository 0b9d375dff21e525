import { and, eq, gt, isNotNull, isNull, lte, sql } from "drizzle-orm";
import { askAuthority, type Actor } from "../durable-objects/key-authority";
import { auditEntry, iso } from "../storage/audit";
import { everyDatabase, type Db } from "../storage/db";
import { changeStatements } from "../storage/events";
import { hasOtherAdminKey } from "../storage/key-record";
import { pruneUsage } from "../storage/usage";
import { apiKeys, events, orgPolicies } from "../storage/schema";

/**
 * The daily check (cron `0 3 * * *`): nobody is surprised by an expiry, and keys nobody uses are seen.
 *
 * - `key.expiring` 7 days and 1 day before a key expires, `key.expired` when it has;
 * - `key.unused` for a key unused (since its last use, or its creation) for the org's `unusedKeyDays`,
 *   and with `expireUnusedKeys` the key is expired through its authority (a change like any other),
 *   except the org's last live admin key, which is only flagged;
 * - usage counts older than 90 days are deleted.
 *
 * Each is an audit entry and an event (the outbox), written once: a reminder is not repeated for the
 * same expiry, nor a flag for the same idle spell, however often the check runs; a run that was missed
 * is caught up by the next one. Revoked keys are left alone.
 */

export const DAILY_CRON = "0 3 * * *";
const DAY_MS = 86_400_000;
/** Keys handled per query: a large org is covered in several rounds of one run. */
const PAGE = 200;

export interface DailyReport {
  expiring7: number;
  expiring1: number;
  expired: number;
  unused: number;
  expiredUnused: number;
}

/** Whether an event of `type` about the key, created at or after `since` (ms), exists. */
const hasEventSince = (type: string, since: ReturnType<typeof sql>) =>
  sql`exists (select 1 from ${events} where ${events.subjectId} = ${apiKeys.id} and ${events.type} = ${type} and ${events.createdAt} >= ${since})`;

type Due = { id: string; orgId: string; name: string; expiresAt: number | null; lastUsedAt: number | null; createdAt: number; orgRole: string | null; mode: string | null };
const DUE_COLUMNS = {
  orgRole: apiKeys.orgRole,
  mode: apiKeys.mode,
  id: apiKeys.id,
  orgId: apiKeys.orgId,
  name: apiKeys.name,
  expiresAt: apiKeys.expiresAt,
  lastUsedAt: apiKeys.lastUsedAt,
  createdAt: apiKeys.createdAt,
};

/**
 * Records `action` for each key (audit entry + event, one batch each), dated `now`: the check's own
 * clock, which the next run compares with. Returns how many.
 */
async function record(database: Db, keys: Due[], action: string, details: (k: Due) => Record<string, unknown>, requestId: string, now: number): Promise<number> {
  for (const k of keys) {
    const entry = { ...auditEntry(k.orgId, { actorKeyId: null, requestId }, action, k.id, { name: k.name, ...details(k) }), createdAt: now };
    await database.batch(changeStatements(database, entry));
  }
  return keys.length;
}

/**
 * Runs the daily check as of `now`, in every database (an org and all its keys live in one), one after
 * another; the report adds them up.
 */
export async function runDaily(env: Env, now: number): Promise<DailyReport> {
  const report: DailyReport = { expiring7: 0, expiring1: 0, expired: 0, unused: 0, expiredUnused: 0 };
  for (const { database } of everyDatabase(env)) await runDailyIn(env, database, now, report);
  return report;
}

/** The daily check of the orgs of one database, counted into `report`. */
async function runDailyIn(env: Env, database: Db, now: number, report: DailyReport): Promise<void> {
  const requestId = `cron_${new Date(now).toISOString()}`;
  const live = and(isNull(apiKeys.revokedAt), isNotNull(apiKeys.expiresAt));

  // Reminders: within the window, and none yet for this expiry (a reminder made before the window
  // opened was for an earlier expiry, since changed).
  for (const [days, field] of [
    [7, "expiring7"],
    [1, "expiring1"],
  ] as const) {
    const earliest = days === 7 ? now + DAY_MS : now;
    for (;;) {
      const due = await database
        .select(DUE_COLUMNS)
        .from(apiKeys)
        .where(
          and(
            live,
            gt(apiKeys.expiresAt, earliest),
            lte(apiKeys.expiresAt, now + days * DAY_MS),
            sql`not ${hasEventSince("key.expiring", sql`${apiKeys.expiresAt} - ${days * DAY_MS}`)}`,
          ),
        )
        .limit(PAGE)
        .all();
      report[field] += await record(database, due, "key.expiring", (k) => ({ inDays: days, expiresAt: iso(k.expiresAt) }), requestId, now);
      if (due.length < PAGE) break;
    }
  }

  // Idle keys, per org that asks: flagged once per idle spell (no flag since the last use).
  const policies = await database.select().from(orgPolicies).where(isNotNull(orgPolicies.unusedKeyDays)).all();
  const actor: Actor = { actorKeyId: null, requestId, grants: null, expiresAt: null };
  for (const policy of policies) {
    const idleSince = now - policy.unusedKeyDays! * DAY_MS;
    const lastActive = sql`coalesce(${apiKeys.lastUsedAt}, ${apiKeys.createdAt})`;
    for (;;) {
      const idle = await database
        .select(DUE_COLUMNS)
        .from(apiKeys)
        .where(and(eq(apiKeys.orgId, policy.orgId), isNull(apiKeys.revokedAt), sql`${lastActive} < ${idleSince}`, sql`not ${hasEventSince("key.unused", lastActive)}`))
        .limit(PAGE)
        .all();
      report.unused += await record(
        database,
        idle,
        "key.unused",
        (k) => ({ lastUsedAt: iso(k.lastUsedAt), unusedDays: Math.floor((now - (k.lastUsedAt ?? k.createdAt)) / DAY_MS), expire: policy.expireUnusedKeys }),
        requestId,
        now,
      );
      if (policy.expireUnusedKeys) {
        for (const k of idle.filter((k) => k.expiresAt === null || k.expiresAt > now)) {
          // Never the org's last live admin key: an idle org would be locked out of itself.
          if ((k.orgRole === "admin" || k.mode === "all") && !(await hasOtherAdminKey(database, k.orgId, k.id, now))) continue;
          await askAuthority(env, k.id, (a) => a.update(k.id, k.orgId, { expiresAt: now }, actor));
          report.expiredUnused++;
        }
      }
      if (idle.length < PAGE) break;
    }
  }

  await pruneUsage(database, now);

  // Expirations that passed, each once (an earlier event was for an earlier expiry).
  for (;;) {
    const expired = await database
      .select(DUE_COLUMNS)
      .from(apiKeys)
      .where(and(live, lte(apiKeys.expiresAt, now), sql`not ${hasEventSince("key.expired", sql`${apiKeys.expiresAt}`)}`))
      .limit(PAGE)
      .all();
    report.expired += await record(database, expired, "key.expired", (k) => ({ expiresAt: iso(k.expiresAt) }), requestId, now);
    if (expired.length < PAGE) break;
  }
}
