import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import worker from "../src/index";
import { db } from "../src/storage/db";
import type { QueueMessage } from "../src/storage/events";
import { events } from "../src/storage/schema";
import { handleQueue, MAX_RETRY_SECONDS, resumeStalledDeliveries, RETRY_WINDOW_MS, retryDelaySeconds, STALL_MS } from "../src/webhooks/consumer";
import { verifyWebhook } from "../src/webhooks/signing";
import { call, createOrg, expectStatus } from "./helpers";

/**
 * Webhook delivery (issue 15, point 3): the EVENTS queue's consumer, driven with a fixed clock and
 * local receivers, one of which fails on purpose. Events are written straight to the outbox as already
 * published, so no publisher hands them to the real queue behind the test's back.
 */

type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;

// An organization per test: each test's endpoints are the only ones its events reach.
beforeEach(async () => {
  org = await createOrg("Delivery Co");
});

/** What the consumer sends to the queue (delivery messages), kept for the test to hand back. */
function recordingQueue() {
  const sent: QueueMessage[] = [];
  const queue = {
    send: async (body: QueueMessage) => void sent.push(body),
    sendBatch: async (messages: Iterable<{ body: QueueMessage }>) => void sent.push(...[...messages].map((m) => m.body)),
  } as unknown as Queue;
  return { sent, env: { ...env, EVENTS: queue } as Env };
}

interface Received {
  url: string;
  headers: Record<string, string>;
  body: string;
  redirect: string;
}

/** A local receiver answering each request with the next of `statuses` (the last one repeats). */
function receiver(...statuses: (number | Error)[]) {
  const got: Received[] = [];
  const fetch = async (request: Request) => {
    got.push({ url: request.url, headers: Object.fromEntries(request.headers), body: await request.text(), redirect: request.redirect });
    const next = statuses[Math.min(got.length - 1, statuses.length - 1)]!;
    if (next instanceof Error) throw next;
    const redirect = next >= 300 && next < 400;
    return new Response(redirect || next === 204 ? null : "answer", { status: next, headers: redirect ? { location: "https://elsewhere.example.com/" } : {} });
  };
  return { got, fetch };
}

let messageCounter = 0;
/**
 * Runs one batch of `bodies` through the consumer at `now`; returns what it acked and what it retried,
 * with the delays asked for (the test plugin's getQueueResult does not keep them, so a plain batch).
 */
async function runBatch(bodies: QueueMessage[], testEnv: Env, now: number, fetch: (request: Request) => Promise<Response>) {
  const acked: QueueMessage[] = [];
  const retried: { body: QueueMessage; delaySeconds?: number }[] = [];
  const messages = bodies.map((body) => ({
    id: `m${++messageCounter}`,
    timestamp: new Date(now),
    attempts: 1,
    body,
    ack: () => void acked.push(body),
    retry: (options?: QueueRetryOptions) => void retried.push({ body, delaySeconds: options?.delaySeconds }),
  }));
  const batch = { queue: "keygate-events", messages, ackAll: () => undefined, retryAll: () => undefined } as unknown as MessageBatch<QueueMessage>;
  await handleQueue(batch, testEnv, createExecutionContext(), { now: () => now, fetch });
  expect(acked.length + retried.length, "every message is acked or retried").toBe(bodies.length);
  return { acked, retried };
}

async function register(eventTypes: string[], url = "https://hooks.example.com/keygate") {
  const res = await call("POST", `/v1/orgs/${org.orgId}/webhooks`, { key: org.adminKey, body: { url, eventTypes } });
  expectStatus(res, 201);
  return res.body as { id: string; secret: string };
}

/** An event of the org, in the outbox as already published. */
async function seedEvent(type: string, createdAt = Date.now(), data: Record<string, unknown> = { name: "CI/CD Deploy", actorKeyId: null, requestId: "req_test" }) {
  const id = `evt_${newId(createdAt)}`;
  const subjectId = newId();
  await db(env.DB).insert(events).values({ id, orgId: org.orgId, type, subjectType: "key", subjectId, data, createdAt, publishedAt: createdAt });
  return { id, subjectId, createdAt };
}

