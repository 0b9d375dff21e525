import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import { db } from "../src/storage/db";
import { events, webhookDeliveries } from "../src/storage/schema";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { REPORTER_KEY_ID, signReport, trustedReporterKey } from "./reporter";
import { ConsoleClient, shownSecret } from "./console-helpers";
import { createKeyAs, setPolicy } from "./key-fixtures";

/**
 * The console's key lifecycle forms (issue 14 point 6, issue 15 point 5), server side inside workerd:
 * start, networks and metadata at create and edit, regenerate with an overlap and ending it, disable and
 * enable, the list's state badges, leaked keys in the list and the audit log. Each form goes through the
 * API's own route, so these assert what the user sees and what the API then holds.
 */
let org: Awaited<ReturnType<typeof createOrg>>;
let client: ConsoleClient;

beforeAll(async () => {
  org = await createOrg("Lifecycle Console Co");
  client = new ConsoleClient();
  await client.signIn(org.adminKey);
});

const keysPath = (id = "") => `/v1/orgs/${org.orgId}/keys${id ? `/${id}` : ""}`;
const getKey = async (id: string) => (await call("GET", keysPath(id), { key: org.adminKey })).body;
const verify = async (key: string) => (await call("POST", "/v1/keys/verify", { body: { key } })).body as { code: string; rotating?: boolean };
const keyByName = async (name: string) => {
  const list = (await call("GET", `${keysPath()}?kind=rbac,scoped&limit=100`, { key: org.adminKey })).body.keys as { id: string; name: string }[];
  return list.find((k) => k.name === name);
};
const newKey = (name: string, extra: Record<string, unknown> = {}) =>
  createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name, scopes: ["app:read"], ...extra });
/** The list's row of a key, as HTML. */
const rowOf = (html: string, id: string) => new RegExp(`<tr data-key-id="${id}">([\\s\\S]*?)</tr>`).exec(html)?.[1] ?? "";
/** The create dialog's form as a browser posts it with the defaults left alone. */
const createForm = (fields: Record<string, string>) => ({ kind: "rbac", secure: "on", expiration: "none", orgRole: "member", appRole: "reader", ...fields });

