import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../src/domain/crypto";
import { grantsOf } from "../src/domain/permissions";
import { authorityFor, type KeyAuthority } from "../src/durable-objects/key-authority";
import { guardEnv } from "../src/storage/guarded-bindings";
import { keyRecordName, recordOf } from "../src/storage/key-record";
import { StorageUnavailableError, verifyKey } from "../src/verification/verify-key";
import { ConsoleClient } from "./console-helpers";
import { faultyD1, faultyKV } from "./fault-bindings";
import { call, createOrg, expectStatus } from "./helpers";
import { authoritySettled, createKeyAs, setPolicy, storedRow, writeCounts } from "./key-fixtures";

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Guards Co");
});

const keysPath = (orgId = org.orgId) => `/v1/orgs/${orgId}/keys`;

/** The cached record of a key as a location that has not yet seen its revocation still holds it. */
async function staleActiveRecord(key: string, keyId: string) {
  const row = (await import("../src/storage/key-record")).loadKeyRow;
  const { db } = await import("../src/storage/db");
  const current = (await row(db(env.DB), keyId))!;
  await env.KEYS_KV.put(keyRecordName(await hashKey(key)), JSON.stringify(recordOf({ ...current, revokedAt: null })));
}

describe("management calls and console sessions are judged by the key's authority, not a cache", () => {
  it("a revoked admin key whose active record is still cached cannot create a key", async () => {
    const admin = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "soon revoked", orgRole: "admin" });
    expectStatus(await call("DELETE", `${keysPath()}/${admin.id}`, { key: org.adminKey }), 204);
    await authoritySettled(admin.id);
    await staleActiveRecord(admin.key, admin.id);
    expect((await verifyKey(env, admin.key, { mode: "cached" })).valid).toBe(true); // the stale cache, as a cached-mode route sees it
    const res = await call("POST", keysPath(), { key: admin.key, body: { kind: "rbac", name: "backdoor", orgRole: "admin" } });
    expectStatus(res, 401);
    expect(res.body.error.details.reason).toBe("REVOKED");
  });

  it("a console session of a revoked key ends even where its active record is still cached", async () => {
    const admin = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "console admin", orgRole: "admin" });
    const client = new ConsoleClient();
    await client.signIn(admin.key);
    expectStatus(await call("DELETE", `${keysPath()}/${admin.id}`, { key: org.adminKey }), 204);
    await authoritySettled(admin.id);
    await staleActiveRecord(admin.key, admin.id);
    const res = await client.get("/console/keys");
    expect(res.location).toBe("/console/sign-in?ended=REVOKED");
  });
});

describe("storage faults inside the key authority are 503 with Retry-After", () => {
  for (const op of ["revoke", "regenerate", "edit", "reveal"] as const) {
    it(`${op} with D1 failing inside the authority answers 503 and changes nothing`, async () => {
      const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: `fault ${op}`, scopes: ["app:read"], secure: false });
      await runInDurableObject(authorityFor(env, target.id), (instance: KeyAuthority) => {
        instance.bindings = { ...env, DB: faultyD1("throw") };
      });
      const before = await writeCounts();
      const path = `${keysPath()}/${target.id}`;
      const res =
        op === "revoke"
          ? await call("DELETE", path, { key: org.adminKey })
          : op === "regenerate"
            ? await call("POST", `${path}/regenerate`, { key: org.adminKey })
            : op === "reveal"
              ? await call("POST", `${path}/reveal`, { key: org.adminKey })
              : await call("PATCH", path, { key: org.adminKey, body: { name: "renamed" } });
      expectStatus(res, 503);
      expect(res.body.error.code).toBe("SERVICE_UNAVAILABLE");
      expect(res.headers.get("retry-after")).toBe("5");
      expect(await writeCounts()).toEqual(before);
      await runInDurableObject(authorityFor(env, target.id), (instance: KeyAuthority) => {
        instance.bindings = null;
      });
      expect((await verifyKey(env, target.key)).valid).toBe(true);
    });
  }
});