const deliveriesOf = (eventId: string) =>
  env.DB.prepare("select * from webhook_deliveries where event_id = ? order by endpoint_id").bind(eventId).all<Record<string, any>>().then((r) => r.results);
const delivery = (id: string) => env.DB.prepare("select * from webhook_deliveries where id = ?").bind(id).first<Record<string, any>>();

describe("fan-out and delivery", () => {
  it("delivers an event once to each endpoint subscribed to it, signed with that endpoint's secret", async () => {
    const all = await register(["*"]);
    const revocations = await register(["key.revoked"]);
    const apps = await register(["app.created"]);
    const event = await seedEvent("key.revoked");
    const queue = recordingQueue();
    const fanned = await runBatch([{ kind: "event", eventId: event.id }], queue.env, event.createdAt, receiver(200).fetch);
    expect(fanned.acked).toEqual([{ kind: "event", eventId: event.id }]);
    const rows = await deliveriesOf(event.id);
    expect(rows.map((r) => r.endpoint_id).sort()).toEqual([all.id, revocations.id].sort());
    expect(rows.some((r) => r.endpoint_id === apps.id)).toBe(false);
    expect(queue.sent.map((m) => (m as { deliveryId: string }).deliveryId).sort()).toEqual(rows.map((r) => r.id).sort());

    const now = event.createdAt + 1000;
    const hook = receiver(200);
    const delivered = await runBatch(queue.sent, queue.env, now, hook.fetch);
    expect(delivered.acked).toHaveLength(2);
    expect(hook.got).toHaveLength(2);
    const secrets = new Map([
      [all.id, all.secret],
      [revocations.id, revocations.secret],
    ]);
    for (const request of hook.got) {
      const row = rows.find((r) => r.id === request.headers["webhook-id"])!;
      expect(request.headers["content-type"]).toBe("application/json");
      expect(request.headers["webhook-timestamp"]).toBe(String(Math.floor(now / 1000)));
      expect(request.redirect).toBe("manual");
      expect(await verifyWebhook(secrets.get(row.endpoint_id)!, request.headers, request.body, now)).toMatchObject({ valid: true });
      // Another endpoint's secret does not verify it.
      const otherSecret = [...secrets].find(([id]) => id !== row.endpoint_id)![1];
      expect((await verifyWebhook(otherSecret, request.headers, request.body, now)).valid).toBe(false);
      expect(JSON.parse(request.body)).toEqual({
        id: event.id,
        type: "key.revoked",
        timestamp: new Date(event.createdAt).toISOString(),
        data: { subject: { type: "key", id: event.subjectId }, orgId: org.orgId, name: "CI/CD Deploy", actorKeyId: null, requestId: "req_test" },
      });
    }
    for (const row of await deliveriesOf(event.id)) {
      expect(row).toMatchObject({ status: "succeeded", attempts: 1, last_status: 200, last_error: null, next_attempt_at: null });
    }
  });

  it("an event published twice (at-least-once) is delivered once per endpoint", async () => {
    const endpoint = await register(["key.created"]);
    const event = await seedEvent("key.created");
    const queue = recordingQueue();
    const message: QueueMessage = { kind: "event", eventId: event.id };
    await runBatch([message, message], queue.env, event.createdAt, receiver(200).fetch);
    await runBatch([message], queue.env, event.createdAt, receiver(200).fetch);
    expect(await deliveriesOf(event.id)).toHaveLength(1);
    expect(queue.sent.length).toBeGreaterThanOrEqual(1);
    // Every copy of the delivery message at once, then again later: one request.
    const hook = receiver(200);
    const first = await runBatch(queue.sent, queue.env, event.createdAt + 1000, hook.fetch);
    const copies = first.retried.map((r) => r.body);
    await runBatch(copies, queue.env, event.createdAt + 120_000, hook.fetch);
    await runBatch([message], queue.env, event.createdAt + 130_000, hook.fetch);
    expect(hook.got).toHaveLength(1);
    expect(hook.got[0]!.headers["webhook-id"]).toBe((await deliveriesOf(event.id))[0]!.id);
    expect((await deliveriesOf(event.id))[0]).toMatchObject({ endpoint_id: endpoint.id, status: "succeeded", attempts: 1 });
  });

  it("an endpoint registered after an event does not receive it", async () => {
    const event = await seedEvent("key.updated", Date.now() - 60_000);
    await register(["key.updated"]);
    const queue = recordingQueue();
    await runBatch([{ kind: "event", eventId: event.id }], queue.env, Date.now(), receiver(200).fetch);
    expect(await deliveriesOf(event.id)).toHaveLength(0);
    expect(queue.sent).toEqual([]);
  });
});

