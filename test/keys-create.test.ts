import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { decryptSecret, hashKey } from "../src/domain/crypto";
import { KEY_PATTERN, newId } from "../src/domain/key-format";
import { grantsOf } from "../src/domain/permissions";
import { assertCanGrant } from "../src/routes/keys/access-input";
import { verifyKey } from "../src/verification/verify-key";
import { createKeyAs, expireBeforeFirstUse, revoke, seedApp, setPolicy, storedRow, writeCounts } from "./key-fixtures";
import { call, createOrg, expectStatus } from "./helpers";

const DAY_MS = 86_400_000;

let org: Awaited<ReturnType<typeof createOrg>>;
let appX: string;
let appY: string;
const keysPath = () => `/v1/orgs/${org.orgId}/keys`;

beforeAll(async () => {
  org = await createOrg("Create Co");
  appX = await seedApp(org.orgId, "app-x");
  appY = await seedApp(org.orgId, "app-y");
});

/** Every 8-character window of the key's secret part (everything after the id). */
function secretWindows(key: string): string[] {
  const secretPart = key.slice(key.lastIndexOf("_") + 1);
  const windows: string[] = [];
  for (let i = 0; i + 8 <= secretPart.length; i++) windows.push(secretPart.slice(i, i + 8));
  return windows;
}

/** Asserts no column of the stored row holds the key or any 8+ character piece of its secret. */
function expectNoSecretIn(row: Record<string, unknown>, key: string) {
  for (const [column, value] of Object.entries(row)) {
    const text = String(value);
    expect(text, `column ${column}`).not.toContain(key);
    for (const w of secretWindows(key)) expect(text.includes(w), `column ${column} contains "${w}" of the secret`).toBe(false);
  }
}

