import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { DAILY_CRON, runDaily } from "../src/lifecycle/daily";
import { handleScheduled } from "../src/lifecycle/scheduled";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus } from "./helpers";
import { createKeyAs, setPolicy } from "./key-fixtures";

/**
 * The daily check with a fixed clock: expiry reminders at 7 days and 1 day, the expiry itself, and
 * idle keys flagged (and expired when the policy says so), each written once as an audit entry and an
 * event in the outbox.
 */

const DAY = 86_400_000;
let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Reminded");
});

/** The events about a key, oldest first, as the outbox holds them. */
async function eventsOf(keyId: string) {
  const { results } = await env.DB.prepare("select type, data, created_at from events where subject_id = ? order by rowid").bind(keyId).all<{ type: string; data: string }>();
  return results.map((e) => ({ type: e.type, data: JSON.parse(e.data) as Record<string, unknown> }));
}
const typesOf = async (keyId: string) => (await eventsOf(keyId)).map((e) => e.type);
const auditActions = async (keyId: string) =>
  (await env.DB.prepare("select action from audit_log where target_id = ? order by id").bind(keyId).all<{ action: string }>()).results.map((r) => r.action);

describe("expiry reminders", () => {
  it("reminds 7 days and 1 day before, reports the expiry, each once however often it runs", async () => {
    const start = Date.now();
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "expiring", scopes: ["app:read"], expiresAt: new Date(start + 6.5 * DAY).toISOString() });
    const expiry = Date.parse(key.expiresAt);

    await runDaily(env, start);
    await runDaily(env, start + 60_000); // again the same day: nothing new
    expect(await typesOf(key.id)).toEqual(["key.created", "key.expiring"]);
    expect((await eventsOf(key.id))[1]!.data).toMatchObject({ inDays: 7, expiresAt: key.expiresAt, name: "expiring", actorKeyId: null });

    await runDaily(env, expiry - 0.5 * DAY);
    await runDaily(env, expiry - 0.4 * DAY);
    expect(await typesOf(key.id)).toEqual(["key.created", "key.expiring", "key.expiring"]);
    expect((await eventsOf(key.id))[2]!.data).toMatchObject({ inDays: 1 });

    await runDaily(env, expiry + 1000);
    await runDaily(env, expiry + DAY);
    expect(await typesOf(key.id)).toEqual(["key.created", "key.expiring", "key.expiring", "key.expired"]);
    expect(await auditActions(key.id)).toEqual(["key.create", "key.expiring", "key.expiring", "key.expired"]);
  });

  it("reminds again for a new expiry, and never about revoked keys", async () => {
    const start = Date.now();
    const extended = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "extended", scopes: ["app:read"], expiresAt: new Date(start + 6 * DAY).toISOString() });
    const revoked = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "revoked", scopes: ["app:read"], expiresAt: new Date(start + 6 * DAY).toISOString() });
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${revoked.id}`, { key: org.adminKey }), 204);
    await runDaily(env, start);
    const later = new Date(start + 20 * DAY).toISOString();
    expectStatus(await call("PATCH", `/v1/orgs/${org.orgId}/keys/${extended.id}`, { key: org.adminKey, body: { expiresAt: later } }), 200);
    await runDaily(env, start + 14 * DAY); // the new expiry is 6 days away: its own 7-day reminder
    const reminders = (await eventsOf(extended.id)).filter((e) => e.type === "key.expiring");
    expect(reminders.map((e) => e.data.expiresAt)).toEqual([new Date(start + 6 * DAY).toISOString(), later]);
    expect((await typesOf(revoked.id)).filter((t) => t.startsWith("key.expir"))).toEqual([]);
  });
});

describe("unused keys", () => {
  it("flags a key unused for the policy's days once per idle spell, and expires it when the policy says so", async () => {
    const idle = await createOrg("Idle");
    const policy = { requireExpiration: false, maxLifetimeDays: null };
    const key = await createKeyAs(idle.adminKey, idle.orgId, { kind: "scoped", name: "forgotten", scopes: ["app:read"] });
    const now = Date.now();

    await runDaily(env, now + 40 * DAY); // no unusedKeyDays: nothing
    expect((await typesOf(key.id)).includes("key.unused")).toBe(false);

    await setPolicy(idle.orgId, { ...policy, unusedKeyDays: 30 });
    await runDaily(env, now + 40 * DAY);
    await runDaily(env, now + 41 * DAY);
    const flags = (await eventsOf(key.id)).filter((e) => e.type === "key.unused");
    expect(flags).toHaveLength(1);
    expect(flags[0]!.data).toMatchObject({ name: "forgotten", lastUsedAt: null, unusedDays: 40 });
    expect((await verifyKey(env, key.key, { mode: "strict" })).code).toBe("VALID"); // flagged, not expired

    // Used again, then idle again: a new spell, a new flag; this time the policy expires it.
    await env.DB.prepare("update api_keys set last_used_at = ? where id = ?").bind(now + 50 * DAY, key.id).run();
    await setPolicy(idle.orgId, { ...policy, unusedKeyDays: 30, expireUnusedKeys: true });
    const report = await runDaily(env, now + 85 * DAY);
    expect(report, JSON.stringify(report)).toMatchObject({ unused: 1, expiredUnused: 1 });
    expect((await eventsOf(key.id)).filter((e) => e.type === "key.unused")).toHaveLength(2);
    expect(await typesOf(key.id)).toEqual(expect.arrayContaining(["key.updated", "key.expired"]));
    // Expired as of the check's clock (85 days ahead of this test's real one).
    const row = await env.DB.prepare("select expires_at from api_keys where id = ?").bind(key.id).first<{ expires_at: number }>();
    expect(row!.expires_at).toBe(now + 85 * DAY);
    expect((await verifyKey(env, key.key, { mode: "strict", now: now + 85 * DAY })).code).toBe("EXPIRED");

    // The org's only admin key, idle too, is flagged but never expired: the org keeps a way in.
    await env.DB.prepare("update api_keys set last_used_at = ? where id = ?").bind(now + 50 * DAY, idle.adminKeyId).run();
    const again = await runDaily(env, now + 86 * DAY);
    expect(again).toMatchObject({ unused: 1, expiredUnused: 0 });
    expect((await verifyKey(env, idle.adminKey, { mode: "strict", now: now + 86 * DAY })).code).toBe("VALID");
  });
});

describe("the cron handler", () => {
  it("runs the daily check on its schedule and publishes the outbox every minute", async () => {
    const start = Date.now();
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "scheduled", scopes: ["app:read"], expiresAt: new Date(start + 3 * DAY).toISOString() });
    await handleScheduled({ cron: "* * * * *", scheduledTime: start }, env);
    expect(await typesOf(key.id)).toEqual(["key.created"]); // the minute's run publishes only
    await handleScheduled({ cron: DAILY_CRON, scheduledTime: start }, env);
    expect(await typesOf(key.id)).toEqual(["key.created", "key.expiring"]);
    const unpublished = await env.DB.prepare("select count(*) as n from events where published_at is null").first<{ n: number }>();
    expect(unpublished!.n).toBe(0);
  });
});
