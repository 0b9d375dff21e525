import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { orgAuthorityFor, type OrgAuthority } from "../src/durable-objects/org-authority";
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrg, expectStatus } from "./helpers";
import { ConsoleClient, pageText } from "./console-helpers";
import { createKeyAs, seedApp, setPolicy } from "./key-fixtures";

/**
 * The console's apps page, audit log and policy page inside workerd: every form goes through the
 * API as the signed-in key, each success redirects (a reload repeats nothing), and a key sees
 * disabled what it may not do. test/browser/console-apps.test.ts clicks the same pages in Chromium.
 */
type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;

beforeAll(async () => {
  org = await createOrg("Console Apps Co");
});

const appsOf = async (o: Org) => (await call("GET", `/v1/orgs/${o.orgId}/apps?limit=100`, { key: o.adminKey })).body.apps as { id: string; name: string }[];
const auditCount = async () => (await env.DB.prepare("select count(*) as n from audit_log").first<{ n: number }>())!.n;
/** What the page says (`pageText`), without the spaces dropped tags leave before punctuation. */
const text = (html: string) =>
  pageText(html)
    .replace(/ ([.,:)])/g, "$1")
    .replace(/\( /g, "(");
/** The `<tr>` of the app named `name` in the apps table. */
const appRow = (html: string, id: string) => new RegExp(`<tr data-app-id="${id}">([\\s\\S]*?)</tr>`).exec(html)?.[1];

async function signedIn(key: string) {
  const client = new ConsoleClient();
  await client.signIn(key);
  return client;
}

/** A D1 in which no key holds a role on any app: what the org's authority sees when a role is given after it read the holders. */
function holdersHidden(): D1Database {
  return new Proxy(env.DB, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "prepare") {
        return (sql: string) => (/from "key_app_roles" where "key_app_roles"."app_id"/.test(sql) ? target.prepare('select "key_id" from "key_app_roles" where "app_id" = ? and 0') : value.call(target, sql));
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("console apps page", () => {
  it("lists the org's apps with name, id and creation time, and creates one with post/redirect/get", async () => {
    const existing = await seedApp(org.orgId, "web");
    const client = await signedIn(org.adminKey);
    const page = await client.get("/console/apps");
    expect(page.status).toBe(200);
    const row = appRow(page.html, existing)!;
    expect(row).toContain("web");
    expect(row).toContain(`<code>${existing}</code>`);
    expect(row).toMatch(/<time datetime="\d{4}-\d{2}-\d{2}T/);

    const posted = await client.post("/console/apps", { name: "billing-api" });
    expect(posted.status).toBe(303);
    const created = (await appsOf(org)).find((a) => a.name === "billing-api")!;
    expect(posted.location).toBe(`/console/apps?created=${created.id}`);
    const shown = await client.get(posted.location!);
    expect(text(shown.html)).toContain("App “billing-api” created.");
    expect(appRow(shown.html, created.id)).toContain("billing-api");
    // A page link whose cursor the API refuses shows the first page, saying so.
    const stale = await client.get("/console/apps?cursor=djE6bm9wZQ");
    expect(stale.status).toBe(200);
    expect(text(stale.html)).toContain("That page link is no longer valid; showing the first page.");
    expect(appRow(stale.html, existing)).toContain("web");
    // A reload is a GET: nothing is created twice.
    const before = (await appsOf(org)).length;
    await client.get(posted.location!);
    expect((await appsOf(org)).length).toBe(before);
  });

  it("shows a bad or duplicate name next to the field, keeps what was typed, and writes nothing", async () => {
    const client = await signedIn(org.adminKey);
    await seedApp(org.orgId, "taken");
    const before = { apps: (await appsOf(org)).length, audit: await auditCount() };
    const cases = [
      { name: "   ", status: 400, message: /Name must not be empty/ },
      { name: "x".repeat(101), status: 400, message: /Name must be at most 100 characters/ },
      { name: "taken", status: 409, message: /already the name of an app/ },
    ];
    for (const { name, status, message } of cases) {
      const res = await client.post("/console/apps", { name });
      expect(res.status, name).toBe(status);
      expect(res.html).toMatch(/<input[^>]*id="app-name"[^>]*aria-invalid="true"/);
      expect(res.html).toMatch(/aria-describedby="app-name-error app-name-hint"/);
      const error = /<p class="field-error" id="app-name-error" role="alert">([^<]*)<\/p>/.exec(res.html)?.[1];
      expect(error).toMatch(message);
      expect(res.html).toContain(`value="${name}"`);
    }
    expect({ apps: (await appsOf(org)).length, audit: await auditCount() }).toEqual(before);
  });

  it("deletes an app after a confirmation naming the keys that lose their role on it, and they lose it", async () => {
    const client = await signedIn(org.adminKey);
    const appId = await seedApp(org.orgId, "to-delete");
    const holder = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "CI uploader", orgRole: "none", appRoles: [{ appId, role: "uploader" }] });
    const page = await client.get("/console/apps");
    const row = appRow(page.html, appId)!;
    expect(row).toContain(`data-open="delete-app-${appId}"`);
    const dialog = new RegExp(`<dialog id="delete-app-${appId}"[\\s\\S]*?</dialog>`).exec(page.html)![0];
    expect(text(dialog)).toContain("Delete app “to-delete”?");
    expect(text(dialog)).toContain("1 key holds a role on it (CI uploader): it loses that role immediately");
    expect(dialog).toContain(`action="/console/apps/${appId}/delete"`);

    const res = await client.post(`/console/apps/${appId}/delete`);
    expect(res.status).toBe(303);
    expect(res.location).toBe("/console/apps?notice=deleted");
    expect((await appsOf(org)).map((a) => a.id)).not.toContain(appId);
    const key = await call("GET", `/v1/orgs/${org.orgId}/keys/${holder.id}`, { key: org.adminKey });
    expect(key.body.appRoles).toEqual([]);
    const after = await client.get(res.location!);
    expect(text(after.html)).toContain("The app was deleted.");
    expect(after.html).not.toContain(appId);
  });

  it("says plainly when the API refuses a delete because the app is still in use (409 APP_IN_USE), and keeps the app", async () => {
    const client = await signedIn(org.adminKey);
    const appId = await seedApp(org.orgId, "busy");
    await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "busy holder", orgRole: "none", appRoles: [{ appId, role: "reader" }] });
    await client.get("/console/apps");
    // The deletion runs in the org's authority: it reads the holders through its own bindings.
    const hideHolders = (DB: D1Database | null) =>
      runInDurableObject(orgAuthorityFor(env, org.orgId), (instance: OrgAuthority) => {
        instance.bindings = DB && { ...env, DB };
      });
    await hideHolders(holdersHidden());
    const res = await client.request("POST", `/console/apps/${appId}/delete`, { form: { _csrf: client.csrf } }).finally(() => hideHolders(null));
    expect(res.status).toBe(409);
    expect(text(res.html)).toContain("The app was not deleted: keys were given roles on it while it was being deleted, so it is still in use.");
    expect(res.html).toContain('role="alert"');
    expect((await appsOf(org)).map((a) => a.id)).toContain(appId);
    // Another org's app, or one gone already, is not found: said as such, nothing deleted.
    const other = await createOrg("Apps elsewhere");
    const foreign = await seedApp(other.orgId, "theirs");
    const gone = await client.post(`/console/apps/${foreign}/delete`);
    expect(gone.status).toBe(404);
    expect(text(gone.html)).toContain("it no longer exists");
    expect((await appsOf(other)).map((a) => a.id)).toContain(foreign);
  });

  it("needs a session and the session's CSRF token for every apps action, and writes nothing without them", async () => {
    const appId = await seedApp(org.orgId, "csrf-target");
    for (const path of ["/console/apps", `/console/apps/${appId}/delete`]) {
      const res = await new ConsoleClient().request(path === "/console/apps" ? "GET" : "POST", path, { form: path === "/console/apps" ? undefined : {} });
      expect(res.status, path).toBe(303);
      expect(res.location).toBe("/console/sign-in");
    }
    const client = await signedIn(org.adminKey);
    await client.get("/console/apps");
    const before = { apps: (await appsOf(org)).length, audit: await auditCount() };
    const attempts = [
      client.request("POST", "/console/apps", { form: { name: "no token" } }),
      client.request("POST", "/console/apps", { form: { name: "wrong token", _csrf: "x".repeat(43) } }),
      client.post("/console/apps", { name: "cross site" }, { "sec-fetch-site": "cross-site", origin: "https://evil.test" }),
      client.request("POST", `/console/apps/${appId}/delete`, { form: {} }),
      client.post(`/console/apps/${appId}/delete`, {}, { origin: "https://evil.test" }),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(403);
      expect(res.html).toContain("CSRF check failed");
    }
    expect({ apps: (await appsOf(org)).length, audit: await auditCount() }).toEqual(before);
  });

  it("shows a key without org:admin the apps with Create and Delete disabled and why; the API refuses it anyway", async () => {
    const appId = await seedApp(org.orgId, "guarded");
    const member = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "org member", orgRole: "member" });
    const client = await signedIn(member.key);
    const page = await client.get("/console/apps");
    expect(page.status).toBe(200);
    expect(appRow(page.html, appId)).toContain("guarded");
    expect(page.html).toMatch(/<button type="button" class="locked primary" aria-disabled="true" aria-describedby="apps-locked">\s*Create app/);
    expect(page.html).not.toMatch(/<button type="submit"[^>]*>\s*Create app/);
    expect(appRow(page.html, appId)).toMatch(/<button type="button" class="locked danger" aria-disabled="true" aria-label="Delete guarded" aria-describedby="apps-locked"/);
    expect(text(/<p id="apps-locked">([\s\S]*?)<\/p>/.exec(page.html)![1]!)).toContain("needs the org:admin permission");
    expect(page.html).not.toContain(`<dialog id="delete-app-${appId}"`); // nothing to confirm that would then be refused
    expect(text(page.html)).toContain("Creating and deleting apps needs the org:admin permission.");

    const before = { apps: (await appsOf(org)).length, audit: await auditCount() };
    const create = await client.post("/console/apps", { name: "sneaky" });
    expect(create.status).toBe(403);
    expect(text(create.html)).toContain("This key lacks the org:admin permission.");
    const del = await client.post(`/console/apps/${appId}/delete`);
    expect(del.status).toBe(403);
    expect(text(del.html)).toContain("The app was not deleted: This key lacks the org:admin permission.");
    expect({ apps: (await appsOf(org)).length, audit: await auditCount() }).toEqual(before);
  });

  it("tells a key that cannot read apps (no org:read) why, and lists none", async () => {
    const appId = await seedApp(org.orgId, "hidden");
    const manager = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "manager only", scopes: ["apiKeyManagement"] });
    const client = await signedIn(manager.key);
    const page = await client.get("/console/apps");
    expect(page.status).toBe(200);
    expect(text(page.html)).toContain("Apps are not available to this key.");
    expect(text(page.html)).toContain("lacks the org:read permission");
    expect(page.html).not.toContain(appId);
    expect(page.html).not.toContain('action="/console/apps"');
  });
});

