import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus } from "./helpers";
import { createKeyAs, writeCounts } from "./key-fixtures";

type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;
let other: Org;

beforeAll(async () => {
  org = await createOrg("Apps Co");
  other = await createOrg("Other Apps Co");
});

const appsPath = (orgId: string) => `/v1/orgs/${orgId}/apps`;
const createApp = async (name: string, key = org.adminKey, orgId = org.orgId) => {
  const res = await call("POST", appsPath(orgId), { key, body: { name } });
  expectStatus(res, 201);
  return res.body as { id: string; name: string; orgId: string };
};

describe("POST /v1/orgs/{orgId}/apps", () => {
  it("creates an app an RBAC key can then hold a role on", async () => {
    const app = await createApp("mobile");
    expect(app).toMatchObject({ name: "mobile", orgId: org.orgId });
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Up", orgRole: "none", appRoles: [{ appId: app.id, role: "uploader" }] });
    expect((await verifyKey(env, key.key, { permission: "app:upload", app: app.id })).code).toBe("VALID");
  });

  it("refuses a duplicate name in the same org with 409, but allows it in another org", async () => {
    await createApp("dup");
    const res = await call("POST", appsPath(org.orgId), { key: org.adminKey, body: { name: "dup" } });
    expectStatus(res, 409);
    expect(res.body.error.code).toBe("CONFLICT");
    await createApp("dup", other.adminKey, other.orgId);
  });

  it("rejects bad names and unknown fields, writing nothing", async () => {
    const before = await writeCounts();
    for (const body of [{ name: "" }, { name: "a\u0000b" }, { name: "x".repeat(101) }, { name: "ok", extra: 1 }, { name: 5 }]) {
      expectStatus(await call("POST", appsPath(org.orgId), { key: org.adminKey, body }), 400);
    }
    expect(await writeCounts()).toEqual(before);
  });

  it("needs org:admin: a key manager that is not an org admin gets 403", async () => {
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "M", scopes: ["apiKeyManagement", "org:read"] });
    expectStatus(await call("POST", appsPath(org.orgId), { key: manager.key, body: { name: "nope" } }), 403);
  });

  it("answers 404 for another organization", async () => {
    expectStatus(await call("POST", appsPath(other.orgId), { key: org.adminKey, body: { name: "intruder" } }), 404);
  });
});

describe("GET /v1/orgs/{orgId}/apps", () => {
  it("lists the org's apps newest first, page by page, and only its own", async () => {
    const fresh = await createOrg("Paging Apps");
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await createApp(`app-${i}`, fresh.adminKey, fresh.orgId));
    const first = await call("GET", `${appsPath(fresh.orgId)}?limit=3`, { key: fresh.adminKey });
    expectStatus(first, 200);
    expect(first.body.apps.map((a: { name: string }) => a.name)).toEqual(["app-4", "app-3", "app-2"]);
    const second = await call("GET", `${appsPath(fresh.orgId)}?limit=3&cursor=${first.body.nextCursor}`, { key: fresh.adminKey });
    expect(second.body.apps.map((a: { name: string }) => a.name)).toEqual(["app-1", "app-0"]);
    expect(second.body.nextCursor).toBeNull();
  });

  it("is readable by org members, not by keys without org:read", async () => {
    const member = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Member", orgRole: "member" });
    expectStatus(await call("GET", appsPath(org.orgId), { key: member.key }), 200);
    const publisher = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "P", scopes: ["app:publish"] });
    expectStatus(await call("GET", appsPath(org.orgId), { key: publisher.key }), 403);
  });

  it("rejects a forged cursor and an out-of-range limit with 400", async () => {
    expectStatus(await call("GET", `${appsPath(org.orgId)}?cursor=bogus`, { key: org.adminKey }), 400);
    expectStatus(await call("GET", `${appsPath(org.orgId)}?limit=1000`, { key: org.adminKey }), 400);
  });
});

describe("DELETE /v1/orgs/{orgId}/apps/{appId}", () => {
  it("deletes the app and takes the role away from every key holding one, before returning", async () => {
    const app = await createApp("doomed");
    const keep = await createApp("kept");
    const key = await createKeyAs(org.adminKey, org.orgId, {
      kind: "rbac",
      name: "Two apps",
      orgRole: "none",
      appRoles: [{ appId: app.id, role: "developer" }, { appId: keep.id, role: "reader" }],
    });
    expect((await verifyKey(env, key.key, { permission: "app:publish", app: app.id })).code).toBe("VALID"); // cached
    expectStatus(await call("DELETE", `${appsPath(org.orgId)}/${app.id}`, { key: org.adminKey }), 204);
    expect((await verifyKey(env, key.key, { permission: "app:publish", app: app.id })).code).toBe("INSUFFICIENT_PERMISSIONS");
    expect((await verifyKey(env, key.key, { permission: "app:read", app: keep.id })).code).toBe("VALID");
    const got = await call("GET", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey });
    expect(got.body.appRoles).toEqual([{ appId: keep.id, role: "reader" }]);
    expectStatus(await call("DELETE", `${appsPath(org.orgId)}/${app.id}`, { key: org.adminKey }), 404);
  });

  it("answers 404 for another org's app and leaves it in place", async () => {
    const theirs = await createApp("theirs", other.adminKey, other.orgId);
    expectStatus(await call("DELETE", `${appsPath(org.orgId)}/${theirs.id}`, { key: org.adminKey }), 404);
    const list = await call("GET", appsPath(other.orgId), { key: other.adminKey });
    expect(list.body.apps.map((a: { id: string }) => a.id)).toContain(theirs.id);
  });
});
