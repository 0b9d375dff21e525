import { and, asc, eq, inArray, isNull, lt, lte, or, sql } from "drizzle-orm";
import { decryptSecret } from "../domain/crypto";
import { newId, shardOf } from "../domain/key-format";
import type { QueueMessage } from "../storage/events";
import { databaseFor, hasDatabaseFor, type Db } from "../storage/db";
import { guardEnv } from "../storage/guarded-bindings";
import { events, webhookDeliveries, webhookEndpoints } from "../storage/schema";
import { webhookHeaders } from "./signing";

/**
 * The `EVENTS` queue's consumer: fans each event out to the organization's endpoints (one delivery
 * row each), then delivers each one, signed, retrying with exponential backoff for 24 hours.
 *
 * Messages arrive at least once, so every step is idempotent: a delivery row is unique per endpoint
 * and event (a second copy of an event inserts nothing), and an attempt first claims its delivery in
 * one conditional UPDATE (a second copy of a delivery message finds it claimed or not due, and waits
 * or goes away): one event, one request per endpoint, whatever the queue repeats.
 */

/** One attempt's whole budget: a receiver that has not answered by then has failed this attempt. */
export const ATTEMPT_TIMEOUT_MS = 10_000;
/** The first retry's delay; each next one doubles. */
export const FIRST_RETRY_SECONDS = 30;
/** The longest delay Queues accept for a message (12 h), and so the longest gap between attempts. */
export const MAX_RETRY_SECONDS = 12 * 60 * 60;
/** A delivery is retried until this long after it was created, then marked `dead`. */
export const RETRY_WINDOW_MS = 24 * 60 * 60 * 1000;
/** An attempt holds its delivery this long (longer than its timeout): a copy of its message meanwhile waits. */
export const ATTEMPT_LEASE_MS = 60_000;
/** Queues may hand a delayed message over a little early: an attempt this close to its time is due. */
const DUE_SLACK_MS = 5_000;
/** How long a message waits after an unexpected fault (storage down, say) before it is tried again. */
const FAULT_RETRY_SECONDS = 30;
/** `lastError` is a hint for people, not a log: kept short. */
const ERROR_MAX_LENGTH = 200;

/** Seams for the tests: a fixed clock, and the receiver's network. */
export interface ConsumerOptions {
  now?: () => number;
  fetch?: (request: Request) => Promise<Response>;
}

/**
 * The delay before retry `attempt + 1`, after `attempt` failed attempts: 30 s, 60 s, 2 min … capped at 12 h.
 * @example retryDelaySeconds(1) // 30
 */
export function retryDelaySeconds(attempt: number): number {
  return Math.min(FIRST_RETRY_SECONDS * 2 ** Math.max(0, attempt - 1), MAX_RETRY_SECONDS);
}

/** A delay for `message.retry`: whole seconds, at least 1, at most what Queues accept. */
const queueDelay = (ms: number) => Math.min(Math.max(1, Math.ceil(ms / 1000)), MAX_RETRY_SECONDS);

/**
 * The worker's `queue` handler: storage behind the same seam as requests (faults time out and throw,
 * and the message is retried), then {@link handleQueue}.
 */
export const queueHandler = (batch: MessageBatch, env: Env, ctx: ExecutionContext) => handleQueue(batch as MessageBatch<QueueMessage>, guardEnv(env), ctx);

/**
 * Handles one batch from the `EVENTS` queue, its messages side by side. Each message is acked or
 * retried on its own: one slow or failing receiver never holds back the others.
 * @example export default { queue: (batch, env, ctx) => handleQueue(batch, env, ctx) }
 */
export async function handleQueue(batch: MessageBatch<QueueMessage>, env: Env, _ctx: ExecutionContext, options: ConsumerOptions = {}): Promise<void> {
  const now = options.now ?? Date.now;
  const send = options.fetch ?? ((request: Request) => fetch(request));
  await Promise.all(
    batch.messages.map(async (message) => {
      const body = message.body as Partial<Record<string, unknown>> | null;
      // An event's or delivery's id names its org's database (src/storage/db.ts).
      const id = body?.kind === "event" ? body.eventId : body?.kind === "delivery" ? body.deliveryId : undefined;
      try {
        if (typeof id !== "string" || !hasDatabaseFor(env, id)) {
          // Retrying what no version of this consumer understands would only fill the dead-letter queue.
          console.error(JSON.stringify({ level: "error", queue: batch.queue, error: "unknown_message", messageId: message.id }));
          message.ack();
        } else if (body?.kind === "event") await fanOut(message, databaseFor(env, id), env, id, now);
        else await deliver(message, databaseFor(env, id), env, id, now, send);
      } catch (err) {
        console.error(JSON.stringify({ level: "error", queue: batch.queue, error: err instanceof Error ? err.name : "unknown", kind: body?.kind, messageId: message.id }));
        message.retry({ delaySeconds: FAULT_RETRY_SECONDS });
      }
    }),
  );
}

