import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../src/index";
import { D1_TIMEOUT_MS } from "../src/storage/guarded-bindings";
import { createOrg } from "./helpers";
import { faultyD1, faultyKV } from "./fault-bindings";
import { createKeyAs, writeCounts } from "./key-fixtures";

/**
 * Storage faults injected at the seam: the worker is called with bindings that throw or stall, the
 * way a D1 or KV outage looks to it. Nothing else is mocked.
 */
async function callWith(bindings: Partial<Env>, method: string, path: string, key: string, body?: unknown) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`https://gateway.test${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    }),
    { ...env, ...bindings },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Faulty Co");
});

describe("storage faults", () => {
  it("a KV outage makes the verify endpoint fail closed (503), never VALID", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "v", scopes: ["app:read"] });
    for (const fault of ["throw", "stall"] as const) {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request("https://gateway.test/v1/keys/verify", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: key.key }) }),
        { ...env, KEYS_KV: faultyKV(fault) },
        ctx,
      );
      await waitOnExecutionContext(ctx);
      const text = await res.text();
      expect(res.status, text).toBe(503);
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(text).not.toContain("VALID");
    }
  }, 15_000);

  it("a KV outage makes the gateway answer 503 with Retry-After, without forwarding", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "g", scopes: ["app:read"] });
    const res = await worker.fetch(
      new Request("https://gateway.test/gw/demo/apps/01jd8x9b2c3d4e5f6g7h/x", { headers: { authorization: `Bearer ${key.key}` } }),
      { ...env, KEYS_KV: faultyKV("throw") },
      createExecutionContext(),
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(res.headers.get("x-demo-upstream")).toBeNull();
    expect((await res.json()) as object).toMatchObject({ error: { code: "SERVICE_UNAVAILABLE" } });
  });

  it("a KV outage makes management authentication fail closed with 503 and Retry-After", async () => {
    const res = await callWith({ KEYS_KV: faultyKV("throw") }, "GET", `/v1/orgs/${org.orgId}/keys`, org.adminKey);
    expect(res.status, res.text).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(JSON.parse(res.text).error.code).toBe("SERVICE_UNAVAILABLE");
    expect(res.text).not.toContain("kgw_");
  });

  it("a D1 outage while creating a key answers 503 and leaves no half-created key or audit entry", async () => {
    const before = await writeCounts();
    const res = await callWith({ DB: faultyD1("throw") }, "POST", `/v1/orgs/${org.orgId}/keys`, org.adminKey, {
      kind: "scoped",
      name: "never",
      scopes: ["app:read"],
    });
    expect(res.status, res.text).toBe(503);
    expect(await writeCounts()).toEqual(before);
  });

  it("a D1 outage on a read answers 503, not 500", async () => {
    const res = await callWith({ DB: faultyD1("throw", (sql) => /from "?api_keys"?/i.test(sql)) }, "GET", `/v1/orgs/${org.orgId}/keys`, org.adminKey);
    expect(res.status, res.text).toBe(503);
  });

  it("a stalled D1 answers 503 after the storage timeout instead of hanging", async () => {
    const started = Date.now();
    const res = await callWith({ DB: faultyD1("stall") }, "POST", `/v1/orgs/${org.orgId}/apps`, org.adminKey, { name: "stalled" });
    expect(res.status, res.text).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(D1_TIMEOUT_MS - 50);
    const list = await callWith({}, "GET", `/v1/orgs/${org.orgId}/apps`, org.adminKey);
    expect(JSON.parse(list.text).apps).toEqual([]);
  }, 15_000);

  it("a KV outage while setting the policy answers 503 and the policy is not half-applied", async () => {
    const admin = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "a", orgRole: "admin", expiresInDays: 30 });
    // Reads work, the write of the policy record fails.
    const res = await callWith({ KEYS_KV: faultyKV("throw", ["put"]) }, "PUT", `/v1/orgs/${org.orgId}/policy`, admin.key, {
      requireExpiration: true,
      maxLifetimeDays: null,
    });
    expect(res.status, res.text).toBe(503);
    const policy = await callWith({}, "GET", `/v1/orgs/${org.orgId}/policy`, org.adminKey);
    expect(policy.status, policy.text).toBe(200);
    expect(JSON.parse(policy.text).requireExpiration).toBe(false);
  });

  it("a D1 outage while setting the policy answers 503 and puts the enforced policy back", async () => {
    const admin = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "b", orgRole: "admin", expiresInDays: 30 });
    const reads = faultyD1("throw", () => false); // single statements work; the write batch fails
    const res = await callWith({ DB: reads }, "PUT", `/v1/orgs/${org.orgId}/policy`, admin.key, { requireExpiration: true, maxLifetimeDays: null });
    expect(res.status, res.text).toBe(503);
    // The org's never-expiring admin key still works: the policy was not left enforced.
    const still = await callWith({}, "GET", `/v1/orgs/${org.orgId}/policy`, org.adminKey);
    expect(still.status, still.text).toBe(200);
    expect(JSON.parse(still.text).requireExpiration).toBe(false);
  });
});
