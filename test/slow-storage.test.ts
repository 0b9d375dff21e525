import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../src/domain/crypto";
import { authorityFor, type KeyAuthority } from "../src/durable-objects/key-authority";
import { db } from "../src/storage/db";
import { D1_TIMEOUT_MS, KV_TIMEOUT_MS } from "../src/storage/guarded-bindings";
import { keyRecordName } from "../src/storage/key-record";
import { createKey } from "../src/storage/keys";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { authoritySettled } from "./key-fixtures";

/**
 * Storage that is slow but succeeds: the case the storage seam's timeouts used to get wrong. A write
 * abandoned on a timeout still landed later, after the key's next change, and brought an old secret
 * back (cached records never expired, so for good). Each test slows one step of one operation past
 * the seam's timeout, runs verifications before, during and after, waits until every slow write has
 * landed, and checks that nothing of the old state verifies, cached or strict.
 */

/** Longer than the seam's timeout for the store, so an abandoning seam would give up first. */
const SLOW = { kv: KV_TIMEOUT_MS + 700, d1: D1_TIMEOUT_MS + 700 };

type Step = "fill-read" | "fill-write" | "commit" | "prefill";

/**
 * The key authority's bindings with one step slowed (each call still succeeds). `reached` resolves
 * when the slow call starts.
 */
