import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { ConsoleClient, pageText } from "./console-helpers";
import { createKeyAs } from "./key-fixtures";

/**
 * The console's usage pages inside workerd (issue 16, point 1): a key's chart and totals by outcome,
 * and the org's most used and most refused keys, read after real verifications have been counted.
 * test/browser/console-usage.test.ts shows the same pages in Chromium.
 */
type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;
let busy: { id: string; key: string };
let refusedOnly: { id: string; key: string };
let quiet: { id: string; key: string };
let admin: ConsoleClient;

const text = pageText;
const verify = async (key: string, permission?: string) =>
  (await call("POST", "/v1/keys/verify", { body: permission ? { key, permission } : { key } })).body.code as string;
/** The totals table's count for an outcome code (or `total`), as shown. */
const totalOf = (html: string, outcome: string) =>
  new RegExp(`<tr data-outcome="${outcome}">[\\s\\S]*?data-label="Verifications">(?:<strong>)?([\\d,]+)`).exec(html)?.[1];
const rowOf = (html: string, table: string, keyId: string) =>
  new RegExp(`<table id="${table}">[\\s\\S]*?<tr data-key-id="${keyId}">([\\s\\S]*?)</tr>`).exec(html)?.[1];

/** Loads `path` until `ready` holds: counts reach D1 about 50 ms after a verification in tests. */
async function pageWhen(client: ConsoleClient, path: string, ready: (html: string) => boolean) {
  let page = await client.get(path);
  for (let i = 0; i < 100 && !(page.status === 200 && ready(page.html)); i++) {
    await sleep(20);
    page = await client.get(path);
  }
  expect(page.status, page.html.slice(0, 500)).toBe(200);
  return page;
}

async function signedIn(key: string) {
  const client = new ConsoleClient();
  await client.signIn(key);
  return client;
}

beforeAll(async () => {
  org = await createOrg("Console Usage Co");
  busy = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Busy deployer", scopes: ["app:read"] });
  refusedOnly = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Wrong scope bot", scopes: ["app:read"] });
  quiet = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Never used", scopes: ["app:read"] });
  for (let i = 0; i < 3; i++) expect(await verify(busy.key)).toBe("VALID");
  for (let i = 0; i < 2; i++) expect(await verify(busy.key, "project:deploy")).toBe("INSUFFICIENT_PERMISSIONS");
  for (let i = 0; i < 4; i++) expect(await verify(refusedOnly.key, "project:deploy")).toBe("INSUFFICIENT_PERMISSIONS");
  admin = await signedIn(org.adminKey);
});

