import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { SESSION_RECORD_PREFIX } from "../src/console/session";
import { call, createOrg } from "./helpers";
import { ConsoleClient, shownSecret } from "./console-helpers";
import { faultyD1, faultyKV } from "./fault-bindings";
import { createKeyAs, revoke, seedApp, setPolicy, storedRow, writeCounts } from "./key-fixtures";

/**
 * The console's server side, inside workerd: sessions, CSRF, and that every form goes through the
 * API's own rules. The browser tests (test/browser/) drive the same pages in Chromium.
 */
let org: Awaited<ReturnType<typeof createOrg>>;
let appId: string;

beforeAll(async () => {
  org = await createOrg("Console Co");
  appId = await seedApp(org.orgId, "mobile");
});

const verify = async (key: string) => (await call("POST", "/v1/keys/verify", { body: { key } })).body.code as string;

describe("console sign-in and sessions", () => {
  it("exchanges a valid key for a __Host-, HttpOnly, Secure, SameSite=Strict session cookie on Path=/ and keeps no key anywhere", async () => {
    const client = new ConsoleClient();
    const res = await client.request("POST", "/console/sign-in", { form: { key: org.adminKey } });
    expect(res.status).toBe(303);
    expect(res.location).toBe("/console/keys");
    expect(res.setCookie).toMatch(/^__Host-keygate_session=[A-Za-z0-9_-]{43}; Max-Age=1800; Path=\/; HttpOnly; Secure; SameSite=Strict$/);
    expect(res.setCookie).not.toContain(org.adminKey);
    const page = await client.get("/console/keys");
    expect(page.status).toBe(200);
    expect(page.html).toContain("Signed in as <strong>Admin key</strong>");
    expect(page.headers.get("content-security-policy")).toContain("script-src https://gateway.test/console/app.js;");
    expect(page.headers.get("content-security-policy")).not.toContain("unsafe-inline");
    expect(page.headers.get("cache-control")).toBe("no-store");
    const sessions = await env.KEYS_KV.list({ prefix: SESSION_RECORD_PREFIX });
    expect(sessions.keys.length).toBeGreaterThan(0);
    for (const { name } of sessions.keys) {
      const value = (await env.KEYS_KV.get(name)) ?? "";
      expect(value).not.toContain(org.adminKey);
      expect(value).not.toContain(org.adminKey.slice(26));
      expect(name).not.toContain(client.cookie!.split("=")[1]); // stored under the id's hash, not the id
    }
  });

  it("refuses a wrong key with a message on the page, no cookie, and counts the failure", async () => {
    const client = new ConsoleClient();
    const res = await client.request("POST", "/console/sign-in", { form: { key: "kgw_not_a_key" } });
    expect(res.status).toBe(401);
    expect(res.html).toContain("That key cannot sign in");
    expect(res.html).not.toContain("kgw_not_a_key");
    expect(res.setCookie).toBeNull();
  });

  it("refuses a sign-in posted from another site (login CSRF)", async () => {
    for (const headers of [{ origin: "https://evil.test" }, { "sec-fetch-site": "cross-site" }] as Record<string, string>[]) {
      const res = await new ConsoleClient().request("POST", "/console/sign-in", { form: { key: org.adminKey }, headers });
      expect(res.status).toBe(403);
      expect(res.setCookie).toBeNull();
    }
  });

  it("sends a request without a session to the sign-in page, which says nothing of an ended session on a first visit", async () => {
    for (const path of ["/console/keys", "/console/policy", "/console/audit", "/console/keys/xyz"]) {
      const res = await new ConsoleClient().get(path);
      expect(res.status, path).toBe(303);
      expect(res.location).toBe("/console/sign-in");
    }
    const page = await new ConsoleClient().get("/console/sign-in");
    expect(page.html).not.toMatch(/session has ended|signed out|expired/i);
    const forged = new ConsoleClient();
    forged.cookie = "__Host-keygate_session=" + "A".repeat(43);
    expect((await forged.get("/console/keys")).location).toBe("/console/sign-in?ended=expired");
  });

  it("ends the session on the very next request once its key is revoked", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "short-lived admin", orgRole: "admin" });
    const client = new ConsoleClient();
    await client.signIn(key.key);
    await revoke(key.id, org.orgId);
    const res = await client.get("/console/keys");
    expect(res.status).toBe(303);
    expect(res.location).toBe("/console/sign-in?ended=REVOKED");
    expect(res.setCookie).toMatch(/^__Host-keygate_session=;/);
    const page = await new ConsoleClient().get("/console/sign-in?ended=REVOKED");
    expect(page.html).toContain("its key has been revoked");
  });

  it("signs out: the session is deleted, and the old cookie no longer works", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const cookie = client.cookie;
    const out = await client.post("/console/sign-out");
    expect(out.status).toBe(303);
    expect(out.location).toBe("/console/sign-in?ended=signed_out");
    const replay = new ConsoleClient();
    replay.cookie = cookie;
    expect((await replay.get("/console/keys")).location).toBe("/console/sign-in?ended=expired");
  });
});