/** Whether an endpoint listening to `eventTypes` wants an event of `type`. */
export const subscribes = (eventTypes: readonly string[], type: string) => eventTypes.includes("*") || eventTypes.includes(type);

/**
 * One delivery per endpoint of the event's organization that listens to its type and existed when it
 * happened, then a delivery message for each not yet attempted. A copy of the event inserts nothing
 * new; it sends the messages again only for deliveries no attempt has claimed, which the claim dedupes.
 */
async function fanOut(message: Message<QueueMessage>, database: Db, env: Env, eventId: string, now: () => number) {
  const event = await database.select().from(events).where(eq(events.id, eventId)).get();
  if (!event) return message.ack();
  const endpoints = (
    await database
      .select({ id: webhookEndpoints.id, eventTypes: webhookEndpoints.eventTypes, createdAt: webhookEndpoints.createdAt })
      .from(webhookEndpoints)
      .where(and(eq(webhookEndpoints.orgId, event.orgId), isNull(webhookEndpoints.disabledAt)))
      .all()
  ).filter((e) => e.createdAt <= event.createdAt && subscribes(e.eventTypes, event.type));
  if (endpoints.length > 0) {
    const t = now();
    // One statement per endpoint: D1 binds at most 100 values per statement.
    const inserts = endpoints.map((e) =>
      database
        .insert(webhookDeliveries)
        .values({ id: `msg_${newId(t, shardOf(event.orgId))}`, orgId: event.orgId, endpointId: e.id, eventId, status: "pending", attempts: 0, createdAt: t, updatedAt: t })
        .onConflictDoNothing(),
    );
    await database.batch(inserts as [(typeof inserts)[number], ...typeof inserts]);
    const unattempted = await database
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(
        and(
          inArray(
            webhookDeliveries.endpointId,
            endpoints.map((e) => e.id),
          ),
          eq(webhookDeliveries.eventId, eventId),
          eq(webhookDeliveries.status, "pending"),
          eq(webhookDeliveries.attempts, 0),
        ),
      )
      .all();
    if (unattempted.length > 0) await env.EVENTS.sendBatch(unattempted.map((d) => ({ body: { kind: "delivery", deliveryId: d.id } satisfies QueueMessage })));
  }
  message.ack();
}

/**
 * What an endpoint receives: the event, its subject and organization, and the event's own facts
 * (the audit entry's details: never key material). `timestamp` is when the change happened.
 */
export function webhookPayload(event: typeof events.$inferSelect) {
  const { subject: _subject, orgId: _orgId, ...facts } = event.data as Record<string, unknown>;
  return {
    id: event.id,
    type: event.type,
    timestamp: new Date(event.createdAt).toISOString(),
    data: { subject: { type: event.subjectType, id: event.subjectId }, orgId: event.orgId, ...facts },
  };
}

interface Outcome {
  ok: boolean;
  status: number | null;
  error: string | null;
}

/** One POST to the endpoint: no redirect followed (a 3xx is a failure), the whole attempt within the timeout. */
async function attempt(send: (request: Request) => Promise<Response>, url: string, headers: Record<string, string>, body: string): Promise<Outcome> {
  try {
    const res = await send(
      new Request(url, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json", "user-agent": "keygate-webhooks/1" },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
      }),
    );
    // The answer's body is of no use to us, and reading it would spend the receiver's time budget.
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, error: null };
    const error = res.status >= 300 && res.status < 400 ? `HTTP ${res.status}: redirects are not followed` : `HTTP ${res.status}`;
    return { ok: false, status: res.status, error };
  } catch (err) {
    const name = err instanceof Error ? err.name : "Error";
    if (name === "TimeoutError" || name === "AbortError") return { ok: false, status: null, error: `no answer within ${ATTEMPT_TIMEOUT_MS / 1000} s` };
    const detail = err instanceof Error && err.message ? `${name}: ${err.message}` : name;
    return { ok: false, status: null, error: detail.slice(0, ERROR_MAX_LENGTH) };
  }
}

/**
 * One attempt of one delivery: claim it (due, not finished), sign and POST it, record the outcome, and
 * ack, or retry the message when the next attempt is due. Past 24 h since creation the delivery is dead.
 */
