import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { KEY_PATTERN, mintKey, newId, parseKey, shardOf } from "../src/domain/key-format";
import { SerializedObject } from "../src/durable-objects/serialized-object";
import { runDaily } from "../src/lifecycle/daily";
import { handleScheduled } from "../src/lifecycle/scheduled";
import { chooseShard } from "../src/storage/db";
import type { QueueMessage } from "../src/storage/events";
import { handleQueue } from "../src/webhooks/consumer";
import { faultyD1 } from "./fault-bindings";
import { BOOTSTRAP, call, createOrg, expectStatus, fromThisFile, sleep } from "./helpers";
import { createKeyAs } from "./key-fixtures";
import { signReport, REPORTER_KEY_ID, trustedReporterKey } from "./reporter";
import { fetchWithBindings } from "./with-bindings";

/**
 * Organizations spread over databases (issue 22, point 3): an org lives in `DB` (shard 0) or `DB_1`
 * (shard 1), named by the first character of its id and of every id minted for it. Everything of an
 * org is in its database and nothing of it in the other; the jobs across orgs (the daily check, the
 * outbox, the webhook consumer, secret-scanning reports) act on both. This file runs in storage of its
 * own (vitest.config.ts): the daily check and the outbox act on every org of the runtime.
 */

const DAY = 86_400_000;
const DATABASES = { 0: env.DB, 1: env.DB_1 } as const;

/** How many rows of `table` for `orgId` each database holds: [shard 0, shard 1]. */
async function rowsOf(table: string, orgId: string): Promise<[number, number]> {
  const count = async (d1: D1Database) => (await d1.prepare(`select count(*) as n from ${table} where org_id = ?`).bind(orgId).first<{ n: number }>())!.n;
  return [await count(env.DB), await count(env.DB_1)];
}

const verify = (key: string) => call("POST", "/v1/keys/verify", { body: { key } });

afterEach(() => {
  SerializedObject.storage = null;
});

describe("ids", () => {
  it("every id minted before shards existed names shard 0, and the key format and its scanner pattern are unchanged", async () => {
    // An id of today as the old newId made it: 10 characters of time (the first is 0 until the year 3084), 10 random.
    const old = newId(Date.now());
    expect(shardOf(old)).toBe(0);
    expect(old[0]).toBe("0");
    for (let shard = 0; shard < 32; shard++) {
      const id = newId(Date.now(), shard);
      expect(shardOf(id)).toBe(shard);
      expect(shardOf(`evt_${id}`)).toBe(shard);
      expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]{20}$/);
    }
    // Ids of one shard keep their time order.
    expect(newId(1_000, 1) < newId(2_000, 1)).toBe(true);
    const org = await createOrg("Shard One Format", { shard: 1 });
    expect(org.adminKey).toMatch(KEY_PATTERN);
    expect(shardOf(parseKey(org.adminKey)!.keyId)).toBe(1);
  });

  it("a key of ours whose id names a database this deployment lacks is simply not found, before any storage read", async () => {
    const stray = await mintKey(newId(Date.now(), 7), env.KEY_TAG_SECRET);
    const res = await verify(stray);
    expect(res.body, res.text).toMatchObject({ valid: false, code: "NOT_FOUND" });
  });

  it("new orgs spread over the databases NEW_ORG_SHARDS lists, every one when it lists none", () => {
    const seen = (list: string | undefined) => new Set(Array.from({ length: 64 }, () => chooseShard({ ...env, NEW_ORG_SHARDS: list } as Env)));
    expect(seen("1")).toEqual(new Set([1]));
    expect(seen("0,1")).toEqual(new Set([0, 1]));
    expect(seen("")).toEqual(new Set([0, 1]));
    // A database this deployment does not have is not one to put an org in.
    expect(seen("1,7")).toEqual(new Set([1]));
  });
});

