import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../src/index";
import { D1_TIMEOUT_MS } from "../src/storage/guarded-bindings";
import { createOrg } from "./helpers";
import { orgAuthorityFor, type OrgAuthority } from "../src/durable-objects/org-authority";
import { verifyKey } from "../src/verification/verify-key";
import { faultyD1, faultyKV, unreachableAuthorities } from "./fault-bindings";
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

/** Gives one org's authority other bindings (a store failing in the object itself), or its own back. */
async function useOrgBindings(orgId: string, bindings: Env | null) {
  await runInDurableObject(orgAuthorityFor(env, orgId), (instance: OrgAuthority) => {
    instance.bindings = bindings;
  });
}

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Faulty Co");
});

describe("storage faults", () => {
  it("a KV outage does not touch the lease mode, and makes the cached mode fail closed (503), never VALID", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "v", scopes: ["app:read"] });
    for (const fault of ["throw", "stall"] as const) {
      const verify = async (mode?: string) => {
        const ctx = createExecutionContext();
        const res = await worker.fetch(
          new Request("https://gateway.test/v1/keys/verify", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: key.key, mode }) }),
          { ...env, KEYS_KV: faultyKV(fault) },
          ctx,
        );
        await waitOnExecutionContext(ctx);
        return { status: res.status, headers: res.headers, text: await res.text() };
      };
      const leased = await verify();
      expect(leased.status, leased.text).toBe(200);
      expect(JSON.parse(leased.text).code).toBe("VALID"); // the authorities are the source, not KV
      const cached = await verify("cached");
      expect(cached.status, cached.text).toBe(503);
      expect(cached.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(cached.text).not.toContain("VALID");
    }
  }, 15_000);

  it("an authority outage makes the gateway answer 503 with Retry-After, without forwarding", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "g", scopes: ["app:read"] });
    const res = await worker.fetch(
      new Request("https://gateway.test/gw/demo/apps/01jd8x9b2c3d4e5f6g7h/x", { headers: { authorization: `Bearer ${key.key}` } }),
      { ...env, KEY_AUTHORITY: unreachableAuthorities() },
      createExecutionContext(),
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(res.headers.get("x-demo-upstream")).toBeNull();
    expect((await res.json()) as object).toMatchObject({ error: { code: "SERVICE_UNAVAILABLE" } });
  });

  it("an authority outage makes management authentication fail closed with 503 and Retry-After", async () => {
    const res = await callWith({ KEY_AUTHORITY: unreachableAuthorities() }, "GET", `/v1/orgs/${org.orgId}/keys`, org.adminKey);
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

  it("a KV outage while setting the policy still sets it: D1 and the org's leases are the truth, KV only the cached mode's copy", async () => {
    const policyOrg = await createOrg("KV down policy");
    const admin = await createKeyAs(policyOrg.adminKey, policyOrg.orgId, { kind: "rbac", name: "a", orgRole: "admin", expiresInDays: 30 });
    await useOrgBindings(policyOrg.orgId, { ...env, KEYS_KV: faultyKV("throw", ["put"]) });
    const res = await callWith({}, "PUT", `/v1/orgs/${policyOrg.orgId}/policy`, admin.key, { requireExpiration: true, maxLifetimeDays: null });
    expect(res.status, res.text).toBe(200);
    expect((await verifyKey(env, policyOrg.adminKey)).code).toBe("POLICY_VIOLATION");
    await useOrgBindings(policyOrg.orgId, null);
  });

  it("a D1 outage while setting the policy answers 503 and changes nothing", async () => {
    const policyOrg = await createOrg("D1 down policy");
    const admin = await createKeyAs(policyOrg.adminKey, policyOrg.orgId, { kind: "rbac", name: "b", orgRole: "admin", expiresInDays: 30 });
    await useOrgBindings(policyOrg.orgId, { ...env, DB: faultyD1("throw", () => false) }); // reads work, the write batch fails
    const res = await callWith({}, "PUT", `/v1/orgs/${policyOrg.orgId}/policy`, admin.key, { requireExpiration: true, maxLifetimeDays: null });
    expect(res.status, res.text).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    await useOrgBindings(policyOrg.orgId, null);
    // The org's never-expiring admin key still works: the policy was not changed.
    const still = await callWith({}, "GET", `/v1/orgs/${policyOrg.orgId}/policy`, policyOrg.adminKey);
    expect(still.status, still.text).toBe(200);
    expect(JSON.parse(still.text).requireExpiration).toBe(false);
  });
});