describe("retries", () => {
  it("retries a failing receiver with exponential backoff (30 s doubling, at most 12 h), then marks it dead 24 h after creation", async () => {
    await register(["key.disabled"]);
    const event = await seedEvent("key.disabled");
    const queue = recordingQueue();
    await runBatch([{ kind: "event", eventId: event.id }], queue.env, event.createdAt, receiver(200).fetch);
    const [message] = queue.sent;
    const id = (message as { deliveryId: string }).deliveryId;
    const created = (await delivery(id))!.created_at as number;
    const hook = receiver(503);
    let now = created;
    const delays: number[] = [];
    for (let i = 0; i < 30; i++) {
      const result = await runBatch([message!], queue.env, now, hook.fetch);
      const row = (await delivery(id))!;
      expect(row.attempts).toBe(i + 1);
      expect(row).toMatchObject({ last_status: 503, last_error: "HTTP 503" });
      if (result.acked.length) {
        expect(row).toMatchObject({ status: "dead", next_attempt_at: null });
        break;
      }
      expect(row.status).toBe("failed");
      const delay = result.retried[0]!.delaySeconds!;
      expect(row.next_attempt_at).toBe(now + delay * 1000);
      delays.push(delay);
      now += delay * 1000;
    }
    // 30 s doubling: the 12th retry would be 17 h later, past the deadline, so it lands on the deadline instead.
    expect(delays).toEqual([30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720, 24990]);
    expect([retryDelaySeconds(12), retryDelaySeconds(40)]).toEqual([MAX_RETRY_SECONDS, MAX_RETRY_SECONDS]);
    // The last retry lands on the deadline, and the attempt there is the last one.
    expect(now).toBe(created + RETRY_WINDOW_MS);
    expect(delays.reduce((a, b) => a + b, 0) * 1000).toBe(RETRY_WINDOW_MS);
    expect(hook.got).toHaveLength(delays.length + 1);
    expect(new Set(hook.got.map((r) => r.headers["webhook-id"]))).toEqual(new Set([id]));
    // A dead delivery's message is acked without another request.
    const after = await runBatch([message!], queue.env, now + 3_600_000, hook.fetch);
    expect(after.acked).toHaveLength(1);
    expect(hook.got).toHaveLength(delays.length + 1);
  });

  it("a receiver that recovers gets the delivery on the next attempt; an early copy of the message waits", async () => {
    await register(["key.enabled"]);
    const event = await seedEvent("key.enabled");
    const queue = recordingQueue();
    await runBatch([{ kind: "event", eventId: event.id }], queue.env, event.createdAt, receiver(200).fetch);
    const [message] = queue.sent;
    const id = (message as { deliveryId: string }).deliveryId;
    const t0 = (await delivery(id))!.created_at as number;
    const hook = receiver(500, 204);
    const first = await runBatch([message!], queue.env, t0, hook.fetch);
    expect(first.retried[0]!.delaySeconds).toBe(retryDelaySeconds(1));
    const early = await runBatch([message!], queue.env, t0 + 10_000, hook.fetch);
    expect(hook.got).toHaveLength(1);
    expect(early.retried[0]!.delaySeconds).toBe(20);
    const second = await runBatch([message!], queue.env, t0 + 30_000, hook.fetch);
    expect(second.acked).toHaveLength(1);
    expect(hook.got).toHaveLength(2);
    expect(await delivery(id)).toMatchObject({ status: "succeeded", attempts: 2, last_status: 204, last_error: null });
  });

  it("a redirect is a failure and is not followed; a timeout or network error is recorded as such", async () => {
    await register(["key.regenerated"]);
    const event = await seedEvent("key.regenerated");
    const queue = recordingQueue();
    await runBatch([{ kind: "event", eventId: event.id }], queue.env, event.createdAt, receiver(200).fetch);
    const [message] = queue.sent;
    const id = (message as { deliveryId: string }).deliveryId;
    const t0 = (await delivery(id))!.created_at as number;
    const hook = receiver(302, new DOMException("timed out", "TimeoutError"), new TypeError("Network connection lost."));
    await runBatch([message!], queue.env, t0, hook.fetch);
    expect(hook.got).toHaveLength(1);
    expect(await delivery(id)).toMatchObject({ status: "failed", last_status: 302, last_error: "HTTP 302: redirects are not followed" });
    await runBatch([message!], queue.env, t0 + 30_000, hook.fetch);
    expect(await delivery(id)).toMatchObject({ status: "failed", last_status: null, last_error: "no answer within 10 s" });
    await runBatch([message!], queue.env, t0 + 90_000, hook.fetch);
    expect(await delivery(id)).toMatchObject({ status: "failed", attempts: 3, last_status: null, last_error: "TypeError: Network connection lost." });
  });

  it("a deleted endpoint stops its deliveries: the pending retry is dropped, later events are not fanned out to it", async () => {
    const endpoint = await register(["key.revoked"]);
    const event = await seedEvent("key.revoked");
    const queue = recordingQueue();
    await runBatch([{ kind: "event", eventId: event.id }], queue.env, event.createdAt, receiver(200).fetch);
    const [message] = queue.sent as [QueueMessage];
    const hook = receiver(503);
    const t0 = Date.now();
    await runBatch([message], queue.env, t0, hook.fetch);
    expect(hook.got).toHaveLength(1);
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/webhooks/${endpoint.id}`, { key: org.adminKey }), 204);
    const retry = await runBatch([message], queue.env, t0 + 30_000, hook.fetch);
    expect(retry.acked).toEqual([message]);
    expect(hook.got).toHaveLength(1);
    const later = await seedEvent("key.revoked");
    await runBatch([{ kind: "event", eventId: later.id }], queue.env, later.createdAt, hook.fetch);
    expect((await deliveriesOf(later.id)).some((r) => r.endpoint_id === endpoint.id)).toBe(false);
  });

  it("resend makes a new attempt of a dead delivery now, with the same webhook-id", async () => {
    const endpoint = await register(["key.leaked"]);
    const event = await seedEvent("key.leaked");
    const queue = recordingQueue();
    await runBatch([{ kind: "event", eventId: event.id }], queue.env, event.createdAt, receiver(200).fetch);
    const id = (await deliveriesOf(event.id)).find((r) => r.endpoint_id === endpoint.id)!.id as string;
    await env.DB.prepare("update webhook_deliveries set status = 'dead', attempts = 12, last_status = 500, last_error = 'HTTP 500' where id = ?").bind(id).run();
    // Through the worker with the recording queue: the resend's message is handed to the consumer here, not to the real queue.
    const ctx = createExecutionContext();
    const before = queue.sent.length;
    const res = await worker.fetch(
      new Request(`https://gateway.test/v1/orgs/${org.orgId}/webhooks/${endpoint.id}/deliveries/${id}/resend`, {
        method: "POST",
        headers: { authorization: `Bearer ${org.adminKey}` },
      }),
      queue.env,
      ctx,
    );
    expect(res.status, await res.text()).toBe(202);
    expect(queue.sent.slice(before)).toEqual([{ kind: "delivery", deliveryId: id }]);
    const hook = receiver(200);
    const result = await runBatch(queue.sent.slice(before), queue.env, Date.now(), hook.fetch);
    expect(result.acked).toHaveLength(1);
    expect(hook.got.map((r) => r.headers["webhook-id"])).toEqual([id]);
    expect(await delivery(id)).toMatchObject({ status: "succeeded", attempts: 13, last_status: 200, last_error: null });
  });

  it("a message nobody understands is acked and dropped; a storage fault retries the message", async () => {
    const odd = await runBatch([{ kind: "nonsense" } as unknown as QueueMessage], env, Date.now(), receiver(200).fetch);
    expect(odd.acked).toHaveLength(1);
    const broken = { ...env, DB: { prepare: () => { throw new Error("D1 down"); }, batch: () => Promise.reject(new Error("D1 down")) } } as unknown as Env;
    // An event id of shard 0 (`DB`, the broken one): an id naming no database of this deployment is not understood either.
    const faulted = await runBatch([{ kind: "event", eventId: `evt_${newId()}` }], broken, Date.now(), receiver(200).fetch);
    expect(faulted.retried).toHaveLength(1);
  });
});

