import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { authorityFor, type KeyAuthority } from "../src/durable-objects/key-authority";
import { Edge } from "../src/verification/edge";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus } from "./helpers";
import { authoritySettled, createKeyAs } from "./key-fixtures";

/**
 * Limits Cloudflare enforces in production and Miniflare does not: at most one KV write per second to
 * one key (more is refused with 429), and one D1 query at a time per database. The key authority's
 * storage is wrapped to count (and, where said, refuse) what it does.
 */

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Limits Co");
});

interface Counts {
  kv: { op: string; name: string; at: number }[];
  d1Reads: number;
}

/** The key authority's bindings, counting KV writes and D1 reads; `refuseKv` makes every KV write fail with 429. */
async function countedAuthority(keyId: string, options: { refuseKv?: boolean } = {}): Promise<Counts> {
  const counts: Counts = { kv: [], d1Reads: 0 };
  const kv = new Proxy(env.KEYS_KV, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as (...args: unknown[]) => Promise<unknown>;
      if (prop === "put" || prop === "delete") {
        return (name: string, ...rest: unknown[]) => {
          counts.kv.push({ op: prop, name, at: Date.now() });
          if (options.refuseKv) return Promise.reject(new Error("KV PUT failed: 429 Too Many Requests"));
          return value.call(target, name, ...rest);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const db = new Proxy(env.DB, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as (...args: unknown[]) => unknown;
      if (prop === "prepare") {
        return (sql: string) => {
          if (/^\s*select/i.test(sql)) counts.d1Reads++;
          return target.prepare(sql);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  await runInDurableObject(authorityFor(env, keyId), (instance: KeyAuthority) => {
    instance.bindings = { ...env, KEYS_KV: kv, DB: db };
  });
  return counts;
}

async function restore(keyId: string) {
  await runInDurableObject(authorityFor(env, keyId), (instance: KeyAuthority) => {
    instance.bindings = null;
  });
}

describe("production limits the local runtime does not enforce", () => {
  it("a revoke writes one KV tombstone, not a delete and then a put", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "one write", scopes: ["app:read"] });
    expect((await verifyKey(env, key.key)).valid).toBe(true);
    const counts = await countedAuthority(key.id);
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey }), 204);
    await authoritySettled(key.id);
    expect(counts.kv.map((w) => w.op)).toEqual(["put"]);
    await restore(key.id);
  });

  it("no two KV writes to one name within a second, even when changes follow each other at once", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "busy", scopes: ["app:read", "app:upload", "project:deploy"] });
    expect((await verifyKey(env, key.key, { mode: "cached" })).valid).toBe(true);
    const counts = await countedAuthority(key.id);
    const path = `/v1/orgs/${org.orgId}/keys/${key.id}`;
    expectStatus(await call("PATCH", path, { key: org.adminKey, body: { scopes: ["app:read", "app:upload"] } }), 200);
    expectStatus(await call("PATCH", path, { key: org.adminKey, body: { scopes: ["app:read"] } }), 200);
    expectStatus(await call("DELETE", path, { key: org.adminKey }), 204);
    await authoritySettled(key.id);
    const byName = Map.groupBy(counts.kv, (w) => w.name);
    for (const writes of byName.values()) {
      for (let i = 1; i < writes.length; i++) expect(writes[i]!.at - writes[i - 1]!.at).toBeGreaterThanOrEqual(1000);
    }
    // The newest state won: the cached mode sees the revocation.
    expect((await verifyKey(env, key.key, { mode: "cached" })).code).toBe("REVOKED");
    await restore(key.id);
  }, 15_000);

  it("concurrent cache fills of one key make one D1 read and at most one KV write", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "crowd", scopes: ["app:read"] });
    const counts = await countedAuthority(key.id);
    const results = await Promise.all(Array.from({ length: 50 }, () => verifyKey(env, key.key, { mode: "cached" })));
    expect(results.every((r) => r.valid)).toBe(true);
    await authoritySettled(key.id);
    expect(counts.d1Reads).toBe(1);
    expect(counts.kv.length).toBeLessThanOrEqual(1);
    await restore(key.id);
  });

  it("a KV write refused with 429 never turns a known answer into a 503", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "refused write", scopes: ["app:read"] });
    const counts = await countedAuthority(key.id, { refuseKv: true });
    expect((await verifyKey(env, key.key, { mode: "cached" })).code).toBe("VALID");
    expect((await verifyKey(env, key.key, { edge: new Edge() })).code).toBe("VALID");
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey }), 204);
    expect((await verifyKey(env, key.key, { edge: new Edge() })).code).toBe("REVOKED");
    expect(counts.kv.length).toBeGreaterThan(0);
    await restore(key.id);
  }, 15_000);

  it("a burst of 1,000 first uses of one key in one isolate makes one call to its authority", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "burst", scopes: ["app:read"] });
    const counts = await countedAuthority(key.id);
    const edge = new Edge();
    let calls = 0;
    const namespace = new Proxy(env.KEY_AUTHORITY, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as (...args: unknown[]) => unknown;
        if (prop === "get") return (...args: unknown[]) => (calls++, value.apply(target, args));
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const local = { ...env, KEY_AUTHORITY: namespace };
    const results = await Promise.all(Array.from({ length: 1000 }, () => verifyKey(local, key.key, { edge })));
    expect(results.every((r) => r.code === "VALID")).toBe(true);
    expect(calls).toBeLessThanOrEqual(2); // the lease, and the report of the first use
    expect(counts.d1Reads).toBeLessThanOrEqual(1);
    await restore(key.id);
  });
});