describe("console storage faults", () => {
  it("fails closed with a 503 page and Retry-After: a KV outage never signs anyone in or out, a D1 outage writes nothing", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const cookie = client.cookie;
    for (const fault of ["throw", "stall"] as const) {
      const page = await client.request("GET", "/console/keys", { bindings: { KEYS_KV: faultyKV(fault) } });
      expect(page.status).toBe(503);
      expect(page.headers.get("retry-after")).toBe("5");
      expect(page.headers.get("content-type")).toContain("text/html");
      expect(page.html).toContain("Try again shortly");
      const signIn = await new ConsoleClient().request("POST", "/console/sign-in", { form: { key: org.adminKey }, bindings: { KEYS_KV: faultyKV(fault, ["put"]) } });
      expect(signIn.status).toBe(503);
      expect(signIn.setCookie).toBeNull();
    }
    expect(client.cookie).toBe(cookie); // the session survived the outage
    expect((await client.get("/console/keys")).status).toBe(200);
    const before = await writeCounts();
    const create = await client.post("/console/keys", { kind: "scoped", name: "during outage", expiration: "none", scopes: ["app:read"] }, {}, { DB: faultyD1("throw") });
    expect(create.status).toBe(503);
    expect(shownSecret(create.html)).toBeUndefined();
    expect(await writeCounts()).toEqual(before);
  });
});

describe("console CSRF protection", () => {
  it("refuses state changes without the session's token, or from another site, and writes nothing", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const form = { kind: "rbac", name: "csrf victim", orgRole: "admin", expiration: "none", secure: "on" };
    const before = await writeCounts();
    const attempts = [
      client.request("POST", "/console/keys", { form }), // no token at all
      client.request("POST", "/console/keys", { form: { ...form, _csrf: "x".repeat(43) } }),
      client.post("/console/keys", form, { "sec-fetch-site": "cross-site", origin: "https://evil.test" }),
      client.post("/console/keys", form, { origin: "https://evil.test" }),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(403);
      expect(res.html).toContain("CSRF check failed");
      expect(res.headers.get("content-type")).toContain("text/html");
    }
    expect(await writeCounts()).toEqual(before);
  });
});