describe("create dialog: start, networks and metadata", () => {
  it("creates a key with allowed networks, metadata and a start, which the list shows as Networks and Starts", async () => {
    const start = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 16);
    const res = await client.post("/console/keys", createForm({
      name: "Partner feed",
      notBefore: start,
      allowedNetworks: "203.0.113.0/24\r\n\r\n  2001:DB8::/32  \r\n",
      metadata: '{"customerId": "cus_42", "plan": "pro"}',
    }));
    expect(res.status, res.html.slice(0, 500)).toBe(303);
    const page = await client.get(res.location!);
    expect(shownSecret(page.html)).toMatch(/^kgw_/);
    const made = await getKey((await keyByName("Partner feed"))!.id);
    expect(made).toMatchObject({
      status: "pending",
      notBefore: `${start}:00.000Z`,
      allowedNetworks: ["203.0.113.0/24", "2001:db8::/32"],
      metadata: { customerId: "cus_42", plan: "pro" },
    });
    const row = rowOf((await client.get("/console/keys")).html, made.id);
    expect(row).toContain("Networks: 2");
    expect(row).toContain("Works only from 203.0.113.0/24, 2001:db8::/32");
    expect(row).toMatch(new RegExp(`Starts <time datetime="${made.notBefore}">`));
  });

  it("keeps the dialog's defaults creating a valid key: empty start, networks and metadata are left out", async () => {
    const res = await client.post("/console/keys", createForm({ name: "Plain defaults", notBefore: "", allowedNetworks: "", metadata: "" }));
    expect(res.status, res.html.slice(0, 500)).toBe(303);
    const made = await getKey((await keyByName("Plain defaults"))!.id);
    expect(made).toMatchObject({ status: "active", notBefore: null, allowedNetworks: [], metadata: null });
    const fresh = (await client.get("/console/keys")).html;
    expect(fresh).toContain('name="allowedNetworks"');
    expect(fresh).toContain("Good practice");
  });

  it("shows each refused range beside its own line, keeps what was typed, and creates nothing", async () => {
    const before = (await call("GET", `${keysPath()}?limit=100`, { key: org.adminKey })).body.keys.length;
    const res = await client.post("/console/keys", createForm({ name: "Bad networks", allowedNetworks: "10.0.0.0/8\n\n10.0.0.1/8\nnot-a-range" }));
    expect(res.status).toBe(400);
    expect(res.html).toContain('data-autoopen="true"'); // the dialog opens again
    expect(res.html).toMatch(/<textarea[^>]*name="allowedNetworks"[^>]*aria-invalid="true"[^>]*>10.0.0.0\/8\n\n10.0.0.1\/8\nnot-a-range<\/textarea>/);
    const lines = /<ul class="field-error line-errors" id="create-networks-lines">([\s\S]*?)<\/ul>/.exec(res.html)?.[1] ?? "";
    expect(lines).toMatch(/<li>Line 3: 10.0.0.1\/8 has host bits set[^<]*<\/li>/);
    expect(lines).toMatch(/<li>Line 4: [^<]*not-a-range[^<]*is not an IP address[^<]*<\/li>/);
    expect(lines).not.toContain("Line 1");
    expect((await call("GET", `${keysPath()}?limit=100`, { key: org.adminKey })).body.keys.length).toBe(before);
  });

  it("says what is wrong with metadata: not JSON (judged here) or not an object (the API's word)", async () => {
    const broken = await client.post("/console/keys", createForm({ name: "Bad metadata", metadata: "{customerId: 1}" }));
    expect(broken.status).toBe(400);
    expect(broken.html).toMatch(/id="create-metadata-error"[^>]*>Metadata is not valid JSON/);
    const array = await client.post("/console/keys", createForm({ name: "Bad metadata", metadata: "[1, 2]" }));
    expect(array.status).toBe(400);
    expect(array.html).toMatch(/id="create-metadata-error"[^>]*>Metadata must be a JSON object/);
    const proto = await client.post("/console/keys", createForm({ name: "Bad metadata", metadata: '{"__proto__": {"admin": true}}' }));
    expect(proto.status).toBe(400);
    expect(proto.html).toMatch(/id="create-metadata-error"[^>]*>Metadata [^<]*__proto__/);
    expect(await keyByName("Bad metadata")).toBeUndefined();
  });

  it("refuses a start in the past beside the start field", async () => {
    const res = await client.post("/console/keys", createForm({ name: "Late start", notBefore: "2020-01-01T00:00" }));
    expect(res.status).toBe(400);
    expect(res.html).toMatch(/id="create-not-before-error"[^>]*>The start must be in the future/);
  });
});

describe("edit page: start, networks, metadata", () => {
  it("shows the key's networks and metadata, saves changes, and removes metadata when the field is emptied", async () => {
    const made = await newKey("Edited feed", { allowedNetworks: ["198.51.100.0/24"], metadata: { plan: "free" } });
    const page = await client.get(`/console/keys/${made.id}`);
    expect(page.html).toMatch(/<textarea[^>]*name="allowedNetworks"[^>]*>198.51.100.0\/24<\/textarea>/);
    expect(page.html).toContain("&quot;plan&quot;: &quot;free&quot;");
    const saved = await client.post(`/console/keys/${made.id}`, { name: "Edited feed", expiration: "keep", scopes: "app:read", allowedNetworks: "198.51.100.0/24\n192.0.2.0/24", metadata: "" });
    expect(saved.status, saved.html.slice(0, 500)).toBe(303);
    expect(await getKey(made.id)).toMatchObject({ allowedNetworks: ["198.51.100.0/24", "192.0.2.0/24"], metadata: null });
  });

  it("shows a refused range of an edit beside its line", async () => {
    const made = await newKey("Edited badly");
    const res = await client.post(`/console/keys/${made.id}`, { name: "Edited badly", expiration: "keep", scopes: "app:read", allowedNetworks: "192.0.2.0/33" });
    expect(res.status).toBe(400);
    expect(res.html).toMatch(/id="edit-networks-lines"[\s\S]*<li>Line 1: [^<]*192.0.2.0\/33[^<]*prefix length/);
    expect((await getKey(made.id)).allowedNetworks).toEqual([]);
  });
});