function slowAt(step: Step) {
  let reach!: () => void;
  const reached = new Promise<void>((r) => (reach = r));
  let armed = true;
  const slowly = async <T,>(ms: number, work: () => Promise<T>) => {
    if (!armed) return work();
    armed = false;
    reach();
    await sleep(ms);
    return work();
  };
  const kv = new Proxy(env.KEYS_KV, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as (...args: unknown[]) => Promise<unknown>;
      if (prop === "put") {
        return (name: string, body: string, options?: unknown) => {
          const isFillWrite = step === "fill-write" && body.includes('"status":"active"');
          const isPrefill = step === "prefill";
          return isFillWrite || isPrefill ? slowly(SLOW.kv, () => value.call(target, name, body, options)) : value.call(target, name, body, options);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const d1 = new Proxy(env.DB, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as (...args: unknown[]) => unknown;
      if (prop === "batch" && step === "commit") return (statements: D1PreparedStatement[]) => slowly(SLOW.d1, () => target.batch(statements));
      if (prop === "prepare" && step === "fill-read") {
        return (sql: string) => {
          const statement = target.prepare(sql);
          if (!/select/i.test(sql)) return statement;
          return new Proxy(statement, {
            get(s, p) {
              const v = Reflect.get(s, p, s) as (...args: unknown[]) => unknown;
              if (p === "bind") return (...args: unknown[]) => {
                const bound = s.bind(...args);
                return new Proxy(bound, { get: (bs, bp) => (["first", "all", "raw", "run"].includes(bp as string) ? (...a: unknown[]) => slowly(SLOW.d1, () => (Reflect.get(bs, bp, bs) as (...x: unknown[]) => Promise<unknown>).apply(bs, a)) : (typeof Reflect.get(bs, bp, bs) === "function" ? (Reflect.get(bs, bp, bs) as (...x: unknown[]) => unknown).bind(bs) : Reflect.get(bs, bp, bs))) });
              };
              return typeof v === "function" ? v.bind(s) : v;
            },
          });
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { bindings: { ...env, KEYS_KV: kv, DB: d1 } as Env, reached };
}

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Slow Co");
});

async function newKey() {
  return createKey(
    db(env.DB),
    env,
    { orgId: org.orgId, name: "slow", secure: true, expiresAt: null, access: { kind: "scoped", scopes: ["app:read", "app:upload"] }, createdBy: null },
    { actorKeyId: null, requestId: "slow-test" },
  );
}

async function useBindings(keyId: string, bindings: Env | null) {
  await runInDurableObject(authorityFor(env, keyId), (instance: KeyAuthority) => {
    instance.bindings = bindings;
  });
}

type Op = "revoke" | "regenerate" | "edit";
/** The management call, through the API as an admin would make it. */
function change(op: Op, keyId: string) {
  const path = `/v1/orgs/${org.orgId}/keys/${keyId}`;
  if (op === "revoke") return call("DELETE", path, { key: org.adminKey });
  if (op === "regenerate") return call("POST", `${path}/regenerate`, { key: org.adminKey });
  return call("PATCH", path, { key: org.adminKey, body: { scopes: ["app:read"] } });
}
/** What the change took away: the old secret (revoke, regenerate) or app:upload (edit), in a mode. */
const oldStillWorks = async (op: Op, key: string, mode: "lease" | "strict" | "cached" = "lease") =>
  (await verifyKey(env, key, { mode, ...(op === "edit" ? { permission: "app:upload" as const } : {}) })).valid;

/** Waits until every slow write has landed, then checks no mode verifies the old state; restores the bindings. */
async function nothingOldOnceLanded(op: Op, key: string, keyId: string, slowMs: number) {
  await sleep(slowMs + 300);
  await authoritySettled(keyId);
  for (const mode of ["lease", "strict", "cached"] as const) expect(await oldStillWorks(op, key, mode), mode).toBe(false);
  await useBindings(keyId, null);
}

describe.concurrent("slow storage never brings an old state back", () => {
  for (const op of ["revoke", "regenerate", "edit"] as const) {
    for (const step of ["commit", "prefill"] as const) {
      it(`${op} with a slow ${step}: nothing old verifies once it returns, nor after every write has landed`, async () => {
        const { key, row } = await newKey();
        expect(await oldStillWorks(op, key)).toBe(true); // leased
        expect(await oldStillWorks(op, key, "cached")).toBe(true); // and in KV
        const slow = slowAt(step);
        await useBindings(row.id, slow.bindings);
        const changing = change(op, row.id);
        await slow.reached;
        // Verifications that start while the change is under way: any answer is allowed, but they
        // must not leave anything behind that outlives the change.
        const during = [verifyKey(env, key), verifyKey(env, key, { strict: true }), verifyKey(env, key, { mode: "cached" })].map((p) => p.catch(() => null));
        const res = await changing;
        expect(res.status, res.text).toBeLessThan(300);
        expect(await oldStillWorks(op, key)).toBe(false);
        expect(await oldStillWorks(op, key, "strict")).toBe(false);
        await Promise.all(during);
        await nothingOldOnceLanded(op, key, row.id, Math.max(SLOW.kv, SLOW.d1));
      }, 20_000);
    }

    for (const step of ["fill-write", "fill-read"] as const) {
      const what = step === "fill-write" ? "KV write is slow does not land over" : "D1 read is too slow fails closed and leaves nothing behind";
      it(`a fill whose ${what} a ${op} issued behind it`, async () => {
        const { key, row } = await newKey();
        const slow = slowAt(step);
        await useBindings(row.id, slow.bindings);
        const first = verifyKey(env, key, { mode: "cached" }).catch(() => null); // miss → fill → the slow step
        await slow.reached;
        const res = await change(op, row.id);
        expect(res.status, res.text).toBeLessThan(300);
        await first;
        expect(await oldStillWorks(op, key)).toBe(false);
        await nothingOldOnceLanded(op, key, row.id, step === "fill-write" ? SLOW.kv : SLOW.d1);
      }, 20_000);
    }
  }
});

describe("revoke is idempotent in effect", () => {
  it("revoking a revoked key answers 404 and puts its tombstone back, whatever the cache held", async () => {
    const { key, row } = await newKey();
    expectStatus(await change("revoke", row.id), 204);
    await authoritySettled(row.id);
    // A stale active record, as a lost write would have left it.
    const hash = await hashKey(key);
    await env.KEYS_KV.put(keyRecordName(hash), JSON.stringify({ status: "active", keyId: row.id, orgId: org.orgId, name: "x", createdAt: 0, expiresAt: null, version: 0, kind: "scoped", scopes: ["app:read"] }));
    expect(await oldStillWorks("revoke", key, "cached")).toBe(true);
    const again = await change("revoke", row.id);
    expectStatus(again, 404);
    expect(await oldStillWorks("revoke", key)).toBe(false);
    await authoritySettled(row.id);
    expect(await oldStillWorks("revoke", key, "cached")).toBe(false);
    expect(await env.KEYS_KV.get(keyRecordName(hash), "json")).toMatchObject({ status: "revoked" });
  });
});

describe("cached records are bounded in time", () => {
  it("an active record written by a fill expires within 15 minutes", async () => {
    const { key } = await newKey();
    await verifyKey(env, key, { mode: "cached" });
    let expiration: number | undefined;
    // The fill answers before its KV write lands; wait for it.
    for (let i = 0; i < 50 && expiration === undefined; i++, await sleep(20)) {
      expiration = (await env.KEYS_KV.list({ prefix: keyRecordName(await hashKey(key)) })).keys[0]?.expiration;
    }
    expect(expiration).toBeDefined();
    expect(expiration! * 1000 - Date.now()).toBeLessThanOrEqual(15 * 60 * 1000 + 1000);
  });
});