describe("console key management through the API's rules", () => {
  it("creates a secure key and shows it once; a non-secure key is stored encrypted, not as a hash only", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const created = await client.post("/console/keys", { kind: "rbac", name: "CI deploy", secure: "on", expiration: "90", orgRole: "none", appId: [appId, ""], appRole: ["uploader", "reader"] });
    expect(created.status).toBe(303);
    expect(shownSecret(created.html)).toBeUndefined(); // the post answers with a redirect, never the secret
    const res = await client.get(created.location!);
    expect(res.status).toBe(200);
    const secret = shownSecret(res.html)!;
    expect(secret).toMatch(/^kgw_/);
    expect(res.html).toContain("It will not be shown again");
    expect(await verify(secret)).toBe("VALID");
    const listed = await client.get("/console/keys");
    expect(listed.html).toContain("CI deploy");
    expect(listed.html).toContain("mobile: App Uploader");
    expect(listed.html).not.toContain(secret);

    const posted = await client.post("/console/keys", { kind: "scoped", name: "not secure", expiration: "none", scopes: ["app:read", "project:deploy"] });
    expect(posted.status).toBe(303);
    const plain = await client.get(posted.location!);
    const keyId = shownSecret(plain.html)!.split("_")[1]!;
    const row = await storedRow(keyId);
    expect(row!.secure).toBe(0);
    expect(row!.secret_ciphertext).not.toBeNull();
  });

  it("never repeats an action on reload: the secret is shown once, to this session only, and reloading creates nothing", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const posted = await client.post("/console/keys", { kind: "scoped", name: "reload me", expiration: "none", scopes: ["app:read"] });
    expect(posted.status).toBe(303);
    const before = await writeCounts();
    // Another session cannot open it, and does not use it up.
    const other = new ConsoleClient();
    await other.signIn(org.adminKey);
    const stolen = await other.get(posted.location!);
    expect(shownSecret(stolen.html)).toBeUndefined();
    const first = await client.get(posted.location!);
    expect(shownSecret(first.html)).toMatch(/^kgw_/);
    expect(first.headers.get("cache-control")).toContain("no-store");
    const reload = await client.get(posted.location!);
    expect(shownSecret(reload.html)).toBeUndefined();
    expect(reload.html).toContain("shown once already");
    // Reloading (a GET) wrote nothing: no second key, no audit entry.
    expect((await writeCounts()).keys).toBe(before.keys);
    // After a regenerate, a reload neither regenerates again nor kills the secret just shown.
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "regen once", scopes: ["app:read"] });
    const regen = await client.post(`/console/keys/${key.id}/regenerate`);
    const shown = shownSecret((await client.get(regen.location!)).html)!;
    await client.get(regen.location!);
    expect(await verify(shown)).toBe("VALID");
  });

  it("shows validation errors next to their fields and writes nothing", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const before = await writeCounts();
    const res = await client.post("/console/keys", { kind: "scoped", name: "   ", expiration: "date", expiresOn: "" });
    expect(res.status).toBe(400);
    expect(res.html).toContain('id="create-expiration-error"');
    const noScope = await client.post("/console/keys", { kind: "scoped", name: "", expiration: "none" });
    expect(noScope.status).toBe(400);
    expect(noScope.html).toMatch(/id="create-name-error"[^>]*>[^<]*/);
    expect(noScope.html).toMatch(/id="create-scopes-error"/);
    expect(noScope.html).toContain("data-autoopen"); // the dialog reopens with the errors
    expect(await writeCounts()).toEqual(before);
  });

  it("refuses escalation from the console as the API does: a key manager cannot mint an admin key", async () => {
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "manager", scopes: ["apiKeyManagement", "app:read"] });
    const client = new ConsoleClient();
    await client.signIn(manager.key);
    const page = await client.get("/console/keys");
    expect(page.html).not.toMatch(/<option value="admin"[^>]*>Admin — full/); // not offered
    const before = await writeCounts();
    const forged = await client.post("/console/keys", { kind: "rbac", name: "sneaky admin", expiration: "none", orgRole: "admin" });
    expect(forged.status).toBe(403);
    expect(forged.html).toContain("Your key cannot grant access it does not hold itself");
    const scope = await client.post("/console/keys", { kind: "scoped", name: "sneaky scope", expiration: "none", scopes: ["project:deploy"] });
    expect(scope.status).toBe(403);
    expect(await writeCounts()).toEqual(before);
  });

  it("regenerates and deletes through the key's authority: the old secret is dead when the page answers", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "old uploader", mode: "upload" });
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const posted = await client.post(`/console/keys/${key.id}/regenerate`);
    expect(posted.status).toBe(303);
    const regen = await client.get(posted.location!);
    const fresh = shownSecret(regen.html)!;
    expect(regen.html).toContain("The previous secret has already stopped working");
    expect(await verify(key.key)).not.toBe("VALID");
    expect(await verify(fresh)).toBe("VALID");
    const del = await client.post(`/console/keys/${key.id}/revoke`);
    expect(del.status).toBe(303);
    expect(del.location).toBe("/console/keys?notice=revoked");
    expect(await verify(fresh)).toBe("REVOKED");
  });

  it("reveals a non-secure key after confirmation, audited; a secure key has nothing to reveal", async () => {
    const plain = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "revealable", scopes: ["app:read"], secure: false });
    const secure = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "hashed", scopes: ["app:read"] });
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const list = await client.get("/console/keys");
    expect(list.html).toContain(`aria-label="Reveal revealable"`);
    expect(list.html).not.toContain(`aria-label="Reveal hashed"`);
    const posted = await client.post(`/console/keys/${plain.id}/reveal`);
    expect(posted.status).toBe(303);
    const shown = await client.get(posted.location!);
    expect(shownSecret(shown.html)).toBe(plain.key);
    const audit = await call("GET", `/v1/orgs/${org.orgId}/audit-log`, { key: org.adminKey });
    expect(audit.body.entries[0]).toMatchObject({ action: "key.reveal", targetId: plain.id });
    const refused = await client.post(`/console/keys/${secure.id}/reveal`);
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(shownSecret(refused.html)).toBeUndefined();
    expect(refused.html).toContain("The key was not revealed");
  });

  it("edits an RBAC key, and says why a legacy key cannot be edited", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "editable", orgRole: "member" });
    const legacy = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "legacy reader", mode: "read" });
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    expect((await client.get(`/console/keys/${key.id}`)).html).toContain("Save Changes");
    const saved = await client.post(`/console/keys/${key.id}`, { name: "edited", expiration: "keep", orgRole: "none", appId: [appId], appRole: ["developer"] });
    expect(saved.status).toBe(303);
    const after = await call("GET", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey });
    expect(after.body).toMatchObject({ name: "edited", orgRole: "none", appRoles: [{ appId, role: "developer" }] });
    const legacyPage = await client.get(`/console/keys/${legacy.id}`);
    expect(legacyPage.html).toContain("Legacy keys cannot be edited");
    expect(legacyPage.html).not.toContain("Save Changes");
    const forced = await client.post(`/console/keys/${legacy.id}`, { name: "x", orgRole: "admin" });
    expect(forced.status).toBe(409);
  });

  it("shows a key without apiKeyManagement a disabled page that says why", async () => {
    const reader = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "reader", scopes: ["app:read"] });
    const client = new ConsoleClient();
    await client.signIn(reader.key);
    const page = await client.get("/console/keys");
    expect(page.status).toBe(200);
    expect(page.html).toContain("lacks the apiKeyManagement permission");
    expect(page.html).toMatch(/<button[^>]*disabled/);
    expect(page.html).not.toContain('action="/console/keys"');
    const before = await writeCounts();
    const attempt = await client.post("/console/keys", { kind: "scoped", name: "x", expiration: "none", scopes: ["app:read"] });
    expect(attempt.status).toBe(403);
    expect(await writeCounts()).toEqual(before);
  });

  it("pages each section on its own, and shows the empty state of an empty section", async () => {
    const big = await createOrg("Many Keys Co");
    for (let i = 0; i < 26; i++) await createKeyAs(big.adminKey, big.orgId, { kind: "scoped", name: `bulk ${String(i).padStart(2, "0")}`, scopes: ["app:read"] });
    const client = new ConsoleClient();
    await client.signIn(big.adminKey);
    const first = await client.get("/console/keys");
    const rows = (html: string) => html.match(/<tr data-key-id=/g)?.length ?? 0;
    expect(rows(first.html)).toBe(25);
    expect(first.html).toContain("No legacy keys.");
    const next = /<a href="(\/console\/keys\?cursor=[^"]+)">Next page<\/a>/.exec(first.html)?.[1];
    expect(next).toBeDefined();
    const second = await client.get(next!.replaceAll("&amp;", "&"));
    expect(rows(second.html)).toBe(2); // 26 + the org's admin key = 27
    expect(second.html).toContain(">First page</a>");
    expect(second.html).not.toContain("Next page");
    const bogus = await client.get("/console/keys?cursor=not-a-cursor");
    expect(bogus.status).toBe(200);
    expect(bogus.html).toContain("That page link is no longer valid");
  });

  it("sets the org policy and lists the audit log", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    // A key without expiry would break the policy it sets, so the API refuses it and the page says why.
    const refused = await client.post("/console/policy", { requireExpiration: "on", maxLifetimeDays: "365" });
    expect(refused.status).toBe(409);
    expect(refused.html).toContain("class=\"notice error\"");
    const expiring = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "expiring admin", orgRole: "admin", expiresInDays: 30 });
    await client.signIn(expiring.key);
    const bad = await client.post("/console/policy", { maxLifetimeDays: "abc" });
    expect(bad.status).toBe(400);
    const saved = await client.post("/console/policy", { requireExpiration: "on", maxLifetimeDays: "365" });
    expect(saved.status).toBe(303);
    expect((await call("GET", `/v1/orgs/${org.orgId}/policy`, { key: expiring.key })).body).toMatchObject({ requireExpiration: true, maxLifetimeDays: 365 });
    const create = await client.get("/console/keys");
    expect(create.html).toContain("Expiration (required)");
    expect(create.html).not.toContain("No expiration");
    const audit = await client.get("/console/audit");
    expect(audit.html).toContain("policy");
    expect(audit.html).toContain("key.create");
    await client.post("/console/policy", { maxLifetimeDays: "" });
  });
});

