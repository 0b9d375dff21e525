import { createExecutionContext, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { authorityFor, LAST_USED_WRITE_INTERVAL_MS, type KeyAuthority } from "../src/durable-objects/key-authority";
import worker from "../src/index";
import { Edge } from "../src/verification/edge";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, sleep } from "./helpers";
import { createKeyAs } from "./key-fixtures";

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Last used Co");
});

/**
 * The bindings with the uses the isolates send counted: since issue 22 an isolate's latest use of a key
 * travels with its counts of the key (on a lease renewal, or in a report within USAGE_FLUSH_MS), not in
 * a call of its own; `touches` is every `lastUsed` that reached the key's authority.
 */
function countingTouches() {
  const touches: number[] = [];
  let calls = 0;
  const note = (usage: { lastUsed?: number }[] | undefined) => {
    for (const r of usage ?? []) if (r.lastUsed !== undefined) touches.push(r.lastUsed);
  };
  const KEY_AUTHORITY = new Proxy(env.KEY_AUTHORITY, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop !== "get") return typeof value === "function" ? value.bind(target) : value;
      return (id: DurableObjectId) => {
        const stub = target.get(id);
        return new Proxy(stub, {
          get: (s, name) => {
            if (name === "report") return (keyId: string, reports: { lastUsed?: number }[]) => (calls++, note(reports), s.report(keyId, reports as never));
            if (name === "lease") return (keyId: string, hash: string, usage?: { lastUsed?: number }[]) => (note(usage), s.lease(keyId, hash, usage as never));
            return Reflect.get(s, name);
          },
        });
      };
    },
  });
  return { env: { ...env, KEY_AUTHORITY }, touches, reports: () => calls };
}

/** A D1 binding for the key's authority that counts its writes of `last_used_at`. */
async function countingLastUsedWrites(keyId: string) {
  const writes: string[] = [];
  const DB = new Proxy(env.DB, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "prepare") return (sql: string) => (/set "last_used_at"/.test(sql) && writes.push(sql), value.call(target, sql));
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  await runInDurableObject(authorityFor(env, keyId), (instance: KeyAuthority) => {
    instance.bindings = { ...env, DB };
  });
  return writes;
}

const lastUsed = async (keyId: string) =>
  (await env.DB.prepare("select last_used_at as t from api_keys where id = ?").bind(keyId).first<{ t: number | null }>())!.t;

describe("lastUsedAt", () => {
  it("is reported off the response path (waitUntil) and shows in the key list", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "used", scopes: ["app:read"] });
    expect(await lastUsed(key.id)).toBeNull();
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request("https://gateway.test/v1/keys/verify", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: key.key }) }),
      env,
      ctx,
    );
    expect(res.status).toBe(200);
    await waitOnExecutionContext(ctx);
    // The use travels with the isolate's next usage report (within USAGE_FLUSH_MS, 50 ms here), which an
    // earlier request of this isolate may have scheduled: this request's context need not wait for it.
    let written = await lastUsed(key.id);
    for (let i = 0; i < 100 && written === null; i++) {
      await sleep(20);
      written = await lastUsed(key.id);
    }
    expect(written).toBeGreaterThan(Date.now() - 60_000);
    const list = await call("GET", `/v1/orgs/${org.orgId}/keys?kind=scoped`, { key: org.adminKey });
    const listed = list.body.keys.find((k: { id: string }) => k.id === key.id);
    expect(Date.parse(listed.lastUsedAt)).toBe(written);
  });

  it("an isolate's uses travel with its counts (no call of their own), and D1 gets at most one write a minute, whatever the traffic", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "busy", scopes: ["app:read"] });
    const writes = await countingLastUsedWrites(key.id);
    const edge = new Edge();
    const background: Promise<unknown>[] = [];
    const waitUntil = (p: Promise<unknown>) => void background.push(p);
    const { env: counted, touches, reports } = countingTouches();
    const t0 = Date.now();
    for (let i = 0; i < 50; i++) {
      await verifyKey(counted, key.key, { edge, waitUntil, now: t0 + i * 1000 }); // 49 s of traffic
      if (i % 10 === 0) await Promise.all(background); // some reports go out meanwhile
    }
    await Promise.all(background);
    // Every report carried the latest use, and no call was made for uses alone: one per report of counts.
    expect(touches.length).toBeGreaterThanOrEqual(2);
    expect(touches.at(-1)).toBe(t0 + 49_000);
    expect(reports()).toBeLessThanOrEqual(touches.length);
    expect(writes.length, writes.join("\n")).toBe(1);
    expect(await lastUsed(key.id)).toBe(touches[0]);
    expect(LAST_USED_WRITE_INTERVAL_MS).toBe(60_000);
  });

  it("reaches D1 at most once a minute from all isolates together: later uses arrive with the authority's alarm", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "many isolates", scopes: ["app:read"] });
    const t0 = Date.now();
    const background: Promise<unknown>[] = [];
    const { env: counted, touches } = countingTouches();
    // Three isolates (locations), each sending its first use of the key.
    for (let i = 0; i < 3; i++) {
      await verifyKey(counted, key.key, { edge: new Edge(), waitUntil: (p) => void background.push(p), now: t0 + i });
      await Promise.all(background);
    }
    expect(touches).toEqual([t0, t0 + 1, t0 + 2]);
    expect(await lastUsed(key.id)).toBe(t0); // the first report was written at once, the others wait
    // The usage roll-ups (every 100 ms in the tests) ring the same alarm without writing the use early.
    await sleep(300);
    expect(await lastUsed(key.id)).toBe(t0);
    expect(await runDurableObjectAlarm(authorityFor(env, key.id))).toBe(true);
    expect(await lastUsed(key.id)).toBe(t0 + 2);
  });

  it("is not reported for refused verifications", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "refused", scopes: ["app:read"] });
    const background: Promise<unknown>[] = [];
    const { env: counted, touches } = countingTouches();
    await verifyKey(counted, key.key, { permission: "app:admin", waitUntil: (p) => void background.push(p) });
    await Promise.all(background);
    expect(touches).toEqual([]);
    expect(await lastUsed(key.id)).toBeNull();
  });
});
