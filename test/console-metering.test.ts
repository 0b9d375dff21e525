import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrg } from "./helpers";
import { ConsoleClient } from "./console-helpers";
import { createKeyAs, setPolicy } from "./key-fixtures";
import { NO_POLICY } from "../src/domain/policy";

/**
 * The console's rate limits and credits (issue 16 point 4), server side inside workerd: set at create and
 * edit, refusals beside their rows, what the key's page and the list say, and the org's default limits on
 * the policy page. Every form goes through the API, so these assert what the API then holds.
 */
let org: Awaited<ReturnType<typeof createOrg>>;
let client: ConsoleClient;

beforeAll(async () => {
  org = await createOrg("Metering Console Co");
  client = new ConsoleClient();
  await client.signIn(org.adminKey);
});

const keysPath = (id = "") => `/v1/orgs/${org.orgId}/keys${id ? `/${id}` : ""}`;
const getKey = async (id: string) => (await call("GET", keysPath(id), { key: org.adminKey })).body;
const keyByName = async (name: string) => {
  const list = (await call("GET", `${keysPath()}?kind=rbac,scoped&limit=100`, { key: org.adminKey })).body.keys as { id: string; name: string }[];
  return list.find((k) => k.name === name);
};
const rowOf = (html: string, id: string) => new RegExp(`<tr data-key-id="${id}">([\\s\\S]*?)</tr>`).exec(html)?.[1] ?? "";
const createForm = (fields: Record<string, string | string[]>) => ({ kind: "rbac", secure: "on", expiration: "none", orgRole: "member", appRole: "reader", ...fields });
/** Three limit rows as the editor posts them: limit, period (seconds or "other") and typed seconds. */
const rows = (...r: [string, string, string?][]) => {
  while (r.length < 3) r.push(["", "60"]);
  return { rlLimit: r.map((x) => x[0]), rlPeriod: r.map((x) => x[1]), rlSeconds: r.map((x) => x[2] ?? "") };
};
const textOf = (html: string, id: string) => new RegExp(`id="${id}"[^>]*>([\\s\\S]*?)</(?:p|dd)>`).exec(html)?.[1]?.replace(/<[^>]+>/g, "").replace(/&#39;/g, "'") ?? "";

describe("create dialog: rate limits and credits", () => {
  it("creates a key with two limits and credits refilled daily, which the list shows as Credits and Limited", async () => {
    const res = await client.post(
      "/console/keys",
      createForm({ name: "Metered partner", ...rows(["100", "10"], ["10000", "86400"]), credits: "500", refillAmount: "500", refillInterval: "day" }),
    );
    expect(res.status, res.html.slice(0, 500)).toBe(303);
    const made = await getKey((await keyByName("Metered partner"))!.id);
    expect(made.rateLimits).toEqual([
      { limit: 100, periodSeconds: 10 },
      { limit: 10000, periodSeconds: 86400 },
    ]);
    expect(made.credits).toMatchObject({ remaining: 500, refill: { amount: 500, interval: "day" } });
    const row = rowOf((await client.get("/console/keys")).html, made.id);
    expect(row).toContain("Credits: 500 left");
    expect(row).toContain("Limited: 100 per 10 s, 10,000 per day");
  });

  it("leaves empty rows and an empty balance out: the key is unlimited and unmetered, with no badge", async () => {
    const res = await client.post("/console/keys", createForm({ name: "Unmetered", ...rows(), credits: "", refillAmount: "", refillInterval: "month" }));
    expect(res.status, res.html.slice(0, 500)).toBe(303);
    const made = await getKey((await keyByName("Unmetered"))!.id);
    expect(made).toMatchObject({ rateLimits: [], credits: null });
    const row = rowOf((await client.get("/console/keys")).html, made.id);
    expect(row).not.toContain("Credits:");
    expect(row).not.toContain("Limited");
  });

  it("shows a refused limit beside the row it was typed in, keeps the rows, and creates nothing", async () => {
    const res = await client.post("/console/keys", createForm({ name: "Zero limit", ...rows(["", "60"], ["0", "other", "30"]) }));
    expect(res.status).toBe(400);
    expect(res.html).toContain('data-autoopen="true"');
    expect(textOf(res.html, "create-rl-2-error")).toBe("Limit 2: The limit must be at least 1.");
    expect(res.html).toMatch(/id="create-rl-2-limit"[^>]*value="0"[^>]*aria-invalid="true"|value="0"[^>]*id="create-rl-2-limit"/);
    expect(res.html).toMatch(/<option value="other" selected="">seconds…<\/option>/);
    expect(await keyByName("Zero limit")).toBeUndefined();
  });

  it("refuses the same period twice, and a refill without credits, beside their fields", async () => {
    const twice = await client.post("/console/keys", createForm({ name: "Twice", ...rows(["10", "60"], ["20", "60"]) }));
    expect(twice.status).toBe(400);
    expect(textOf(twice.html, "create-rl-error")).toMatch(/each period once/);
    const refill = await client.post("/console/keys", createForm({ name: "Refill only", ...rows(), credits: "", refillAmount: "100", refillInterval: "month" }));
    expect(refill.status).toBe(400);
    expect(textOf(refill.html, "create-refill-error")).toMatch(/needs credits/);
    expect(await keyByName("Twice")).toBeUndefined();
    expect(await keyByName("Refill only")).toBeUndefined();
  });
});

describe("key page: credits, limits in force, usage", () => {
  it("shows credits left, the next refill, its own limits and a Usage link", async () => {
    const made = await createKeyAs(org.adminKey, org.orgId, {
      kind: "scoped",
      name: "Shown metered",
      scopes: ["app:read"],
      credits: 40,
      creditsRefill: { amount: 40, interval: "month" },
      rateLimits: [{ limit: 5, periodSeconds: 1 }],
    });
    const page = (await client.get(`/console/keys/${made.id}`)).html;
    expect(textOf(page, "metering-credits")).toMatch(/^40 left; refilled to 40 each month, next \d{4}-\d{2}-01/);
    expect(textOf(page, "metering-limits")).toBe("Its own: 5 per second");
    expect(page).toContain(`href="/console/keys/${made.id}/usage"`);
  });

  it("says so when the key is out of credits", async () => {
    const made = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Spent", scopes: ["app:read"], credits: 0 });
    expect(textOf((await client.get(`/console/keys/${made.id}`)).html, "metering-credits")).toMatch(/^None left/);
    expect(rowOf((await client.get("/console/keys")).html, made.id)).toContain("No credits left");
  });
});

describe("edit page: rate limits and credits", () => {
  const editForm = (name: string, fields: Record<string, string | string[]>) => ({ name, expiration: "keep", scopes: "app:read", allowedNetworks: "", metadata: "", ...fields });

  it("sends only what changed: a rename leaves a balance spent meanwhile alone", async () => {
    const made = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Spending", scopes: ["app:read"], credits: 500 });
    const shown = (await client.get(`/console/keys/${made.id}`)).html;
    expect(shown).toMatch(/name="creditsWas" value="500"/);
    // A use after the page was shown: the authority takes a slice of the balance.
    expect((await call("POST", "/v1/keys/verify", { body: { key: made.key } })).body.code).toBe("VALID");
    const spent = (await getKey(made.id)).credits.remaining;
    expect(spent).toBeLessThan(500);
    const saved = await client.post(`/console/keys/${made.id}`, editForm("Spending renamed", { ...rows(), credits: "500", creditsWas: "500", refillAmount: "", refillInterval: "month" }));
    expect(saved.status, saved.html.slice(0, 500)).toBe(303);
    expect(await getKey(made.id)).toMatchObject({ name: "Spending renamed", credits: { remaining: spent, refill: null }, rateLimits: [] });
  });

  it("changes limits (a typed period) and credits, then removes both", async () => {
    const made = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Tuned", scopes: ["app:read"], credits: 10, rateLimits: [{ limit: 5, periodSeconds: 1 }] });
    const page = (await client.get(`/console/keys/${made.id}`)).html;
    expect(page).toMatch(/id="edit-rl-1-limit"[^>]*value="5"/);
    const changed = await client.post(
      `/console/keys/${made.id}`,
      editForm("Tuned", { ...rows(["50", "other", "30"], ["1000", "3600"]), credits: "1000", creditsWas: "10", refillAmount: "1000", refillInterval: "day" }),
    );
    expect(changed.status, changed.html.slice(0, 500)).toBe(303);
    expect(await getKey(made.id)).toMatchObject({
      rateLimits: [
        { limit: 50, periodSeconds: 30 },
        { limit: 1000, periodSeconds: 3600 },
      ],
      credits: { remaining: 1000, refill: { amount: 1000, interval: "day" } },
    });
    const typed = (await client.get(`/console/keys/${made.id}`)).html;
    expect(typed).toMatch(/id="edit-rl-1-seconds"[^>]*value="30"/);
    const cleared = await client.post(`/console/keys/${made.id}`, editForm("Tuned", { ...rows(), credits: "", creditsWas: "1000", refillAmount: "1000", refillInterval: "day" }));
    expect(cleared.status, cleared.html.slice(0, 500)).toBe(303);
    expect(await getKey(made.id)).toMatchObject({ rateLimits: [], credits: null });
  });

  it("shows a refused credits value beside the field and changes nothing", async () => {
    const made = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Too many", scopes: ["app:read"] });
    const res = await client.post(`/console/keys/${made.id}`, editForm("Too many", { ...rows(["5", "1"]), credits: "2000000000", creditsWas: "", refillAmount: "", refillInterval: "month" }));
    expect(res.status).toBe(400);
    expect(textOf(res.html, "edit-credits-error")).toMatch(/^Credits must be at most/);
    expect(await getKey(made.id)).toMatchObject({ rateLimits: [], credits: null });
  });
});

describe("policy page: the org's default rate limits", () => {
  it("saves default limits without dropping the other rules, shows them on a key's page, and removes them", async () => {
    const other = await createOrg("Metering Policy Co");
    const admin = new ConsoleClient();
    await admin.signIn(other.adminKey);
    await setPolicy(other.orgId, { ...NO_POLICY, leakedKeyAction: "disable", unusedKeyDays: 45, expireUnusedKeys: true });
    const policyPage = (await admin.get("/console/policy")).html;
    expect(policyPage).toContain("Default rate limits");
    // The form as the page posts it: every rule it shows, as shown.
    const shown = { maxLifetimeDays: "", leakedKeyAction: "disable", unusedKeyDays: "45", expireUnusedKeys: "on" };
    const saved = await admin.post("/console/policy", { ...shown, ...rows(["100", "10"], ["10000", "86400"]) });
    expect(saved.status, saved.html.slice(0, 500)).toBe(303);
    const policy = (await call("GET", `/v1/orgs/${other.orgId}/policy`, { key: other.adminKey })).body;
    expect(policy).toMatchObject({
      leakedKeyAction: "disable",
      unusedKeyDays: 45,
      expireUnusedKeys: true,
      rateLimits: [
        { limit: 100, periodSeconds: 10 },
        { limit: 10000, periodSeconds: 86400 },
      ],
    });
    const again = (await admin.get("/console/policy")).html;
    expect(again).toMatch(/id="policy-rl-2-limit"[^>]*value="10000"/);
    const key = await createKeyAs(other.adminKey, other.orgId, { kind: "scoped", name: "Inherits", scopes: ["app:read"] });
    expect(textOf((await admin.get(`/console/keys/${key.id}`)).html, "metering-limits")).toBe("The organization's default: 100 per 10 s, 10,000 per day");

    const refused = await admin.post("/console/policy", { ...shown, ...rows(["0", "60"]) });
    expect(refused.status).toBe(400);
    expect(textOf(refused.html, "policy-rl-1-error")).toBe("Limit 1: The limit must be at least 1.");

    const removed = await admin.post("/console/policy", { ...shown, ...rows() });
    expect(removed.status, removed.html.slice(0, 500)).toBe(303);
    expect((await call("GET", `/v1/orgs/${other.orgId}/policy`, { key: other.adminKey })).body).toMatchObject({ rateLimits: null, unusedKeyDays: 45 });
  });
});
