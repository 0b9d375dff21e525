import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrg, expectStatus } from "./helpers";
import { createKeyAs } from "./key-fixtures";

type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;
const secrets: string[] = [];

beforeAll(async () => {
  org = await createOrg("Audit Co");
  secrets.push(org.adminKey);
});

const auditPath = (orgId: string, query = "") => `/v1/orgs/${orgId}/audit-log${query}`;

describe("GET /v1/orgs/{orgId}/audit-log", () => {
  it("records every kind of change with actor, target and request id, newest first, and never a secret", async () => {
    const as = { key: org.adminKey };
    const app = await call("POST", `/v1/orgs/${org.orgId}/apps`, { ...as, body: { name: "audited" } });
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "k", scopes: ["app:read"], secure: false });
    secrets.push(key.key);
    const steps = [
      await call("PATCH", `/v1/orgs/${org.orgId}/keys/${key.id}`, { ...as, body: { name: "k2" } }),
      await call("POST", `/v1/orgs/${org.orgId}/keys/${key.id}/reveal`, as),
      await call("POST", `/v1/orgs/${org.orgId}/keys/${key.id}/regenerate`, as),
    ];
    secrets.push(steps[2]!.body.key);
    steps.push(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, as));
    steps.push(await call("PUT", `/v1/orgs/${org.orgId}/policy`, { ...as, body: { requireExpiration: false, maxLifetimeDays: null } }));
    steps.push(await call("DELETE", `/v1/orgs/${org.orgId}/apps/${app.body.id}`, as));

    const res = await call("GET", auditPath(org.orgId, "?limit=100"), as);
    expectStatus(res, 200);
    const actions = res.body.entries.map((e: { action: string }) => e.action);
    expect(actions).toEqual([
      "app.delete",
      "policy.update",
      "key.revoke",
      "key.regenerate",
      "key.reveal",
      "key.update",
      "key.create",
      "app.create",
      "key.create",
      "org.create",
    ]);
    const byAction = Object.fromEntries(res.body.entries.map((e: { action: string }) => [e.action, e]));
    expect(byAction["key.revoke"]).toMatchObject({ actorKeyId: org.adminKeyId, targetType: "key", targetId: key.id, requestId: steps[3]!.headers.get("x-request-id") });
    expect(byAction["org.create"]).toMatchObject({ actorKeyId: null, targetType: "org", targetId: org.orgId });
    const text = JSON.stringify(res.body);
    expect(text).not.toContain("kgw_");
    for (const secret of secrets) expect(text).not.toContain(secret.slice(26, 50));
  });

  it("pages with a cursor", async () => {
    const first = await call("GET", auditPath(org.orgId, "?limit=2"), { key: org.adminKey });
    const second = await call("GET", auditPath(org.orgId, `?limit=2&cursor=${first.body.nextCursor}`), { key: org.adminKey });
    expectStatus(second, 200);
    expect(second.body.entries[0].id).toBeLessThan(first.body.entries[1].id);
    expectStatus(await call("GET", auditPath(org.orgId, "?cursor=djE6MDFqZDh4"), { key: org.adminKey }), 400);
  });

  it("filters by action and by key (what the key did and what was done to it), and pages within the filter", async () => {
    const as = { key: org.adminKey };
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "manager", scopes: ["apiKeyManagement", "app:read"] });
    const made = await createKeyAs(manager.key, org.orgId, { kind: "scoped", name: "made by manager", scopes: ["app:read"] });
    expectStatus(await call("PATCH", `/v1/orgs/${org.orgId}/keys/${manager.id}`, { ...as, body: { name: "manager 2" } }), 200);
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${made.id}`, { key: manager.key }), 204);

    const byKey = await call("GET", auditPath(org.orgId, `?keyId=${manager.id}`), as);
    expectStatus(byKey, 200);
    const summary = byKey.body.entries.map((e: { action: string; actorKeyId: string; targetId: string }) => [e.action, e.actorKeyId === manager.id ? "by" : "to", e.targetId]);
    expect(summary).toEqual([
      ["key.revoke", "by", made.id],
      ["key.update", "to", manager.id],
      ["key.create", "by", made.id],
      ["key.create", "to", manager.id],
    ]);

    const revokes = await call("GET", auditPath(org.orgId, "?action=key.revoke&limit=100"), as);
    expectStatus(revokes, 200);
    expect(revokes.body.entries.length).toBeGreaterThan(0);
    expect(revokes.body.entries.every((e: { action: string }) => e.action === "key.revoke")).toBe(true);

    const both = await call("GET", auditPath(org.orgId, `?action=key.create&keyId=${manager.id}&limit=1`), as);
    expect(both.body.entries.map((e: { targetId: string }) => e.targetId)).toEqual([made.id]);
    const next = await call("GET", auditPath(org.orgId, `?action=key.create&keyId=${manager.id}&limit=1&cursor=${both.body.nextCursor}`), as);
    expect(next.body.entries.map((e: { targetId: string }) => e.targetId)).toEqual([manager.id]);
    expect(next.body.nextCursor).toBeNull();
  });

  it("refuses an unknown action or a malformed key id with 400 naming the parameter", async () => {
    for (const [query, field] of [["?action=key.delete", "action"], ["?keyId=nope", "keyId"], ["?action=", "action"]] as const) {
      const res = await call("GET", auditPath(org.orgId, query), { key: org.adminKey });
      expectStatus(res, 400);
      expect(res.body.error.details.issues.map((i: { field: string }) => i.field)).toContain(field);
    }
  });

  it("filters only within the caller's org: another org's key id finds nothing", async () => {
    const other = await createOrg("Other filter");
    const res = await call("GET", auditPath(org.orgId, `?keyId=${other.adminKeyId}`), { key: org.adminKey });
    expectStatus(res, 200);
    expect(res.body.entries).toEqual([]);
  });

  it("is only for key managers of the org: 403 without apiKeyManagement, 404 for another org", async () => {
    const reader = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "r", scopes: ["app:read"] });
    expectStatus(await call("GET", auditPath(org.orgId), { key: reader.key }), 403);
    const other = await createOrg("Other audit");
    expectStatus(await call("GET", auditPath(other.orgId), { key: org.adminKey }), 404);
    expectStatus(await call("GET", auditPath(org.orgId)), 401);
  });
});
