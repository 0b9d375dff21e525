import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { runDaily } from "../src/lifecycle/daily";
import { HOUR_MS } from "../src/storage/usage";
import { Edge } from "../src/verification/edge";
import { countUse, flushUsage } from "../src/verification/usage";
import { unreachableAuthorities } from "./fault-bindings";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { createKeyAs, seedApp } from "./key-fixtures";

/**
 * Usage analytics (issue 16, point 1): every verification outcome of a key is counted per hour, at the
 * edge, written to D1 off the response path, and read back per key (hour or day) and per org (top keys).
 */

let org: Awaited<ReturnType<typeof createOrg>>;
let appId: string;
beforeAll(async () => {
  org = await createOrg("Counted");
  appId = await seedApp(org.orgId, "counted-app");
});
const usagePath = (keyId: string, query = "") => `/v1/orgs/${org.orgId}/keys/${keyId}/usage${query}`;

/** The key's usage, once its counts have reached D1 (they are flushed 50 ms after a verification in tests). */
async function usageOnce(keyId: string, expectTotal: number, query = "") {
  let res = await call("GET", usagePath(keyId, query), { key: org.adminKey });
  for (let i = 0; i < 100 && res.status === 200 && res.body.buckets.reduce((s: number, b: { total: number }) => s + b.total, 0) < expectTotal; i++) {
    await sleep(20);
    res = await call("GET", usagePath(keyId, query), { key: org.adminKey });
  }
  expectStatus(res, 200);
  return res.body;
}

