import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, axeViolations, BOOTSTRAP_SECRET, shot, sidewaysOverflow, signedIn, startWorld, type World } from "./harness";

/**
 * The console's apps page, audit log and policy page in Chromium, against the deployable bundle: an
 * admin creates and deletes apps as a user would, reads the audit log by name and filters it, and
 * reads why a policy change must suit its own key. Each screen is also checked at phone width.
 */
let world: World;
let orgId: string;
let adminKey: string;
let adminKeyId: string;

beforeAll(async () => {
  world = await startWorld();
  const org = await api(world, "POST", "/v1/orgs", BOOTSTRAP_SECRET, { name: "Apps Browser Co" });
  expect(org.status).toBe(201);
  orgId = org.body.org.id;
  adminKey = org.body.key.key;
  adminKeyId = org.body.key.id;
});

afterAll(async () => {
  await world?.stop();
});

const appsOf = async () => (await api(world, "GET", `/v1/orgs/${orgId}/apps?limit=100`, adminKey)).body.apps as { id: string; name: string }[];

/** At 390 px the page fits: no horizontal scrolling, and nothing sticks out of the viewport. */
async function fitsPhone(page: Page, name: string) {
  await page.setViewportSize({ width: 390, height: 844 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth), `${name} scrolls sideways at 390 px`).toBeLessThanOrEqual(390);
  expect(await sidewaysOverflow(page), name).toEqual([]);
  await shot(page, `${name}-390`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

describe("console apps, audit log and policy in the browser", () => {
  it("creates an app from the Apps tab with post/redirect/get, and shows a bad name next to the field", async () => {
    const { context, page } = await signedIn(world, adminKey);
    await page.getByRole("link", { name: "Apps", exact: true }).click();
    await page.waitForURL("**/console/apps");
    expect(await page.getByRole("heading", { name: "Create your first app" }).isVisible()).toBe(true);
    await shot(page, "apps-empty-1280");
    await fitsPhone(page, "apps-empty");

    await page.getByRole("button", { name: "Create app" }).click();
    const name = page.getByLabel("App name");
    expect(await name.getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#app-name-error").textContent()).toBe("Name must not be empty.");
    await shot(page, "apps-create-error-1280");
    expect(await appsOf()).toEqual([]);

    await name.fill("mobile");
    await page.getByRole("button", { name: "Create app" }).click();
    await page.waitForURL("**/console/apps?created=*");
    expect(await page.getByRole("status").textContent()).toContain("App “mobile” created.");
    const [created] = await appsOf();
    const row = page.locator(`#apps tr[data-app-id="${created!.id}"]`);
    expect(await row.textContent()).toContain("mobile");
    expect(await row.textContent()).toContain(created!.id);
    // Reloading the page it landed on creates nothing.
    await page.reload();
    expect((await appsOf()).length).toBe(1);
    await shot(page, "apps-created-1280");
    await fitsPhone(page, "apps-created");
    await context.close();
  });

  it("deletes an app behind a confirmation that names the keys losing their role; Cancel changes nothing", async () => {
    const app = (await api(world, "POST", `/v1/orgs/${orgId}/apps`, adminKey, { name: "billing" })).body;
    const key = (await api(world, "POST", `/v1/orgs/${orgId}/keys`, adminKey, { kind: "rbac", name: "Billing uploader", orgRole: "none", appRoles: [{ appId: app.id, role: "uploader" }] })).body;
    const { context, page } = await signedIn(world, adminKey);
    await page.goto("/console/apps");
    await page.getByRole("button", { name: "Delete billing" }).click();
    const confirm = page.getByRole("dialog", { name: "Delete app “billing”?" });
    expect(await confirm.textContent()).toContain("1 key holds a role on it (Billing uploader): it loses that role immediately");
    await shot(page, "apps-delete-confirmation-1280");
    await page.setViewportSize({ width: 390, height: 844 });
    const box = (await confirm.boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(390);
    await shot(page, "apps-delete-confirmation-390");
    await page.setViewportSize({ width: 1280, height: 900 });
    await confirm.getByRole("button", { name: "Cancel" }).click();
    expect(await confirm.isVisible()).toBe(false);
    expect((await appsOf()).map((a) => a.id)).toContain(app.id);

    await page.getByRole("button", { name: "Delete billing" }).click();
    await confirm.getByRole("button", { name: "Delete app" }).click();
    await page.waitForURL("**/console/apps?notice=deleted");
    expect(await page.getByRole("status").textContent()).toContain("The app was deleted.");
    expect(await page.locator(`tr[data-app-id="${app.id}"]`).count()).toBe(0);
    expect((await api(world, "GET", `/v1/orgs/${orgId}/keys/${key.id}`, adminKey)).body.appRoles).toEqual([]);
    await context.close();
  });

  it("shows a key without org:admin Create and Delete disabled, with the reason, and no dialog to open", async () => {
    await api(world, "POST", `/v1/orgs/${orgId}/apps`, adminKey, { name: "guarded" });
    const member = (await api(world, "POST", `/v1/orgs/${orgId}/keys`, adminKey, { kind: "rbac", name: "Org member", orgRole: "member" })).body;
    const { context, page } = await signedIn(world, member.key);
    await page.goto("/console/apps");
    const del = page.getByRole("button", { name: "Delete guarded" });
    expect(await del.getAttribute("aria-disabled")).toBe("true");
    const reason = await page.locator(`#${await del.getAttribute("aria-describedby")}`).textContent();
    expect(reason).toContain("Creating and deleting apps needs the org:admin permission.");
    expect(await page.locator("#apps-locked").isVisible()).toBe(true);
    await del.click({ force: true }); // Playwright would wait for an aria-disabled button to be enabled: a user can still press it
    expect(await page.locator("dialog[open]").count()).toBe(0);
    expect(await page.getByLabel("App name").isDisabled()).toBe(true);
    await shot(page, "apps-locked-1280");
    await fitsPhone(page, "apps-locked");
    await context.close();
  });

  it("shows the audit log with key and app names beside ids, filters it by action and by key, and marks deleted keys", async () => {
    const manager = (await api(world, "POST", `/v1/orgs/${orgId}/keys`, adminKey, { kind: "scoped", name: "Ops manager", scopes: ["apiKeyManagement", "app:read"] })).body;
    const doomed = (await api(world, "POST", `/v1/orgs/${orgId}/keys`, manager.key, { kind: "scoped", name: "Temp key", scopes: ["app:read"] })).body;
    expect((await api(world, "DELETE", `/v1/orgs/${orgId}/keys/${doomed.id}`, manager.key)).status).toBe(204);
    const { context, page } = await signedIn(world, adminKey);
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.waitForURL("**/console/audit");
    const newest = page.locator("#audit-log tbody tr").first();
    expect(await newest.textContent()).toMatch(new RegExp(`Key deleted.*Temp key ${doomed.id} \\(deleted\\).*Ops manager ${manager.id}`));
    const appRow = page.locator("#audit-log tbody tr", { hasText: "App created" }).last();
    expect(await appRow.textContent()).toContain("mobile");
    expect(await appRow.textContent()).toContain(`Admin key ${adminKeyId}`);
    await shot(page, "audit-names-1280");
    await fitsPhone(page, "audit");

    await page.getByLabel("Action").selectOption("key.create");
    await page.getByLabel("Key", { exact: true }).selectOption({ label: "Ops manager" });
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(`**/console/audit?action=key.create&keyId=${manager.id}`);
    const rows = page.locator("#audit-log tbody tr");
    expect(await rows.count()).toBe(2); // the manager's creation, and the key it created
    for (const text of await rows.allTextContents()) expect(text).toContain("Key created");
    expect(await page.getByLabel("Action").inputValue()).toBe("key.create");
    await shot(page, "audit-filtered-1280");
    await page.getByRole("link", { name: "Clear filters" }).click();
    await page.waitForURL("**/console/audit");
    expect(await rows.count()).toBeGreaterThan(2);
    await context.close();
  });

  it("explains on the policy page why the key making a change must comply, offers the way out, and lists violating keys", async () => {
    const { context, page } = await signedIn(world, adminKey);
    await page.getByRole("link", { name: "Key policy" }).click();
    await page.waitForURL("**/console/policy");
    await page.getByLabel("Require an expiration on every key").check();
    await page.getByRole("button", { name: "Save policy" }).click();
    const alert = page.locator(".notice.error");
    await alert.waitFor();
    expect(await alert.textContent()).toContain("Not saved: your own key, Admin key, would break this policy");
    const way = page.locator("#self-rule");
    expect(await way.textContent()).toContain("A change your own key would break is refused");
    expect(await way.textContent()).toContain("first create an organization admin key that complies");
    expect(await way.getByRole("link", { name: "Create a compliant admin key" }).getAttribute("href")).toBe("/console/keys?create=1");
    expect(await page.locator("#violations").textContent()).toContain("Every key complies with the policy in force.");
    expect((await api(world, "GET", `/v1/orgs/${orgId}/policy`, adminKey)).body.requireExpiration).toBe(false);
    await shot(page, "policy-self-rule-1280");
    await fitsPhone(page, "policy");

    // The way out: a compliant admin key sets the policy; the page then names the keys it breaks.
    const compliant = (await api(world, "POST", `/v1/orgs/${orgId}/keys`, adminKey, { kind: "rbac", name: "Compliant admin", orgRole: "admin", expiresInDays: 30 })).body;
    const second = await signedIn(world, compliant.key);
    await second.page.goto("/console/policy");
    await second.page.getByLabel("Require an expiration on every key").check();
    await second.page.getByRole("button", { name: "Save policy" }).click();
    await second.page.waitForURL("**/console/policy?saved=1");
    const violations = second.page.locator("#violations");
    expect(await violations.textContent()).toMatch(/\d+ keys violate the policy in force\./);
    expect(await violations.locator("li").allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining("Admin key"), expect.stringContaining("Ops manager")]));
    expect(await violations.textContent()).not.toContain("Compliant admin");
    await shot(second.page, "policy-violations-1280");
    await fitsPhone(second.page, "policy-violations");
    // Back as it was, for any test after this one.
    expect((await api(world, "PUT", `/v1/orgs/${orgId}/policy`, compliant.key, { requireExpiration: false, maxLifetimeDays: null })).status).toBe(200);
    await second.context.close();
    await context.close();
  });

  it("passes axe-core in the states the layout test does not open: a refused name, the delete confirmation, locked actions, a filtered log, a refused policy", async () => {
    await api(world, "POST", `/v1/orgs/${orgId}/apps`, adminKey, { name: "axe-app" });
    const problems: string[] = [];
    const check = async (page: Page, where: string) => problems.push(...(await axeViolations(page)).map((v) => `${where}: ${v}`));
    const admin = await signedIn(world, adminKey, { bypassCSP: true });
    const page = admin.page;
    await page.goto("/console/apps");
    await page.getByLabel("App name").fill("axe-app");
    await page.getByRole("button", { name: "Create app" }).click();
    await page.locator("#app-name-error").waitFor();
    await check(page, "duplicate name");
    await page.getByRole("button", { name: "Delete axe-app" }).click();
    await page.getByRole("dialog", { name: "Delete app “axe-app”?" }).waitFor();
    await check(page, "delete confirmation");
    await page.goto(`/console/audit?action=app.create&keyId=${adminKeyId}`);
    await check(page, "filtered audit log");
    await page.goto("/console/policy");
    await page.getByLabel("Require an expiration on every key").check();
    await page.getByRole("button", { name: "Save policy" }).click();
    await page.locator(".notice.error").waitFor();
    await check(page, "refused policy");
    await admin.context.close();
    const member = (await api(world, "POST", `/v1/orgs/${orgId}/keys`, adminKey, { kind: "rbac", name: "Axe member", orgRole: "member" })).body;
    const locked = await signedIn(world, member.key, { bypassCSP: true });
    await locked.page.goto("/console/apps");
    await locked.page.getByRole("button", { name: "Delete axe-app" }).focus();
    await check(locked.page, "locked apps page");
    await locked.context.close();
    expect(problems).toEqual([]);
  });
});