describe("stalled deliveries", () => {
  it("a delivery whose message was lost (dead-lettered, or its attempt died) is resumed by the sweep and then delivered", async () => {
    await register(["key.revoked"]);
    const event = await seedEvent("key.revoked");
    const queue = recordingQueue();
    await runBatch([{ kind: "event", eventId: event.id }], queue.env, event.createdAt, receiver(200).fetch);
    const [lost] = queue.sent as [QueueMessage & { kind: "delivery" }];
    const t0 = (await delivery(lost.deliveryId))!.created_at as number;
    // The first attempt fails and its retry message is lost.
    await runBatch([lost], queue.env, t0, receiver(500).fetch);
    const due = (await delivery(lost.deliveryId))!.next_attempt_at as number;
    // The sweep is for the whole database: other tests' deliveries may be resumed beside this one.
    const resumed = async (now: number) => {
      const sweep = recordingQueue();
      await resumeStalledDeliveries(db(env.DB), sweep.env.EVENTS, now);
      return sweep.sent.filter((m) => m.kind === "delivery" && m.deliveryId === lost.deliveryId);
    };
    expect(await resumed(due + STALL_MS - 1000)).toEqual([]);
    const again = await resumed(due + STALL_MS + 1000);
    expect(again).toEqual([lost]);
    const hook = receiver(200);
    await runBatch(again, queue.env, due + STALL_MS + 2000, hook.fetch);
    expect(hook.got).toHaveLength(1);
    expect(await delivery(lost.deliveryId)).toMatchObject({ status: "succeeded", attempts: 2 });
    // Finished: never resumed again.
    expect(await resumed(due + RETRY_WINDOW_MS)).toEqual([]);
  });
});