describe("disable and enable", () => {
  it("disables after the confirmation's post (DISABLED at once, badge in the list), and enables again", async () => {
    const made = await newKey("Paused job");
    const page = await client.get(`/console/keys/${made.id}`);
    expect(page.html).toMatch(/<dialog id="disable-dialog"[\s\S]*action="\/console\/keys\/[^"]+\/disable"/);
    const off = await client.post(`/console/keys/${made.id}/disable`);
    expect(off.status).toBe(303);
    expect(off.location).toBe(`/console/keys/${made.id}?notice=disabled`);
    expect((await verify(made.key)).code).toBe("DISABLED");
    const shown = await client.get(off.location!);
    expect(shown.html).toContain("This key is disabled");
    expect(shown.html).toContain(`action="/console/keys/${made.id}/enable"`);
    expect(rowOf((await client.get("/console/keys")).html, made.id)).toContain(">Disabled</span>");
    const on = await client.post(`/console/keys/${made.id}/enable`);
    expect(on.status).toBe(303);
    expect((await verify(made.key)).code).toBe("VALID");
    expect(rowOf((await client.get("/console/keys")).html, made.id)).not.toContain(">Disabled</span>");
  });

  it("refuses to disable the org's last admin key without a second, explicit confirmation", async () => {
    const solo = await createOrg("Solo admin");
    const own = new ConsoleClient();
    await own.signIn(solo.adminKey);
    const refused = await own.post(`/console/keys/${solo.adminKeyId}/disable`);
    expect(refused.status).toBe(409);
    expect(refused.html).toContain("Disable the last admin key anyway");
    expect(refused.html).toMatch(/<form method="post" action="\/console\/keys\/[^"]+\/disable" class="callout" id="disable-force">[\s\S]*name="force" value="true"/);
    expect((await verify(solo.adminKey)).code).toBe("VALID");
  });
});

describe("regenerate with an overlap", () => {
  it("keeps the old secret working until the time the secret page names; the list and edit page show the rotation; end overlap stops it", async () => {
    const made = await newKey("Rotating pipeline");
    const regen = await client.post(`/console/keys/${made.id}/regenerate`, { overlapSeconds: "3600" });
    expect(regen.status).toBe(303);
    const secretPage = await client.get(regen.location!);
    const fresh = shownSecret(secretPage.html)!;
    expect(fresh).toMatch(/^kgw_/);
    const rotation = (await getKey(made.id)).rotation;
    expect(Date.parse(rotation.endsAt) - Date.now()).toBeGreaterThan(3500_000);
    expect(secretPage.html).toContain(`The previous secret keeps working until ${rotation.endsAt.slice(0, 16).replace("T", " ")} UTC`);
    expect(rowOf(secretPage.html, made.id)).toMatch(new RegExp(`Rotating until <time datetime="${rotation.endsAt}">`));

    const before = await client.get(`/console/keys/${made.id}`);
    expect(before.html).toContain("No client has used the old secret since the rotation began.");
    // A client still on the old secret: it works, as rotating, and the page says it was used.
    expect(await verify(made.key)).toMatchObject({ code: "VALID", rotating: true });
    await sleep(50);
    const after = await client.get(`/console/keys/${made.id}`);
    expect(after.html).toMatch(/Old secret last used <time[^>]*>[^<]*<\/time> \((just now|\d+ min ago)\)/);
    expect(after.html).toMatch(/<dialog id="end-overlap-dialog"[\s\S]*action="\/console\/keys\/[^"]+\/end-overlap"/);

    const end = await client.post(`/console/keys/${made.id}/end-overlap`);
    expect(end.status).toBe(303);
    expect(end.location).toBe(`/console/keys/${made.id}?notice=overlap_ended`);
    expect((await verify(made.key)).code).not.toBe("VALID");
    expect((await verify(fresh)).code).toBe("VALID");
    const ended = await client.get(end.location!);
    expect(ended.html).toContain("The overlap has ended");
    expect(ended.html).not.toContain("End overlap now");
  });

  it("without an overlap, the old secret stops at once and the secret page says so", async () => {
    const made = await newKey("Hard rotation");
    const regen = await client.post(`/console/keys/${made.id}/regenerate`, { overlapSeconds: "0" });
    const page = await client.get(regen.location!);
    expect(page.html).toContain("The previous secret has already stopped working.");
    expect((await verify(made.key)).code).not.toBe("VALID");
    expect((await getKey(made.id)).rotation).toBeNull();
  });

  it("offers the overlaps none, 1 hour, 1 day and 7 days, and takes no other", async () => {
    const made = await newKey("Odd overlap");
    const html = (await client.get("/console/keys")).html;
    const select = new RegExp(`<select id="regenerate-${made.id}-overlap" name="overlapSeconds"[^>]*>([\\s\\S]*?)</select>`).exec(html)?.[1] ?? "";
    expect([...select.matchAll(/value="(\d+)"/g)].map((m) => m[1])).toEqual(["0", "3600", "86400", "604800"]);
    await client.post(`/console/keys/${made.id}/regenerate`, { overlapSeconds: "999999" });
    expect((await getKey(made.id)).rotation).toBeNull();
  });
});

