import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus } from "./helpers";
import { createKeyAs, writeCounts } from "./key-fixtures";

type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;

beforeAll(async () => {
  org = await createOrg("Policy Co");
});

const policyPath = (orgId: string) => `/v1/orgs/${orgId}/policy`;
const put = (body: unknown, key = org.adminKey, orgId = org.orgId) => call("PUT", policyPath(orgId), { key, body });

describe("GET and PUT /v1/orgs/{orgId}/policy", () => {
  it("starts with no policy and returns what was set", async () => {
    const fresh = await createOrg("Fresh policy");
    const admin = await createKeyAs(fresh.adminKey, fresh.orgId, { kind: "rbac", name: "Expiring admin", orgRole: "admin", expiresInDays: 30 });
    const first = await call("GET", policyPath(fresh.orgId), { key: fresh.adminKey });
    expectStatus(first, 200);
    expect(first.body).toEqual({
      requireExpiration: false,
      maxLifetimeDays: null,
      requireNetworksForAdmin: false,
      leakedKeyAction: "revoke",
      unusedKeyDays: null,
      expireUnusedKeys: false,
      rateLimits: null,
    });
    // The org's first admin key never expires: it may not set a policy that would lock itself out.
    const lockout = await put({ requireExpiration: true, maxLifetimeDays: 90 }, fresh.adminKey, fresh.orgId);
    expectStatus(lockout, 409);
    expect(lockout.body.error.details.code).toBe("EXPIRATION_REQUIRED");
    expectStatus(await put({ requireExpiration: true, maxLifetimeDays: 90 }, admin.key, fresh.orgId), 200);
    expect((await call("GET", policyPath(fresh.orgId), { key: fresh.adminKey })).body.error.details.reason).toBe("POLICY_VIOLATION");
    const after = await call("GET", policyPath(fresh.orgId), { key: admin.key });
    expect(after.body).toMatchObject({ requireExpiration: true, maxLifetimeDays: 90, requireNetworksForAdmin: false, leakedKeyAction: "revoke" });
  });

  it("is in force for every existing key before the call returns, and lifting it restores them", async () => {
    const fresh = await createOrg("Many keys");
    const never = [];
    for (let i = 0; i < 20; i++) {
      never.push(await createKeyAs(fresh.adminKey, fresh.orgId, { kind: "scoped", name: `k${i}`, scopes: ["app:read"] }));
    }
    const shortLived = await createKeyAs(fresh.adminKey, fresh.orgId, { kind: "scoped", name: "short", scopes: ["app:read"], expiresInDays: 30 });
    for (const k of never) expect((await verifyKey(env, k.key)).code).toBe("VALID"); // all cached
    // Set the policy with a key that complies with it, or the caller would lock itself out.
    const policyAdmin = await createKeyAs(fresh.adminKey, fresh.orgId, { kind: "rbac", name: "Policy admin", orgRole: "admin", expiresInDays: 30 });
    expectStatus(await put({ requireExpiration: true, maxLifetimeDays: 60 }, policyAdmin.key, fresh.orgId), 200);
    const results = await Promise.all(never.map((k) => verifyKey(env, k.key)));
    expect(results.map((r) => r.code)).toEqual(never.map(() => "POLICY_VIOLATION"));
    expect(results[0]!.valid === false && results[0]!.message).toMatch(/expiration/);
    expect((await verifyKey(env, shortLived.key)).code).toBe("VALID");
    // The org's original admin key has no expiry: refused on its next management call, saying why.
    const locked = await call("GET", `/v1/orgs/${fresh.orgId}/keys`, { key: fresh.adminKey });
    expectStatus(locked, 401);
    expect(locked.body.error.details.reason).toBe("POLICY_VIOLATION");

    expectStatus(await put({ requireExpiration: false, maxLifetimeDays: null }, policyAdmin.key, fresh.orgId), 200);
    expect((await verifyKey(env, never[0]!.key)).code).toBe("VALID");
  }, 20_000); // 20 keys made and verified around two policy changes: slow on a busy machine, never wrong

  it("caps the lifetime: a 365-day key breaks a 90-day cap, and new keys must fit it", async () => {
    const fresh = await createOrg("Cap");
    const long = await createKeyAs(fresh.adminKey, fresh.orgId, { kind: "scoped", name: "long", scopes: ["app:read"], expiresInDays: 365 });
    const admin = await createKeyAs(fresh.adminKey, fresh.orgId, { kind: "rbac", name: "a", orgRole: "admin", expiresInDays: 30 });
    expectStatus(await put({ requireExpiration: false, maxLifetimeDays: 90 }, admin.key, fresh.orgId), 200);
    const result = await verifyKey(env, long.key);
    expect(result.code).toBe("POLICY_VIOLATION");
    const refused = await call("POST", `/v1/orgs/${fresh.orgId}/keys`, {
      key: admin.key,
      body: { kind: "scoped", name: "too long", scopes: ["app:read"], expiresInDays: 365 },
    });
    expectStatus(refused, 400);
    expect(refused.body.error.details.code).toBe("LIFETIME_TOO_LONG");
  });

  it("records the change in the audit log", async () => {
    const res = await put({ requireExpiration: false, maxLifetimeDays: null });
    expectStatus(res, 200);
    const entry = await env.DB.prepare("select * from audit_log where action = 'policy.update' and request_id = ?")
      .bind(res.headers.get("x-request-id"))
      .first<Record<string, unknown>>();
    expect(entry).toMatchObject({ actor_key_id: org.adminKeyId, target_id: org.orgId });
  });

  it("rejects invalid policies with 400 naming the field, changing nothing", async () => {
    const before = await writeCounts();
    const bodies = [
      {},
      { requireExpiration: "yes", maxLifetimeDays: null },
      { requireExpiration: true, maxLifetimeDays: 0 },
      { requireExpiration: true, maxLifetimeDays: 3651 },
      { requireExpiration: true, maxLifetimeDays: 1.5 },
      { requireExpiration: true, maxLifetimeDays: null, extra: true },
    ];
    for (const body of bodies) {
      const res = await put(body);
      expectStatus(res, 400);
      expect(res.body.error.details.issues.length).toBeGreaterThan(0);
    }
    expect(await writeCounts()).toEqual(before);
    expect((await call("GET", policyPath(org.orgId), { key: org.adminKey })).body.maxLifetimeDays).toBeNull();
  });

  it("needs org:admin to change and apiKeyManagement to read; other orgs get 404", async () => {
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "M", scopes: ["apiKeyManagement"] });
    expectStatus(await call("GET", policyPath(org.orgId), { key: manager.key }), 200);
    expectStatus(await put({ requireExpiration: true, maxLifetimeDays: null }, manager.key), 403);
    const other = await createOrg("Other");
    expectStatus(await call("GET", policyPath(other.orgId), { key: org.adminKey }), 404);
    expectStatus(await put({ requireExpiration: true, maxLifetimeDays: null }, org.adminKey, other.orgId), 404);
    expect((await call("GET", policyPath(other.orgId), { key: other.adminKey })).body.requireExpiration).toBe(false);
  });
});