describe("POST /v1/orgs/{orgId}/keys — happy paths", () => {
  it("creates an RBAC key with per-app roles and shows its secret once, uncached", async () => {
    const res = await call("POST", keysPath(), {
      key: org.adminKey,
      body: { kind: "rbac", name: "  CI/CD Deploy ", orgRole: "member", appRoles: [{ appId: appX, role: "uploader" }] },
    });
    expectStatus(res, 201);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.body.key).toMatch(KEY_PATTERN);
    expect(res.body).toMatchObject({
      orgId: org.orgId,
      name: "CI/CD Deploy",
      kind: "rbac",
      secure: true,
      orgRole: "member",
      appRoles: [{ appId: appX, role: "uploader" }],
      scopes: null,
      mode: null,
      status: "active",
      lastUsedAt: null,
      expiresAt: null,
    });
    expect(res.body.key.startsWith(res.body.prefix)).toBe(true);
    expect(res.body).not.toHaveProperty("keyHash");
    expect(res.body).not.toHaveProperty("secretCiphertext");

    // The key works for exactly what it was given.
    expect((await verifyKey(env, res.body.key, { permission: "app:upload", app: appX })).code).toBe("VALID");
    expect((await verifyKey(env, res.body.key, { permission: "app:upload", app: appY })).code).toBe("INSUFFICIENT_PERMISSIONS");
    expect((await verifyKey(env, res.body.key, { permission: "org:read" })).code).toBe("VALID");
  });

  it("creates an RBAC admin key that holds every app", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Second admin", orgRole: "admin" });
    expect(created.appRoles).toEqual([]);
    expect((await verifyKey(env, created.key, { permission: "app:admin", app: appY })).code).toBe("VALID");
  });

  it("creates a scoped key that holds only its scopes, duplicates dropped", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, {
      kind: "scoped",
      name: "CI pipeline",
      scopes: ["app:publish", "project:deploy", "app:publish"],
    });
    expect(created).toMatchObject({ kind: "scoped", scopes: ["app:publish", "project:deploy"], orgRole: null, appRoles: [] });
    expect((await verifyKey(env, created.key, { permission: "project:deploy" })).code).toBe("VALID");
    expect((await verifyKey(env, created.key, { permission: "project:read-rc" })).code).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it("creates a legacy key with its mode", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "Old uploader", mode: "upload" });
    expect(created).toMatchObject({ kind: "legacy", mode: "upload", orgRole: null, scopes: null });
    expect((await verifyKey(env, created.key, { permission: "app:upload", app: appX })).code).toBe("VALID");
    expect((await verifyKey(env, created.key, { permission: "app:publish", app: appX })).code).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it("sets an expiration from a preset number of days", async () => {
    const before = Date.now();
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Temp", scopes: ["app:read"], expiresInDays: 90 });
    const expiresAt = Date.parse(created.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 90 * DAY_MS);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 90 * DAY_MS);
  });

  it("sets an explicit future expiration, and null means never", async () => {
    const at = new Date(Date.now() + 3 * DAY_MS).toISOString();
    const dated = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "Dated", mode: "read", expiresAt: at });
    expect(dated.expiresAt).toBe(at);
    const never = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "Never", mode: "read", expiresAt: null });
    expect(never.expiresAt).toBeNull();
  });

  it("stores a secure key only as its SHA-256 hash: nothing in its row reveals the secret", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Secure", scopes: ["app:read"] });
    const row = (await storedRow(created.id))!;
    expect(row.secure).toBe(1);
    expect(row.key_hash).toBe(await hashKey(created.key));
    expect(row.secret_ciphertext).toBeNull();
    expectNoSecretIn(row, created.key);
  });

  it("stores a non-secure key encrypted: the ciphertext decrypts to the key and no column holds it in plain text", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Revealable", scopes: ["app:read"], secure: false });
    expect(created.secure).toBe(false);
    const row = (await storedRow(created.id))!;
    expect(row.secure).toBe(0);
    expect(typeof row.secret_ciphertext).toBe("string");
    expect(await decryptSecret(env.KEY_ENCRYPTION_SECRET, row.secret_ciphertext as string, created.id)).toBe(created.key);
    expectNoSecretIn(row, created.key);
  });

  it("writes one audit entry naming the acting key, without key material", async () => {
    const created = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "Audited", mode: "read", secure: false });
    const entries = await env.DB.prepare("select * from audit_log where target_id = ?").bind(created.id).all<Record<string, unknown>>();
    expect(entries.results).toHaveLength(1);
    expect(entries.results[0]).toMatchObject({ action: "key.create", actor_key_id: org.adminKeyId, org_id: org.orgId });
    expectNoSecretIn(entries.results[0]!, created.key);
  });

  it("creates a key with roles on 100 apps", async () => {
    const wide = await createOrg("Wide Co");
    const appIds = Array.from({ length: 100 }, (_, i) => newId(Date.now() + i));
    await env.DB.prepare(
      "insert into apps (id, org_id, name, created_at) select value, ?1, 'app ' || value, ?2 from json_each(?3)",
    ).bind(wide.orgId, Date.now(), JSON.stringify(appIds)).run();
    const created = await createKeyAs(wide.adminKey, wide.orgId, {
      kind: "rbac",
      name: "Everywhere",
      appRoles: appIds.map((appId) => ({ appId, role: "reader" })),
    });
    expect(created.appRoles).toHaveLength(100);
    expect((await verifyKey(env, created.key, { permission: "app:read", app: appIds[99] })).code).toBe("VALID");
  });

  it("lets a scoped key with apiKeyManagement create keys within its own scopes", async () => {
    const manager = await createKeyAs(org.adminKey, org.orgId, {
      kind: "scoped",
      name: "Key manager",
      scopes: ["apiKeyManagement", "app:publish"],
    });
    const created = await createKeyAs(manager.key, org.orgId, { kind: "scoped", name: "Publisher", scopes: ["app:publish"] });
    const row = (await storedRow(created.id))!;
    expect(row.created_by).toBe(manager.id);
  });
});

