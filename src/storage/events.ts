import { and, asc, eq, inArray, isNull, lt, or, sql } from "drizzle-orm";
import { newId, shardOf } from "../domain/key-format";
import { databaseFor, everyDatabase, type Db, type Shards } from "./db";
import { auditLog, events } from "./schema";

/**
 * Lifecycle events and their outbox. Every audited change (except a reveal, which changes nothing)
 * is also an event, inserted in the same D1 batch as the change and its audit entry
 * ({@link changeStatements}): an event exists if and only if its change committed. {@link publishPending}
 * then sends it to the `EVENTS` queue; what it cannot send (the queue is down, the isolate dies) stays
 * in the outbox and the minute's cron sends it. Delivery is at least once: consumers deduplicate by id.
 */

export const EVENT_TYPES = [
  "key.created",
  "key.updated",
  "key.regenerated",
  "key.rotation_ended",
  "key.disabled",
  "key.enabled",
  "key.revoked",
  "key.leaked",
  "key.expiring",
  "key.expired",
  "key.unused",
  "policy.updated",
  "app.created",
  "app.deleted",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The event of each audited action; actions without one (a reveal, an org's creation) emit none. */
const EVENT_OF_ACTION: Record<string, EventType> = {
  "key.create": "key.created",
  "key.update": "key.updated",
  "key.regenerate": "key.regenerated",
  "key.end_overlap": "key.rotation_ended",
  "key.disable": "key.disabled",
  "key.enable": "key.enabled",
  "key.revoke": "key.revoked",
  "key.leaked": "key.leaked",
  "key.expiring": "key.expiring",
  "key.expired": "key.expired",
  "key.unused": "key.unused",
  "policy.update": "policy.updated",
  "app.create": "app.created",
  "app.delete": "app.deleted",
};

/** What the `EVENTS` queue carries: an event to fan out to the org's endpoints, or one delivery to (re)try. */
export type QueueMessage = { kind: "event"; eventId: string } | { kind: "delivery"; deliveryId: string };

export type AuditRow = typeof auditLog.$inferInsert;

/** The outbox row of an audit entry, or null when its action emits no event. */
export function eventOf(entry: AuditRow): typeof events.$inferInsert | null {
  const type = EVENT_OF_ACTION[entry.action];
  if (!type) return null;
  const createdAt = entry.createdAt ?? Date.now();
  return {
    id: `evt_${newId(createdAt, shardOf(entry.orgId))}`,
    orgId: entry.orgId,
    type,
    subjectType: entry.targetType,
    subjectId: entry.targetId,
    data: { ...(entry.details ?? {}), actorKeyId: entry.actorKeyId ?? null, requestId: entry.requestId },
    createdAt,
  };
}

/**
 * The statements that record a change: its audit entry and, in the same batch, its event.
 * @example await database.batch([update, ...changeStatements(database, auditEntry(...))])
 */
export function changeStatements(database: Db, entry: AuditRow) {
  const event = eventOf(entry);
  return event ? ([database.insert(auditLog).values(entry), database.insert(events).values(event)] as const) : ([database.insert(auditLog).values(entry)] as const);
}

/**
 * Publishes the outbox of the database of `orgId` (every database when null) off the response path,
 * after a change committed. Never fails the change: what it cannot send now, the minute's cron sends.
 * @example publishSoon(c.env, orgId, (p) => c.executionCtx.waitUntil(p))
 */
export function publishSoon(env: Shards & Pick<Env, "EVENTS">, orgId: string | null, waitUntil: (promise: Promise<unknown>) => void): void {
  const databases = orgId === null ? everyDatabase(env).map((d) => d.database) : [databaseFor(env, orgId)];
  for (const database of databases) waitUntil(publishPending(database, env.EVENTS).catch(() => undefined));
}

/** A claim older than this is taken again: its publisher is presumed dead. */
export const CLAIM_MS = 60_000;
const BATCH = 100;

/**
 * Sends unpublished events to the queue, oldest first, up to `rounds` batches of 100: claims them
 * (one statement, so two publishers never send the same claim), sends, marks them published. A
 * failed send releases the claim: the events stay in the outbox for the next publisher or the cron.
 * Returns how many were published.
 */
export async function publishPending(database: Db, queue: Queue | undefined, now = Date.now(), rounds = 10): Promise<number> {
  if (!queue) return 0;
  let published = 0;
  for (let round = 0; round < rounds; round++) {
    const claimable = database
      .select({ id: events.id })
      .from(events)
      .where(and(isNull(events.publishedAt), or(isNull(events.claimedAt), lt(events.claimedAt, now - CLAIM_MS))))
      .orderBy(asc(events.id))
      .limit(BATCH);
    const claimed = await database
      .update(events)
      .set({ claimedAt: now })
      .where(and(inArray(events.id, claimable), isNull(events.publishedAt), or(isNull(events.claimedAt), lt(events.claimedAt, now - CLAIM_MS))))
      .returning({ id: events.id });
    if (claimed.length === 0) break;
    const ids = claimed.map((e) => e.id).sort();
    // The ids as one JSON parameter: D1 binds at most 100 values per statement.
    const these = inArray(events.id, sql`(select value from json_each(${JSON.stringify(ids)}))`);
    try {
      await queue.sendBatch(ids.map((eventId) => ({ body: { kind: "event" as const, eventId } })));
    } catch (err) {
      await database.update(events).set({ claimedAt: null }).where(and(these, eq(events.claimedAt, now)));
      throw err;
    }
    await database.update(events).set({ publishedAt: Date.now() }).where(these);
    published += ids.length;
    if (ids.length < BATCH) break;
  }
  return published;
}
