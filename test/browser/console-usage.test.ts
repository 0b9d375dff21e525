import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, BOOTSTRAP_SECRET, checkScreen, signedIn, startWorld, VIEWPORTS, type World } from "./harness";

/**
 * The console's usage pages in Chromium (issue 16, point 1): a key's chart and the org's top keys, after
 * real verifications, at a desktop and a phone width. Nothing scrolls sideways, axe-core finds nothing,
 * the chart's text stays readable on a phone, the key list shows each key's week as a sparkline, and the
 * screenshots are the README's usage chart.
 */
let world: World;
let orgId: string;
let adminKey: string;
let busyId: string;
let noisyId: string;

async function verify(key: string, permission?: string) {
  const res = await fetch(`${world.url}/v1/keys/verify`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(permission ? { key, permission } : { key }),
  });
  return ((await res.json()) as { code: string }).code;
}

beforeAll(async () => {
  world = await startWorld();
  const org = await api(world, "POST", "/v1/orgs", BOOTSTRAP_SECRET, { name: "Usage Browser Co" });
  expect(org.status, JSON.stringify(org.body)).toBe(201);
  orgId = org.body.org.id;
  adminKey = org.body.key.key;
  const create = async (name: string) => {
    const res = await api(world, "POST", `/v1/orgs/${orgId}/keys`, adminKey, { kind: "scoped", name, scopes: ["app:read"] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { id: string; key: string };
  };
  const busy = await create("Checkout service");
  // A long name, for the layout at 390 px.
  const noisy = await create("Partner integration for the european storefront with a name long enough to wrap twice");
  busyId = busy.id;
  noisyId = noisy.id;
  for (let i = 0; i < 12; i++) expect(await verify(busy.key)).toBe("VALID");
  for (let i = 0; i < 3; i++) expect(await verify(busy.key, "project:deploy")).toBe("INSUFFICIENT_PERMISSIONS");
  for (let i = 0; i < 5; i++) expect(await verify(noisy.key, "project:deploy")).toBe("INSUFFICIENT_PERMISSIONS");
  expect(await verify(noisy.key)).toBe("VALID");
  // The bundle sends counts to the keys' authorities 100 ms after the first (USAGE_FLUSH_MS, set by the
  // harness), which roll them up into D1 (every second here, USAGE_ROLLUP_MS): wait for both keys.
  const deadline = Date.now() + 40_000;
  for (;;) {
    const top = await api(world, "GET", `/v1/orgs/${orgId}/usage?by=requests&limit=100`, adminKey);
    const totals = new Map((top.body.keys as { keyId: string; total: number }[]).map((k) => [k.keyId, k.total]));
    if (totals.get(busyId) === 15 && totals.get(noisyId) === 6) break;
    if (Date.now() > deadline) throw new Error(`usage never reached D1: ${JSON.stringify(top.body)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
});

afterAll(async () => {
  await world?.stop();
});

/** `checkScreen`, and the page is no wider than the viewport. */
async function check(page: Page, screen: string) {
  const width = page.viewportSize()!.width;
  expect(await page.evaluate(() => document.documentElement.scrollWidth), `${screen} at ${width}px scrolls sideways`).toBeLessThanOrEqual(width);
  await checkScreen(page, screen);
}

for (const viewport of VIEWPORTS) {
  describe(`usage pages at ${viewport.width}×${viewport.height}`, () => {
    let admin: { context: BrowserContext; page: Page };
    beforeAll(async () => {
      admin = await signedIn(world, adminKey, { viewport, bypassCSP: true });
    });
    afterAll(async () => {
      await admin?.context.close();
    });

    it("a key's chart of the last 24 hours: as wide as the page, its labels readable, its numbers in words and in a table", async () => {
      const { page } = admin;
      await page.goto(`/console/keys/${busyId}/usage`);
      const chart = page.getByRole("img", { name: /^Verifications of Checkout service per hour, last 24 hours: 15 in all, 12 valid, 3 refused\./ });
      await chart.waitFor();
      const box = (await chart.boundingBox())!;
      const main = (await page.locator("main").boundingBox())!;
      // The chart fills the content width (main's padding aside) at both widths.
      expect(box.width).toBeGreaterThan(main.width - 64);
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
      // Axis labels are 12 px at any width: the chart stretches its bars, not its text.
      const label = chart.locator("text", { hasText: /^\d{2}:00$|^\w{3} \d{1,2}$/ }).first();
      expect((await label.boundingBox())!.height).toBeGreaterThanOrEqual(12);
      // By locator, not by role: at phone width the table's rows are cards, which Chromium no longer exposes as rows.
      const totalOf = (outcome: string) => page.locator(`#usage-totals tr[data-outcome="${outcome}"] td[data-label="Verifications"]`).textContent();
      expect(await totalOf("VALID")).toBe("12");
      expect(await totalOf("INSUFFICIENT_PERMISSIONS")).toBe("3");
      expect(await totalOf("total")).toBe("15");
      await check(page, "key-usage-hourly");
      // The data table, behind its disclosure: every hour, the newest with the counts.
      await page.getByText("Data table").click();
      const rows = page.locator("#usage-table tbody tr");
      expect(await rows.count()).toBe(24);
      expect(await rows.last().locator("td").allTextContents()).toEqual([expect.stringMatching(/^\w{3} \d{1,2}, \d{2}:00$/), "15", "12", "3"]);
      await check(page, "key-usage-table");
    });

    it("a key's chart of the last 30 days, reached by the period link", async () => {
      const { page } = admin;
      await page.goto(`/console/keys/${noisyId}/usage`);
      await page.getByRole("link", { name: "Last 30 days" }).click();
      await page.waitForURL("**/usage?granularity=day");
      expect(await page.getByRole("link", { name: "Last 30 days" }).getAttribute("aria-current")).toBe("page");
      await page.getByRole("img", { name: /per day, last 30 days: 6 in all, 1 valid, 5 refused\./ }).waitFor();
      await check(page, "key-usage-daily");
    });

    it("the org's most used and most refused keys, each with its sparkline and a link to its chart", async () => {
      const { page } = admin;
      await page.goto("/console/usage");
      const used = page.locator("#most-used tbody tr");
      const refused = page.locator("#most-refused tbody tr");
      // The admin key's own console requests are verifications too: the two keys are ranked among them.
      await expect.poll(() => used.filter({ hasText: "Checkout service" }).count()).toBe(1);
      expect(await refused.first().getByRole("link").textContent()).toBe("Partner integration for the european storefront with a name long enough to wrap twice");
      expect(await refused.filter({ hasText: "Checkout service" }).getByRole("img", { name: "15 verifications in the last 7 days" }).count()).toBe(1);
      await check(page, "org-usage");
      await used.filter({ hasText: "Checkout service" }).getByRole("link", { name: "Checkout service" }).click();
      await page.waitForURL(`**/console/keys/${busyId}/usage`);
    });

    it("the key list: each key's last 7 days as a sparkline that opens its chart", async () => {
      const { page } = admin;
      await page.goto("/console/keys");
      const busy = page.locator(`tr[data-key-id="${busyId}"]`);
      const spark = busy.getByRole("link", { name: "Usage of Checkout service: 15 verifications in the last 7 days" });
      await spark.waitFor();
      const noisy = page.locator(`tr[data-key-id="${noisyId}"]`);
      expect(await noisy.getByRole("img", { name: "6 verifications in the last 7 days" }).count()).toBe(1);
      // The sparkline stays its own size in a row and in a card.
      const box = (await spark.locator("svg").boundingBox())!;
      expect(box.width).toBe(72);
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
      await check(page, "key-list-sparklines");
      await spark.click();
      await page.waitForURL(`**/console/keys/${busyId}/usage`);
    });
  });
}
