import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { KEY_PATTERN } from "../src/domain/key-format";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus } from "./helpers";
import { createKeyAs, storedRow, writeCounts } from "./key-fixtures";

type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;
let other: Org;

beforeAll(async () => {
  org = await createOrg("Lifecycle Co");
  other = await createOrg("Other Co");
});

const keyPath = (orgId: string, keyId: string, action = "") => `/v1/orgs/${orgId}/keys/${keyId}${action}`;
const scoped = (scopes: string[], extra: Record<string, unknown> = {}) =>
  createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "CI", scopes, ...extra });

describe("DELETE /v1/orgs/{orgId}/keys/{keyId}", () => {
  it("revokes a key: it fails on its very next request, even with its record cached", async () => {
    const key = await scoped(["app:read"]);
    expect((await verifyKey(env, key.key)).code).toBe("VALID"); // now cached in KV
    const res = await call("DELETE", keyPath(org.orgId, key.id), { key: org.adminKey });
    expectStatus(res, 204);
    expect((await verifyKey(env, key.key)).code).toBe("REVOKED");
    const listed = await call("GET", `/v1/orgs/${org.orgId}/keys?limit=100`, { key: org.adminKey });
    expect(listed.body.keys.map((k: { id: string }) => k.id)).not.toContain(key.id);
  });

  it("refuses the revoked key as a management caller on its next call", async () => {
    const manager = await scoped(["apiKeyManagement", "app:read"]);
    expectStatus(await call("GET", `/v1/orgs/${org.orgId}/keys`, { key: manager.key }), 200);
    expectStatus(await call("DELETE", keyPath(org.orgId, manager.id), { key: org.adminKey }), 204);
    const res = await call("GET", `/v1/orgs/${org.orgId}/keys`, { key: manager.key });
    expectStatus(res, 401);
    expect(res.body.error.details.reason).toBe("REVOKED");
  });

  it("is irreversible: a second revoke, a get, a regenerate and an edit all answer 404", async () => {
    const key = await scoped(["app:read"]);
    expectStatus(await call("DELETE", keyPath(org.orgId, key.id), { key: org.adminKey }), 204);
    expectStatus(await call("DELETE", keyPath(org.orgId, key.id), { key: org.adminKey }), 404);
    expectStatus(await call("GET", keyPath(org.orgId, key.id), { key: org.adminKey }), 404);
    expectStatus(await call("POST", keyPath(org.orgId, key.id, "/regenerate"), { key: org.adminKey }), 404);
    expectStatus(await call("PATCH", keyPath(org.orgId, key.id), { key: org.adminKey, body: { name: "back" } }), 404);
  });

  it("records who revoked what in the audit log", async () => {
    const key = await scoped(["app:read"]);
    const res = await call("DELETE", keyPath(org.orgId, key.id), { key: org.adminKey });
    const entry = await env.DB.prepare("select * from audit_log where action = 'key.revoke' and target_id = ?")
      .bind(key.id)
      .first<Record<string, unknown>>();
    expect(entry).toMatchObject({ actor_key_id: org.adminKeyId, request_id: res.headers.get("x-request-id") });
  });

  it("answers 404 for another organization's key and leaves it working", async () => {
    const theirs = await createKeyAs(other.adminKey, other.orgId, { kind: "scoped", name: "Theirs", scopes: ["app:read"] });
    expectStatus(await call("DELETE", keyPath(org.orgId, theirs.id), { key: org.adminKey }), 404);
    expectStatus(await call("DELETE", keyPath(other.orgId, theirs.id), { key: org.adminKey }), 404);
    expect((await verifyKey(env, theirs.key)).code).toBe("VALID");
  });

  it("refuses a caller revoking a key more powerful than itself, and changes nothing", async () => {
    const manager = await scoped(["apiKeyManagement"]);
    const before = await writeCounts();
    const res = await call("DELETE", keyPath(org.orgId, org.adminKeyId), { key: manager.key });
    expectStatus(res, 403);
    expect(res.body.error.details.missing.length).toBeGreaterThan(0);
    expect(await writeCounts()).toEqual(before);
    expect((await verifyKey(env, org.adminKey)).code).toBe("VALID");
  });

  it("refuses a caller without apiKeyManagement with 403", async () => {
    const reader = await scoped(["app:read"]);
    const target = await scoped(["app:read"]);
    expectStatus(await call("DELETE", keyPath(org.orgId, target.id), { key: reader.key }), 403);
    expect((await verifyKey(env, target.key)).code).toBe("VALID");
  });

  it("rejects a malformed key id with 400", async () => {
    const res = await call("DELETE", keyPath(org.orgId, "not-an-id"), { key: org.adminKey });
    expectStatus(res, 400);
    expect(res.body.error.details.issues[0].field).toBe("keyId");
  });
});