describe("the demo receiver (demo/upstream.js)", () => {
  it("shows what arrived, and checks each signature with the secret it is given", async () => {
    const endpoint = await register(["key.created"], "http://localhost:8787/gw/demo/webhooks");
    const failing = await register(["key.created"], "http://localhost:8787/gw/demo/webhooks?status=503");
    const event = await seedEvent("key.created");
    const queue = recordingQueue();
    await runBatch([{ kind: "event", eventId: event.id }], queue.env, event.createdAt, receiver(200).fetch);
    // The demo upstream over its service binding: the gateway's /gw/demo/webhooks route forwards to it under npm run dev.
    const demo = (request: Request) => env.DEMO_UPSTREAM.fetch(new Request(request.url.replace("/gw/demo", ""), request));
    const now = Date.now();
    const result = await runBatch(queue.sent, queue.env, now, demo);
    expect(result.acked).toHaveLength(1);
    expect(result.retried).toHaveLength(1);
    const rows = await deliveriesOf(event.id);
    expect(rows.find((r) => r.endpoint_id === endpoint.id)).toMatchObject({ status: "succeeded", last_status: 200 });
    expect(rows.find((r) => r.endpoint_id === failing.id)).toMatchObject({ status: "failed", last_status: 503, last_error: "HTTP 503" });
    const shown = async (secret: string) => {
      const res = await env.DEMO_UPSTREAM.fetch(`http://localhost/webhooks?secret=${encodeURIComponent(secret)}`);
      const body = (await res.json()) as { arrivals: { signature: string; headers: Record<string, string>; payload: { id: string } }[] };
      return body.arrivals.find((a) => a.headers["webhook-id"] === rows.find((r) => r.endpoint_id === endpoint.id)!.id)!;
    };
    const arrival = await shown(endpoint.secret);
    expect(arrival.payload.id).toBe(event.id);
    expect(arrival.signature).toBe("valid");
    expect((await shown(failing.secret)).signature).toBe("invalid: no signature matches this secret");
  });
});