async function deliver(
  message: Message<QueueMessage>,
  database: Db,
  env: Env,
  deliveryId: string,
  now: () => number,
  send: (request: Request) => Promise<Response>,
) {
  const t = now();
  const d = webhookDeliveries;
  const claimed = await database
    .update(d)
    .set({ attempts: sql`${d.attempts} + 1`, nextAttemptAt: t + ATTEMPT_LEASE_MS, updatedAt: t })
    .where(and(eq(d.id, deliveryId), inArray(d.status, ["pending", "failed"]), or(isNull(d.nextAttemptAt), lte(d.nextAttemptAt, t + DUE_SLACK_MS))))
    .returning()
    .get();
  if (!claimed) {
    const row = await database.select({ status: d.status, nextAttemptAt: d.nextAttemptAt }).from(d).where(eq(d.id, deliveryId)).get();
    // Gone with its endpoint, or finished: nothing left to do.
    if (!row || row.status === "succeeded" || row.status === "dead") return message.ack();
    // Another attempt holds it, or it is scheduled later: this copy comes back then, and acks once it is finished.
    return message.retry({ delaySeconds: queueDelay((row.nextAttemptAt ?? t) - t) });
  }
  const finish = async (values: Partial<typeof d.$inferInsert>) => {
    await database
      .update(d)
      .set({ ...values, updatedAt: now() })
      .where(eq(d.id, deliveryId));
  };
  const endpoint = await database
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.id, claimed.endpointId), eq(webhookEndpoints.orgId, claimed.orgId)))
    .get();
  const event = await database.select().from(events).where(eq(events.id, claimed.eventId)).get();
  if (!endpoint || endpoint.disabledAt !== null || !event) {
    // Deleted or disabled meanwhile: its deliveries stop here.
    await finish({ status: "dead", nextAttemptAt: null, lastError: endpoint ? (event ? "the endpoint is disabled" : "the event no longer exists") : "the endpoint was deleted" });
    return message.ack();
  }
  const secret = await decryptSecret(env.KEY_ENCRYPTION_SECRET, endpoint.secretCiphertext, endpoint.id);
  const body = JSON.stringify(webhookPayload(event));
  const sentAt = now();
  const outcome = await attempt(send, endpoint.url, await webhookHeaders(secret, claimed.id, body, sentAt), body);
  const done = now();
  // One line per attempt, like a request's: ids and outcome, never the URL (a receiver's token may be in it).
  const log = (result: string) =>
    console.log(
      JSON.stringify({ queue: "webhooks", deliveryId, endpointId: endpoint.id, eventType: event.type, attempt: claimed.attempts, status: outcome.status, outcome: result, latencyMs: done - sentAt }),
    );
  if (outcome.ok) {
    await finish({ status: "succeeded", lastStatus: outcome.status, lastError: null, nextAttemptAt: null });
    log("succeeded");
    return message.ack();
  }
  const deadline = claimed.createdAt + RETRY_WINDOW_MS;
  if (done >= deadline) {
    await finish({ status: "dead", lastStatus: outcome.status, lastError: outcome.error, nextAttemptAt: null });
    log("dead");
    return message.ack();
  }
  // The last retry lands on the deadline rather than past it.
  const next = Math.min(done + retryDelaySeconds(claimed.attempts) * 1000, deadline);
  await finish({ status: "failed", lastStatus: outcome.status, lastError: outcome.error, nextAttemptAt: next });
  log("retry");
  message.retry({ delaySeconds: queueDelay(next - done) });
}

/** A delivery due this long ago and not attempted lost its message (the dead-letter queue took it, an isolate died mid-attempt). */
export const STALL_MS = 15 * 60 * 1000;
/** Stalled deliveries resumed per sweep: one `sendBatch`, Queues' limit. */
const RESUME_BATCH = 100;

/**
 * Sends a fresh delivery message for each delivery that should have been attempted at least
 * {@link STALL_MS} ago and was not: nothing waits forever on a message Queues gave up on. Meant for the
 * minute's cron. A delivery whose message is merely late gets two, and the claim makes that one attempt.
 * Returns how many were resumed.
 * @example for (const { database } of everyDatabase(env)) await resumeStalledDeliveries(database, env.EVENTS)
 */
export async function resumeStalledDeliveries(database: Db, queue: Queue, now = Date.now()): Promise<number> {
  const d = webhookDeliveries;
  const stalled = await database
    .select({ id: d.id })
    .from(d)
    .where(
      and(
        inArray(d.status, ["pending", "failed"]),
        or(lt(d.nextAttemptAt, now - STALL_MS), and(isNull(d.nextAttemptAt), lt(d.createdAt, now - STALL_MS))),
      ),
    )
    .orderBy(asc(d.id))
    .limit(RESUME_BATCH)
    .all();
  if (stalled.length > 0) await queue.sendBatch(stalled.map((row) => ({ body: { kind: "delivery", deliveryId: row.id } satisfies QueueMessage })));
  return stalled.length;
}
