import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { verifyKey } from "../src/verification/verify-key";
import { call } from "./helpers";
import { createKeyAs, writeCounts } from "./key-fixtures";
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

describe("escalation matrix: metering is access (issue 21 point 5)", () => {
  /** A key manager with 100 credits refilled to 100 a month, limited to 60 a minute. */
  const METERED = {
    kind: "scoped",
    scopes: ["apiKeyManagement", "app:read"],
    credits: 100,
    creditsRefill: { amount: 100, interval: "month" },
    rateLimits: [{ limit: 60, periodSeconds: 60 }],
  };
  const minute = (limit: number) => [{ limit, periodSeconds: 60 }];
  let manager: { id: string; key: string };
  beforeAll(async () => {
    manager = await createKeyAs(org.adminKey, org.orgId, { name: "metered manager", ...METERED });
    // Its record is filled (a fill is not a change a refused request makes), spending none of its credits.
    await verifyKey(env, manager.key, { unmetered: true });
  });

  // prettier-ignore
  const CREATE: [description: string, body: Record<string, unknown>, expected: 201 | 403][] = [
    ["an unmetered key",                                   {}, 403],
    ["credits but no rate limit",                          { credits: 50 }, 403],
    ["its own limit but no credits",                       { rateLimits: minute(60) }, 403],
    ["50 credits, 60 a minute",                            { credits: 50, rateLimits: minute(60) }, 201],
    ["all 100 of its credits, 60 a minute",                { credits: 100, rateLimits: minute(60) }, 201],
    ["101 credits",                                        { credits: 101, rateLimits: minute(60) }, 403],
    ["61 a minute",                                        { credits: 50, rateLimits: minute(61) }, 403],
    ["60 an hour (a longer window, nesting the minute)",   { credits: 50, rateLimits: [{ limit: 60, periodSeconds: 3600 }] }, 201],
    ["10 per 10 s (60 a minute at most)",                  { credits: 50, rateLimits: [{ limit: 10, periodSeconds: 10 }] }, 201],
    ["11 per 10 s (66 a minute)",                          { credits: 50, rateLimits: [{ limit: 11, periodSeconds: 10 }] }, 403],
    ["60 per 90 s (windows that do not nest)",             { credits: 50, rateLimits: [{ limit: 60, periodSeconds: 90 }] }, 403],
    ["a loose limit beside a strict one",                  { credits: 50, rateLimits: [{ limit: 1000, periodSeconds: 1 }, { limit: 30, periodSeconds: 60 }] }, 201],
    ["its own refill, 100 a month",                        { credits: 50, creditsRefill: { amount: 100, interval: "month" }, rateLimits: minute(60) }, 201],
    ["a daily refill (more often than its own)",           { credits: 50, creditsRefill: { amount: 10, interval: "day" }, rateLimits: minute(60) }, 403],
    ["a larger monthly refill",                            { credits: 50, creditsRefill: { amount: 101, interval: "month" }, rateLimits: minute(60) }, 403],
  ];
  for (const [description, body, expected] of CREATE) {
    it(`a metered key manager creating ${description}: ${expected}`, async () => {
      const before = await storageSnapshot();
      const res = await call("POST", `/v1/orgs/${org.orgId}/keys`, { key: manager.key, body: { name: description, kind: "scoped", scopes: ["app:read"], ...body } });
      expect(res.status, res.text).toBe(expected);
      if (expected === 403) {
        expect(res.body.error).toMatchObject({ code: "FORBIDDEN", details: { reason: "METERING_BEYOND_CALLER" } });
        expect(await storageSnapshot()).toBe(before);
      }
    });
  }

  it("a metered key manager cannot take its own metering off, nor raise it; it may lower it", async () => {
    const self = `/v1/orgs/${org.orgId}/keys/${manager.id}`;
    for (const body of [{ credits: null }, { rateLimits: [] }, { credits: 1000 }, { rateLimits: minute(600) }, { creditsRefill: null, credits: null }, { creditsRefill: { amount: 100, interval: "day" } }]) {
      const before = await storageSnapshot();
      const res = await call("PATCH", self, { key: manager.key, body });
      expect(res.status, `${JSON.stringify(body)}: ${res.text}`).toBe(403);
      expect(res.body.error.details.reason).toBe("METERING_BEYOND_CALLER");
      expect(await storageSnapshot()).toBe(before);
    }
    const lowered = await call("PATCH", self, { key: manager.key, body: { rateLimits: minute(50) } });
    expect(lowered.status, lowered.text).toBe(200);
    expect(lowered.body.rateLimits).toEqual(minute(50));
  });

  it("a metered key manager cannot edit, regenerate or reveal another key into less metering than its own", async () => {
    const unmetered = await createKeyAs(org.adminKey, org.orgId, { name: "unmetered", kind: "scoped", scopes: ["app:read"], secure: false });
    const within = await createKeyAs(manager.key, org.orgId, { name: "within", kind: "scoped", scopes: ["app:read"], secure: false, credits: 10, rateLimits: minute(10) });
    const as = { key: manager.key };
    const before = await storageSnapshot();
    for (const [what, res] of [
      ["regenerate an unmetered key", await call("POST", `/v1/orgs/${org.orgId}/keys/${unmetered.id}/regenerate`, as)],
      ["reveal an unmetered key", await call("POST", `/v1/orgs/${org.orgId}/keys/${unmetered.id}/reveal`, as)],
      ["edit a key's credits off", await call("PATCH", `/v1/orgs/${org.orgId}/keys/${within.id}`, { ...as, body: { credits: null } })],
      ["edit a key's limits off", await call("PATCH", `/v1/orgs/${org.orgId}/keys/${within.id}`, { ...as, body: { rateLimits: [] } })],
    ] as const) {
      expect(res.status, `${what}: ${res.text}`).toBe(403);
      expect(res.body.error.details.reason, what).toBe("METERING_BEYOND_CALLER");
    }
    expect(await storageSnapshot()).toBe(before);
    expect((await call("PATCH", `/v1/orgs/${org.orgId}/keys/${unmetered.id}`, { ...as, body: { name: "renamed, metering untouched" } })).status).toBe(200);
    for (const action of ["regenerate", "reveal"]) {
      const res = await call("POST", `/v1/orgs/${org.orgId}/keys/${within.id}/${action}`, as);
      expect(res.status, `${action}: ${res.text}`).toBe(200);
    }
  });
});

function expectStatus403Missing(body: { error: { code: string; details: { missing: string[] } } }) {
  expect(body.error.code).toBe("FORBIDDEN");
  expect(body.error.details.missing.length).toBeGreaterThan(0);
}