describe("console audit log", () => {
  let audit: Org;
  let gone: { id: string };
  let kept: { id: string; key: string };
  let appId: string;

  beforeAll(async () => {
    audit = await createOrg("Audit Names Co");
    const app = await call("POST", `/v1/orgs/${audit.orgId}/apps`, { key: audit.adminKey, body: { name: "named-app" } });
    appId = app.body.id;
    kept = await createKeyAs(audit.adminKey, audit.orgId, { kind: "scoped", name: "Kept manager", scopes: ["apiKeyManagement", "app:read"] });
    gone = await createKeyAs(kept.key, audit.orgId, { kind: "scoped", name: "Gone soon", scopes: ["app:read"] });
    expectStatus(await call("DELETE", `/v1/orgs/${audit.orgId}/keys/${gone.id}`, { key: kept.key }), 204);
    expectStatus(await call("DELETE", `/v1/orgs/${audit.orgId}/apps/${appId}`, { key: audit.adminKey }), 204);
  });

  /** The text of each entry row, newest first. */
  const rows = (html: string) => [...html.matchAll(/<tr data-entry-id="\d+">([\s\S]*?)<\/tr>/g)].map((m) => text(m[1]!));

  it("shows key and app names beside their ids, and marks deleted ones with their id and (deleted)", async () => {
    const client = await signedIn(audit.adminKey);
    const page = await client.get("/console/audit");
    expect(page.status).toBe(200);
    const entries = rows(page.html);
    expect(entries[0]).toContain(`app named-app ${appId} (deleted)`);
    expect(entries[0]).toContain(`Admin key ${audit.adminKeyId}`);
    expect(entries[1]).toContain(`key Gone soon ${gone.id} (deleted)`);
    expect(entries[1]).toContain(`Kept manager ${kept.id}`);
    expect(entries[1]).not.toContain(`${kept.id} (deleted)`);
    expect(entries.at(-1)).toContain("bootstrap secret");
    // A key's name leads to the entries about that key.
    expect(page.html).toContain(`<a href="/console/audit?keyId=${kept.id}" title="Only entries about Kept manager"><strong>Kept manager</strong></a>`);
  });

  it("filters by action and by key, keeps the filters in the form, and says when nothing matches", async () => {
    const client = await signedIn(audit.adminKey);
    const byKey = rows((await client.get(`/console/audit?keyId=${kept.id}`)).html);
    expect(byKey.map((r) => /(key|app|org)\.[a-z]+/.exec(r)![0])).toEqual(["key.revoke", "key.create", "key.create"]);
    const revokes = await client.get("/console/audit?action=key.revoke");
    expect(rows(revokes.html)).toHaveLength(1);
    expect(revokes.html).toMatch(/<option value="key.revoke" selected="">/);
    const both = await client.get(`/console/audit?action=app.create&keyId=${kept.id}`);
    expect(both.html).toMatch(new RegExp(`<option value="${kept.id}" selected="">Kept manager</option>`));
    expect(text(both.html)).toContain("No entries match these filters.");
    // A deleted key stays filterable by id, named as deleted.
    const deleted = await client.get(`/console/audit?keyId=${gone.id}`);
    expect(deleted.html).toMatch(new RegExp(`<option value="${gone.id}" selected="">Gone soon \\(deleted\\)</option>`));
    expect(rows(deleted.html)).toHaveLength(2);
    // A filter the API does not know is dropped with a notice, not a broken page.
    const bad = await client.get("/console/audit?action=key.explode");
    expect(bad.status).toBe(200);
    expect(text(bad.html)).toContain("That filter is not one the audit log knows");
    expect(rows(bad.html).length).toBeGreaterThan(3);
  });

  it("pages forward and back with the API's cursor, filters kept", async () => {
    const paged = await createOrg("Audit Pages Co");
    for (let i = 0; i < 55; i++) await seedAuditEntry(paged.orgId, paged.adminKeyId, i);
    const client = await signedIn(paged.adminKey);
    const first = await client.get("/console/audit?action=key.update");
    expect(rows(first.html)).toHaveLength(50);
    expect(first.html).not.toContain("Previous page");
    const nextHref = /<a href="([^"]+)" rel="next">Next page<\/a>/.exec(first.html)![1]!.replaceAll("&amp;", "&");
    expect(nextHref).toContain("action=key.update");
    const second = await client.get(nextHref);
    expect(rows(second.html)).toHaveLength(5);
    expect(second.html).not.toContain("Next page");
    const prevHref = /<a href="([^"]+)" rel="prev">Previous page<\/a>/.exec(second.html)![1]!.replaceAll("&amp;", "&");
    const back = await client.get(prevHref);
    expect(rows(back.html)).toEqual(rows(first.html));
    // A page link the API no longer takes shows the first page, saying so.
    const stale = await client.get("/console/audit?action=key.update&cursor=djE6bm9wZQ");
    expect(stale.status).toBe(200);
    expect(text(stale.html)).toContain("That page link is no longer valid; showing the first page.");
    expect(rows(stale.html)).toEqual(rows(first.html));
  });

  it("needs a session, and a key that may read the log", async () => {
    expect((await new ConsoleClient().get("/console/audit")).location).toBe("/console/sign-in");
    const reader = await createKeyAs(audit.adminKey, audit.orgId, { kind: "rbac", name: "reader", orgRole: "member" });
    const page = await (await signedIn(reader.key)).get("/console/audit");
    expect(page.status).toBe(403);
    expect(text(page.html)).toContain("This key lacks the apiKeyManagement permission.");
    expect(page.html).not.toContain("data-entry-id");
  });
});