describe("a key's usage page", () => {
  it("charts the key's verifications of the last 24 hours by outcome, with totals and a data table", async () => {
    const page = await pageWhen(admin, `/console/keys/${busy.id}/usage`, (html) => totalOf(html, "total") === "5");
    expect(page.headers.get("content-security-policy")).toContain("script-src https://gateway.test/console/app.js");
    expect(text(page.html)).toContain("Usage of Busy deployer");
    expect(totalOf(page.html, "VALID")).toBe("3");
    expect(totalOf(page.html, "INSUFFICIENT_PERMISSIONS")).toBe("2");
    // Refusals that did not happen are not listed.
    expect(totalOf(page.html, "EXPIRED")).toBeUndefined();
    // The chart names itself with the numbers, for anyone who cannot see the bars.
    expect(page.html).toMatch(/<svg role="img" aria-label="Verifications of Busy deployer per hour, last 24 hours: 5 in all, 3 valid, 2 refused\./);
    // The current hour's bar (the 24th, x = 23) stacks 3 valid on 2 refused for permission.
    expect(page.html).toMatch(/<rect x="23.1" width="0.8" y="\d+" height="3" fill="#0969da"/);
    expect(page.html).toMatch(/<rect x="23.1" width="0.8" y="\d+" height="2" fill="#cf222e"/);
    expect(page.html).not.toMatch(/<rect x="22.1" width="0.8" y="\d+" height="\d+" fill="#/);
    // The legend says each colour in words, with its total.
    expect(text(/<dl class="details">[\s\S]*?<\/dl>/.exec(page.html)![0])).toMatch(/Valid 3 Permission, network or policy 2/);
    // The data table: every hour of the range, the newest holding the counts.
    const rows = [...page.html.matchAll(/<tr><td data-label="Hour \(UTC\)">([\s\S]*?)<\/tr>/g)].map((m) => text(m[1]!).trim());
    expect(rows).toHaveLength(24);
    expect(rows.at(-1)).toMatch(/^\w{3} \d{1,2}, \d{2}:00 5 3 2$/);
    expect(rows.slice(0, -1).every((r) => / 0 0 0$/.test(r))).toBe(true);
    expect(page.html).toMatch(/<a class="tab" href="\/console\/keys\/[^"]+\/usage" aria-current="page">Last 24 hours<\/a>/);
  });

  it("switches to the last 30 days by day with a plain link", async () => {
    await pageWhen(admin, `/console/keys/${busy.id}/usage`, (html) => totalOf(html, "total") === "5");
    const page = await admin.get(`/console/keys/${busy.id}/usage?granularity=day`);
    expect(page.status).toBe(200);
    expect(page.html).toMatch(/<a class="tab" href="\/console\/keys\/[^"]+\/usage\?granularity=day" aria-current="page">Last 30 days<\/a>/);
    expect(page.html).toContain("per day, last 30 days: 5 in all, 3 valid, 2 refused.");
    const rows = [...page.html.matchAll(/<tr><td data-label="Day \(UTC\)">([\s\S]*?)<\/tr>/g)].map((m) => text(m[1]!).trim());
    expect(rows).toHaveLength(30);
    const today = new Date().toUTCString().slice(8, 11) + " " + new Date().getUTCDate();
    expect(rows.at(-1)).toBe(`${today} 5 3 2`);
    expect(totalOf(page.html, "total")).toBe("5");
  });

  it("says a key that was never used has had no verifications, with a zero total", async () => {
    const page = await admin.get(`/console/keys/${quiet.id}/usage`);
    expect(page.status).toBe(200);
    expect(text(page.html)).toContain("No verifications in this period");
    expect(totalOf(page.html, "total")).toBe("0");
    expect(page.html).not.toMatch(/<rect x="[\d.]+" width="0.8" y="[\d.]+" height="[\d.]+" fill="#/);
  });
});

describe("the org's usage page", () => {
  it("ranks the most used and the most refused keys of the last 30 days, each with its 7 days and a link", async () => {
    // Every count flushed: 5 for the busy key, 4 for the refused one.
    const page = await pageWhen(admin, "/console/usage", (html) =>
      [rowOf(html, "most-used", busy.id), rowOf(html, "most-refused", refusedOnly.id)].every((row, i) =>
        row?.includes(`aria-label="${[5, 4][i]} verifications in the last 7 days"`),
      ),
    );
    const used = rowOf(page.html, "most-used", busy.id)!;
    expect(used).toContain(`href="/console/keys/${busy.id}/usage"`);
    expect(text(used)).toMatch(/Busy deployer .* 5 3 2 /);
    expect(used).toContain('role="img" aria-label="5 verifications in the last 7 days"');
    expect(used.match(/<polyline points="([^"]+)"/)![1]!.split(" ")).toHaveLength(7);
    const refused = rowOf(page.html, "most-refused", refusedOnly.id)!;
    expect(text(refused)).toMatch(/Wrong scope bot .* 4 0 4 /);
    expect(refused).toContain('aria-label="4 verifications in the last 7 days"');
    // Ranked by refusals, the key with 4 comes before the one with 2.
    const order = [...page.html.split('<table id="most-refused">')[1]!.matchAll(/data-key-id="([^"]+)"/g)].map((m) => m[1]);
    expect(order.indexOf(refusedOnly.id)).toBeLessThan(order.indexOf(busy.id));
    // A key never verified is in neither table.
    expect(page.html).not.toContain(quiet.id);
  });

  it("names a key deleted since without a link to a usage page it no longer has", async () => {
    const gone = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Soon deleted", scopes: ["app:read"] });
    expect(await verify(gone.key)).toBe("VALID");
    await pageWhen(admin, "/console/usage", (html) => Boolean(rowOf(html, "most-used", gone.id)));
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${gone.id}`, { key: org.adminKey }), 204);
    const page = await admin.get("/console/usage");
    const row = rowOf(page.html, "most-used", gone.id)!;
    expect(text(row)).toContain("Soon deleted");
    expect(text(row)).toContain("(deleted)");
    expect(row).not.toContain("href=");
    expect((await admin.get(`/console/keys/${gone.id}/usage`)).status).toBe(404);
  });
});

describe("who may see usage", () => {
  it("sends a visitor without a session to sign in", async () => {
    for (const path of [`/console/keys/${busy.id}/usage`, "/console/usage"]) {
      const res = await new ConsoleClient().get(path);
      expect(res.status, path).toBe(303);
      expect(res.location, path).toBe("/console/sign-in");
    }
  });

  it("answers another org's key as not found, naming nothing of it", async () => {
    const other = await createOrg("Other Usage Co");
    const page = await (await signedIn(other.adminKey)).get(`/console/keys/${busy.id}/usage`);
    expect(page.status).toBe(404);
    expect(text(page.html)).toContain("No such key in your organization.");
    expect(page.html).not.toContain("Busy deployer");
    expect(page.html).not.toContain("<svg role=\"img\"");
    // Its org page lists its own keys only.
    const orgPage = await (await signedIn(other.adminKey)).get("/console/usage");
    expect(orgPage.status).toBe(200);
    expect(orgPage.html).not.toContain(busy.id);
  });

  it("refuses a key without apiKeyManagement, saying why, and shows it no numbers", async () => {
    const reader = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Reader", scopes: ["app:read", "org:read"] });
    const client = await signedIn(reader.key);
    for (const path of [`/console/keys/${busy.id}/usage`, "/console/usage"]) {
      const page = await client.get(path);
      expect(page.status, path).toBe(403);
      expect(text(page.html), path).toContain("This key lacks the apiKeyManagement permission.");
      expect(page.html, path).not.toContain("Busy deployer");
    }
  });
});

describe("the key list's sparklines", () => {
  it("shows each listed key's last 7 days, linked to its usage page, from one usage call for the page", async () => {
    const page = await pageWhen(admin, "/console/keys", (html) => html.includes('aria-label="5 verifications in the last 7 days"'));
    const row = (id: string) => new RegExp(`<tr data-key-id="${id}">([\\s\\S]*?)</tr>`).exec(page.html)?.[1] ?? "";
    const busyCell = /<td data-label="Last 7 days">([\s\S]*?)<\/td>/.exec(row(busy.id))![1]!;
    expect(busyCell).toContain(`href="/console/keys/${busy.id}/usage"`);
    expect(text(busyCell).trim()).toBe("Usage of Busy deployer:");
    expect(busyCell).toContain('aria-label="5 verifications in the last 7 days"');
    const points = busyCell.match(/<polyline points="([^"]+)"/)![1]!.split(" ");
    expect(points).toHaveLength(7);
    // Only today's point is off the baseline: the line rises at the end.
    expect(new Set(points.slice(0, -1).map((p) => p.split(",")[1])).size).toBe(1);
    expect(points.at(-1)!.split(",")[1]).not.toBe(points[0]!.split(",")[1]);
    expect(row(refusedOnly.id)).toContain('aria-label="4 verifications in the last 7 days"');
    expect(row(quiet.id)).toContain('aria-label="0 verifications in the last 7 days"');
    expect(page.html).toContain('<th scope="col">Last 7 days</th>');
  });
});