/** The attributes of a tag's attribute text, as hono/jsx renders them (`checked=""` for booleans). */
function attributes(text: string): Record<string, string> {
  return Object.fromEntries([...text.matchAll(/([\w:-]+)(?:="([^"]*)")?/g)].map((m) => [m[1]!, (m[2] ?? "").replaceAll("&amp;", "&")]));
}

/**
 * What a browser submits from the page's form posting to `action` when the user changes nothing:
 * checked boxes and radios, each select's selected (or first) enabled option, text values; never a
 * disabled control.
 */
function untouchedForm(html: string, action: string): Record<string, string[]> {
  const start = html.indexOf(`action="${action}"`);
  expect(start, `no form posting to ${action}`).toBeGreaterThan(-1);
  const form = html.slice(start, html.indexOf("</form>", start));
  const out: Record<string, string[]> = {};
  const add = (name: string, value: string) => (out[name] ??= []).push(value);
  for (const [, text] of form.matchAll(/<input([^>]*)>/g)) {
    const a = attributes(text!);
    const type = a.type ?? "text";
    if (!a.name || "disabled" in a || ((type === "checkbox" || type === "radio") && !("checked" in a))) continue;
    add(a.name, a.value ?? (type === "checkbox" ? "on" : ""));
  }
  for (const [, text, body] of form.matchAll(/<select([^>]*)>([\s\S]*?)<\/select>/g)) {
    const a = attributes(text!);
    if (!a.name || "disabled" in a) continue;
    const options = [...body!.matchAll(/<option([^>]*)>/g)].map((o) => attributes(o[1]!)).filter((o) => !("disabled" in o));
    const chosen = options.find((o) => "selected" in o) ?? options[0];
    if (chosen) add(a.name, chosen.value ?? "");
  }
  return out;
}

/** The HTML of the keys table row of `keyId`. */
const rowOf = (html: string, keyId: string) => {
  const start = html.indexOf(`<tr data-key-id="${keyId}"`);
  expect(start, `no row for ${keyId}`).toBeGreaterThan(-1);
  return html.slice(start, html.indexOf("</tr>", start));
};

describe("console: apps, policy and what the signed-in key may do, as the keys page shows them", () => {
  it("names apps in badges and in the app select, never by their raw id", async () => {
    const named = await createOrg("Named Apps Co");
    const app = await seedApp(named.orgId, "checkout-web");
    const key = await createKeyAs(named.adminKey, named.orgId, { kind: "rbac", name: "uploader", orgRole: "none", appRoles: [{ appId: app, role: "uploader" }] });
    const client = new ConsoleClient();
    await client.signIn(named.adminKey);
    const page = await client.get("/console/keys");
    const row = rowOf(page.html, key.id);
    expect(row).toContain("checkout-web: App Uploader");
    expect(row).not.toContain(app);
    expect(page.html).toMatch(new RegExp(`<option value="${app}"[^>]*>checkout-web</option>`));
    const edit = await client.get(`/console/keys/${key.id}`);
    expect(edit.html).toMatch(new RegExp(`<option value="${app}" selected="">checkout-web</option>`));
  });

  it("creates a new org's first RBAC key from the dialog's defaults, and leads it to create its first app instead of curl", async () => {
    const fresh = await createOrg("Fresh Co");
    const client = new ConsoleClient();
    await client.signIn(fresh.adminKey);
    const page = await client.get("/console/keys");
    expect(page.html).toContain("Your organization has no apps yet");
    expect(page.html).toMatch(/<a class="button" href="\/console\/apps">Create your first app<\/a>/);
    expect(page.html).not.toContain("/v1/orgs/");
    const defaults = untouchedForm(page.html, "/console/keys");
    expect(defaults).toMatchObject({ kind: ["rbac"], secure: ["on"], orgRole: ["member"], expiration: ["none"] });
    const posted = await client.post("/console/keys", { ...defaults, name: ["first key"] });
    expect(posted.status, posted.html.slice(0, 2000)).toBe(303);
    const shown = shownSecret((await client.get(posted.location!)).html)!;
    expect(await verify(shown)).toBe("VALID");
    const listed = await call("GET", `/v1/orgs/${fresh.orgId}/keys?kind=rbac`, { key: fresh.adminKey });
    expect(listed.body.keys.find((k: { name: string }) => k.name === "first key")).toMatchObject({ kind: "rbac", orgRole: "member", secure: true, expiresAt: null });

    // Once the org has an app the lead is gone, and the defaults still create a key.
    await seedApp(fresh.orgId, "first-app");
    const later = await client.get("/console/keys");
    expect(later.html).not.toContain("Your organization has no apps yet");
    const again = await client.post("/console/keys", { ...untouchedForm(later.html, "/console/keys"), name: ["second key"] });
    expect(again.status, again.html.slice(0, 2000)).toBe(303);
  });

  it("does not tell a key that may not list apps to create the first one: it cannot know there is none", async () => {
    const co = await createOrg("Scoped Manager Co");
    await seedApp(co.orgId, "existing-app");
    const scoped = await createKeyAs(co.adminKey, co.orgId, { kind: "scoped", name: "scoped manager", scopes: ["apiKeyManagement", "app:read"] });
    const client = new ConsoleClient();
    await client.signIn(scoped.key);
    const page = await client.get("/console/keys");
    expect(page.html).toContain("There are no apps your key administers");
    expect(page.html).not.toContain("Your organization has no apps yet");
  });

  it("marks keys that break the org policy with a Violates policy badge and the reason; compliant keys carry none", async () => {
    const co = await createOrg("Policy Badge Co");
    const compliant = await createKeyAs(co.adminKey, co.orgId, { kind: "rbac", name: "compliant admin", orgRole: "admin", expiresInDays: 30 });
    const forever = await createKeyAs(co.adminKey, co.orgId, { kind: "scoped", name: "forever", scopes: ["app:read"] });
    const long = await createKeyAs(co.adminKey, co.orgId, { kind: "scoped", name: "a year", scopes: ["app:read"], expiresInDays: 365 });
    await setPolicy(co.orgId, { requireExpiration: true, maxLifetimeDays: 90 });
    const client = new ConsoleClient();
    await client.signIn(compliant.key);
    const page = await client.get("/console/keys");
    expect(rowOf(page.html, forever.id)).toMatch(/Violates policy<\/span> The organization&#39;s policy requires keys to have an expiration date\./);
    expect(rowOf(page.html, long.id)).toContain("Violates policy");
    expect(rowOf(page.html, long.id)).toContain("caps key lifetime at 90 days");
    expect(rowOf(page.html, compliant.id)).not.toContain("Violates policy");
    // The badge tells the truth: the key is refused at use.
    expect(await verify(forever.key)).toBe("POLICY_VIOLATION");
    const edit = await client.get(`/console/keys/${forever.id}`);
    expect(edit.html).toContain("Violates policy");
    expect(edit.html).toContain("give it an expiration that fits the policy below");
  });

  it("disables Manage, Regenerate, Reveal and Delete on a key with more access than the signed-in one, saying why; the API still refuses", async () => {
    const co = await createOrg("Locked Co");
    const manager = await createKeyAs(co.adminKey, co.orgId, { kind: "scoped", name: "manager", scopes: ["apiKeyManagement", "org:read", "app:read"] });
    const billing = await seedApp(co.orgId, "billing");
    const uploader = await createKeyAs(co.adminKey, co.orgId, { kind: "rbac", name: "billing uploader", orgRole: "none", appRoles: [{ appId: billing, role: "uploader" }] });
    const admin = await createKeyAs(co.adminKey, co.orgId, { kind: "rbac", name: "other admin", orgRole: "admin", secure: false });
    const reader = await createKeyAs(co.adminKey, co.orgId, { kind: "scoped", name: "reader", scopes: ["app:read"], secure: false });
    const client = new ConsoleClient();
    await client.signIn(manager.key);
    const page = await client.get("/console/keys");
    const locked = rowOf(page.html, admin.id);
    for (const action of ["Manage", "Reveal", "Regenerate", "Delete"]) {
      expect(locked).toMatch(new RegExp(`<button type="button" class="locked[^"]*" aria-disabled="true" aria-label="${action} other admin" aria-describedby="locked-${admin.id}"`));
    }
    expect(locked).toMatch(new RegExp(`<p class="locked-reason" id="locked-${admin.id}">Your key cannot change this key: it has access yours lacks \\(org:admin, app:upload, app:publish and \\d+ more\\)\\.</p>`));
    // Apps by name there too.
    expect(rowOf(page.html, uploader.id)).toContain("it has access yours lacks (app:admin on billing, app:upload on billing).");
    expect(locked).not.toContain(`data-open=`); // no confirmation to click through
    expect(locked).not.toContain(`href="/console/keys/${admin.id}"`);
    const open = rowOf(page.html, reader.id);
    expect(open).toContain(`data-open="regenerate-${reader.id}"`);
    expect(open).toContain(`data-open="delete-${reader.id}"`);
    expect(open).not.toContain("aria-disabled");
    // The edit page says so too, with nothing to submit.
    const edit = await client.get(`/console/keys/${admin.id}`);
    expect(edit.html).toContain('id="edit-locked"');
    expect(edit.html).toMatch(/<fieldset class="plain" disabled="">/);
    expect(edit.html).toMatch(/<button type="button" class="primary" aria-disabled="true" aria-describedby="edit-locked">Save Changes/);
    // Disabled in the page, refused by the API all the same.
    const before = await writeCounts();
    for (const action of ["regenerate", "reveal", "revoke"]) {
      const forced = await client.post(`/console/keys/${admin.id}/${action}`);
      expect(forced.status, action).toBe(403);
      expect(shownSecret(forced.html)).toBeUndefined();
    }
    expect(await writeCounts()).toEqual(before);
    expect(await verify(admin.key)).toBe("VALID");
  });

  it("disables Regenerate and Reveal, not Delete, on a key that would outlive the signed-in key, and offers no expiry past its own", async () => {
    const co = await createOrg("Short Life Co");
    const shortAdmin = await createKeyAs(co.adminKey, co.orgId, { kind: "rbac", name: "30-day admin", orgRole: "admin", expiresInDays: 30 });
    const forever = await createKeyAs(co.adminKey, co.orgId, { kind: "scoped", name: "forever", scopes: ["app:read"], secure: false });
    const client = new ConsoleClient();
    await client.signIn(shortAdmin.key);
    const page = await client.get("/console/keys");
    const row = rowOf(page.html, forever.id);
    expect(row).toContain(`aria-label="Regenerate forever" aria-describedby="locked-${forever.id}"`);
    expect(row).toContain(`aria-label="Reveal forever" aria-describedby="locked-${forever.id}"`);
    expect(row).toMatch(/Your key expires on \d{4}-\d{2}-\d{2}, so it cannot hand out a secret for this longer-lived key\./);
    expect(row).toContain(`data-open="delete-${forever.id}"`);
    expect(row).toContain(`href="/console/keys/${forever.id}"`);
    const forced = await client.post(`/console/keys/${forever.id}/regenerate`);
    expect(forced.status).toBe(403);
    // The create dialog offers only lifetimes the API accepts from this key, and says why.
    const dialog = page.html.slice(page.html.indexOf('id="create-dialog"'));
    expect(dialog).not.toContain(">No expiration<");
    expect(dialog).not.toContain(">60 days<");
    expect(dialog).toMatch(/Your key expires on \d{4}-\d{2}-\d{2}: a key it gives out cannot live longer\./);
    const posted = await client.post("/console/keys", { ...untouchedForm(page.html, "/console/keys"), name: ["made by a 30-day key"] });
    expect(posted.status, posted.html.slice(0, 2000)).toBe(303);
  });

  it("shows the recommended security practices where keys are created", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const page = await client.get("/console/keys");
    const dialog = page.html.slice(page.html.indexOf('id="create-dialog"'), page.html.indexOf("</dialog>", page.html.indexOf('id="create-dialog"')));
    for (const practice of ["Least privilege", "Set an expiry", "rotate regularly", "Never commit keys"]) expect(dialog).toContain(practice);
  });

  it("serves a favicon the console's pages link to and its CSP allows", async () => {
    const icon = await new ConsoleClient().get("/console/favicon.svg");
    expect(icon.status).toBe(200);
    expect(icon.headers.get("content-type")).toBe("image/svg+xml");
    expect(icon.html).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    const signIn = await new ConsoleClient().get("/console/sign-in");
    expect(signIn.html).toContain('<link rel="icon" href="/console/favicon.svg" type="image/svg+xml"/>');
    expect(signIn.headers.get("content-security-policy")).toMatch(/img-src 'self'/);
  });

  it("links every page's navigation to the Apps page", async () => {
    const client = new ConsoleClient();
    await client.signIn(org.adminKey);
    const page = await client.get("/console/keys");
    expect(page.html).toMatch(/<a class="tab" href="\/console\/apps">Apps<\/a>/);
  });
});
