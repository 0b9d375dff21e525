import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { authorityFor } from "../src/durable-objects/key-authority";
import { verifyKey } from "../src/verification/verify-key";
import { createKeyAs, expireBeforeFirstUse, revoke, seedApp, setPolicy, storedRow, writeCounts } from "./key-fixtures";
import { call, createOrg, expectStatus } from "./helpers";

type Org = Awaited<ReturnType<typeof createOrg>>;
const DAY_MS = 86_400_000;
const keyPath = (orgId: string, keyId: string) => `/v1/orgs/${orgId}/keys/${keyId}`;

let org: Org;
let appX: string;
let appY: string;

beforeAll(async () => {
  org = await createOrg("Edit Co");
  appX = await seedApp(org.orgId, "app-x");
  appY = await seedApp(org.orgId, "app-y");
});

const patch = (keyId: string, body: unknown, key = org.adminKey, orgId = org.orgId) =>
  call("PATCH", keyPath(orgId, keyId), { key, body });

describe("PATCH /v1/orgs/{orgId}/keys/{keyId} — happy paths", () => {
  it("renames a key and leaves everything else as it was", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Old name", scopes: ["app:read"], expiresInDays: 30 });
    const res = await patch(created.id, { name: "  New name  " });
    expectStatus(res, 200);
    const { key: _secret, name: _name, updatedAt: _u, ...unchanged } = created;
    expect(res.body).toMatchObject({ ...unchanged, name: "New name" });
    expect(Date.parse(res.body.updatedAt)).toBeGreaterThan(Date.parse(created.updatedAt));
    // The secret is untouched and still verifies.
    expect((await verifyKey(env, created.key, { permission: "app:read" })).code).toBe("VALID");
  });

  it("changes the org role and replaces the app roles of an RBAC key", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Apps", orgRole: "member", appRoles: [{ appId: appX, role: "reader" }] });
    const res = await patch(created.id, { orgRole: "none", appRoles: [{ appId: appY, role: "uploader" }] });
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ orgRole: "none", appRoles: [{ appId: appY, role: "uploader" }] });
    expect((await verifyKey(env, created.key, { permission: "app:upload", app: appY })).code).toBe("VALID");
    expect((await verifyKey(env, created.key, { permission: "app:read", app: appX })).code).toBe("INSUFFICIENT_PERMISSIONS");
    expect((await verifyKey(env, created.key, { permission: "org:read" })).code).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it("keeps the app roles when only the org role changes, and drops them when raised to admin", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Apps", orgRole: "none", appRoles: [{ appId: appX, role: "admin" }] });
    const member = await patch(created.id, { orgRole: "member" });
    expectStatus(member, 200);
    expect(member.body.appRoles).toEqual([{ appId: appX, role: "admin" }]);
    const admin = await patch(created.id, { orgRole: "admin" });
    expectStatus(admin, 200);
    expect(admin.body).toMatchObject({ orgRole: "admin", appRoles: [] });
    const roles = await env.DB.prepare("select count(*) as n from key_app_roles where key_id = ?").bind(created.id).first<{ n: number }>();
    expect(roles!.n).toBe(0);
  });

  it("sets, moves and removes an expiration", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Temp", scopes: ["app:read"] });
    const preset = await patch(created.id, { expiresInDays: 60 });
    expectStatus(preset, 200);
    expect(Math.abs(Date.parse(preset.body.expiresAt) - (Date.now() + 60 * DAY_MS))).toBeLessThan(60_000);
    const at = new Date(Date.now() + 5 * DAY_MS).toISOString();
    const explicit = await patch(created.id, { expiresAt: at });
    expect(explicit.body.expiresAt).toBe(at);
    const never = await patch(created.id, { expiresAt: null });
    expectStatus(never, 200);
    expect(never.body.expiresAt).toBeNull();
    expect((await storedRow(created.id))!.expires_at).toBeNull();
  });

  it("writes an audit entry for the edit, naming the acting key and each changed field before and after", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Audited", scopes: ["app:read"] });
    expectStatus(await patch(created.id, { name: "Audited 2", scopes: ["app:read", "app:publish"] }), 200);
    const entry = await env.DB.prepare("select * from audit_log where target_id = ? and action = 'key.update'")
      .bind(created.id)
      .first<Record<string, string>>();
    expect(entry).toMatchObject({ actor_key_id: org.adminKeyId, org_id: org.orgId });
    const { changes } = JSON.parse(entry!.details!);
    expect(Object.keys(changes).sort()).toEqual(["name", "scopes"]);
    expect(changes).toEqual({
      name: { before: "Audited", after: "Audited 2" },
      scopes: { before: ["app:read"], after: ["app:read", "app:publish"] },
    });
  });
});

