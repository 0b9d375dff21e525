import { beforeAll, describe, expect, it } from "vitest";
import { call } from "./helpers";
import { writeCounts } from "./key-fixtures";
import { matrixOrg, type Caller } from "./matrix-fixtures";
import { storageSnapshot } from "./fuzz-helpers";

/**
 * A caller never creates, edits, regenerates, reveals or revokes a key into more access than it holds.
 * Each refused attempt is 403 with `details.missing` and changes nothing in D1 or KV; each allowed
 * counterpart succeeds. Expected outcomes are written out by hand.
 */
let org: Awaited<ReturnType<typeof matrixOrg>>;
beforeAll(async () => {
  org = await matrixOrg("Escalation matrix");
});

type Attempt = [caller: Caller, description: string, body: (apps: { A: string; B: string }) => Record<string, unknown>, expected: 201 | 403];
// prettier-ignore
const CREATE: Attempt[] = [
  ["scope apiKeyManagement+app:read", "a scoped app:read key",              () => ({ kind: "scoped", scopes: ["app:read"] }), 201],
  ["scope apiKeyManagement+app:read", "a scope it lacks (app:publish)",     () => ({ kind: "scoped", scopes: ["app:publish"] }), 403],
  ["scope apiKeyManagement+app:read", "an admin RBAC key",                  () => ({ kind: "rbac", orgRole: "admin" }), 403],
  ["scope apiKeyManagement+app:read", "a member RBAC key (lacks org:read)", () => ({ kind: "rbac", orgRole: "member" }), 403],
  ["scope apiKeyManagement+app:read", "a reader role on an app it cannot administer", (a) => ({ kind: "rbac", orgRole: "none", appRoles: [{ appId: a.A, role: "reader" }] }), 403],
  ["scope apiKeyManagement+app:read", "a legacy read key (lacks org:read)", () => ({ kind: "legacy", mode: "read" }), 403],
  ["scope apiKeyManagement",          "another key manager like itself",    () => ({ kind: "scoped", scopes: ["apiKeyManagement"] }), 201],
  ["scope apiKeyManagement",          "a key manager with app:read",        () => ({ kind: "scoped", scopes: ["apiKeyManagement", "app:read"] }), 403],
  ["scope apiKeyManagement",          "a verifier key (keys:verify, which it lacks)", () => ({ kind: "scoped", scopes: ["keys:verify"] }), 403],
  ["scope keys:verify",               "anything (no apiKeyManagement)",     () => ({ kind: "scoped", scopes: ["keys:verify"] }), 403],
  ["admin",                           "a verifier key",                     () => ({ kind: "scoped", scopes: ["keys:verify"] }), 201],
  ["member",                          "anything (no apiKeyManagement)",     () => ({ kind: "scoped", scopes: ["org:read"] }), 403],
  ["app admin on A",                  "a role on its own app (no apiKeyManagement)", (a) => ({ kind: "rbac", orgRole: "none", appRoles: [{ appId: a.A, role: "reader" }] }), 403],
  ["legacy write",                    "a legacy all key",                   () => ({ kind: "legacy", mode: "all" }), 403],
  ["legacy all",                      "a legacy all key",                   () => ({ kind: "legacy", mode: "all" }), 201],
  ["admin",                           "an admin RBAC key",                  () => ({ kind: "rbac", orgRole: "admin" }), 201],
  ["admin",                           "roles on both apps",                 (a) => ({ kind: "rbac", orgRole: "none", appRoles: [{ appId: a.A, role: "admin" }, { appId: a.B, role: "reader" }] }), 201],
];

describe("escalation matrix: create", () => {
  for (const [caller, description, body, expected] of CREATE) {
    it(`${caller} creating ${description}: ${expected}`, async () => {
      const before = await storageSnapshot();
      const res = await call("POST", `/v1/orgs/${org.orgId}/keys`, { key: org.keys[caller].key, body: { name: description, ...body(org.apps) } });
      expect(res.status, res.text).toBe(expected);
      if (expected === 403) {
        expect(res.body.error.code).toBe("FORBIDDEN");
        expect(await storageSnapshot()).toBe(before);
      }
    });
  }
});

describe("escalation matrix: touching keys more powerful than the caller", () => {
  const manager: Caller = "scope apiKeyManagement+app:read";
  const targets: [Caller, 200 | 403][] = [
    ["scope org:read", 403],
    ["admin", 403],
    ["app reader on A", 403],
    ["legacy read", 403],
    ["scope apiKeyManagement", 200],
  ];
  for (const [target, expected] of targets) {
    it(`${manager} edits, regenerates, reveals, disables, enables and revokes a ${target} key: ${expected}`, async () => {
      const id = org.keys[target].id;
      const as = { key: org.keys[manager].key };
      const before = await writeCounts();
      const patch = await call("PATCH", `/v1/orgs/${org.orgId}/keys/${id}`, { ...as, body: { name: "renamed" } });
      const regenerate = await call("POST", `/v1/orgs/${org.orgId}/keys/${id}/regenerate`, as);
      const reveal = await call("POST", `/v1/orgs/${org.orgId}/keys/${id}/reveal`, as);
      if (expected === 403) {
        // Legacy keys are never editable (409), whoever asks; the rest is refused as escalation.
        const patchStatus = target.startsWith("legacy") ? 409 : 403;
        expect([patch.status, regenerate.status, reveal.status], patch.text + regenerate.text + reveal.text).toEqual([patchStatus, 403, 403]);
        expectStatus403Missing(regenerate.body);
        // Disable, enable and ending an overlap act on a key's access too: refused alike, nothing written.
        for (const action of ["disable", "enable", "end-overlap"]) {
          const res = await call("POST", `/v1/orgs/${org.orgId}/keys/${id}/${action}`, as);
          expect(res.status, `${action}: ${res.text}`).toBe(403);
          expectStatus403Missing(res.body);
        }
        expect(await writeCounts()).toEqual(before);
        expect((await call("DELETE", `/v1/orgs/${org.orgId}/keys/${id}`, as)).status).toBe(403);
      } else {
        const disable = await call("POST", `/v1/orgs/${org.orgId}/keys/${id}/disable`, as);
        expect(disable.status, disable.text).toBe(200);
        expect(disable.body.status).toBe("disabled");
        expect((await call("POST", `/v1/orgs/${org.orgId}/keys/${id}/enable`, as)).status).toBe(200);
        expect([patch.status, regenerate.status, reveal.status]).toEqual([200, 200, 409]); // secure: nothing to reveal
        expect((await call("DELETE", `/v1/orgs/${org.orgId}/keys/${id}`, as)).status).toBe(204);
      }
    });
  }

  it("a key manager cannot edit its own key into more access", async () => {
    const self = org.keys["scope apiKeyManagement+app:read"];
    const res = await call("PATCH", `/v1/orgs/${org.orgId}/keys/${self.id}`, { key: self.key, body: { scopes: ["apiKeyManagement", "app:read", "project:deploy"] } });
    expect(res.status, res.text).toBe(403);
    expect(res.body.error.details.missing).toEqual(["project:deploy@*"]);
  });
});

function expectStatus403Missing(body: { error: { code: string; details: { missing: string[] } } }) {
  expect(body.error.code).toBe("FORBIDDEN");
  expect(body.error.details.missing.length).toBeGreaterThan(0);
}
