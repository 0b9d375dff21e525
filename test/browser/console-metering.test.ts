import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, BOOTSTRAP_SECRET, checkScreen, signedIn, startWorld, VIEWPORTS, type World } from "./harness";

/**
 * Rate limits and credits in the console, clicked through in Chromium at a desktop and a phone width: a key
 * created with two limits and a refilled balance (the list's Credits and Limited badges), its page (credits
 * left, next refill, limits in force, Usage), a typed period saved from the edit page, a refused limit beside
 * its row, and the org's default limits on the policy page. Every screen fits the viewport, passes axe-core
 * and is saved as a screenshot.
 */
let world: World;
let orgId: string;
let adminKey: string;

beforeAll(async () => {
  world = await startWorld();
  const org = await api(world, "POST", "/v1/orgs", BOOTSTRAP_SECRET, { name: "Metering Browser Co" });
  expect(org.status).toBe(201);
  orgId = org.body.org.id;
  adminKey = org.body.key.key;
});

afterAll(async () => {
  await world?.stop();
});

const keyNamed = async (name: string) =>
  ((await api(world, "GET", `/v1/orgs/${orgId}/keys?limit=100`, adminKey)).body.keys as { id: string; name: string; [k: string]: unknown }[]).find((k) => k.name === name);

for (const viewport of VIEWPORTS) {
  describe(`rate limits and credits at ${viewport.width}px`, () => {
    const name = `Metered feed ${viewport.width}`;

    it("creates a key with two limits and a daily refill; the list badges its credits and limits", async () => {
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.getByRole("button", { name: "+ Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create API key" });
      await dialog.getByLabel("Name").fill(name);
      await dialog.getByLabel("Limit 1: requests").fill("100");
      await dialog.getByLabel("Limit 1: per").selectOption({ label: "10 s" });
      await dialog.getByLabel("Limit 2: requests").fill("10000");
      await dialog.getByLabel("Limit 2: per").selectOption({ label: "day" });
      // The seconds field shows only for a typed period.
      expect(await dialog.getByLabel("Limit 1: seconds").isVisible()).toBe(false);
      await dialog.getByLabel("Credits left").fill("500");
      await dialog.getByLabel("Refill to").fill("500");
      await dialog.getByLabel("every").selectOption("day");
      await dialog.getByLabel("Credits left").scrollIntoViewIfNeeded();
      await checkScreen(page, "create-with-limits");
      await dialog.getByRole("button", { name: "Create" }).click();
      const modal = page.getByRole("dialog", { name: `Key “${name}” created` });
      await modal.waitFor();
      await modal.getByRole("link", { name: "Done" }).click();
      await page.waitForURL("**/console/keys");

      const made = (await keyNamed(name))!;
      expect(made).toMatchObject({
        rateLimits: [
          { limit: 100, periodSeconds: 10 },
          { limit: 10000, periodSeconds: 86400 },
        ],
        credits: { remaining: 500, refill: { amount: 500, interval: "day" } },
      });
      const row = page.locator(`tr[data-key-id="${made.id}"]`);
      expect(await row.locator(".badge", { hasText: "Credits:" }).textContent()).toBe("Credits: 500 left");
      expect(await row.locator(".badge", { hasText: "Limited" }).textContent()).toBe("Limited: 100 per 10 s, 10,000 per day");
      await checkScreen(page, "keys-metered");
      await context.close();
    });

    it("shows a refused limit beside its row and keeps the dialog open", async () => {
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.getByRole("button", { name: "+ Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create API key" });
      await dialog.getByLabel("Name").fill(`Zero limit ${viewport.width}`);
      await dialog.getByLabel("Limit 2: requests").fill("0");
      await dialog.getByRole("button", { name: "Create" }).click();
      const reopened = page.getByRole("dialog", { name: "Create API key" });
      await reopened.locator("#create-rl-2-error").waitFor();
      expect(await reopened.locator("#create-rl-2-error").textContent()).toBe("Limit 2: The limit must be at least 1.");
      expect(await reopened.getByLabel("Limit 2: requests").getAttribute("aria-invalid")).toBe("true");
      await checkScreen(page, "create-refused-limit");
      expect(await keyNamed(`Zero limit ${viewport.width}`)).toBeUndefined();
      await context.close();
    });

    it("shows credits, the next refill and the limits on the key's page, and saves a typed period", async () => {
      const made = (await keyNamed(name))!;
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.goto(`/console/keys/${made.id}`);
      expect(await page.locator("#metering-credits").textContent()).toMatch(/^500 left; refilled to 500 each day, next \d{4}-\d{2}-\d{2} 00:00/);
      expect(await page.locator("#metering-limits").textContent()).toBe("Its own: 100 per 10 s, 10,000 per day");
      expect(await page.locator("#metering").getByRole("link", { name: "Usage" }).getAttribute("href")).toBe(`/console/keys/${made.id}/usage`);
      await checkScreen(page, "key-page-metering");
      await page.getByLabel("Limit 1: per").selectOption({ label: "seconds…" });
      await page.getByLabel("Limit 1: seconds").fill("30");
      await page.getByRole("button", { name: "Save Changes" }).click();
      await page.waitForURL("**/console/keys?notice=updated");
      expect(await keyNamed(name)).toMatchObject({
        rateLimits: [
          { limit: 100, periodSeconds: 30 },
          { limit: 10000, periodSeconds: 86400 },
        ],
        credits: { remaining: 500 },
      });
      await context.close();
    });

    it("sets the org's default limits on the policy page, which a key without its own shows", async () => {
      const plain = `Plain ${viewport.width}`;
      const made = await api(world, "POST", `/v1/orgs/${orgId}/keys`, adminKey, { kind: "scoped", name: plain, scopes: ["app:read"] });
      expect(made.status).toBe(201);
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      // A step that cannot happen fails with its own message, not the test's timeout.
      page.setDefaultTimeout(8_000);
      await page.goto("/console/policy");
      await page.getByLabel("Limit 1: requests").fill("60");
      await page.getByLabel("Limit 1: per").selectOption({ label: "minute" });
      await page.getByRole("button", { name: "Save policy" }).click();
      await page.waitForURL("**/console/policy?saved=1");
      expect(await page.getByLabel("Limit 1: requests").inputValue()).toBe("60");
      await checkScreen(page, "policy-default-limits");
      const policy = (await api(world, "GET", `/v1/orgs/${orgId}/policy`, adminKey)).body;
      expect(policy).toMatchObject({ rateLimits: [{ limit: 60, periodSeconds: 60 }], leakedKeyAction: "revoke" });
      await page.goto(`/console/keys/${made.body.id}`);
      expect(await page.locator("#metering-limits").textContent()).toBe("The organization's default: 60 per minute");
      await checkScreen(page, "key-page-org-default");
      // Removed again, so the other width starts from no default.
      await page.goto("/console/policy");
      await page.getByLabel("Limit 1: requests").fill("");
      await page.getByRole("button", { name: "Save policy" }).click();
      await page.waitForURL("**/console/policy?saved=1");
      expect((await api(world, "GET", `/v1/orgs/${orgId}/policy`, adminKey)).body.rateLimits).toBeNull();
      await context.close();
    });
  });
}
