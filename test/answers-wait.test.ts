import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../src/domain/crypto";
import { authorityFor, type KeyAuthority } from "../src/durable-objects/key-authority";
import { orgAuthorityFor } from "../src/durable-objects/org-authority";
import { SerializedObject } from "../src/durable-objects/serialized-object";
import { Edge } from "../src/verification/edge";
import { verifyKey, type VerifyOptions } from "../src/verification/verify-key";
import { faultyD1 } from "./fault-bindings";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { createKeyAs, seedApp, storedRow } from "./key-fixtures";
import { signReport, REPORTER_KEY_ID, trustedReporterKey } from "./reporter";

/**
 * Every answer of an authority to a change waits until no lease granted before it is live: refusals
 * that describe a state already in force (a second revoke's 404, a second end-overlap's 409, a leak
 * report on a revoked key, a second deletion of an app), and the first change an authority answers
 * after a restart. Each test holds a lease in one isolate (an `Edge`), sends the change, and checks
 * that the answer came no sooner than that lease's end (on the isolate's own clock, which starts
 * before the authority's) and that the isolate refuses the old state as soon as the answer is in.
 */

/**
 * T for this file's authorities: long beside what a management call costs on a busy machine, so that an
 * answer that did not wait comes clearly before the lease's end. (Isolates hold what the authority grants.)
 */
const T = 1_000;
let org: Awaited<ReturnType<typeof createOrg>>;
/** A second admin key: the second caller of a repeated change. */
let otherAdmin: string;
beforeAll(async () => {
  SerializedObject.storage = (own) => ({ ...own, LEASE_MS: String(T) }) as Env;
  org = await createOrg("Answers Wait Co");
  otherAdmin = (await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "second admin", orgRole: "admin" })).key;
});
afterAll(() => {
  SerializedObject.storage = null;
});

const keyPath = (keyId: string) => `/v1/orgs/${org.orgId}/keys/${keyId}`;
const appPath = (appId: string) => `/v1/orgs/${org.orgId}/apps/${appId}`;
const scoped = (name: string, scopes = ["app:read"]) => createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name, scopes });

/** Verifies `key` in `edge` (a new isolate unless given), expecting VALID; returns the edge and when its lease on the key ends. */
async function leased(key: string, options: VerifyOptions = {}, edge = new Edge()) {
  const verdict = await verifyKey(env, key, { ...options, edge });
  expect(verdict.code, JSON.stringify(verdict)).toBe("VALID");
  const held = edge.keyLeases.get(await hashKey(key))!.until;
  return { edge, held };
}

/** Sends a management call; resolves with its response and the time it came back (sent: when it left). */
async function timed(send: () => ReturnType<typeof call>) {
  const sent = Date.now();
  const res = await send();
  return { res, sent, returned: Date.now() };
}

/** Resolves once `done()` holds, polling (the first change has committed: the second is sent then). */
async function until(what: string, done: () => Promise<boolean>) {
  const give = Date.now() + 5_000;
  while (!(await done())) {
    if (Date.now() > give) throw new Error(`gave up waiting until ${what}`);
    await sleep(2);
  }
}

const roleHeld = async (keyId: string, appId: string) =>
  (await env.DB.prepare("select 1 from key_app_roles where key_id = ? and app_id = ?").bind(keyId, appId).first()) !== null;
const appExists = async (appId: string) => (await env.DB.prepare("select 1 from apps where id = ?").bind(appId).first()) !== null;

/** The verdict in `edge` for a verification that starts now. */
const verdict = async (key: string, edge: Edge, options: VerifyOptions = {}) => (await verifyKey(env, key, { ...options, edge })).code;