describe("an org on shard 1", () => {
  it("is created, and its keys are created, verified, listed and revoked in DB_1, with nothing of it in DB", async () => {
    const org = await createOrg("Shard One Co", { shard: 1 });
    expect(shardOf(org.orgId)).toBe(1);
    expect(shardOf(org.adminKeyId)).toBe(1);
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "one", scopes: ["app:read"] });
    expect(shardOf(key.id)).toBe(1);
    expect((await verify(key.key)).body).toMatchObject({ valid: true, code: "VALID", keyId: key.id });
    const list = await call("GET", `/v1/orgs/${org.orgId}/keys`, { key: org.adminKey });
    expectStatus(list, 200);
    expect(list.body.keys.map((k: { id: string }) => k.id).sort(), list.text).toEqual([org.adminKeyId, key.id].sort());
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey }), 204);
    const after = await verify(key.key);
    expect(after.body.valid, after.text).toBe(false);
    expect(await rowsOf("api_keys", org.orgId)).toEqual([0, 2]);
    const inOne = await env.DB_1.prepare("select count(*) as n from orgs where id = ?").bind(org.orgId).first<{ n: number }>();
    const inZero = await env.DB.prepare("select count(*) as n from orgs where id = ?").bind(org.orgId).first<{ n: number }>();
    expect([inZero!.n, inOne!.n]).toEqual([0, 1]);
    const revokedAt = await env.DB_1.prepare("select revoked_at from api_keys where id = ?").bind(key.id).first<{ revoked_at: number | null }>();
    expect(revokedAt!.revoked_at).not.toBeNull();
  });

  it("reads its usage and audit log from DB_1", async () => {
    const org = await createOrg("Shard One Usage", { shard: 1 });
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "counted", scopes: ["app:read"] });
    for (let i = 0; i < 3; i++) expect((await verify(key.key)).body.code).toBe("VALID");
    // Counts reach the key's authority within USAGE_FLUSH_MS (50 ms in tests); its roll-up reaches the
    // org's database within USAGE_ROLLUP_MS (100 ms in tests) after that.
    const total = (res: Awaited<ReturnType<typeof call>>) => res.body.buckets.reduce((s: number, b: { total: number }) => s + b.total, 0);
    let usage = await call("GET", `/v1/orgs/${org.orgId}/keys/${key.id}/usage`, { key: org.adminKey });
    for (let i = 0; i < 100 && usage.status === 200 && total(usage) < 3; i++) {
      await sleep(20);
      usage = await call("GET", `/v1/orgs/${org.orgId}/keys/${key.id}/usage`, { key: org.adminKey });
    }
    expectStatus(usage, 200);
    expect(total(usage), usage.text).toBe(3);
    let rows = await rowsOf("key_usage", org.orgId);
    for (let i = 0; i < 250 && rows[1] === 0; i++) {
      await sleep(20);
      rows = await rowsOf("key_usage", org.orgId);
    }
    expect(rows[0], "no usage row in DB").toBe(0);
    expect(rows[1], "the roll-up reached DB_1").toBeGreaterThan(0);
    const audit = await call("GET", `/v1/orgs/${org.orgId}/audit-log`, { key: org.adminKey });
    expectStatus(audit, 200);
    expect(audit.body.entries.map((e: { action: string }) => e.action), audit.text).toEqual(expect.arrayContaining(["org.create", "key.create"]));
    expect((await rowsOf("audit_log", org.orgId))[0]).toBe(0);
  }, 20_000); // polls until the counts and their roll-up land: slow on a busy machine, never wrong
});