describe("list badges: unused and leaked", () => {
  it("says 'Unused for N days' from creation when never used: past 30 days by default, past the policy's unusedKeyDays when set", async () => {
    const made = await newKey("Forgotten key");
    await env.DB.prepare("update api_keys set created_at = ? where id = ?").bind(Date.now() - 40 * 86_400_000, made.id).run();
    expect(rowOf((await client.get("/console/keys")).html, made.id)).toContain("Unused for 40 days");
    await setPolicy(org.orgId, { requireExpiration: false, maxLifetimeDays: null, unusedKeyDays: 60 });
    expect(rowOf((await client.get("/console/keys")).html, made.id)).not.toContain("Unused for");
    await setPolicy(org.orgId, { requireExpiration: false, maxLifetimeDays: null });
  });

  it("marks a key a secret scanning report disabled as Leaked, until it is enabled", async () => {
    const leakyOrg = await createOrg("Leaky console");
    await setPolicy(leakyOrg.orgId, { requireExpiration: false, maxLifetimeDays: null, leakedKeyAction: "disable" });
    const made = await createKeyAs(leakyOrg.adminKey, leakyOrg.orgId, { kind: "scoped", name: "Committed by mistake", scopes: ["app:read"] });
    const url = `https://github.com/octo/leaky/blob/main/.env?x="><script>alert(1)</script>`;
    await reportLeak(made.key, url);
    expect((await verify(made.key)).code).toBe("DISABLED");
    const own = new ConsoleClient();
    await own.signIn(leakyOrg.adminKey);
    const row = rowOf((await own.get("/console/keys")).html, made.id);
    expect(row).toContain(">Leaked</span>");
    expect(row).toContain(">Disabled</span>");
    expect((await own.get(`/console/keys/${made.id}`)).html).toContain(">Leaked</span>");
    await own.post(`/console/keys/${made.id}/enable`);
    expect(rowOf((await own.get("/console/keys")).html, made.id)).not.toContain(">Leaked</span>");
  });
});

