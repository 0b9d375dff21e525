import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { verifyKey } from "../src/verification/verify-key";
import { createKeyAs, expireBeforeFirstUse, revoke, seedApp } from "./key-fixtures";
import { call, createOrg, expectStatus, sleep } from "./helpers";

type Org = Awaited<ReturnType<typeof createOrg>>;
const keyPath = (orgId: string, keyId: string) => `/v1/orgs/${orgId}/keys/${keyId}`;

let org: Org;
let other: Org;
let appX: string;

beforeAll(async () => {
  org = await createOrg("Get Co");
  other = await createOrg("Get other");
  appX = await seedApp(org.orgId);
});

describe("GET /v1/orgs/{orgId}/keys/{keyId} — happy paths", () => {
  it("returns the key as it was created, without its secret", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, {
      kind: "rbac",
      name: "Deploy",
      orgRole: "none",
      appRoles: [{ appId: appX, role: "developer" }],
      expiresInDays: 30,
      secure: false,
    });
    const res = await call("GET", keyPath(org.orgId, created.id), { key: org.adminKey });
    expectStatus(res, 200);
    const { key: _secret, ...withoutSecret } = created;
    expect(res.body).toEqual(withoutSecret);
    expect(res.text).not.toContain(created.key);
    expect(res.body).not.toHaveProperty("key");
  });

  it("shows lastUsedAt once the key has been used", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Used", scopes: ["app:read"] });
    const writes: Promise<unknown>[] = [];
    expect((await verifyKey(env, created.key, { waitUntil: (p) => writes.push(p) })).valid).toBe(true);
    await Promise.all(writes);
    // The use travels with the isolate's next usage report, within USAGE_FLUSH_MS (50 ms here; issue 22).
    let res = await call("GET", keyPath(org.orgId, created.id), { key: org.adminKey });
    for (let i = 0; i < 100 && res.body.lastUsedAt === null; i++) {
      await sleep(20);
      res = await call("GET", keyPath(org.orgId, created.id), { key: org.adminKey });
    }
    expectStatus(res, 200);
    expect(Date.now() - Date.parse(res.body.lastUsedAt)).toBeLessThan(60_000);
  });

  it("shows an expired key with status expired", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "Old", mode: "read", expiresInDays: 30 });
    await expireBeforeFirstUse(created.id);
    const res = await call("GET", keyPath(org.orgId, created.id), { key: org.adminKey });
    expectStatus(res, 200);
    expect(res.body.status).toBe("expired");
    expect(Date.parse(res.body.expiresAt)).toBeLessThan(Date.now());
  });
});

describe("GET /v1/orgs/{orgId}/keys/{keyId} — errors", () => {
  it("answers 404 for a key id that does not exist in the org", async () => {
    const res = await call("GET", keyPath(org.orgId, "0000000000aaaaaaaaaa"), { key: org.adminKey });
    expectStatus(res, 404);
    expect(res.body.error.code).toBe("NOT_FOUND");
  });

  it("answers 400 naming keyId for something that is not an id", async () => {
    const res = await call("GET", keyPath(org.orgId, "NOT-AN-ID"), { key: org.adminKey });
    expectStatus(res, 400);
    expect(res.body.error.details.issues[0].field).toBe("keyId");
  });

  it("answers 404 for a revoked key", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "Gone", mode: "read" });
    await revoke(created.id, org.orgId);
    expectStatus(await call("GET", keyPath(org.orgId, created.id), { key: org.adminKey }), 404);
  });
});

describe("GET /v1/orgs/{orgId}/keys/{keyId} — security", () => {
  it("answers 404, never 403, for another org's key, whichever org is in the path", async () => {
    const a = await call("GET", keyPath(other.orgId, other.adminKeyId), { key: org.adminKey });
    expectStatus(a, 404);
    // Own org in the path, other org's key id: as absent as a key that never existed.
    const b = await call("GET", keyPath(org.orgId, other.adminKeyId), { key: org.adminKey });
    expectStatus(b, 404);
    expect(b.body.error.message).toBe("No such key.");
  });

  it("answers 401 without a key, and to an expired or revoked caller", async () => {
    expectStatus(await call("GET", keyPath(org.orgId, org.adminKeyId)), 401);
    const expired = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Expiring", orgRole: "admin" });
    await expireBeforeFirstUse(expired.id);
    expectStatus(await call("GET", keyPath(org.orgId, org.adminKeyId), { key: expired.key }), 401);
    const revoked = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Revoked", orgRole: "admin" });
    await revoke(revoked.id, org.orgId);
    expectStatus(await call("GET", keyPath(org.orgId, org.adminKeyId), { key: revoked.key }), 401);
  });

  it("answers 403 to a key without apiKeyManagement", async () => {
    const legacyWrite = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "Writer", mode: "write" });
    expectStatus(await call("GET", keyPath(org.orgId, legacyWrite.id), { key: legacyWrite.key }), 403);
  });
});
