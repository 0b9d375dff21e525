import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import { db } from "../src/storage/db";
import { CLAIM_MS, publishPending, type QueueMessage } from "../src/storage/events";
import { events } from "../src/storage/schema";
import { handleQueue } from "../src/webhooks/consumer";
import { verifyWebhook } from "../src/webhooks/signing";
import { call, createOrg, expectStatus } from "./helpers";

/**
 * A Queue outage loses nothing (issue 15, points 2 and 3): events the queue refused stay in the outbox
 * and a later publisher sends them, across batches, and they still reach the webhook endpoints. No API
 * call here changes a key, so no publisher other than the test's own takes these events.
 */

/** A queue that records what it is sent, or refuses from the `failFrom`-th batch on. */
function queue(failFrom = Infinity) {
  const sent: QueueMessage[] = [];
  let batches = 0;
  const q = {
    sendBatch: async (messages: Iterable<{ body: QueueMessage }>) => {
      if (++batches >= failFrom) throw new Error("queue unavailable");
      sent.push(...[...messages].map((m) => m.body));
    },
    send: async (body: QueueMessage) => void sent.push(body),
  } as unknown as Queue;
  return { q, sent };
}

async function seedUnpublished(orgId: string, count: number, type = "key.revoked") {
  const now = Date.now();
  const rows = Array.from({ length: count }, (_, i) => ({
    id: `evt_${newId(now + i)}`,
    orgId,
    type,
    subjectType: "key",
    subjectId: newId(),
    data: {},
    createdAt: now + i,
  }));
  for (let i = 0; i < rows.length; i += 10) await db(env.DB).insert(events).values(rows.slice(i, i + 10));
  return rows.map((r) => r.id);
}

const unpublished = async (ids: string[]) =>
  (await env.DB.prepare("select id, claimed_at from events where published_at is null").all<{ id: string; claimed_at: number | null }>()).results.filter((r) =>
    ids.includes(r.id),
  );
/** The ids of `ids` among the sent messages (other tests' events may be sent beside them). */
const mine = (sent: QueueMessage[], ids: string[]) => sent.flatMap((m) => (m.kind === "event" && ids.includes(m.eventId) ? [m.eventId] : []));

describe("a Queue outage loses nothing", () => {
  it("events the queue refused stay unpublished and unclaimed, across batches; a later publisher sends each once", async () => {
    const org = await createOrg("Outage Co");
    const ids = await seedUnpublished(org.orgId, 150);
    // The first batch of 100 goes through, the second is refused.
    const flaky = queue(2);
    await expect(publishPending(db(env.DB), flaky.q)).rejects.toThrow("queue unavailable");
    const sentFirst = mine(flaky.sent, ids);
    expect(sentFirst.length).toBeGreaterThanOrEqual(98);
    const left = await unpublished(ids);
    expect(left.map((r) => r.id).sort()).toEqual(ids.filter((id) => !sentFirst.includes(id)).sort());
    expect(left.every((r) => r.claimed_at === null)).toBe(true);

    const up = queue();
    expect(await publishPending(db(env.DB), up.q)).toBeGreaterThanOrEqual(left.length);
    expect([...sentFirst, ...mine(up.sent, ids)].sort()).toEqual([...ids].sort());
    expect(await publishPending(db(env.DB), up.q)).toBe(0);
    expect(await unpublished(ids)).toEqual([]);
  });

  it("a publisher that died after its claim holds the events for a minute only", async () => {
    const org = await createOrg("Crashed Publisher Co");
    const ids = await seedUnpublished(org.orgId, 3);
    const now = Date.now();
    // A publisher claimed them and died before sending (its isolate was evicted).
    await env.DB.prepare(`update events set claimed_at = ? where id in (${ids.map(() => "?").join(",")})`).bind(now, ...ids).run();
    const up = queue();
    await publishPending(db(env.DB), up.q, now + 1000);
    expect(mine(up.sent, ids)).toEqual([]);
    await publishPending(db(env.DB), up.q, now + CLAIM_MS + 1);
    expect(mine(up.sent, ids).sort()).toEqual([...ids].sort());
  });

  it("an event held back by an outage still reaches the organization's webhook, signed", async () => {
    const org = await createOrg("Outage Hooks Co");
    const res = await call("POST", `/v1/orgs/${org.orgId}/webhooks`, { key: org.adminKey, body: { url: "https://hooks.example.com/k", eventTypes: ["*"] } });
    expectStatus(res, 201);
    const [eventId] = await seedUnpublished(org.orgId, 1, "key.leaked");
    await expect(publishPending(db(env.DB), queue(1).q)).rejects.toThrow("queue unavailable");
    const up = queue();
    await publishPending(db(env.DB), up.q);
    const testEnv = { ...env, EVENTS: up.q } as Env;
    const got: { headers: Record<string, string>; body: string }[] = [];
    const receive = async (request: Request) => {
      got.push({ headers: Object.fromEntries(request.headers), body: await request.text() });
      return new Response("ok");
    };
    const run = async (bodies: QueueMessage[]) => {
      const messages = bodies.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body, ack: () => undefined, retry: () => undefined }));
      await handleQueue({ queue: "keygate-events", messages } as unknown as MessageBatch<QueueMessage>, testEnv, createExecutionContext(), { fetch: receive });
    };
    await run(up.sent.filter((m) => m.kind === "event" && m.eventId === eventId));
    await run(up.sent.filter((m) => m.kind === "delivery"));
    expect(got).toHaveLength(1);
    expect(JSON.parse(got[0]!.body)).toMatchObject({ id: eventId, type: "key.leaked" });
    expect((await verifyWebhook(res.body.secret, got[0]!.headers, got[0]!.body, Date.now())).valid).toBe(true);
  });
});