describe("PATCH /v1/orgs/{orgId}/keys/{keyId} — the change is in force when the call returns", () => {
  it("a key edited down from admin loses access on its very next call", async () => {
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Soon member", orgRole: "admin" });
    // Its access is now in the KV cache.
    expectStatus(await call("GET", `/v1/orgs/${org.orgId}/keys`, { key: target.key }), 200);
    expectStatus(await patch(target.id, { orgRole: "member" }), 200);
    const next = await call("GET", `/v1/orgs/${org.orgId}/keys`, { key: target.key });
    expectStatus(next, 403);
  });

  it("a key whose scopes are removed fails verification of that scope immediately", async () => {
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Deployer", scopes: ["app:publish", "project:deploy"] });
    expect((await verifyKey(env, target.key, { permission: "project:deploy" })).code).toBe("VALID");
    expectStatus(await patch(target.id, { scopes: ["app:publish"] }), 200);
    expect((await verifyKey(env, target.key, { permission: "project:deploy" })).code).toBe("INSUFFICIENT_PERMISSIONS");
    expect((await verifyKey(env, target.key, { permission: "app:publish" })).code).toBe("VALID");
  });

  it("a key given an expiration is judged by it on its next verification", async () => {
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Dated", scopes: ["app:read"] });
    expect((await verifyKey(env, target.key)).valid).toBe(true);
    const res = await patch(target.id, { expiresInDays: 30 });
    expectStatus(res, 200);
    const after = await verifyKey(env, target.key, { now: Date.parse(res.body.expiresAt) + 1 });
    expect(after.code).toBe("EXPIRED");
  });
});