describe("POST /v1/orgs/{orgId}/keys/{keyId}/regenerate", () => {
  it("returns a new secret once; the old one stops verifying, the new one works, id, name and access stay", async () => {
    const key = await scoped(["app:publish"], { name: "Deploy", expiresInDays: 30 });
    expect((await verifyKey(env, key.key)).code).toBe("VALID");
    const res = await call("POST", keyPath(org.orgId, key.id, "/regenerate"), { key: org.adminKey });
    expectStatus(res, 200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.body.key).toMatch(KEY_PATTERN);
    expect(res.body.key).not.toBe(key.key);
    expect(res.body).toMatchObject({ id: key.id, name: "Deploy", scopes: ["app:publish"], expiresAt: key.expiresAt, secure: true });
    expect(res.body.prefix).toBe(res.body.key.slice(0, res.body.prefix.length));
    expect((await verifyKey(env, key.key)).valid).toBe(false);
    const fresh = await verifyKey(env, res.body.key, { permission: "app:publish" });
    expect(fresh.code).toBe("VALID");
  });

  it("keeps a secure key hash-only and re-encrypts a non-secure key", async () => {
    const secure = await scoped(["app:read"]);
    const regenerated = await call("POST", keyPath(org.orgId, secure.id, "/regenerate"), { key: org.adminKey });
    const row = await storedRow(secure.id);
    expect(row!.secret_ciphertext).toBeNull();
    expect(JSON.stringify(row)).not.toContain(regenerated.body.key.slice(26, 40));

    const plain = await scoped(["app:read"], { secure: false });
    const again = await call("POST", keyPath(org.orgId, plain.id, "/regenerate"), { key: org.adminKey });
    const revealed = await call("POST", keyPath(org.orgId, plain.id, "/reveal"), { key: org.adminKey });
    expectStatus(revealed, 200);
    expect(revealed.body.key).toBe(again.body.key);
  });

  it("refuses to regenerate a key more powerful than the caller", async () => {
    const manager = await scoped(["apiKeyManagement"]);
    const before = await writeCounts();
    expectStatus(await call("POST", keyPath(org.orgId, org.adminKeyId, "/regenerate"), { key: manager.key }), 403);
    expect(await writeCounts()).toEqual(before);
    expect((await verifyKey(env, org.adminKey)).code).toBe("VALID");
  });

  it("answers 404 for another organization's key", async () => {
    const theirs = await createKeyAs(other.adminKey, other.orgId, { kind: "scoped", name: "Theirs", scopes: ["app:read"] });
    expectStatus(await call("POST", keyPath(org.orgId, theirs.id, "/regenerate"), { key: org.adminKey }), 404);
    expect((await verifyKey(env, theirs.key)).code).toBe("VALID");
  });

  it("regenerates legacy keys too", async () => {
    const legacy = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "Old", mode: "upload" });
    const res = await call("POST", keyPath(org.orgId, legacy.id, "/regenerate"), { key: org.adminKey });
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ kind: "legacy", mode: "upload" });
    expect((await verifyKey(env, res.body.key, { permission: "app:upload" })).code).toBe("VALID");
  });
});

describe("POST /v1/orgs/{orgId}/keys/{keyId}/reveal", () => {
  it("reveals a non-secure key to a key manager, and audits it without the secret", async () => {
    const plain = await scoped(["app:read"], { secure: false });
    const res = await call("POST", keyPath(org.orgId, plain.id, "/reveal"), { key: org.adminKey });
    expectStatus(res, 200);
    expect(res.body).toEqual({ id: plain.id, key: plain.key });
    expect(res.headers.get("cache-control")).toBe("no-store");
    const entries = await env.DB.prepare("select * from audit_log where action = 'key.reveal' and target_id = ?").bind(plain.id).all();
    expect(entries.results).toHaveLength(1);
    expect(JSON.stringify(entries.results)).not.toContain(plain.key.slice(26));
  });

  it("refuses to reveal a secure key with 409 and writes nothing", async () => {
    const secure = await scoped(["app:read"]);
    const before = await writeCounts();
    const res = await call("POST", keyPath(org.orgId, secure.id, "/reveal"), { key: org.adminKey });
    expectStatus(res, 409);
    expect(res.body.error.code).toBe("CONFLICT");
    expect(res.text).not.toContain("kgw_");
    expect(await writeCounts()).toEqual(before);
  });

  it("refuses callers without apiKeyManagement, or less powerful than the key", async () => {
    const plain = await scoped(["app:read", "project:deploy"], { secure: false });
    const reader = await scoped(["app:read"]);
    const weakManager = await scoped(["apiKeyManagement", "app:read"]);
    const a = await call("POST", keyPath(org.orgId, plain.id, "/reveal"), { key: reader.key });
    const b = await call("POST", keyPath(org.orgId, plain.id, "/reveal"), { key: weakManager.key });
    expectStatus(a, 403);
    expectStatus(b, 403);
    expect(a.text + b.text).not.toContain(plain.key.slice(26));
  });

  it("answers 404 for another organization's key", async () => {
    const theirs = await createKeyAs(other.adminKey, other.orgId, { kind: "scoped", name: "Theirs", scopes: ["app:read"], secure: false });
    const res = await call("POST", keyPath(org.orgId, theirs.id, "/reveal"), { key: org.adminKey });
    expectStatus(res, 404);
    expect(res.text).not.toContain("kgw_");
  });
});
