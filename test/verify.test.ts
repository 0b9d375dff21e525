import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { mintKey, newId } from "../src/domain/key-format";
import { keyRecordName } from "../src/storage/key-record";
import { hashKey } from "../src/domain/crypto";
import { call, createOrg, expectStatus } from "./helpers";
import { authoritySettled, createKeyAs, expireBeforeFirstUse, seedApp, setPolicy } from "./key-fixtures";

let org: Awaited<ReturnType<typeof createOrg>>;
let appId: string;
beforeAll(async () => {
  org = await createOrg("Verify Co");
  appId = await seedApp(org.orgId, "verify-app");
});

const verify = (body: unknown, headers: Record<string, string> = {}) => call("POST", "/v1/keys/verify", { body, headers });
/** The strict mode needs a verifier credential: the org's admin key holds keys:verify. */
const verifyStrictly = (body: Record<string, unknown>) => call("POST", "/v1/keys/verify", { key: org.adminKey, body: { ...body, strict: true } });

describe("POST /v1/keys/verify", () => {
  it("answers VALID with the key's identity and grants", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "CI", scopes: ["app:publish"] });
    const res = await verify({ key: key.key, permission: "app:publish" });
    expectStatus(res, 200);
    expect(res.body).toMatchObject({
      valid: true,
      code: "VALID",
      keyId: key.id,
      orgId: org.orgId,
      name: "CI",
      kind: "scoped",
      scopes: ["app:publish"],
      permissions: [{ permission: "app:publish", app: null }],
      expiresAt: null,
    });
    expect(res.text).not.toContain(key.key);
  });

  it("checks a permission on an app for RBAC keys", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Up", orgRole: "none", appRoles: [{ appId, role: "uploader" }] });
    expect((await verify({ key: key.key, permission: "app:upload", app: appId })).body.code).toBe("VALID");
    expect((await verify({ key: key.key, permission: "app:upload" })).body.code).toBe("INSUFFICIENT_PERMISSIONS");
    expect((await verify({ key: key.key, permission: "app:publish", app: appId })).body.code).toBe("INSUFFICIENT_PERMISSIONS");
    expect((await verify({ key: key.key, permission: "app:upload", app: newId() })).body.code).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it("answers MALFORMED for a damaged key without reading storage, and NOT_FOUND for an unknown one, with no identity", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "x", scopes: ["app:read"] });
    const typo = key.key.slice(0, 30) + (key.key[30] === "a" ? "b" : "a") + key.key.slice(31);
    const malformed = await verify({ key: typo });
    expect(malformed.body).toEqual({ valid: false, code: "MALFORMED", message: expect.any(String) });
    expect(await env.KEYS_KV.get(keyRecordName(await hashKey(typo)))).toBeNull();
    const unknown = await verify({ key: await mintKey(newId(), env.KEY_TAG_SECRET) });
    expect(unknown.body).toEqual({ valid: false, code: "NOT_FOUND", message: expect.any(String) });
  });

  it("answers EXPIRED and POLICY_VIOLATION, deciding at request time", async () => {
    const expiring = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "old", scopes: ["app:read"] });
    await expireBeforeFirstUse(expiring.id);
    expect((await verify({ key: expiring.key })).body.code).toBe("EXPIRED");
    const fresh = await createOrg("Policy verify");
    const forever = await createKeyAs(fresh.adminKey, fresh.orgId, { kind: "scoped", name: "forever", scopes: ["app:read"] });
    expect((await verify({ key: forever.key })).body.code).toBe("VALID");
    await setPolicy(fresh.orgId, { requireExpiration: true, maxLifetimeDays: null });
    const res = await verify({ key: forever.key });
    expect(res.body).toMatchObject({ valid: false, code: "POLICY_VIOLATION", message: expect.stringMatching(/expiration/) });
  });

  it("answers REVOKED right after a revoke, in both the cached and the strict mode", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "doomed", scopes: ["app:read"] });
    expect((await verify({ key: key.key })).body.code).toBe("VALID");
    expect((await verifyStrictly({ key: key.key })).body.code).toBe("VALID");
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey }), 204);
    expect((await verify({ key: key.key })).body.code).toBe("REVOKED");
    expect((await verifyStrictly({ key: key.key })).body.code).toBe("REVOKED");
  });

  it("the lease and strict modes see a change even where the cached mode still holds the old record", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "strict", scopes: ["app:read"] });
    expect((await verify({ key: key.key })).body.code).toBe("VALID");
    // Simulate another location whose cache is stale: put the old record back behind the authority's back.
    const hash = await hashKey(key.key);
    expect((await verify({ key: key.key, mode: "cached" })).body.code).toBe("VALID");
    await authoritySettled(key.id);
    const stale = await env.KEYS_KV.get(keyRecordName(hash));
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey }), 204);
    await authoritySettled(key.id);
    await env.KEYS_KV.put(keyRecordName(hash), stale!);
    expect((await verify({ key: key.key, mode: "cached" })).body.code).toBe("VALID"); // the stale cache, as a far location could see it
    expect((await verify({ key: key.key })).body.code).toBe("REVOKED"); // the default: leases, in force everywhere
    expect((await verifyStrictly({ key: key.key })).body.code).toBe("REVOKED");
  });

  it("rejects bad requests with 400: unknown permission, unknown fields, oversized keys", async () => {
    expectStatus(await verify({ key: "x", permission: "root" }), 400);
    expectStatus(await verify({ key: "x", extra: true }), 400);
    expectStatus(await verify({ key: "k".repeat(10_000) }), 400);
    expectStatus(await verify({}), 400);
  });

  it("limits failed verifications per client address: past the limit only a key this location leases is answered", async () => {
    const ip = { "cf-connecting-ip": "2001:db8:be:ef::1" };
    const codes: number[] = [];
    for (let i = 0; i < 32; i++) codes.push((await verify({ key: await mintKey(newId(), env.KEY_TAG_SECRET) }, ip)).status);
    expect(codes.at(-1), codes.join(",")).toBe(429);
    const good = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "good", scopes: ["app:read"] });
    // Not yet leased here: looking it up would cost storage, so the limited address is refused.
    expectStatus(await verify({ key: good.key }, ip), 429);
    // Once another client's verification leases it, the limited address is answered from that lease.
    expectStatus(await verify({ key: good.key }, { "cf-connecting-ip": "2001:db8:ca:fe::1" }), 200);
    const served = await verify({ key: good.key }, ip);
    expectStatus(served, 200);
    expect(served.body.code, served.text).toBe("VALID");
  });
});