describe("PATCH /v1/orgs/{orgId}/keys/{keyId} — errors write nothing", () => {
  let rbac: { id: string };
  let scoped: { id: string };
  let legacy: { id: string };
  beforeAll(async () => {
    rbac = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "R", orgRole: "none", appRoles: [{ appId: appX, role: "reader" }] });
    scoped = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "S", scopes: ["app:read"] });
    legacy = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "L", mode: "upload" });
  });

  const cases: [string, () => string, () => unknown, number, string | null][] = [
    ["an empty edit", () => rbac.id, () => ({}), 400, null],
    ["scopes on an RBAC key", () => rbac.id, () => ({ scopes: ["app:read"] }), 400, "scopes"],
    ["an org role on a scoped key", () => scoped.id, () => ({ orgRole: "member" }), 400, "orgRole"],
    ["app roles on a scoped key", () => scoped.id, () => ({ appRoles: [] }), 400, "appRoles"],
    ["empty scopes", () => scoped.id, () => ({ scopes: [] }), 400, "scopes"],
    ["an edit that leaves an RBAC key no access", () => rbac.id, () => ({ appRoles: [] }), 400, "orgRole"],
    ["app roles beside the admin org role", () => rbac.id, () => ({ orgRole: "admin", appRoles: [{ appId: appX, role: "reader" }] }), 400, "appRoles"],
    ["an app that does not exist", () => rbac.id, () => ({ appRoles: [{ appId: "0000000000aaaaaaaaaa", role: "reader" }] }), 400, "appRoles.0.appId"],
    ["a preset and a time together", () => scoped.id, () => ({ expiresInDays: 30, expiresAt: new Date(Date.now() + DAY_MS).toISOString() }), 400, "expiresAt"],
    ["a time in the past", () => scoped.id, () => ({ expiresAt: "2001-01-01T00:00:00.000Z" }), 400, "expiresAt"],
    ["an unknown field", () => scoped.id, () => ({ kind: "rbac" }), 400, null],
    ["a name of the wrong type", () => scoped.id, () => ({ name: ["x"] }), 400, "name"],
    ["a name of control characters", () => scoped.id, () => ({ name: "a\u0000b" }), 400, "name"],
    ["malformed JSON", () => scoped.id, () => '{"name": "x"', 400, null],
    ["any edit of a legacy key", () => legacy.id, () => ({ name: "Renamed" }), 409, null],
    ["giving a legacy key roles", () => legacy.id, () => ({ orgRole: "admin" }), 409, null],
    ["giving a legacy key scopes", () => legacy.id, () => ({ scopes: ["app:read"] }), 409, null],
    ["a key that does not exist", () => "0000000000aaaaaaaaaa", () => ({ name: "x" }), 404, null],
  ];
  for (const [what, target, body, status, field] of cases) {
    it(`refuses ${what} with ${status}${field ? ` naming ${field}` : ""}`, async () => {
      const before = await writeCounts();
      const res = await patch(target(), body());
      expectStatus(res, status);
      if (field) expect(res.body.error.details.issues.map((i: { field: string }) => i.field), res.text).toContain(field);
      if (status === 409) expect(res.body.error.message).toMatch(/^Legacy keys cannot be edited/);
      expect(await writeCounts()).toEqual(before);
    });
  }

  it("refuses a body that is not JSON with 415", async () => {
    const before = await writeCounts();
    const res = await call("PATCH", keyPath(org.orgId, scoped.id), { key: org.adminKey, body: "name=x", headers: { "content-type": "text/plain" } });
    expectStatus(res, 415);
    expect(await writeCounts()).toEqual(before);
  });

  it("answers 404 for a revoked key", async () => {
    const gone = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Gone", scopes: ["app:read"] });
    await revoke(gone.id, org.orgId);
    const before = await writeCounts();
    expectStatus(await patch(gone.id, { name: "Back" }), 404);
    expect(await writeCounts()).toEqual(before);
  });

  it("enforces the org's policy on a new expiration", async () => {
    const policyOrg = await createOrg("Edit policy");
    const caller = await createKeyAs(policyOrg.adminKey, policyOrg.orgId, { kind: "rbac", name: "Admin", orgRole: "admin", expiresInDays: 60 });
    const target = await createKeyAs(policyOrg.adminKey, policyOrg.orgId, { kind: "scoped", name: "T", scopes: ["app:read"], expiresInDays: 30 });
    await setPolicy(policyOrg.orgId, { requireExpiration: true, maxLifetimeDays: 60 });
    const before = await writeCounts();
    const never = await patch(target.id, { expiresAt: null }, caller.key, policyOrg.orgId);
    expectStatus(never, 400);
    expect(never.body.error.details.code).toBe("EXPIRATION_REQUIRED");
    const tooLong = await patch(target.id, { expiresInDays: 90 }, caller.key, policyOrg.orgId);
    expectStatus(tooLong, 400);
    expect(tooLong.body.error.details).toMatchObject({ code: "LIFETIME_TOO_LONG", issues: [{ field: "expiresInDays" }] });
    expect(await writeCounts()).toEqual(before);
    // The cap counts from the key's creation, so 60 more days from now is already too long; 30 is not.
    expectStatus(await patch(target.id, { expiresInDays: 60 }, caller.key, policyOrg.orgId), 400);
    expectStatus(await patch(target.id, { expiresInDays: 30 }, caller.key, policyOrg.orgId), 200);
    // A rename does not touch the expiration, so the policy has nothing to say about it.
    expectStatus(await patch(target.id, { name: "T2" }, caller.key, policyOrg.orgId), 200);
  });

  it("applies an edit only to the version of the key it was judged against", async () => {
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Versioned", scopes: ["app:read"] });
    const row = (await storedRow(target.id))!;
    expectStatus(await patch(target.id, { scopes: ["app:read", "project:deploy"] }), 200);
    const audit = { actorKeyId: null, requestId: "test" };
    const stale = await authorityFor(env, target.id).update(target.id, org.orgId, { scopes: ["app:read"] }, audit, row.updated_at as number);
    expect(stale).toMatchObject({ ok: false, code: "CONFLICT" });
    expect((await storedRow(target.id))!.scopes).toBe('["app:read","project:deploy"]');
  });
});