describe("policy page: networks, leaks, unused keys", () => {
  it("saves the network rule, the leak action, unused days and expire-unused, and shows them as saved", async () => {
    const policyOrg = await createOrg("Policy console");
    const own = new ConsoleClient();
    await own.signIn(policyOrg.adminKey);
    const page = await own.get("/console/policy");
    expect(page.html).toMatch(/<input type="radio" name="leakedKeyAction" value="revoke" checked=""/);
    const saved = await own.post("/console/policy", { maxLifetimeDays: "", leakedKeyAction: "disable", unusedKeyDays: "45", expireUnusedKeys: "on" });
    expect(saved.status, saved.html.slice(0, 500)).toBe(303);
    expect((await call("GET", `/v1/orgs/${policyOrg.orgId}/policy`, { key: policyOrg.adminKey })).body).toMatchObject({
      requireExpiration: false,
      maxLifetimeDays: null,
      requireNetworksForAdmin: false,
      leakedKeyAction: "disable",
      unusedKeyDays: 45,
      expireUnusedKeys: true,
    });
    const shown = (await own.get(saved.location!)).html;
    expect(shown).toMatch(/<input type="radio" name="leakedKeyAction" value="disable" checked=""/);
    expect(shown).toMatch(/name="unusedKeyDays" min="1" max="3650" value="45"/);
    expect(shown).toMatch(/<input type="checkbox" name="expireUnusedKeys" checked=""/);
    for (const sentence of ["The key is deleted at once", "The key is paused at once", "Once a day, a key not used", "Such keys then stop working", "Such a key must list the networks"]) {
      expect(shown).toContain(sentence);
    }
  });

  it("never drops a rule: a save that leaves a field as shown keeps it, and a form without the new fields keeps them", async () => {
    const policyOrg = await createOrg("Policy console keeps");
    const own = new ConsoleClient();
    await own.signIn(policyOrg.adminKey);
    await setPolicy(policyOrg.orgId, { requireExpiration: false, maxLifetimeDays: null, leakedKeyAction: "disable", unusedKeyDays: 90, expireUnusedKeys: true });
    const policy = async () => (await call("GET", `/v1/orgs/${policyOrg.orgId}/policy`, { key: policyOrg.adminKey })).body;
    const before = await policy();
    // The page's own form, as a browser posts it untouched: nothing changes, the rules it does not show included.
    const form = (await own.get("/console/policy")).html;
    expect(form).toMatch(/name="unusedKeyDays" min="1" max="3650" value="90"/);
    expect((await own.post("/console/policy", { maxLifetimeDays: "", leakedKeyAction: "disable", unusedKeyDays: "90", expireUnusedKeys: "on" })).status).toBe(303);
    expect(await policy()).toEqual(before);
    // A page from before these fields existed: they stay as they stand.
    expect((await own.post("/console/policy", { maxLifetimeDays: "" })).status).toBe(303);
    expect(await policy()).toMatchObject({ maxLifetimeDays: null, leakedKeyAction: "disable", unusedKeyDays: 90, expireUnusedKeys: true });
    // Emptied, the unused days mean never.
    expect((await own.post("/console/policy", { maxLifetimeDays: "", leakedKeyAction: "revoke", unusedKeyDays: "" })).status).toBe(303);
    expect(await policy()).toMatchObject({ leakedKeyAction: "revoke", unusedKeyDays: null, expireUnusedKeys: false });
  });

  it("shows a refused number of unused days beside its field and saves nothing", async () => {
    const policyOrg = await createOrg("Policy console refusals");
    const own = new ConsoleClient();
    await own.signIn(policyOrg.adminKey);
    for (const days of ["0", "abc"]) {
      const res = await own.post("/console/policy", { maxLifetimeDays: "", leakedKeyAction: "disable", unusedKeyDays: days });
      expect(res.status, days).toBe(400);
      expect(res.html, days).toMatch(/id="policy-unused-error"[^>]*>[^<]*(at least 1|whole number)/);
    }
    expect((await call("GET", `/v1/orgs/${policyOrg.orgId}/policy`, { key: policyOrg.adminKey })).body).toMatchObject({ leakedKeyAction: "revoke", unusedKeyDays: null });
  });
});