describe("POST /v1/orgs/{orgId}/keys — errors write nothing", () => {
  const future = () => new Date(Date.now() + DAY_MS).toISOString();
  const cases: [string, () => unknown, string | null][] = [
    ["a preset and an explicit time together", () => ({ kind: "legacy", name: "k", mode: "read", expiresInDays: 30, expiresAt: future() }), "expiresInDays"],
    ["an explicit time in the past", () => ({ kind: "legacy", name: "k", mode: "read", expiresAt: new Date(Date.now() - 1000).toISOString() }), "expiresAt"],
    ["a preset that is not offered", () => ({ kind: "legacy", name: "k", mode: "read", expiresInDays: 45 }), "expiresInDays"],
    ["a time that is not ISO", () => ({ kind: "legacy", name: "k", mode: "read", expiresAt: "tomorrow" }), "expiresAt"],
    ["an RBAC key with no access at all", () => ({ kind: "rbac", name: "k", orgRole: "none" }), "orgRole"],
    ["app roles beside the admin org role", () => ({ kind: "rbac", name: "k", orgRole: "admin", appRoles: [{ appId: appX, role: "reader" }] }), "appRoles"],
    ["an app that does not exist", () => ({ kind: "rbac", name: "k", appRoles: [{ appId: "0000000000aaaaaaaaaa", role: "reader" }] }), "appRoles.0.appId"],
    ["the same app twice", () => ({ kind: "rbac", name: "k", appRoles: [{ appId: appX, role: "reader" }, { appId: appX, role: "admin" }] }), "appRoles.1.appId"],
    ["an unknown app role", () => ({ kind: "rbac", name: "k", appRoles: [{ appId: appX, role: "owner" }] }), "appRoles.0.role"],
    ["scopes on an RBAC key", () => ({ kind: "rbac", name: "k", orgRole: "member", scopes: ["app:read"] }), null],
    ["an org role on a scoped key", () => ({ kind: "scoped", name: "k", scopes: ["app:read"], orgRole: "member" }), null],
    ["a mode on a scoped key", () => ({ kind: "scoped", name: "k", scopes: ["app:read"], mode: "all" }), null],
    ["a scoped key without scopes", () => ({ kind: "scoped", name: "k", scopes: [] }), "scopes"],
    ["a scope outside the catalog", () => ({ kind: "scoped", name: "k", scopes: ["root"] }), "scopes.0"],
    ["a legacy key without a mode", () => ({ kind: "legacy", name: "k" }), "mode"],
    ["an unknown kind", () => ({ kind: "superuser", name: "k" }), "kind"],
    ["no kind", () => ({ name: "k", mode: "read" }), "kind"],
    ["an unknown field", () => ({ kind: "legacy", name: "k", mode: "read", owner: "me" }), null],
    ["a name of the wrong type", () => ({ kind: "legacy", name: 5, mode: "read" }), "name"],
    ["secure of the wrong type", () => ({ kind: "legacy", name: "k", mode: "read", secure: "yes" }), "secure"],
    ["an empty name", () => ({ kind: "legacy", name: "   ", mode: "read" }), "name"],
    ["a name of control characters", () => ({ kind: "legacy", name: "\u0000\u0007\u001b[31m", mode: "read" }), "name"],
    ["a name that is too long", () => ({ kind: "legacy", name: "x".repeat(101), mode: "read" }), "name"],
    ["an array body", () => [], null],
  ];

  for (const [what, body, field] of cases) {
    it(`refuses ${what} with 400${field ? ` naming ${field}` : ""}`, async () => {
      const before = await writeCounts();
      const res = await call("POST", keysPath(), { key: org.adminKey, body: body() });
      expectStatus(res, 400);
      expect(res.body.error.code).toBe("INVALID_REQUEST");
      if (field) expect(res.body.error.details.issues.map((i: { field: string }) => i.field), res.text).toContain(field);
      expect(await writeCounts()).toEqual(before);
    });
  }

  it("refuses an app of another organization exactly like an app that does not exist", async () => {
    const other = await createOrg("Other Co");
    const foreignApp = await seedApp(other.orgId);
    const before = await writeCounts();
    const res = await call("POST", keysPath(), {
      key: org.adminKey,
      body: { kind: "rbac", name: "k", appRoles: [{ appId: foreignApp, role: "reader" }] },
    });
    expectStatus(res, 400);
    expect(res.body.error.details.issues).toEqual([{ field: "appRoles.0.appId", message: "is not an app of this organization" }]);
    expect(await writeCounts()).toEqual(before);
  });

  it("refuses malformed JSON with 400", async () => {
    const before = await writeCounts();
    const res = await call("POST", keysPath(), { key: org.adminKey, body: '{"kind":"legacy","name":' });
    expectStatus(res, 400);
    expect(await writeCounts()).toEqual(before);
  });

  it("refuses a body that is not JSON with 415", async () => {
    const before = await writeCounts();
    const res = await call("POST", keysPath(), {
      key: org.adminKey,
      body: "kind=legacy&name=k&mode=read",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expectStatus(res, 415);
    expect(await writeCounts()).toEqual(before);
  });

  it("refuses a huge body with 413", async () => {
    const before = await writeCounts();
    const res = await call("POST", keysPath(), { key: org.adminKey, body: { kind: "legacy", name: "k", mode: "read", pad: "x".repeat(100_000) } });
    expectStatus(res, 413);
    expect(await writeCounts()).toEqual(before);
  });

  it("enforces a policy that requires an expiration, and one that caps the lifetime", async () => {
    const policyOrg = await createOrg("Policy Co");
    // A caller that itself complies with the policy set below.
    const caller = await createKeyAs(policyOrg.adminKey, policyOrg.orgId, { kind: "rbac", name: "Admin 60d", orgRole: "admin", expiresInDays: 60 });
    await setPolicy(policyOrg.orgId, { requireExpiration: true, maxLifetimeDays: 60 });
    const path = `/v1/orgs/${policyOrg.orgId}/keys`;
    const before = await writeCounts();

    const none = await call("POST", path, { key: caller.key, body: { kind: "legacy", name: "k", mode: "read" } });
    expectStatus(none, 400);
    expect(none.body.error.details.code).toBe("EXPIRATION_REQUIRED");

    const tooLong = await call("POST", path, { key: caller.key, body: { kind: "legacy", name: "k", mode: "read", expiresInDays: 90 } });
    expectStatus(tooLong, 400);
    expect(tooLong.body.error.details.code).toBe("LIFETIME_TOO_LONG");

    const tooLate = await call("POST", path, {
      key: caller.key,
      body: { kind: "legacy", name: "k", mode: "read", expiresAt: new Date(Date.now() + 61 * DAY_MS).toISOString() },
    });
    expectStatus(tooLate, 400);
    expect(tooLate.body.error.details.code).toBe("LIFETIME_TOO_LONG");
    expect(await writeCounts()).toEqual(before);

    // Within the cap, but no key may outlive the key that creates it.
    const outlivesCaller = await call("POST", path, { key: caller.key, body: { kind: "legacy", name: "k", mode: "read", expiresInDays: 60 } });
    expectStatus(outlivesCaller, 403);
    expect(outlivesCaller.body.error.details.reason).toBe("OUTLIVES_CALLER");
    const ok = await call("POST", path, { key: caller.key, body: { kind: "legacy", name: "k", mode: "read", expiresInDays: 30 } });
    expectStatus(ok, 201);
  });
});

describe("POST /v1/orgs/{orgId}/keys — metering is access (issue 21 point 5)", () => {
  it("a key manager under the org policy's default limit gives no key a looser limit of its own; an org admin may", async () => {
    const limited = await createOrg("Default limits Co");
    await setPolicy(limited.orgId, { requireExpiration: false, maxLifetimeDays: null, rateLimits: [{ limit: 10, periodSeconds: 60 }] });
    const manager = await createKeyAs(limited.adminKey, limited.orgId, { kind: "scoped", name: "Manager", scopes: ["apiKeyManagement", "app:read"] });
    const create = (body: Record<string, unknown>) =>
      call("POST", `/v1/orgs/${limited.orgId}/keys`, { key: manager.key, body: { kind: "scoped", name: "k", scopes: ["app:read"], ...body } });
    const before = await writeCounts();
    const looser = await create({ rateLimits: [{ limit: 1000, periodSeconds: 60 }] });
    expectStatus(looser, 403);
    expect(looser.body.error.details).toMatchObject({ reason: "METERING_BEYOND_CALLER", issues: [{ field: "rateLimits" }] });
    expect(await writeCounts()).toEqual(before);
    expectStatus(await create({}), 201); // the policy's limit applies to it as to the caller
    expectStatus(await create({ rateLimits: [{ limit: 5, periodSeconds: 60 }] }), 201);
    // An org admin could lift the policy's default for every key: for it, a default is a default.
    const exception = await call("POST", `/v1/orgs/${limited.orgId}/keys`, {
      key: limited.adminKey,
      body: { kind: "scoped", name: "exception", scopes: ["app:read"], rateLimits: [{ limit: 1000, periodSeconds: 60 }] },
    });
    expectStatus(exception, 201);
  });

  it("a key manager with credits creates only keys with no more credits than it has left", async () => {
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Prepaid manager", scopes: ["apiKeyManagement", "app:read"], credits: 5 });
    const before = await writeCounts();
    for (const credits of [null, 6]) {
      const res = await call("POST", keysPath(), { key: manager.key, body: { kind: "scoped", name: "k", scopes: ["app:read"], credits } });
      expectStatus(res, 403);
      expect(res.body.error.details.reason).toBe("METERING_BEYOND_CALLER");
    }
    expect(await writeCounts()).toEqual(before);
    const ok = await call("POST", keysPath(), { key: manager.key, body: { kind: "scoped", name: "k", scopes: ["app:read"], credits: 5 } });
    expectStatus(ok, 201);
    expect(ok.body.credits.remaining).toBe(5);
  });
});

describe("POST /v1/orgs/{orgId}/keys — security", () => {
  it("answers 401 without a key, with a malformed key, and with an unknown key", async () => {
    const body = { kind: "legacy", name: "k", mode: "read" };
    for (const key of [undefined, "not-a-key", org.adminKey.slice(0, -1) + (org.adminKey.endsWith("A") ? "B" : "A")]) {
      const res = await call("POST", keysPath(), { key, body });
      expectStatus(res, 401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
  });

  it("answers 401 to an expired caller and to a revoked caller", async () => {
    const expired = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Expiring admin", orgRole: "admin" });
    await expireBeforeFirstUse(expired.id);
    const revoked = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Revoked admin", orgRole: "admin" });
    await revoke(revoked.id, org.orgId);
    const before = await writeCounts();
    for (const caller of [expired, revoked]) {
      const res = await call("POST", keysPath(), { key: caller.key, body: { kind: "legacy", name: "k", mode: "read" } });
      expectStatus(res, 401);
    }
    expect(await writeCounts()).toEqual(before);
  });

  it("answers 404 when creating a key in another organization, and writes nothing there", async () => {
    const other = await createOrg("Other Org");
    const before = await writeCounts();
    const res = await call("POST", `/v1/orgs/${other.orgId}/keys`, { key: org.adminKey, body: { kind: "rbac", name: "k", orgRole: "admin" } });
    expectStatus(res, 404);
    expect(await writeCounts()).toEqual(before);
  });

  it("refuses a member key: it lacks apiKeyManagement", async () => {
    const member = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Member", orgRole: "member" });
    const res = await call("POST", keysPath(), { key: member.key, body: { kind: "rbac", name: "k", orgRole: "admin" } });
    expectStatus(res, 403);
    expect(res.body.error.details.required).toBe("apiKeyManagement");
  });

  it("refuses a key with app admin on app X granting roles on app Y, or on X, without apiKeyManagement", async () => {
    const appAdmin = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "X admin", appRoles: [{ appId: appX, role: "admin" }] });
    for (const appId of [appY, appX]) {
      const res = await call("POST", keysPath(), { key: appAdmin.key, body: { kind: "rbac", name: "k", appRoles: [{ appId, role: "reader" }] } });
      expectStatus(res, 403);
    }
  });

  it("the escalation rule lets a manager with app admin on X grant roles on X but never on Y", () => {
    const caller = {
      grants: [
        ...grantsOf({ kind: "rbac", orgRole: "member", appRoles: { [appX]: "admin" } }),
        { permission: "apiKeyManagement" as const, app: null },
      ],
    };
    expect(() => assertCanGrant(caller, { kind: "rbac", orgRole: "none", appRoles: { [appX]: "developer" } })).not.toThrow();
    try {
      assertCanGrant(caller, { kind: "rbac", orgRole: "none", appRoles: { [appY]: "reader" } });
      expect.unreachable("granting a role on Y must be refused");
    } catch (err: any) {
      expect(err.code).toBe("FORBIDDEN");
      expect(err.details.missing).toEqual([`app:read@${appY}`, `app:admin@${appY}`]);
    }
  });

  describe("a scoped key manager (apiKeyManagement, app:publish, org:read)", () => {
    let manager: { key: string; id: string };
    beforeAll(async () => {
      manager = await createKeyAs(org.adminKey, org.orgId, {
        kind: "scoped",
        name: "Scoped manager",
        scopes: ["apiKeyManagement", "app:publish", "org:read"],
      });
    });

    const refused: [string, () => Record<string, unknown>, () => string][] = [
      ["an admin key", () => ({ kind: "rbac", name: "k", orgRole: "admin" }), () => "org:admin@*"],
      ["a scope it lacks", () => ({ kind: "scoped", name: "k", scopes: ["app:publish", "project:deploy"] }), () => "project:deploy@*"],
      ["a role on an app it cannot administer", () => ({ kind: "rbac", name: "k", appRoles: [{ appId: appX, role: "reader" }] }), () => `app:admin@${appX}`],
      ["a legacy key beyond its scopes", () => ({ kind: "legacy", name: "k", mode: "read" }), () => "app:read@*"],
    ];
    for (const [what, body, missing] of refused) {
      it(`cannot create ${what}: 403 listing what it lacks, nothing written`, async () => {
        const before = await writeCounts();
        const res = await call("POST", keysPath(), { key: manager.key, body: body() });
        expectStatus(res, 403);
        expect(res.body.error.code).toBe("FORBIDDEN");
        expect(res.body.error.details.missing, res.text).toContain(missing());
        expect(await writeCounts()).toEqual(before);
      });
    }

    it("can create a member key and a key with a subset of its scopes", async () => {
      await createKeyAs(manager.key, org.orgId, { kind: "rbac", name: "Member", orgRole: "member" });
      await createKeyAs(manager.key, org.orgId, { kind: "scoped", name: "Publisher", scopes: ["app:publish"] });
    });
  });
});