describe("expiry is access", () => {
  const inHours = (h: number) => new Date(Date.now() + h * 3_600_000).toISOString();

  it("a key manager expiring in 24 h cannot remove its own expiry, nor create a key that outlives it", async () => {
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "day manager", orgRole: "admin", expiresAt: inHours(24) });
    const before = await writeCounts();
    const own = await call("PATCH", `${keysPath()}/${manager.id}`, { key: manager.key, body: { expiresAt: null } });
    expectStatus(own, 403);
    expect(own.body.error.details.reason).toBe("OUTLIVES_CALLER");
    const forever = await call("POST", keysPath(), { key: manager.key, body: { kind: "scoped", name: "forever", scopes: ["app:read"] } });
    expectStatus(forever, 403);
    const longer = await call("POST", keysPath(), { key: manager.key, body: { kind: "scoped", name: "longer", scopes: ["app:read"], expiresInDays: 30 } });
    expectStatus(longer, 403);
    expect(longer.body.error.details.issues[0].field).toBe("expiresInDays");
    expect(await writeCounts()).toEqual(before);
    // Within its own lifetime it may.
    expectStatus(await call("POST", keysPath(), { key: manager.key, body: { kind: "scoped", name: "short", scopes: ["app:read"], expiresAt: inHours(12) } }), 201);
  });

  it("a key manager expiring in 24 h cannot regenerate or reveal a key that never expires", async () => {
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "day manager 2", orgRole: "admin", expiresAt: inHours(24) });
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "forever target", scopes: ["app:read"], secure: false });
    for (const action of ["regenerate", "reveal"]) {
      const res = await call("POST", `${keysPath()}/${target.id}/${action}`, { key: manager.key });
      expectStatus(res, 403);
      expect(res.body.error.details.reason).toBe("OUTLIVES_CALLER");
    }
    expect((await verifyKey(env, target.key)).valid).toBe(true);
  });

  it("an expired key is not brought back by an edit; regenerate with a new expiry is the way", async () => {
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "expired", scopes: ["app:read"], expiresInDays: 30 });
    await env.DB.prepare("update api_keys set expires_at = ? where id = ?").bind(Date.now() - 1000, target.id).run();
    await env.KEYS_KV.delete(keyRecordName(await hashKey(target.key)));
    expect((await verifyKey(env, target.key)).code).toBe("EXPIRED");
    const edit = await call("PATCH", `${keysPath()}/${target.id}`, { key: org.adminKey, body: { expiresAt: null } });
    expectStatus(edit, 409);
    expect(edit.body.error.details.reason).toBe("KEY_EXPIRED");
    expect((await verifyKey(env, target.key)).code).toBe("EXPIRED");
    const renewed = await call("POST", `${keysPath()}/${target.id}/regenerate`, { key: org.adminKey, body: { expiresInDays: 30 } });
    expectStatus(renewed, 200);
    expect((await verifyKey(env, target.key)).valid).toBe(false);
    expect((await verifyKey(env, renewed.body.key)).valid).toBe(true);
  });
});

describe("rights are judged on the key as it is when the operation runs", () => {
  it("the authority refuses regenerate, reveal and revoke to a caller that no longer covers the key", async () => {
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "weak manager", scopes: ["apiKeyManagement", "app:read"] });
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "raised", scopes: ["app:read"], secure: false });
    // The weaker manager judged the key at app:read; meanwhile an admin raises it.
    expectStatus(await call("PATCH", `${keysPath()}/${target.id}`, { key: org.adminKey, body: { scopes: ["app:read", "project:deploy"] } }), 200);
    const actor = { actorKeyId: manager.id, requestId: "test", grants: grantsOf({ kind: "scoped", scopes: ["apiKeyManagement", "app:read"] }), expiresAt: null };
    const authority = authorityFor(env, target.id);
    for (const outcome of [
      await authority.regenerate(target.id, org.orgId, actor),
      await authority.reveal(target.id, org.orgId, actor),
      await authority.revoke(target.id, org.orgId, actor),
    ]) {
      expect(outcome).toMatchObject({ ok: false, code: "FORBIDDEN", details: { missing: ["project:deploy@*"] } });
    }
    expect((await verifyKey(env, target.key)).valid).toBe(true);
  });

  it("a key without apiKeyManagement cannot reveal a key whose access it covers", async () => {
    const holder = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "no management", scopes: ["app:read", "app:publish"] });
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "plain", scopes: ["app:read"], secure: false });
    const res = await call("POST", `${keysPath()}/${target.id}/reveal`, { key: holder.key });
    expectStatus(res, 403);
    expect(res.body.error.details.required).toBe("apiKeyManagement");
    expect(res.text).not.toContain(target.key);
  });
});