describe("audit log: leaked keys", () => {
  it("shows where a leaked key was found, as text and never as a link, and what was done", async () => {
    const leakyOrg = await createOrg("Leaky audit");
    const made = await createKeyAs(leakyOrg.adminKey, leakyOrg.orgId, { kind: "scoped", name: "Pasted in an issue", scopes: ["app:read"] });
    await reportLeak(made.key, `https://github.com/octo/leaky/issues/1?x="><script>alert(1)</script>`);
    const own = new ConsoleClient();
    await own.signIn(leakyOrg.adminKey);
    const audit = (await own.get("/console/audit?action=key.leaked")).html;
    expect(audit).toContain("<dt>Found at</dt><dd><code>https://github.com/octo/leaky/issues/1?x=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</code>");
    expect(audit).not.toContain("<script>alert(1)");
    expect(audit).not.toMatch(/<a [^>]*href="https:\/\/github.com/);
    expect(audit).toContain("<dt>Outcome</dt><dd>revoked</dd>");
  });
});

describe("webhooks page", () => {
  it("registers an endpoint with the chosen events and shows its signing secret once (post/redirect/get)", async () => {
    const hooksOrg = await createOrg("Hooks console");
    const own = new ConsoleClient();
    await own.signIn(hooksOrg.adminKey);
    const empty = await own.get("/console/webhooks");
    expect(empty.status).toBe(200);
    expect(empty.html).toContain("No endpoints yet");
    expect(empty.html).toMatch(/<a class="tab" href="\/console\/webhooks" aria-current="page">Webhooks<\/a>/);

    const res = await own.post("/console/webhooks", { url: "https://hooks.example.com/keygate?token=abc", eventTypes: ["key.leaked", "key.expiring"], description: "Security alerts" });
    expect(res.status, res.html.slice(0, 500)).toBe(303);
    expect(res.location).toMatch(/^\/console\/webhooks\?secret=[A-Za-z0-9_-]{22}$/);
    const page = await own.get(res.location!);
    const secret = shownSecret(page.html);
    expect(secret).toMatch(/^whsec_/);
    expect(page.html).toContain("It will not be shown again");
    const listed = (await call("GET", `/v1/orgs/${hooksOrg.orgId}/webhooks`, { key: hooksOrg.adminKey })).body.webhooks;
    expect(listed).toMatchObject([{ url: "https://hooks.example.com/keygate?token=abc", eventTypes: ["key.leaked", "key.expiring"], description: "Security alerts" }]);
    // Once: the same link shows no secret again, and the list never shows it.
    const again = await own.get(res.location!);
    expect(shownSecret(again.html)).toBeUndefined();
    expect(again.html).toContain("shown once already");
    expect(again.html).not.toContain(secret!);
    expect(again.html).toContain("key.leaked");
  });

  it("sends 'every event' alone when it is ticked, and shows the API's refusal of a URL beside the field", async () => {
    const hooksOrg = await createOrg("Hooks console refusals");
    const own = new ConsoleClient();
    await own.signIn(hooksOrg.adminKey);
    const all = await own.post("/console/webhooks", { url: "https://all.example.com/hook", eventTypes: ["*", "key.created"] });
    expect(all.status).toBe(303);
    expect((await call("GET", `/v1/orgs/${hooksOrg.orgId}/webhooks`, { key: hooksOrg.adminKey })).body.webhooks[0].eventTypes).toEqual(["*"]);
    const bad = await own.post("/console/webhooks", { url: "ftp://files.example.com/hook", eventTypes: ["key.created"] });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('data-autoopen="true"');
    expect(bad.html).toMatch(/id="webhook-url-error"[^>]*>The URL [^<]+/);
    expect(bad.html).toContain('value="ftp://files.example.com/hook"');
    const none = await own.post("/console/webhooks", { url: "https://none.example.com/hook" });
    expect(none.status).toBe(400);
    expect(none.html).toMatch(/id="webhook-events-error"[^>]*>/);
  });

  it("shows an endpoint's delivery log (status, attempts, last error, next attempt), resends one, and deletes the endpoint after its confirmation", async () => {
    const hooksOrg = await createOrg("Hooks console log");
    const own = new ConsoleClient();
    await own.signIn(hooksOrg.adminKey);
    const made = (await call("POST", `/v1/orgs/${hooksOrg.orgId}/webhooks`, { key: hooksOrg.adminKey, body: { url: "https://log.example.com/hook", eventTypes: ["*"] } })).body;
    const eventId = `evt_${newId()}`;
    await db(env.DB).insert(events).values({ id: eventId, orgId: hooksOrg.orgId, type: "key.revoked", subjectType: "key", subjectId: newId(), data: {}, createdAt: Date.now(), publishedAt: Date.now() });
    const deliveryId = `msg_${newId()}`;
    const next = Date.now() + 90_000;
    await db(env.DB).insert(webhookDeliveries).values({
      id: deliveryId, orgId: hooksOrg.orgId, endpointId: made.id, eventId, status: "failed", attempts: 3, lastStatus: 503, lastError: "HTTP 503", nextAttemptAt: next, createdAt: Date.now(), updatedAt: Date.now(),
    });
    const list = await own.get("/console/webhooks");
    expect(list.html).toMatch(/<dialog id="delete-[^"]+"[\s\S]*action="\/console\/webhooks\/[^"]+\/delete"/);
    const log = await own.get(`/console/webhooks/${made.id}`);
    expect(log.status).toBe(200);
    const row = new RegExp(`<tr data-delivery-id="${deliveryId}">([\\s\\S]*?)</tr>`).exec(log.html)?.[1] ?? "";
    expect(row).toContain("<code>key.revoked</code>");
    expect(row).toContain("Failed, will retry");
    expect(row).toMatch(/data-label="Attempts">3</);
    expect(row).toContain("HTTP 503");
    expect(row).toContain(`<time datetime="${new Date(next).toISOString()}">`);

    const sent: unknown[] = [];
    const queue = { send: async (body: unknown) => void sent.push(body), sendBatch: async () => undefined } as unknown as Queue;
    const resent = await own.post(`/console/webhooks/${made.id}/deliveries/${deliveryId}/resend`, {}, {}, { EVENTS: queue });
    expect(resent.status).toBe(303);
    expect(sent).toEqual([{ kind: "delivery", deliveryId }]);
    const after = await own.get(resent.location!);
    expect(after.html).toContain("queued for a new attempt");
    expect(new RegExp(`<tr data-delivery-id="${deliveryId}">[\\s\\S]*?Pending`).test(after.html)).toBe(true);

    const deleted = await own.post(`/console/webhooks/${made.id}/delete`);
    expect(deleted.status).toBe(303);
    expect((await call("GET", `/v1/orgs/${hooksOrg.orgId}/webhooks`, { key: hooksOrg.adminKey })).body.webhooks).toEqual([]);
    expect((await own.get(deleted.location!)).html).toContain("The endpoint was deleted");
  });

  it("tells a key without org:admin that it may not manage webhooks, instead of an empty list", async () => {
    const manager = await newKey("Webhook-less manager", { scopes: ["apiKeyManagement", "org:read"] });
    const own = new ConsoleClient();
    await own.signIn(manager.key);
    const page = await own.get("/console/webhooks");
    expect(page.status).toBe(403);
    expect(page.html).not.toContain("No endpoints yet");
    expect(page.html).not.toContain("+ Register endpoint");
    expect(page.html).toMatch(/role="alert">[^<]*org:admin/);
  });
});

async function reportLeak(token: string, url: string) {
  // A report signed as GitHub's secret scanning would sign it, with the test reporter's key.
  const body = JSON.stringify([{ token, type: "keygate_api_key", url, source: "content" }]);
  const res = await call("POST", "/v1/secret-scanning/reports", {
    body,
    headers: { "github-public-key-signature": await signReport(body, await trustedReporterKey()), "github-public-key-identifier": REPORTER_KEY_ID },
  });
  expectStatus(res, 200);
}