describe("no query of an org touches another org's database", () => {
  /**
   * Everything an admin does with an org: create an app and a key, verify, list, read usage, the audit
   * log and the policy, set the policy (the org's authority), revoke (the key's), delete the app.
   */
  async function everything(org: Awaited<ReturnType<typeof createOrg>>, bindings: Partial<Env>) {
    const send = (method: string, path: string, body?: unknown, key = org.adminKey) =>
      fetchWithBindings(
        bindings,
        fromThisFile(
          new Request(`https://gateway.test${path}`, {
            method,
            headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
            body: body === undefined ? undefined : JSON.stringify(body),
          }),
        ),
      );
    const statuses: Record<string, number> = {};
    const app = await send("POST", `/v1/orgs/${org.orgId}/apps`, { name: `app-${crypto.randomUUID().slice(0, 8)}` });
    statuses.app = app.status;
    const key = await send("POST", `/v1/orgs/${org.orgId}/keys`, { kind: "rbac", name: "everything", orgRole: "member", appRoles: app.body?.id ? [{ appId: app.body.id, role: "uploader" }] : [] });
    statuses.key = key.status;
    if (key.status !== 201) return { statuses, text: key.text };
    const verified = await send("POST", "/v1/keys/verify", { key: key.body.key, app: app.body.id, permission: "app:upload" });
    statuses[`verify ${verified.body?.code}`] = verified.status;
    statuses.list = (await send("GET", `/v1/orgs/${org.orgId}/keys`)).status;
    statuses.usage = (await send("GET", `/v1/orgs/${org.orgId}/usage`)).status;
    statuses.audit = (await send("GET", `/v1/orgs/${org.orgId}/audit-log`)).status;
    statuses.policy = (await send("GET", `/v1/orgs/${org.orgId}/policy`)).status;
    statuses.setPolicy = (await send("PUT", `/v1/orgs/${org.orgId}/policy`, { requireExpiration: false, maxLifetimeDays: null, leakedKeyAction: "disable" })).status;
    statuses.revoke = (await send("DELETE", `/v1/orgs/${org.orgId}/keys/${key.body.id}`)).status;
    statuses.deleteApp = (await send("DELETE", `/v1/orgs/${org.orgId}/apps/${app.body.id}`)).status;
    return { statuses, text: key.text };
  }
  const ALL_OK = { app: 201, key: 201, "verify VALID": 200, list: 200, usage: 200, audit: 200, policy: 200, setPolicy: 200, revoke: 204, deleteApp: 204 };

  for (const [home, other] of [
    [0, 1],
    [1, 0],
  ] as const) {
    it(`an org on shard ${home} works in full while shard ${other}'s database fails every query, and fails (503) when its own does`, async () => {
      const org = await createOrg(`Isolated ${home}`, { shard: home });
      const otherBinding = other === 0 ? "DB" : "DB_1";
      const homeBinding = home === 0 ? "DB" : "DB_1";
      // The other database fails for the worker and for the authorities alike.
      const broken = { [otherBinding]: faultyD1("throw", () => true, DATABASES[other]) } as Partial<Env>;
      SerializedObject.storage = (own) => ({ ...own, ...broken }) as Env;
      const result = await everything(org, broken);
      expect(result.statuses, result.text).toEqual(ALL_OK);
      // Its own database failing is seen: every database goes through the storage seam.
      const own = { [homeBinding]: faultyD1("throw", () => true, DATABASES[home]) } as Partial<Env>;
      SerializedObject.storage = null;
      const res = await fetchWithBindings(own, fromThisFile(new Request(`https://gateway.test/v1/orgs/${org.orgId}/keys`, { headers: { authorization: `Bearer ${org.adminKey}` } })));
      expect(res.status, res.text).toBe(503);
    });
  }
});