describe("PATCH /v1/orgs/{orgId}/keys/{keyId} — security", () => {
  it("answers 404 for another organization's key, and changes nothing there", async () => {
    const other = await createOrg("Edit other");
    const before = await writeCounts();
    expectStatus(await patch(other.adminKeyId, { name: "pwned" }, org.adminKey, other.orgId), 404);
    expectStatus(await patch(other.adminKeyId, { name: "pwned" }), 404);
    expect(await writeCounts()).toEqual(before);
  });

  it("answers 401 to an expired caller and to a revoked caller", async () => {
    const target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Target", scopes: ["app:read"] });
    const expired = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Expiring", orgRole: "admin" });
    await expireBeforeFirstUse(expired.id);
    const revoked = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Revoked", orgRole: "admin" });
    await revoke(revoked.id, org.orgId);
    const before = await writeCounts();
    expectStatus(await patch(target.id, { name: "x" }, expired.key), 401);
    expectStatus(await patch(target.id, { name: "x" }, revoked.key), 401);
    expectStatus(await patch(target.id, { name: "x" }), 200);
    expect((await writeCounts()).audit).toBe(before.audit + 1);
  });

  it("answers 403 to a member key", async () => {
    const member = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Member", orgRole: "member" });
    expectStatus(await patch(member.id, { orgRole: "admin" }, member.key), 403);
  });

  describe("a scoped key manager (apiKeyManagement, app:publish, org:read)", () => {
    let manager: { key: string; id: string };
    let publisher: { key: string; id: string };
    beforeAll(async () => {
      manager = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Manager", scopes: ["apiKeyManagement", "app:publish", "org:read"] });
      publisher = await createKeyAs(manager.key, org.orgId, { kind: "scoped", name: "Publisher", scopes: ["app:publish"] });
    });

    it("can edit a key within its own access", async () => {
      expectStatus(await patch(publisher.id, { name: "Publisher 2", scopes: ["app:publish", "org:read"] }, manager.key), 200);
    });

    const refused: [string, () => string, () => unknown, () => string][] = [
      ["give a key a scope it lacks", () => publisher.id, () => ({ scopes: ["project:deploy"] }), () => "project:deploy@*"],
      ["rename a key more powerful than itself", () => org.adminKeyId, () => ({ name: "Mine now" }), () => "org:admin@*"],
      ["edit a more powerful key down to its own level", () => org.adminKeyId, () => ({ orgRole: "member" }), () => "org:admin@*"],
      ["add a scope it lacks to itself", () => manager.id, () => ({ scopes: ["apiKeyManagement", "app:publish", "org:read", "project:deploy"] }), () => "project:deploy@*"],
    ];
    for (const [what, target, body, missing] of refused) {
      it(`cannot ${what}: 403 with what it lacks, nothing written`, async () => {
        const before = await writeCounts();
        const res = await patch(target(), body(), manager.key);
        expectStatus(res, 403);
        expect(res.body.error.details.missing, res.text).toContain(missing());
        expect(await writeCounts()).toEqual(before);
      });
    }

    it("with credits and a rate limit, cannot take them off itself, but can lower them (METERING_BEYOND_CALLER)", async () => {
      const metered = await createKeyAs(org.adminKey, org.orgId, {
        kind: "scoped",
        name: "Metered manager",
        scopes: ["apiKeyManagement", "app:publish"],
        credits: 50,
        rateLimits: [{ limit: 20, periodSeconds: 60 }],
      });
      const before = await writeCounts();
      for (const body of [{ credits: null, rateLimits: [] }, { credits: null }, { rateLimits: [] }, { credits: 51 }]) {
        const res = await patch(metered.id, body, metered.key);
        expectStatus(res, 403);
        expect(res.body.error.details.reason, res.text).toBe("METERING_BEYOND_CALLER");
      }
      expect(await writeCounts()).toEqual(before);
      const lowered = await patch(metered.id, { credits: 40, rateLimits: [{ limit: 10, periodSeconds: 60 }] }, metered.key);
      expectStatus(lowered, 200);
      expect(lowered.body).toMatchObject({ credits: { remaining: 40 }, rateLimits: [{ limit: 10, periodSeconds: 60 }] });
    });

    it("cannot give an RBAC key roles on an app it cannot administer", async () => {
      const rbac = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Member", orgRole: "member" });
      const before = await writeCounts();
      const res = await patch(rbac.id, { appRoles: [{ appId: appX, role: "reader" }] }, manager.key);
      expectStatus(res, 403);
      expect(res.body.error.details.missing).toEqual([`app:read@${appX}`, `app:admin@${appX}`]);
      expect(await writeCounts()).toEqual(before);
    });
  });
});
