import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { authorityFor, type KeyAuthority } from "../src/durable-objects/key-authority";
import { DAY_MS, HOUR_MS } from "../src/storage/usage";
import { Edge } from "../src/verification/edge";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { createKeyAs } from "./key-fixtures";
import { recordingD1 } from "./fault-bindings";
import { keyAuthoritiesWith } from "./fault-bindings";

/**
 * Usage counts travel to the key's authority (issue 22 points 1, 2 and 5): with the lease renewals an
 * isolate makes anyway, or on their own within USAGE_FLUSH_MS; the authority keeps the hourly detail
 * in its own storage and writes D1's daily roll-ups at most once per USAGE_ROLLUP_MS per key (100 ms in
 * the tests, an hour in production), whatever the traffic and the number of isolates.
 */

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Counted at the authority");
});
const newKey = (name: string) => createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name, scopes: ["app:read"] });

/** The key's total in the current hour, as its usage API answers it (from the authority). */
async function hourTotal(keyId: string): Promise<number> {
  const res = await call("GET", `/v1/orgs/${org.orgId}/keys/${keyId}/usage`, { key: org.adminKey });
  expectStatus(res, 200);
  return res.body.buckets.at(-1).total;
}


/** Verifies `key` from `isolates` isolates, `perRound` at once each, for `ms`; answers how many were verified. */
async function traffic(runEnv: Env, key: string, isolates: Edge[], ms: number, perRound = 5) {
  const background: Promise<unknown>[] = [];
  const waitUntil = (p: Promise<unknown>) => void background.push(p);
  const started = Date.now();
  let verified = 0;
  while (Date.now() - started < ms) {
    const codes = await Promise.all(isolates.flatMap((edge) => Array.from({ length: perRound }, () => verifyKey(runEnv, key, { edge, waitUntil }).then((v) => v.code))));
    expect(codes.every((c) => c === "VALID"), codes.join()).toBe(true);
    verified += codes.length;
    await sleep(10);
  }
  await Promise.all(background);
  return verified;
}

describe("counts travel to the key's authority", () => {
  it("a key in steady use sends its counts with its lease renewals, not with requests of their own, and every one arrives", async () => {
    const key = await newKey("steady");
    let reports = 0;
    let renewalsCarrying = 0;
    const KEY_AUTHORITY = new Proxy(keyAuthoritiesWith("report", (s) => (...args: unknown[]) => (reports++, s.report(...args))), {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop !== "get") return typeof value === "function" ? value.bind(target) : value;
        return (id: DurableObjectId) => {
          const stub = value(id);
          return new Proxy(stub, {
            get: (s, name) =>
              name === "lease" ? (keyId: string, hash: string, usage?: unknown[]) => ((renewalsCarrying += usage?.length ? 1 : 0), s.lease(keyId, hash, usage)) : Reflect.get(s, name),
          });
        };
      },
    });
    // A flush delay longer than the lease (T = 200 ms here), as in production (10 s and 2 s): renewals come first.
    const runEnv = { ...env, KEY_AUTHORITY, USAGE_FLUSH_MS: "1000" } as unknown as Env;
    const verified = await traffic(runEnv, key.key, [new Edge()], 1_200);
    expect(renewalsCarrying, `${reports} reports`).toBeGreaterThanOrEqual(3);
    // Only what no renewal carried goes on its own: at most the flush's last step.
    expect(reports, `${renewalsCarrying} renewals carried counts`).toBeLessThanOrEqual(1);
    expect(await hourTotal(key.id)).toBe(verified);
  });

  it("a report sent again after a lost answer is counted once", async () => {
    const key = await newKey("resent");
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const report = { id: "isolate-a-1", orgId: org.orgId, counts: [[hour, "VALID", 3]] as [number, string, number][] };
    const stub = authorityFor(env, key.id) as DurableObjectStub<KeyAuthority>;
    expect((await stub.report(key.id, [report])).ok).toBe(true);
    expect((await stub.report(key.id, [report, { ...report, id: "isolate-a-2", counts: [[hour, "VALID", 2]] }])).ok).toBe(true);
    expect(await hourTotal(key.id)).toBe(5);
  });

  it("the counts are in the authority's storage: a restart loses none", async () => {
    const key = await newKey("restarted");
    const verified = await traffic(env, key.key, [new Edge(), new Edge()], 300);
    await sleep(100); // the last flush (50 ms in the tests) has landed
    await evictDurableObject(authorityFor(env, key.id));
    expect(await hourTotal(key.id)).toBe(verified);
  });
});

describe("D1 gets daily roll-ups, at a rate set by the keys in use", () => {
  it("ten times the isolates make no more roll-up statements, and the org views show the exact count", async () => {
    const runs: { verified: number; rollups: number }[] = [];
    for (const isolates of [1, 10]) {
      const key = await newKey(`${isolates} isolates`);
      const statements: string[] = [];
      await runInDurableObject(authorityFor(env, key.id), (instance: KeyAuthority) => {
        instance.bindings = { ...env, DB: recordingD1(statements) };
      });
      const started = Date.now();
      const verified = await traffic(env, key.key, Array.from({ length: isolates }, () => new Edge()), 600, 2);
      await sleep(300); // the last roll-up is due 100 ms after the one before
      const rollups = statements.filter((s) => /insert into "key_usage"/.test(s)).length;
      // One statement per USAGE_ROLLUP_MS (100 ms) at most, plus the first at once.
      expect(rollups).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 100) + 1);
      runs.push({ verified, rollups });
      let shown = 0;
      for (let i = 0; i < 100 && shown !== verified; i++) {
        const daily = await call("GET", `/v1/orgs/${org.orgId}/usage/daily?keyIds=${key.id}&days=1`, { key: org.adminKey });
        shown = daily.body.keys[0].days[0].total;
        if (shown !== verified) await sleep(20);
      }
      expect(shown).toBe(verified);
    }
    const [one, ten] = runs;
    expect(ten!.verified, JSON.stringify(runs)).toBeGreaterThan(3 * one!.verified);
    // Each run is bounded by its time alone (above): ten times the isolates, several times the traffic, the same bound.
  });
});

describe("bounded growth (issue 22 point 2)", () => {
  it("the authority keeps a key's hourly detail 90 days and drops older hours, even with no new counts", async () => {
    const key = await newKey("old hours");
    const stub = authorityFor(env, key.id) as DurableObjectStub<KeyAuthority>;
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const counts: [number, string, number][] = [91, 89, 0].map((daysAgo) => [hour - daysAgo * DAY_MS, "VALID", 1]);
    expect((await stub.report(key.id, [{ id: "old-1", orgId: org.orgId, counts }])).ok).toBe(true);
    await runDurableObjectAlarm(stub);
    const kept = await stub.usageSeries(key.id, org.orgId, 0, hour + HOUR_MS, DAY_MS);
    expect(kept.ok && kept.value.map((r) => (Math.floor(hour / DAY_MS) * DAY_MS - r.bucket) / DAY_MS).sort((a, b) => a - b)).toEqual([0, 89]);
  });
});
