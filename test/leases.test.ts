import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../src/domain/crypto";
import { leaseMs } from "../src/domain/lease";
import { Edge } from "../src/verification/edge";
import { verifyKey } from "../src/verification/verify-key";
import { untouchable, untouchableStorage } from "./fault-bindings";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { createKeyAs, setPolicy } from "./key-fixtures";

/** The lease mode seen from one isolate: what a live lease costs, when it is renewed, what a change waits for. */

const T = leaseMs(env.LEASE_MS);
let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Lease Co");
});

describe("leases", () => {
  it("an isolate holding a live lease answers with no network I/O at all", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "hot", scopes: ["app:read"] });
    const edge = new Edge();
    const now = Date.now();
    expect((await verifyKey(env, key.key, { edge, now })).code).toBe("VALID");
    const touched: string[] = [];
    const offline = { ...env, ...untouchableStorage(touched), ORG_AUTHORITY: untouchable<Env["ORG_AUTHORITY"]>("ORG_AUTHORITY", touched) };
    for (let i = 0; i < 20; i++) expect((await verifyKey(offline, key.key, { edge, now: now + 1 })).code).toBe("VALID");
    expect(touched).toEqual([]);
  });

  it("a key in steady use renews its lease before it ends, off the response path", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "steady", scopes: ["app:read"] });
    const edge = new Edge();
    const now = Date.now();
    await verifyKey(env, key.key, { edge, now });
    const hash = [...edge.keyLeases.keys()].at(-1)!;
    const first = edge.keyLeases.get(hash)!.until;
    // What runs off the response path (a renewal, and the usage counts' flush), awaited before looking.
    const background: Promise<unknown>[] = [];
    const waitUntil = (p: Promise<unknown>) => void background.push(p);
    // Early in the lease: nothing to renew.
    await verifyKey(env, key.key, { edge, now: now + 1, waitUntil });
    await Promise.all(background);
    expect(edge.keyLeases.get(hash)!.until).toBe(first);
    // In its last quarter: answered from the lease, renewed in the background.
    const late = first - T * 0.1;
    expect((await verifyKey(env, key.key, { edge, now: late, waitUntil })).code).toBe("VALID");
    await Promise.all(background);
    expect(edge.keyLeases.get(hash)!.until).toBeGreaterThan(first);
  });

  it("a key's lease is live strictly before its end: at the very millisecond it ends, a revoked key is asked for and refused", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "to the edge", scopes: ["app:read"] });
    const edge = new Edge();
    expect((await verifyKey(env, key.key, { edge })).code).toBe("VALID");
    const hash = await hashKey(key.key);
    const until = edge.keyLeases.get(hash)!.until;
    expect(edge.heldKey(hash, until - 1)).toBeDefined();
    expect(edge.heldKey(hash, until)).toBeUndefined();
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey }), 204);
    // The revoke returned once the lease had ended. Judged by a clock 1 ms before its end, the lease
    // still answers (that is what it promises, and why the revoke waited); at its end, it does not.
    expect((await verifyKey(env, key.key, { edge, now: until - 1 })).code).toBe("VALID");
    expect((await verifyKey(env, key.key, { edge, now: until })).code).toBe("REVOKED");
  });

  it("an org's lease is live strictly before its end: at the very millisecond it ends, the new policy applies", async () => {
    const policed = await createOrg("Lease edge policy");
    const key = await createKeyAs(policed.adminKey, policed.orgId, { kind: "scoped", name: "no expiry", scopes: ["app:read"] });
    const edge = new Edge();
    expect((await verifyKey(env, key.key, { edge })).code).toBe("VALID");
    const until = edge.orgLeases.get(policed.orgId)!.until;
    // A policy the key breaks; the change waits out the org's leases before it returns.
    await setPolicy(policed.orgId, { requireExpiration: true, maxLifetimeDays: null });
    expect((await verifyKey(env, key.key, { edge, now: until - 1 })).code).toBe("VALID");
    expect((await verifyKey(env, key.key, { edge, now: until })).code).toBe("POLICY_VIOLATION");
  });

  it("a revoke waits out an outstanding lease, and does not wait when none is out", async () => {
    const leased = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "leased", scopes: ["app:read"] });
    const idle = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "idle", scopes: ["app:read"] });
    const edge = new Edge();
    expect((await verifyKey(env, leased.key, { edge })).code).toBe("VALID");
    const held = [...edge.keyLeases.values()].at(-1)!.until; // the edge's lease, on its own clock
    const timed = async (keyId: string) => {
      const started = Date.now();
      expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${keyId}`, { key: org.adminKey }), 204);
      return { started, returned: Date.now() };
    };
    // The management call's own key is leased too (strict checks are not); keep the idle key unleased.
    const idleRevoke = await timed(idle.id);
    const leasedRevoke = await timed(leased.id);
    // The revoke of the leased key returned only once the edge's lease had ended, however long the
    // idle key's revoke took before it; the idle key's did not wait a lease out.
    expect(leasedRevoke.returned).toBeGreaterThanOrEqual(held);
    expect(idleRevoke.returned - idleRevoke.started).toBeLessThan(T);
    // The edge's lease has ended by the time the revoke returned: its next verification asks.
    expect((await verifyKey(env, leased.key, { edge })).code).toBe("REVOKED");
  });

  it("verifications that began before a revoke may finish with the old answer; none that begin after it", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "overlap", scopes: ["app:read"] });
    const edge = new Edge();
    await verifyKey(env, key.key, { edge });
    const held = [...edge.keyLeases.values()].at(-1)!.until;
    const revoking = call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey });
    await sleep(T / 2);
    // Overlaps the revoke, so either answer is allowed; while the edge's lease is live it answers from it.
    const during = Date.now();
    const overlapping = (await verifyKey(env, key.key, { edge })).code;
    if (during < held) expect(overlapping).toBe("VALID");
    else expect(["VALID", "REVOKED"]).toContain(overlapping);
    expectStatus(await revoking, 204);
    expect((await verifyKey(env, key.key, { edge })).code).toBe("REVOKED");
  });
});