describe("the organization's last admin key", () => {
  it("cannot revoke itself unless the call says it means it", async () => {
    const solo = await createOrg("Solo admin");
    const path = `${keysPath(solo.orgId)}/${solo.adminKeyId}`;
    const refused = await call("DELETE", path, { key: solo.adminKey });
    expectStatus(refused, 409);
    expect(refused.body.error.details.reason).toBe("LAST_ADMIN_KEY");
    expect(refused.body.error.message).toContain("force=true");
    expect((await verifyKey(env, solo.adminKey)).valid).toBe(true);
    // An expired admin key is no way back either.
    await createKeyAs(solo.adminKey, solo.orgId, { kind: "rbac", name: "soon expired", orgRole: "admin", expiresInDays: 30 });
    await env.DB.prepare("update api_keys set expires_at = ? where org_id = ? and name = 'soon expired'").bind(Date.now() - 1000, solo.orgId).run();
    expectStatus(await call("DELETE", path, { key: solo.adminKey }), 409);
    expectStatus(await call("DELETE", `${path}?force=true`, { key: solo.adminKey }), 204);
    expect((await verifyKey(env, solo.adminKey)).code).toBe("REVOKED");
  });

  it("can be revoked once another live admin key exists", async () => {
    const duo = await createOrg("Two admins");
    const second = await createKeyAs(duo.adminKey, duo.orgId, { kind: "legacy", name: "legacy all", mode: "all" });
    expectStatus(await call("DELETE", `${keysPath(duo.orgId)}/${duo.adminKeyId}`, { key: second.key }), 204);
    const last = await call("DELETE", `${keysPath(duo.orgId)}/${second.id}`, { key: second.key });
    expectStatus(last, 409);
    expect((await storedRow(second.id))!.revoked_at).toBeNull();
  });
});

describe("the org policy fails closed", () => {
  it("in the cached mode, a KV fault while reading the policy of a cached key this isolate has not seen is a storage fault, not 'no policy'", async () => {
    const policyOrg = await createOrg("Policy fault");
    const key = await createKeyAs(policyOrg.adminKey, policyOrg.orgId, { kind: "scoped", name: "never expires", scopes: ["app:read"] });
    await setPolicy(policyOrg.orgId, { requireExpiration: true, maxLifetimeDays: null });
    // The key's active record is cached (a hit), but this isolate has never verified the key.
    const { loadKeyRow } = await import("../src/storage/key-record");
    const { db } = await import("../src/storage/db");
    await env.KEYS_KV.put(keyRecordName(await hashKey(key.key)), JSON.stringify(recordOf((await loadKeyRow(db(env.DB), key.id))!)));
    const kv = faultyKV("throw", ["get"]);
    // Only the policy read fails: the key's record is read as usual.
    const partial = new Proxy(env.KEYS_KV, {
      get(target, prop) {
        if (prop === "get") return (name: string | string[], type: unknown) => (typeof name === "string" && name.startsWith("policy:") ? kv.get(name) : target.get(name as string, type as "json"));
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    await expect(verifyKey(guardEnv({ ...env, KEYS_KV: partial }), key.key, { mode: "cached" })).rejects.toBeInstanceOf(StorageUnavailableError);
    expect((await verifyKey(env, key.key)).code).toBe("POLICY_VIOLATION");
  });
});