describe("operations across orgs act on every database", () => {
  it("a secret-scanning report naming keys of orgs on both shards revokes each in its org's database", async () => {
    const orgs = [await createOrg("Leaky Zero", { shard: 0 }), await createOrg("Leaky One", { shard: 1 })];
    const keys = await Promise.all(orgs.map((o) => createKeyAs(o.adminKey, o.orgId, { kind: "scoped", name: "leaked", scopes: ["app:read"] })));
    for (const k of keys) expect((await verify(k.key)).body.code).toBe("VALID");
    const body = JSON.stringify(keys.map((k, i) => ({ token: k.key, type: "keygate_api_key", url: `https://github.com/octo/leaky/blob/main/.env#L${i}`, source: "content" })));
    const signature = await signReport(body, await trustedReporterKey());
    const res = await call("POST", "/v1/secret-scanning/reports", { body, headers: { "github-public-key-signature": signature, "github-public-key-identifier": REPORTER_KEY_ID } });
    expectStatus(res, 200);
    expect(res.body.map((l: { label: string }) => l.label), res.text).toEqual(["true_positive", "true_positive"]);
    for (const [i, k] of keys.entries()) {
      const after = await verify(k.key);
      expect(after.body.valid, after.text).toBe(false);
      const d1 = DATABASES[shardOf(orgs[i]!.orgId) as 0 | 1];
      const leaked = await d1.prepare("select count(*) as n from audit_log where target_id = ? and action = 'key.leaked'").bind(k.id).first<{ n: number }>();
      expect(leaked!.n).toBe(1);
    }
  });

  it("the daily check reminds and expires keys of orgs on both shards, and the minute's cron publishes both outboxes", async () => {
    const start = Date.now();
    const orgs = [await createOrg("Daily Zero", { shard: 0 }), await createOrg("Daily One", { shard: 1 })];
    const keys = await Promise.all(
      orgs.map((o) => createKeyAs(o.adminKey, o.orgId, { kind: "scoped", name: "expiring", scopes: ["app:read"], expiresAt: new Date(start + 3 * DAY).toISOString() })),
    );
    const typesOf = (keyId: string) =>
      DATABASES[shardOf(keyId) as 0 | 1]
        .prepare("select type from events where subject_id = ? order by id")
        .bind(keyId)
        .all<{ type: string }>()
        .then((r) => r.results.map((e) => e.type));
    const report = await runDaily(env, start);
    expect(report.expiring7).toBeGreaterThanOrEqual(2);
    const later = await runDaily(env, start + 4 * DAY);
    expect(later.expired).toBeGreaterThanOrEqual(2);
    for (const k of keys) expect((await typesOf(k.id)).sort()).toEqual(["key.created", "key.expired", "key.expiring"]);
    const expiredEvents = await Promise.all(
      keys.map((k) => DATABASES[shardOf(k.id) as 0 | 1].prepare("select id from events where subject_id = ? and type = 'key.expired'").bind(k.id).first<{ id: string }>()),
    );
    expect(expiredEvents.map((e) => shardOf(e!.id))).toEqual([0, 1]);
    // The daily check publishes nothing itself: the minute's run sends both databases' outboxes to the queue.
    const sent: QueueMessage[] = [];
    const EVENTS = { sendBatch: async (m: Iterable<{ body: QueueMessage }>) => void sent.push(...[...m].map((x) => x.body)), send: async () => undefined } as unknown as Queue;
    await handleScheduled({ cron: "* * * * *", scheduledTime: Date.now() }, { ...env, EVENTS });
    const sentIds = sent.flatMap((m) => (m.kind === "event" ? [m.eventId] : []));
    expect(sentIds).toEqual(expect.arrayContaining(expiredEvents.map((e) => e!.id)));
    for (const d1 of Object.values(DATABASES)) {
      const unpublished = await d1.prepare("select count(*) as n from events where published_at is null").first<{ n: number }>();
      expect(unpublished!.n).toBe(0);
    }
  });

  it("an event of an org on shard 1 reaches its webhook: the consumer finds the event and its deliveries in DB_1", async () => {
    const org = await createOrg("Hooks One", { shard: 1 });
    const hook = await call("POST", `/v1/orgs/${org.orgId}/webhooks`, { key: org.adminKey, body: { url: "https://hooks.example.com/one", eventTypes: ["key.created"] } });
    expectStatus(hook, 201);
    expect(shardOf(hook.body.id)).toBe(1);
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "announced", scopes: ["app:read"] });
    const event = await env.DB_1.prepare("select id from events where subject_id = ? and type = 'key.created'").bind(key.id).first<{ id: string }>();
    expect(shardOf(event!.id)).toBe(1);
    const got: string[] = [];
    const sent: QueueMessage[] = [];
    const EVENTS = { sendBatch: async (m: Iterable<{ body: QueueMessage }>) => void sent.push(...[...m].map((x) => x.body)), send: async (b: QueueMessage) => void sent.push(b) } as unknown as Queue;
    const run = async (bodies: QueueMessage[]) => {
      const messages = bodies.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body, ack: () => undefined, retry: () => undefined }));
      await handleQueue({ queue: "keygate-events", messages } as unknown as MessageBatch<QueueMessage>, { ...env, EVENTS }, createExecutionContext(), {
        fetch: async (request) => (got.push(await request.text()), new Response("ok")),
      });
    };
    await run([{ kind: "event", eventId: event!.id }]);
    const delivery = await env.DB_1.prepare("select id from webhook_deliveries where event_id = ?").bind(event!.id).first<{ id: string }>();
    expect(shardOf(delivery!.id)).toBe(1);
    await run(sent.filter((m) => m.kind === "delivery"));
    expect(got.map((b) => JSON.parse(b).id)).toEqual([event!.id]);
    expect(await env.DB.prepare("select count(*) as n from webhook_deliveries where org_id = ?").bind(org.orgId).first<{ n: number }>()).toEqual({ n: 0 });
  });
});

describe("the bootstrap", () => {
  it("puts orgs in the databases the deployment opens to new orgs, as a client sees it", async () => {
    const shards = new Set<number>();
    for (let i = 0; i < 12 && shards.size < 2; i++) {
      const res = await fetchWithBindings(
        { NEW_ORG_SHARDS: "0,1" } as Partial<Env>,
        fromThisFile(new Request("https://gateway.test/v1/orgs", { method: "POST", headers: { authorization: `Bearer ${BOOTSTRAP}`, "content-type": "application/json" }, body: JSON.stringify({ name: `Spread ${i}` }) })),
      );
      expect(res.status, res.text).toBe(201);
      shards.add(shardOf(res.body.org.id));
      // The admin key works wherever the org landed.
      expect((await verify(res.body.key.key)).body.code).toBe("VALID");
    }
    // 12 fair coin flips all alike: 1 in 2,048.
    expect(shards).toEqual(new Set([0, 1]));
  });
});