describe("counting", () => {
  it("counts each outcome of a key at the verify endpoint and the gateway, per hour", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "busy", scopes: ["app:read"] });
    for (let i = 0; i < 5; i++) expect((await call("POST", "/v1/keys/verify", { body: { key: key.key } })).body.code).toBe("VALID");
    for (let i = 0; i < 2; i++) {
      expect((await call("POST", "/v1/keys/verify", { body: { key: key.key, permission: "project:deploy" } })).body.code).toBe("INSUFFICIENT_PERMISSIONS");
    }
    expectStatus(await call("GET", `/gw/demo/apps/${appId}/info`, { key: key.key }), 200);
    const usage = await usageOnce(key.id, 8);
    expect(usage.granularity).toBe("hour");
    expect(usage.buckets).toHaveLength(24);
    const current = usage.buckets.at(-1);
    expect(current.start).toBe(new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS).toISOString());
    expect(current).toMatchObject({ total: 8, counts: { VALID: 6, INSUFFICIENT_PERMISSIONS: 2 } });
    expect(usage.buckets.slice(0, -1).every((b: { total: number }) => b.total === 0)).toBe(true);

    const daily = await usageOnce(key.id, 8, "?granularity=day");
    expect(daily.buckets).toHaveLength(30);
    expect(daily.buckets.at(-1)).toMatchObject({ total: 8 });
  });

  it("counts refusals of keys that exist (revoked too), and ranks the org's keys by use and by refusals", async () => {
    const quiet = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "quiet", scopes: ["app:read"] });
    const loud = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "loud", scopes: ["app:read"] });
    const gone = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "gone", scopes: ["app:read"] });
    await call("POST", "/v1/keys/verify", { body: { key: quiet.key } });
    for (let i = 0; i < 4; i++) await call("POST", "/v1/keys/verify", { body: { key: loud.key } });
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${gone.id}`, { key: org.adminKey }), 204);
    for (let i = 0; i < 3; i++) expect((await call("POST", "/v1/keys/verify", { body: { key: gone.key } })).body.code).toBe("REVOKED");
    await usageOnce(loud.id, 4);
    // Until all 3 refusals are flushed (a flush may land between them).
    let refused: { keys: { keyId: string; refused: number }[] } = { keys: [] };
    for (let i = 0; i < 100 && !refused.keys.some((k) => k.keyId === gone.id && k.refused === 3); i++) {
      await sleep(20);
      refused = (await call("GET", `/v1/orgs/${org.orgId}/usage?by=refusals`, { key: org.adminKey })).body;
    }
    expect(refused.keys[0]).toMatchObject({ keyId: gone.id, name: "gone", refused: 3, valid: 0, total: 3 });
    const top = (await call("GET", `/v1/orgs/${org.orgId}/usage?by=requests&limit=100`, { key: org.adminKey })).body.keys;
    const rank = (id: string) => top.findIndex((k: { keyId: string }) => k.keyId === id);
    expect(rank(loud.id)).toBeLessThan(rank(quiet.id));
    expect(top[rank(loud.id)]).toMatchObject({ name: "loud", total: 4, valid: 4, refused: 0 });
  });

  it("does not count a replaced secret's NOT_FOUND in the key's usage: after a regeneration without overlap, only the new secret's uses are the key's", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "replaced", scopes: ["app:read"] });
    // Used once first: this isolate knows the key and its org when the old secret comes back.
    expect((await call("POST", "/v1/keys/verify", { body: { key: key.key } })).body.code).toBe("VALID");
    const regen = await call("POST", `/v1/orgs/${org.orgId}/keys/${key.id}/regenerate`, { key: org.adminKey, body: {} });
    expectStatus(regen, 200);
    expect(regen.body.rotation).toBeNull();
    for (let i = 0; i < 3; i++) {
      const old = await call("POST", "/v1/keys/verify", { body: { key: key.key } });
      expect(old.body.code, old.text).toBe("NOT_FOUND");
    }
    expect((await call("POST", "/v1/keys/verify", { body: { key: regen.body.key } })).body.code).toBe("VALID");
    await usageOnce(key.id, 2);
    await sleep(200); // every flush of these counts has landed (they are flushed 50 ms after a verification)
    const usage = await usageOnce(key.id, 2);
    expect(usage.buckets.at(-1), JSON.stringify(usage.buckets.at(-1))).toMatchObject({ total: 2, counts: { VALID: 2 } });
    expect(usage.buckets.at(-1).counts.NOT_FOUND).toBeUndefined();
  });

  it("adds the counts of many isolates without losing any, and keeps what a failed flush could not write", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "everywhere", scopes: ["app:read"] });
    const now = Date.now();
    const isolates = Array.from({ length: 5 }, () => new Edge());
    isolates.forEach((edge, i) => {
      for (let n = 0; n <= i; n++) countUse(env, edge, key.id, org.orgId, "VALID", now, undefined); // 1 + 2 + … + 5 = 15
    });
    // One isolate cannot reach the key's authority (issue 22: counts go there, not to D1): its counts
    // stay in memory, and the next flush sends them.
    await flushUsage({ KEY_AUTHORITY: unreachableAuthorities() }, isolates[4]!);
    const held = [...isolates[4]!.usage.values()].flatMap((p) => [...p.counts.values(), ...p.unsent.flatMap((r) => r.counts.map((c) => c[2]))]);
    expect(held.reduce((a, b) => a + b, 0)).toBe(5);
    await Promise.all(isolates.map((edge) => flushUsage(env, edge)));
    expect(isolates.every((edge) => edge.usage.size === 0)).toBe(true);
    const usage = await usageOnce(key.id, 15);
    expect(usage.buckets.at(-1)).toMatchObject({ total: 15, counts: { VALID: 15 } });
  });
});

describe("reading", () => {
  it("refuses bad ranges with 400, and other orgs' keys and callers without apiKeyManagement", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "read", scopes: ["app:read"] });
    for (const query of [
      "?granularity=minute",
      "?from=2026-11-02T00:00:00.000Z&to=2026-11-01T00:00:00.000Z",
      "?granularity=hour&from=2026-01-01T00:00:00.000Z&to=2026-11-01T00:00:00.000Z",
      "?from=yesterday",
    ]) {
      const res = await call("GET", usagePath(key.id, query), { key: org.adminKey });
      expect(res.status, `${query}: ${res.text}`).toBe(400);
      expect(res.body.error.code).toBe("INVALID_REQUEST");
    }
    expectStatus(await call("GET", usagePath(key.id), { key: key.key }), 403);
    const other = await createOrg("Not yours");
    expectStatus(await call("GET", `/v1/orgs/${other.orgId}/keys/${key.id}/usage`, { key: other.adminKey }), 404);
    expectStatus(await call("GET", `/v1/orgs/${org.orgId}/usage`, { key: other.adminKey }), 404);
  });

  it("keeps 90 days: the daily check deletes older counts", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "old", scopes: ["app:read"] });
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    for (const daysAgo of [91, 89]) {
      await env.DB.prepare("insert into key_usage (key_id, org_id, hour, outcome, count) values (?, ?, ?, 'VALID', 1)")
        .bind(key.id, org.orgId, hour - daysAgo * 24 * HOUR_MS)
        .run();
    }
    await runDaily(env, Date.now());
    const { results } = await env.DB.prepare("select hour from key_usage where key_id = ?").bind(key.id).all<{ hour: number }>();
    expect(results.map((r) => (hour - r.hour) / (24 * HOUR_MS))).toEqual([89]);
  });
});