/** An audit entry written straight to D1, so paging has enough entries without 55 API calls. */
async function seedAuditEntry(orgId: string, actorKeyId: string, i: number) {
  await env.DB.prepare("insert into audit_log (org_id, actor_key_id, action, target_type, target_id, request_id, details, created_at) values (?, ?, 'key.update', 'key', ?, ?, ?, ?)")
    .bind(orgId, actorKeyId, actorKeyId, `req_${i}`, JSON.stringify({ name: "Admin key" }), Date.now())
    .run();
}

describe("console policy page", () => {
  it("keeps the network rule of the policy through a console save of the expiration settings", async () => {
    const p = await createOrg("Policy Networks Co");
    const office = await createKeyAs(p.adminKey, p.orgId, { kind: "rbac", name: "Office admin", orgRole: "admin", allowedNetworks: ["192.0.2.0/24"], expiresInDays: 365 });
    await setPolicy(p.orgId, { requireExpiration: false, maxLifetimeDays: null, requireNetworksForAdmin: true });
    const from = { "cf-connecting-ip": "192.0.2.7" };
    const client = new ConsoleClient();
    expect((await client.request("POST", "/console/sign-in", { form: { key: office.key }, headers: from })).status).toBe(303);
    const page = await client.request("GET", "/console/policy", { headers: from });
    expect(page.status).toBe(200);
    expect(page.html).toMatch(/<input type="checkbox" name="requireNetworksForAdmin" checked=""/);
    // The form as the browser sends it: the checked box comes along, the cap is new.
    const saved = await client.request("POST", "/console/policy", { form: { _csrf: client.csrf, maxLifetimeDays: "365", requireNetworksForAdmin: "on" }, headers: from });
    expect(saved.status).toBe(303);
    const policy = await call("GET", `/v1/orgs/${p.orgId}/policy`, { key: office.key, headers: from });
    expect(policy.body).toMatchObject({ requireExpiration: false, maxLifetimeDays: 365, requireNetworksForAdmin: true });
  });

  it("counts and names the keys that violate the policy in force, and explains the self-compliance rule with the way out", async () => {
    const p = await createOrg("Policy Page Co");
    const forever = await createKeyAs(p.adminKey, p.orgId, { kind: "scoped", name: "Forever key", scopes: ["app:read"] });
    await createKeyAs(p.adminKey, p.orgId, { kind: "scoped", name: "Thirty days", scopes: ["app:read"], expiresInDays: 30 });
    const compliant = await createKeyAs(p.adminKey, p.orgId, { kind: "rbac", name: "Compliant admin", orgRole: "admin", expiresInDays: 30 });
    const client = await signedIn(compliant.key);
    const clean = await client.get("/console/policy");
    expect(text(clean.html)).toContain("Every key complies with the policy in force.");
    await setPolicy(p.orgId, { requireExpiration: true, maxLifetimeDays: null });
    const page = await client.get("/console/policy");
    expect(page.status, page.html).toBe(200);
    const violations = text(/<section aria-labelledby="violations-heading"[\s\S]*?<\/section>/.exec(page.html)![0]);
    expect(violations).toContain("2 keys violate the policy in force.");
    expect(violations).toContain("Forever key — The organization's policy requires keys to have an expiration date.");
    expect(violations).toContain("Admin key");
    expect(violations).not.toContain("Thirty days");
    expect(violations).not.toContain("Compliant admin");
    expect(page.html).toContain(`<a href="/console/keys/${forever.id}">Forever key</a>`);
    const rule = text(/<section aria-labelledby="self-rule-heading"[\s\S]*?<\/section>/.exec(page.html)![0]);
    expect(rule).toContain("A change your own key would break is refused");
    expect(rule).toContain("Your key, Compliant admin, expires on");
    expect(rule).toContain("it can set a lifetime cap of 30 days or more.");
    expect(rule).toContain("first create an organization admin key that complies");
    expect(page.html).toMatch(/<a class="button" href="\/console\/keys\?create=1">\s*Create a compliant admin key/);
  });

  it("tells a key that may not read the policy so, instead of showing an empty one", async () => {
    const member = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "policy reader", orgRole: "member" });
    const page = await (await signedIn(member.key)).get("/console/policy");
    expect(page.status).toBe(403);
    expect(text(page.html)).toContain("This key lacks the apiKeyManagement permission.");
    expect(page.html).not.toContain('name="maxLifetimeDays"');
  });

  it("answers a change the signed-in key would break with why and the way out, and saves nothing", async () => {
    const p = await createOrg("Policy Refusal Co");
    const client = await signedIn(p.adminKey);
    const before = await call("GET", `/v1/orgs/${p.orgId}/policy`, { key: p.adminKey });
    const res = await client.post("/console/policy", { requireExpiration: "on", maxLifetimeDays: "" });
    expect(res.status).toBe(409);
    const alert = text(/<p class="notice error" role="alert">([\s\S]*?)<\/p>/.exec(res.html)![1]!);
    expect(alert).toContain("Not saved: your own key, Admin key, would break this policy (The organization's policy requires keys to have an expiration date.)");
    expect(alert).toContain("Create a compliant admin key, sign in with it, and save the policy again.");
    expect(text(res.html)).toContain("Your key, Admin key, never expires, so it cannot require an expiration or cap the lifetime of keys.");
    expect(res.html).toMatch(/<input type="checkbox" name="requireExpiration" checked=""/); // what was asked stays on the form
    expect((await call("GET", `/v1/orgs/${p.orgId}/policy`, { key: p.adminKey })).body).toEqual(before.body);

    // A key that complies, signed in, saves it.
    const compliant = await createKeyAs(p.adminKey, p.orgId, { kind: "rbac", name: "Compliant admin", orgRole: "admin", expiresInDays: 30 });
    const ok = await signedIn(compliant.key);
    const page = await ok.get("/console/policy");
    expect(text(page.html)).toContain("it can set a lifetime cap of 30 days or more.");
    const saved = await ok.post("/console/policy", { requireExpiration: "on", maxLifetimeDays: "30" });
    expect(saved.status).toBe(303);
    const tooShort = await ok.post("/console/policy", { requireExpiration: "on", maxLifetimeDays: "29" });
    expect(tooShort.status).toBe(409);
    expect(text(tooShort.html)).toContain("caps key lifetime at 29 days");
    // Every rule of the policy is on the form: saving expiration settings never drops the network rule, and asking for it is judged too.
    const networks = await ok.post("/console/policy", { requireExpiration: "on", maxLifetimeDays: "30", requireNetworksForAdmin: "on" });
    expect(networks.status).toBe(409);
    expect(text(networks.html)).toContain("would break this policy (The organization's policy requires keys with org:admin or apiKeyManagement to be limited to allowed networks.)");
    expect(text(networks.html)).toContain("It administers without allowed networks, so it cannot require them on administrator keys.");
    expect((await call("GET", `/v1/orgs/${p.orgId}/policy`, { key: compliant.key })).body).toMatchObject({ requireExpiration: true, maxLifetimeDays: 30, requireNetworksForAdmin: false });
  });
});