describe("a refusal that describes a state already in force waits like the change did", () => {
  it("a second revoke answers 404 only once the lease on the live key has ended, and no verification after either answer succeeds", async () => {
    const key = await scoped("revoked twice");
    const { edge, held } = await leased(key.key);
    const first = timed(() => call("DELETE", keyPath(key.id), { key: org.adminKey }));
    await until("the first revoke committed", async () => (await storedRow(key.id))?.revoked_at != null);
    const second = await timed(() => call("DELETE", keyPath(key.id), { key: otherAdmin }));
    expectStatus(second.res, 404);
    expect(second.returned, "the 404 came while the isolate's lease on the live key ran").toBeGreaterThanOrEqual(held);
    expect(await verdict(key.key, edge)).toBe("REVOKED");
    expect(await verdict(key.key, new Edge())).toBe("REVOKED");
    const done = await first;
    expectStatus(done.res, 204);
    expect(done.returned).toBeGreaterThanOrEqual(held);
    expect(await verdict(key.key, edge)).toBe("REVOKED");
  });

  it("an edit or a regenerate of a key whose revoke is still waiting answers 404 only once the lease on the live key has ended", async () => {
    const key = await scoped("edited while revoked");
    const { edge, held } = await leased(key.key);
    const first = timed(() => call("DELETE", keyPath(key.id), { key: org.adminKey }));
    await until("the revoke committed", async () => (await storedRow(key.id))?.revoked_at != null);
    // Both routes read the directory first, where the key is already revoked.
    const [edit, regenerate] = await Promise.all([
      timed(() => call("PATCH", keyPath(key.id), { key: otherAdmin, body: { name: "renamed" } })),
      timed(() => call("POST", `${keyPath(key.id)}/regenerate`, { key: otherAdmin, body: { expiresInDays: 30 } })),
    ]);
    for (const answer of [edit, regenerate]) {
      expectStatus(answer.res, 404);
      expect(answer.returned, `the 404 came while the isolate's lease on the live key ran: ${answer.res.text}`).toBeGreaterThanOrEqual(held);
    }
    expect(await verdict(key.key, edge)).toBe("REVOKED");
    expectStatus((await first).res, 204);
  });

  it("a second end-overlap answers 409 NO_OVERLAP only once the lease on the previous secret has ended", async () => {
    const key = await scoped("overlap ended twice");
    const rotated = await call("POST", `${keyPath(key.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 3600 } });
    expectStatus(rotated, 200);
    const { edge, held } = await leased(key.key); // the previous secret, still in its overlap
    const first = timed(() => call("POST", `${keyPath(key.id)}/end-overlap`, { key: org.adminKey }));
    await until("the first end-overlap committed", async () => (await storedRow(key.id))?.previous_key_hash === null);
    const second = await timed(() => call("POST", `${keyPath(key.id)}/end-overlap`, { key: otherAdmin }));
    expectStatus(second.res, 409);
    expect(second.res.body.error.details?.reason, second.res.text).toBe("NO_OVERLAP");
    expect(second.returned, "the 409 came while the isolate's lease on the previous secret ran").toBeGreaterThanOrEqual(held);
    expect(await verdict(key.key, edge)).not.toBe("VALID");
    expectStatus((await first).res, 200);
    expect(await verdict(key.key, edge)).not.toBe("VALID");
    expect(await verdict(rotated.body.key, new Edge())).toBe("VALID");
  });

  it("a leak report on a key a revoke is still waiting out answers once the lease has ended", async () => {
    const key = await scoped("leaked after revoke");
    const { edge, held } = await leased(key.key);
    const revoking = call("DELETE", keyPath(key.id), { key: org.adminKey });
    await until("the revoke committed", async () => (await storedRow(key.id))?.revoked_at != null);
    const body = JSON.stringify([{ token: key.key, type: "keygate_api_key", url: "https://github.com/octo/leaky/blob/main/.env#L1", source: "content" }]);
    const headers = { "github-public-key-signature": await signReport(body, await trustedReporterKey()), "github-public-key-identifier": REPORTER_KEY_ID };
    const report = await timed(() => call("POST", "/v1/secret-scanning/reports", { body, headers }));
    expectStatus(report.res, 200);
    expect(report.res.body[0]?.label, report.res.text).toBe("true_positive");
    expect(report.returned, "the report was answered while the isolate's lease on the live key ran").toBeGreaterThanOrEqual(held);
    expect(await verdict(key.key, edge)).toBe("REVOKED");
    expectStatus(await revoking, 204);
  });

  it("a storage fault during a change answers 503 only once the lease has ended: the write may have landed", async () => {
    const key = await scoped("fault during revoke");
    const { edge, held } = await leased(key.key);
    const setBindings = (bindings: Env | null) =>
      runInDurableObject(authorityFor(env, key.id), (instance: KeyAuthority) => {
        instance.bindings = bindings;
      });
    // Reads answer, the commit fails.
    await setBindings({ ...env, LEASE_MS: String(T), DB: faultyD1("throw", () => false) } as Env);
    const failed = await timed(() => call("DELETE", keyPath(key.id), { key: org.adminKey })).finally(() => setBindings(null));
    expectStatus(failed.res, 503);
    expect(failed.returned, "the 503 came while the isolate's lease ran").toBeGreaterThanOrEqual(held);
    expect(await verdict(key.key, edge)).toBe("VALID"); // nothing was revoked: a new lease, on the same state
  });

  it("a refusal about a key of no org of the caller's answers at once: it says nothing about anyone's leases", async () => {
    const other = await createOrg("Answers Wait Elsewhere");
    const theirs = await createKeyAs(other.adminKey, other.orgId, { kind: "scoped", name: "theirs", scopes: ["app:read"] });
    const { held } = await leased(theirs.key);
    const refused = await timed(() => call("DELETE", keyPath(theirs.id), { key: org.adminKey }));
    expectStatus(refused.res, 404);
    // Answered before the other org's lease ended (the lease is T long; the call took far less).
    expect(refused.returned, refused.res.text).toBeLessThan(held);
    expect(await verdict(theirs.key, new Edge())).toBe("VALID");
  });
});

describe("app deletion", () => {
  it("two concurrent deletions of an app a key holds a role on: neither answers while the key's lease carrying the role is live", async () => {
    const appId = await seedApp(org.orgId, "deleted twice");
    const other = await scoped("org lease first");
    const holder = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "role holder", orgRole: "none", appRoles: [{ appId, role: "developer" }] });
    const request = { permission: "app:publish", app: appId } as const;
    // The org's lease first, the key's a while later: the org's ends first, so waiting for it alone is not enough.
    const { edge } = await leased(other.key);
    await sleep(T / 3);
    const { held } = await leased(holder.key, request, edge);
    const first = timed(() => call("DELETE", appPath(appId), { key: org.adminKey }));
    await until("the first deletion dropped the role", async () => !(await roleHeld(holder.id, appId)));
    const second = await timed(() => call("DELETE", appPath(appId), { key: otherAdmin }));
    expect([204, 404], second.res.text).toContain(second.res.status);
    expect(second.returned, `the second deletion answered ${second.res.status} while the key's lease carrying the role ran`).toBeGreaterThanOrEqual(held);
    expect(await verdict(holder.key, edge, request)).toBe("INSUFFICIENT_PERMISSIONS");
    const done = await first;
    expectStatus(done.res, 204);
    expect(done.returned).toBeGreaterThanOrEqual(held);
    expect(await verdict(holder.key, edge, request)).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it("deleting an app already deleted answers 404 only once no lease saying it was the org's is live", async () => {
    const appId = await seedApp(org.orgId, "already gone");
    const grant = await scoped("org-wide grant", ["app:upload"]);
    const request = { permission: "app:upload", app: appId } as const;
    const { edge } = await leased(grant.key, request);
    const ownsUntil = edge.appLeases.get(`${org.orgId}:${appId}`)!.until;
    const first = timed(() => call("DELETE", appPath(appId), { key: org.adminKey }));
    await until("the first deletion committed", async () => !(await appExists(appId)));
    const second = await timed(() => call("DELETE", appPath(appId), { key: otherAdmin }));
    expectStatus(second.res, 404);
    expect(second.returned, "the 404 came while the isolate's lease saying the app was the org's ran").toBeGreaterThanOrEqual(ownsUntil);
    expect(await verdict(grant.key, edge, request)).not.toBe("VALID");
    expectStatus((await first).res, 204);
  });

  it("waits out the keys' leases and the org's at once, not one after the other", async () => {
    const appId = await seedApp(org.orgId, "waited once");
    const holder = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "role holder", orgRole: "none", appRoles: [{ appId, role: "uploader" }] });
    const grant = await scoped("org-wide grant", ["app:upload"]);
    const request = { permission: "app:upload", app: appId } as const;
    const { edge } = await leased(grant.key, request);
    const { held } = await leased(holder.key, request, edge); // the latest lease the deletion has to wait out
    const deleting = timed(() => call("DELETE", appPath(appId), { key: org.adminKey }));
    // Another isolate asks the org about the app while the deletion waits out the key's lease: a
    // deletion that waits for the keys first, then for the org, has a fresh org lease to wait out.
    await until("the deletion dropped the role", async () => !(await roleHeld(holder.id, appId)));
    await sleep(held - 40 - Date.now());
    await verifyKey(env, grant.key, { ...request, edge: new Edge() });
    const done = await deleting;
    expectStatus(done.res, 204);
    expect(done.returned).toBeGreaterThanOrEqual(held);
    expect(done.returned - held, `answered ${done.returned - done.sent} ms after it was sent (T = ${T} ms)`).toBeLessThan(T / 2);
    expect(await verdict(holder.key, edge, request)).not.toBe("VALID");
    expect(await verdict(grant.key, edge, request)).not.toBe("VALID");
  });
});

describe("lease state survives an authority restart", () => {
  const keyEvicted = (keyId: string) => evictDurableObject(authorityFor(env, keyId));
  const orgEvicted = () => evictDurableObject(orgAuthorityFor(env, org.orgId));

  /**
   * Each kind of change: a key, what the isolate asks, how to restart the authorities involved
   * between the lease and the change, the change, and what the isolate answers afterwards.
   */
  const cases: { kind: string; setup: () => Promise<{ key: string; request?: VerifyOptions; restart: () => Promise<void>; change: () => ReturnType<typeof call>; status: number; after: string }> }[] = [
    {
      kind: "revoke",
      setup: async () => {
        const k = await scoped("restart revoke");
        return { key: k.key, restart: () => keyEvicted(k.id), change: () => call("DELETE", keyPath(k.id), { key: org.adminKey }), status: 204, after: "REVOKED" };
      },
    },
    {
      kind: "disable",
      setup: async () => {
        const k = await scoped("restart disable");
        return { key: k.key, restart: () => keyEvicted(k.id), change: () => call("POST", `${keyPath(k.id)}/disable`, { key: org.adminKey }), status: 200, after: "DISABLED" };
      },
    },
    {
      kind: "narrowing edit",
      setup: async () => {
        const k = await scoped("restart edit", ["app:read", "app:upload"]);
        const change = () => call("PATCH", keyPath(k.id), { key: org.adminKey, body: { scopes: ["app:read"] } });
        return { key: k.key, request: { permission: "app:upload" }, restart: () => keyEvicted(k.id), change, status: 200, after: "INSUFFICIENT_PERMISSIONS" };
      },
    },
    {
      kind: "end-overlap",
      setup: async () => {
        const k = await scoped("restart end-overlap");
        expectStatus(await call("POST", `${keyPath(k.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 3600 } }), 200);
        return { key: k.key, restart: () => keyEvicted(k.id), change: () => call("POST", `${keyPath(k.id)}/end-overlap`, { key: org.adminKey }), status: 200, after: "NOT_FOUND" };
      },
    },
    {
      kind: "regenerate",
      setup: async () => {
        const k = await scoped("restart regenerate");
        return { key: k.key, restart: () => keyEvicted(k.id), change: () => call("POST", `${keyPath(k.id)}/regenerate`, { key: org.adminKey }), status: 200, after: "NOT_FOUND" };
      },
    },
    {
      kind: "policy change",
      setup: async () => {
        // An org of its own: the policy applies to all its keys. Its caller complies: an admin key that expires.
        const own = await createOrg("Answers Wait Policy");
        const expiring = await createKeyAs(own.adminKey, own.orgId, { kind: "rbac", name: "expiring admin", orgRole: "admin", expiresInDays: 30 });
        const k = await createKeyAs(own.adminKey, own.orgId, { kind: "scoped", name: "never expires", scopes: ["app:read"] });
        const change = () => call("PUT", `/v1/orgs/${own.orgId}/policy`, { key: expiring.key, body: { requireExpiration: true, maxLifetimeDays: null } });
        return { key: k.key, restart: () => evictDurableObject(orgAuthorityFor(env, own.orgId)), change, status: 200, after: "POLICY_VIOLATION" };
      },
    },
    {
      kind: "app deletion",
      setup: async () => {
        const appId = await seedApp(org.orgId, "restart deletion");
        const k = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "restart holder", orgRole: "none", appRoles: [{ appId, role: "uploader" }] });
        const restart = async () => {
          await keyEvicted(k.id);
          await orgEvicted();
        };
        const change = () => call("DELETE", appPath(appId), { key: org.adminKey });
        return { key: k.key, request: { permission: "app:upload", app: appId }, restart, change, status: 204, after: "INSUFFICIENT_PERMISSIONS" };
      },
    },
  ];

  for (const { kind, setup } of cases) {
    it(`${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind} sent after the authority restarted still waits out the lease granted before the restart`, async () => {
      const s = await setup();
      const { edge, held } = await leased(s.key, s.request);
      await s.restart();
      const change = await timed(s.change);
      expectStatus(change.res, s.status);
      expect(change.returned, `the ${kind} answered while the isolate's lease ran`).toBeGreaterThanOrEqual(held);
      expect(await verdict(s.key, edge, s.request)).toBe(s.after);
    });
  }

  it("keeps the lease mark in the authority's storage, written at most once per T/2, not once per lease", async () => {
    const k = await scoped("steady mark");
    const mark = () => runInDurableObject(authorityFor(env, k.id), (_instance: KeyAuthority, state) => state.storage.get<number>("leaseMark"));
    const started = Date.now();
    const { held } = await leased(k.key);
    const first = await mark();
    expect(first, "the mark covers the lease").toBeGreaterThanOrEqual(held);
    // More isolates, each granted a lease of its own, within T/2 of the first: the mark already covers them.
    for (let i = 0; i < 4; i++) await leased(k.key);
    if (Date.now() - started < T / 2) expect(await mark()).toBe(first);
    // Past T/2 a new lease would end beyond the mark: it is raised first.
    await sleep(started + T / 2 + 50 - Date.now());
    const { held: later } = await leased(k.key);
    expect(await mark()).toBeGreaterThanOrEqual(later);
  });

  it("an authority that granted no lease lately answers a change after a restart at once", async () => {
    const k = await scoped("restart idle");
    const { held } = await leased(k.key);
    await sleep(held - Date.now() + 2 * T); // past the lease and the stored mark
    await evictDurableObject(authorityFor(env, k.id));
    const change = await timed(() => call("DELETE", keyPath(k.id), { key: org.adminKey }));
    expectStatus(change.res, 204);
    expect(change.returned - change.sent, change.res.text).toBeLessThan(T);
  });
});
