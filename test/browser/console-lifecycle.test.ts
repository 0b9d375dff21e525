import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, BOOTSTRAP_SECRET, checkScreen, signedIn, startWorld, verifyCode, VIEWPORTS, type World } from "./harness";

/**
 * The key lifecycle in the console, clicked through in Chromium at a desktop and a phone width: a key
 * with allowed networks and metadata, a refused range shown beside its line, regenerate with an overlap
 * (the Rotating badge and its end time), ending the overlap and disabling, each confirmed first, then
 * enabling. Every screen fits the viewport, passes axe-core and is saved as a screenshot.
 */
let world: World;
let orgId: string;
let adminKey: string;

beforeAll(async () => {
  world = await startWorld();
  const org = await api(world, "POST", "/v1/orgs", BOOTSTRAP_SECRET, { name: "Lifecycle Browser Co" });
  expect(org.status).toBe(201);
  orgId = org.body.org.id;
  adminKey = org.body.key.key;
});

afterAll(async () => {
  await world?.stop();
});

const keyNamed = async (name: string) =>
  ((await api(world, "GET", `/v1/orgs/${orgId}/keys?limit=100`, adminKey)).body.keys as { id: string; name: string; [k: string]: unknown }[]).find((k) => k.name === name)!;

for (const viewport of VIEWPORTS) {
  describe(`key lifecycle at ${viewport.width}px`, () => {
    const name = `Partner feed ${viewport.width}`;
    let firstSecret = "";
    let secondSecret = "";

    it("creates a key with allowed networks and metadata; the list shows its networks, the ranges as the badge's description", async () => {
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.getByRole("button", { name: "+ Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create API key" });
      await dialog.getByLabel("Name").fill(name);
      await dialog.getByLabel("Allowed networks").fill("203.0.113.0/24\n2001:db8::/32");
      await dialog.getByLabel("Metadata (JSON)").fill('{"customerId": "cus_42", "plan": "pro"}');
      await checkScreen(page, "create-with-networks");
      await dialog.getByRole("button", { name: "Create" }).click();
      const modal = page.getByRole("dialog", { name: `Key “${name}” created` });
      await modal.waitFor();
      firstSecret = await modal.getByLabel("API key").inputValue();
      await modal.getByRole("link", { name: "Done" }).click();
      await page.waitForURL("**/console/keys");

      const made = await keyNamed(name);
      expect(made).toMatchObject({ allowedNetworks: ["203.0.113.0/24", "2001:db8::/32"], metadata: { customerId: "cus_42", plan: "pro" } });
      const row = page.locator(`tr[data-key-id="${made.id}"]`);
      const badge = row.locator(".tip-wrap", { hasText: "Networks: 2" });
      await badge.focus();
      expect(await badge.locator(".tooltip").isVisible()).toBe(true);
      const description = await badge.evaluate((el) => document.getElementById(el.getAttribute("aria-describedby")!)!.textContent);
      expect(description).toBe("Works only from 203.0.113.0/24, 2001:db8::/32");
      await checkScreen(page, "keys-with-networks");
      await context.close();
    });

    it("shows a refused range beside its line and keeps the dialog open with what was typed", async () => {
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.getByRole("button", { name: "+ Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create API key" });
      await dialog.getByLabel("Name").fill(`Bad range ${viewport.width}`);
      await dialog.getByLabel("Allowed networks").fill("10.0.0.0/8\n10.0.0.1/8");
      await dialog.getByRole("button", { name: "Create" }).click();
      const reopened = page.getByRole("dialog", { name: "Create API key" });
      await reopened.locator("#create-networks-lines").waitFor();
      expect(await reopened.locator("#create-networks-lines").textContent()).toMatch(/Line 2: 10\.0\.0\.1\/8 has host bits set/);
      expect(await reopened.getByLabel("Allowed networks").inputValue()).toBe("10.0.0.0/8\n10.0.0.1/8");
      expect(await reopened.getByLabel("Allowed networks").getAttribute("aria-invalid")).toBe("true");
      await checkScreen(page, "create-bad-range");
      await context.close();
    });

    it("regenerates with a 1-day overlap: the secret page says until when the old secret works, the list shows Rotating until then", async () => {
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.getByRole("button", { name: `Regenerate ${name}` }).click();
      const confirm = page.getByRole("dialog", { name: `Regenerate “${name}”?` });
      await confirm.getByLabel("Keep the current secret working").selectOption({ label: "For 1 day" });
      await checkScreen(page, "regenerate-with-overlap");
      await confirm.getByRole("button", { name: "Regenerate" }).click();
      const modal = page.getByRole("dialog", { name: `New secret for “${name}”` });
      await modal.waitFor();
      secondSecret = await modal.getByLabel("API key").inputValue();
      const { rotation } = (await keyNamed(name)) as unknown as { rotation: { endsAt: string } };
      expect(Date.parse(rotation.endsAt) - Date.now()).toBeGreaterThan(86_000_000);
      const until = `${rotation.endsAt.slice(0, 16).replace("T", " ")} UTC`;
      expect(await modal.locator("#secret-warning").textContent()).toContain(`The previous secret keeps working until ${until}`);
      await checkScreen(page, "regenerated-with-overlap");
      await modal.getByRole("link", { name: "Done" }).click();
      await page.waitForURL("**/console/keys");
      expect(await verifyCode(world, firstSecret)).toBe("IP_NOT_ALLOWED"); // still its secret: only the networks refuse it
      const badge = page.locator(".badge", { hasText: "Rotating until" }).first();
      expect(await badge.textContent()).toBe(`Rotating until ${until}`);
      await checkScreen(page, "keys-rotating");
      await context.close();
    });

    it("ends the overlap from the key's page after a confirmation: the old secret stops, the new one works", async () => {
      const made = await keyNamed(name);
      // Without the networks, verify answers from here: the old secret is VALID during the overlap.
      expect((await api(world, "PATCH", `/v1/orgs/${orgId}/keys/${made.id}`, adminKey, { allowedNetworks: [] })).status).toBe(200);
      expect(await verifyCode(world, firstSecret)).toBe("VALID");
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.getByRole("link", { name: `Manage ${name}` }).click();
      await page.getByRole("heading", { name: "Rotation in progress" }).waitFor();
      expect(await page.locator("#rotation-last-used").textContent()).toMatch(/Old secret last used .* ago|just now/);
      await page.getByRole("button", { name: "End overlap now" }).click();
      const confirm = page.getByRole("dialog", { name: "End the overlap now?" });
      await confirm.waitFor();
      await checkScreen(page, "end-overlap-confirmation");
      await confirm.getByRole("button", { name: "Cancel" }).click();
      expect(await verifyCode(world, firstSecret)).toBe("VALID"); // Cancel changed nothing
      await page.getByRole("button", { name: "End overlap now" }).click();
      await confirm.getByRole("button", { name: "End overlap" }).click();
      await page.getByText("The overlap has ended").waitFor();
      expect(await verifyCode(world, firstSecret)).not.toBe("VALID");
      expect(await verifyCode(world, secondSecret)).toBe("VALID");
      expect(await page.getByRole("button", { name: "End overlap now" }).count()).toBe(0);
      await checkScreen(page, "overlap-ended");
      await context.close();
    });

    it("disables after a confirmation (DISABLED at once, Disabled badge), and enables again", async () => {
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.getByRole("link", { name: `Manage ${name}` }).click();
      await page.getByRole("button", { name: "Disable", exact: true }).click();
      const confirm = page.getByRole("dialog", { name: `Disable “${name}”?` });
      await confirm.waitFor();
      await checkScreen(page, "disable-confirmation");
      await confirm.getByRole("button", { name: "Disable key" }).click();
      await page.getByRole("heading", { name: "This key is disabled" }).waitFor();
      expect(await verifyCode(world, secondSecret)).toBe("DISABLED");
      await checkScreen(page, "disabled-key");
      await page.goto("/console/keys");
      const made = await keyNamed(name);
      expect(await page.locator(`tr[data-key-id="${made.id}"] .badge`, { hasText: "Disabled" }).isVisible()).toBe(true);
      await page.getByRole("link", { name: `Manage ${name}` }).click();
      await page.getByRole("button", { name: "Enable" }).click();
      await page.getByText("The key is enabled again").waitFor();
      expect(await verifyCode(world, secondSecret)).toBe("VALID");
      await context.close();
    });
  });

  describe(`policy and webhooks at ${viewport.width}px`, () => {
    it("sets what a leak does, the unused days and expire-unused on the policy page, each explained, and keeps them on save", async () => {
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      await page.getByRole("link", { name: "Key policy" }).click();
      await page.getByLabel("Disable it").check();
      await page.getByLabel("Flag keys unused for this many days (empty: never)").fill(String(viewport.width === 390 ? 60 : 45));
      await page.getByLabel("Also expire them").check();
      expect(await page.getByLabel("Disable it").evaluate((el) => document.getElementById(el.getAttribute("aria-describedby")!)!.textContent)).toContain("paused at once");
      await page.getByRole("button", { name: "Save policy" }).click();
      await page.getByText("Policy saved").waitFor();
      const policy = (await api(world, "GET", `/v1/orgs/${orgId}/policy`, adminKey)).body;
      expect(policy).toMatchObject({ leakedKeyAction: "disable", unusedKeyDays: viewport.width === 390 ? 60 : 45, expireUnusedKeys: true });
      expect(await page.getByLabel("Disable it").isChecked()).toBe(true);
      await checkScreen(page, "policy-lifecycle");
      // Saved again untouched, nothing changes.
      await page.getByRole("button", { name: "Save policy" }).click();
      await page.getByText("Policy saved").waitFor();
      expect((await api(world, "GET", `/v1/orgs/${orgId}/policy`, adminKey)).body).toEqual(policy);
      await api(world, "PUT", `/v1/orgs/${orgId}/policy`, adminKey, { requireExpiration: false, maxLifetimeDays: null });
      await context.close();
    });

    it("registers a webhook endpoint, shows its signing secret once, lists it with its deliveries, and deletes it after a confirmation", async () => {
      const { context, page } = await signedIn(world, adminKey, { viewport, bypassCSP: true });
      const url = `https://hooks.example.com/keygate-${viewport.width}`;
      await page.getByRole("link", { name: "Webhooks" }).click();
      await page.getByRole("button", { name: "+ Register endpoint" }).click();
      const dialog = page.getByRole("dialog", { name: "Register a webhook endpoint" });
      await dialog.getByLabel("URL").fill(url);
      await dialog.getByLabel("Description (optional)").fill("Security alerts");
      await dialog.getByLabel("Every event, including kinds added later").uncheck();
      await dialog.getByRole("checkbox", { name: /key\.leaked/ }).check();
      await dialog.getByRole("checkbox", { name: /key\.expiring/ }).check();
      await checkScreen(page, "webhook-register");
      await dialog.getByRole("button", { name: "Register" }).click();
      const modal = page.getByRole("dialog", { name: "Endpoint registered" });
      await modal.waitFor();
      expect(await modal.getByLabel("Signing secret").inputValue()).toMatch(/^whsec_/);
      await checkScreen(page, "webhook-secret");
      await modal.getByRole("link", { name: "Done" }).click();
      await page.waitForURL("**/console/webhooks");
      expect(await page.getByRole("dialog").count()).toBe(0);
      const listed = (await api(world, "GET", `/v1/orgs/${orgId}/webhooks`, adminKey)).body.webhooks as { id: string; url: string; eventTypes: string[] }[];
      const made = listed.find((w) => w.url === url)!;
      expect(made.eventTypes).toEqual(["key.leaked", "key.expiring"]);
      const row = page.locator(`tr[data-webhook-id="${made.id}"]`);
      expect(await row.textContent()).toContain("key.leaked");
      await checkScreen(page, "webhooks");

      await row.getByRole("link", { name: `Deliveries to ${url}` }).click();
      await page.getByRole("heading", { name: "Deliveries" }).waitFor();
      await checkScreen(page, "webhook-deliveries");
      await page.getByRole("link", { name: "← Webhooks" }).click();

      await page.locator(`tr[data-webhook-id="${made.id}"]`).getByRole("button", { name: `Delete ${url}` }).click();
      const confirm = page.getByRole("dialog", { name: "Delete this endpoint?" });
      await confirm.waitFor();
      await checkScreen(page, "webhook-delete-confirmation");
      await confirm.getByRole("button", { name: "Delete endpoint" }).click();
      await page.getByText("The endpoint was deleted").waitFor();
      expect(((await api(world, "GET", `/v1/orgs/${orgId}/webhooks`, adminKey)).body.webhooks as { url: string }[]).some((w) => w.url === url)).toBe(false);
      await context.close();
    });
  });
}
