import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { api, BOOTSTRAP_SECRET, checkScreen, profile, sidewaysOverflow, signedIn, startWorld, VIEWPORTS, type World } from "./harness";

/**
 * Every console screen at a desktop and a phone width: nothing scrolls sideways (the page, an open
 * dialog, or a tooltip cut off at the edge), axe-core finds no accessibility violation, and a
 * screenshot of each is saved. The org holds the awkward cases: long names, many badges, keys the
 * signed-in key may not touch, keys that break the policy.
 */
let world: World;
let orgId: string;
/** Expires in 90 days, so never-expiring keys are ones it may not hand out secrets for. */
let signerKey: string;
let managerKey: string;
let readerKey: string;
let rbacKeyId: string;
/** A key in every lifecycle state the list and edit page show at once: rotating, networks, metadata, unused. */
let rotatingKeyId: string;
let webhookId: string;
/** Whether the apps page exists yet (another change brings it): a 404 is reported as a skip. */
let appsPage = true;

beforeAll(async () => {
  world = await startWorld();
  const org = await api(world, "POST", "/v1/orgs", BOOTSTRAP_SECRET, { name: "Layout Co" });
  orgId = org.body.org.id;
  const root = org.body.key.key as string;
  const create = async (body: Record<string, unknown>) => {
    const res = await api(world, "POST", `/v1/orgs/${orgId}/keys`, root, body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { id: string; key: string };
  };
  const apps: string[] = [];
  for (const name of ["mobile-app", "checkout-service-for-the-european-storefront-and-partner-integrations"]) {
    const app = await api(world, "POST", `/v1/orgs/${orgId}/apps`, root, { name });
    apps.push(app.body.id);
  }
  signerKey = (await create({ kind: "rbac", name: "Layout admin (90 days)", orgRole: "admin", expiresInDays: 90 })).key;
  managerKey = (await create({ kind: "scoped", name: "Key manager", scopes: ["apiKeyManagement", "org:read", "app:read"], expiresInDays: 90 })).key;
  readerKey = (await create({ kind: "scoped", name: "Reader", scopes: ["app:read"], expiresInDays: 90 })).key;
  rbacKeyId = (
    await create({
      kind: "rbac",
      name: "deploy-pipeline-for-the-production-environment-of-the-checkout-service-in-europe-west-and-beyond",
      orgRole: "none",
      appRoles: apps.map((appId) => ({ appId, role: "developer" })),
      expiresInDays: 30,
    })
  ).id;
  await create({ kind: "scoped", name: "Every scope, not secure", scopes: ["app:publish", "project:read-rc", "project:deploy", "app:read", "app:upload", "org:read", "apiKeyManagement"], secure: false });
  await create({ kind: "legacy", name: "Old uploader", mode: "upload" });
  const rotating = await create({
    kind: "scoped",
    name: "Partner feed with a long name that rotates its secret across many networks",
    scopes: ["app:read"],
    expiresInDays: 30,
    allowedNetworks: ["203.0.113.0/24", "198.51.100.0/24", "2001:db8:1234:5678::/64", "2001:db8:abcd:ef01::/64"],
    metadata: { customerId: "cus_0123456789abcdef0123456789", plan: "enterprise-with-a-long-plan-name" },
  });
  rotatingKeyId = rotating.id;
  expect((await api(world, "POST", `/v1/orgs/${orgId}/keys/${rotatingKeyId}/regenerate`, root, { overlapSeconds: 86400 })).status).toBe(200);
  const paused = await create({ kind: "scoped", name: "Paused integration", scopes: ["app:read"], expiresInDays: 30 });
  expect((await api(world, "POST", `/v1/orgs/${orgId}/keys/${paused.id}/disable`, root)).status).toBe(200);
  const hook = await api(world, "POST", `/v1/orgs/${orgId}/webhooks`, root, {
    url: "https://hooks.example.com/keygate/a-long-path-for-the-european-storefront-and-partner-integrations?team=platform-security",
    eventTypes: ["key.leaked", "key.expiring", "key.expired", "key.unused", "key.revoked", "key.disabled"],
    description: "Security alerts for the platform team's on-call rotation, with a description long enough to wrap",
  });
  expect(hook.status, JSON.stringify(hook.body)).toBe(201);
  webhookId = hook.body.id;
  // A delivery log with one of each status, the failing one with a long error (no queue consumer runs here).
  const now = Date.now();
  const deliveries = [
    { status: "succeeded", attempts: 1, lastStatus: 200, lastError: null, next: null },
    { status: "failed", attempts: 4, lastStatus: 503, lastError: "HTTP 503 Service Unavailable from the receiver after 10000 ms of waiting for an answer", next: now + 600_000 },
    { status: "dead", attempts: 14, lastStatus: null, lastError: "network error: connection refused", next: null },
    { status: "pending", attempts: 0, lastStatus: null, lastError: null, next: now },
  ];
  for (const [i, d] of deliveries.entries()) {
    const eventId = `evt_layout${String(i).padStart(16, "0")}`;
    await world.sql("insert into events (id, org_id, type, subject_type, subject_id, data, created_at, published_at) values (?, ?, 'key.leaked', 'key', ?, '{}', ?, ?)", eventId, orgId, rbacKeyId, now, now);
    await world.sql(
      "insert into webhook_deliveries (id, org_id, endpoint_id, event_id, status, attempts, last_status, last_error, next_attempt_at, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      `msg_${String(i).padStart(20, "0")}`, orgId, webhookId, eventId, d.status, d.attempts, d.lastStatus, d.lastError, d.next, now + i, now + i,
    );
  }
  await create({ kind: "scoped", name: "Starts next week", scopes: ["app:read"], expiresInDays: 30, notBefore: new Date(Date.now() + 7 * 86_400_000).toISOString() });
  // Requires an expiry: the org's first admin key and the never-expiring keys now break the policy.
  expect((await api(world, "PUT", `/v1/orgs/${orgId}/policy`, signerKey, { requireExpiration: true, maxLifetimeDays: 365 })).status).toBe(200);
  const apps404 = await fetch(`${world.url}/console/apps`, { redirect: "manual" });
  appsPage = apps404.status !== 404;
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
  describe(`console at ${viewport.width}×${viewport.height}`, () => {
    let admin: { context: BrowserContext; page: Page };
    beforeAll(async () => {
      admin = await signedIn(world, signerKey, { viewport, bypassCSP: true });
    });
    afterAll(async () => {
      await admin?.context.close();
    });

    it("sign-in page", async () => {
      const context = await profile(world, { viewport, bypassCSP: true });
      const page = await context.newPage();
      await page.goto("/console/sign-in");
      await check(page, "sign-in");
      await page.getByRole("button", { name: "Sign in" }).click(); // empty: refused with a message
      await page.getByLabel("API key").fill("kgw_wrong");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").waitFor();
      await check(page, "sign-in-refused");
      await context.close();
    });

    it("keys page: a table at desktop width with each row's actions on one line, a list of cards on a phone", async () => {
      const { page } = admin;
      await page.goto("/console/keys");
      expect(await page.locator(".badge", { hasText: "Violates policy" }).count()).toBeGreaterThan(0);
      expect(await page.locator(".locked-reason").count()).toBeGreaterThan(0);
      for (const badge of ["Rotating until", "Networks: 4", "Disabled", "Starts"]) expect(await page.locator(".badge", { hasText: badge }).count(), badge).toBe(1);
      const rows = page.locator("#rbac-keys tbody tr, #legacy-keys tbody tr");
      if (viewport.width >= 1280) {
        for (const row of await rows.all()) {
          const tops = await row.locator(".row-actions > *").evaluateAll((els) => els.map((el) => Math.round(el.getBoundingClientRect().top)));
          expect(new Set(tops).size, `actions of "${await row.locator(".key-name").textContent()}" wrap`).toBe(1);
        }
        expect(await rows.first().evaluate((tr) => getComputedStyle(tr).display)).toBe("table-row");
      } else {
        expect(await rows.first().evaluate((tr) => getComputedStyle(tr).display)).toBe("block");
        // The column headings are left to screen readers; each card labels its own fields.
        expect((await page.locator("#rbac-keys thead").boundingBox())!.width).toBeLessThanOrEqual(1);
        expect(await rows.first().locator("td").first().evaluate((td) => getComputedStyle(td, "::before").content)).toBe('"Name"');
      }
      await check(page, "keys");
      // The networks badge's ranges, shown on focus, stay inside the viewport too.
      const networks = page.locator(".tip-wrap", { hasText: "Networks: 4" });
      await networks.focus();
      expect(await networks.locator(".tooltip").isVisible()).toBe(true);
      await check(page, "keys-networks-tooltip");
    });

    it("create dialog, fresh and with errors", async () => {
      const { page } = admin;
      await page.goto("/console/keys");
      await page.getByRole("button", { name: "+ Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create API key" });
      await dialog.waitFor();
      await check(page, "create-dialog");
      await dialog.getByLabel("Scoped key — a fixed set of scopes").check();
      await check(page, "create-dialog-scoped");
      await dialog.getByRole("button", { name: "Create" }).click();
      await page.getByRole("dialog", { name: "Create API key" }).getByRole("alert").first().waitFor();
      await check(page, "create-dialog-errors");
    });

    it("one-time secret dialog", async () => {
      const { page } = admin;
      await page.goto("/console/keys");
      await page.getByRole("button", { name: "+ Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create API key" });
      await dialog.getByLabel("Name").fill(`Layout secret ${viewport.width}`);
      await dialog.getByRole("button", { name: "Create" }).click();
      await page.getByRole("dialog", { name: `Key “Layout secret ${viewport.width}” created` }).waitFor();
      await check(page, "one-time-secret");
    });

    it("confirmation dialog", async () => {
      const { page } = admin;
      await page.goto("/console/keys");
      await page.getByRole("button", { name: "Delete Old uploader" }).click();
      await page.getByRole("dialog", { name: "Delete “Old uploader”?" }).waitFor();
      await check(page, "delete-confirmation");
    });

    it("edit page", async () => {
      const { page } = admin;
      await page.goto(`/console/keys/${rbacKeyId}`);
      await page.getByRole("button", { name: "Save Changes" }).waitFor();
      await check(page, "edit");
    });

    it("edit page of a key in rotation, with networks and metadata; its end-overlap and disable confirmations", async () => {
      const { page } = admin;
      await page.goto(`/console/keys/${rotatingKeyId}`);
      await page.getByRole("heading", { name: "Rotation in progress" }).waitFor();
      await check(page, "edit-rotating");
      await page.getByRole("button", { name: "End overlap now" }).click();
      await page.getByRole("dialog", { name: "End the overlap now?" }).waitFor();
      await check(page, "end-overlap-confirmation");
      await page.keyboard.press("Escape");
      await page.getByRole("button", { name: "Disable", exact: true }).click();
      await page.getByRole("dialog", { name: /^Disable “/ }).waitFor();
      await check(page, "disable-confirmation");
    });

    it("regenerate confirmation with its overlap choice", async () => {
      const { page } = admin;
      await page.goto("/console/keys");
      await page.getByRole("button", { name: "Regenerate Paused integration" }).click();
      await page.getByRole("dialog", { name: "Regenerate “Paused integration”?" }).waitFor();
      await check(page, "regenerate-confirmation");
    });

    it("create dialog with refused ranges, each beside its line", async () => {
      const { page } = admin;
      await page.goto("/console/keys");
      await page.getByRole("button", { name: "+ Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create API key" });
      await dialog.getByLabel("Name").fill("Refused ranges");
      await dialog.getByLabel("Allowed networks").fill("10.0.0.1/8\n2001:db8:1234:5678:9abc:def0:1234:5678/64\nnot-a-network-at-all-but-a-very-long-line-of-text");
      await dialog.getByRole("button", { name: "Create" }).click();
      await page.getByRole("dialog", { name: "Create API key" }).locator("#create-networks-lines").waitFor();
      await check(page, "create-dialog-refused-ranges");
    });

    it("policy page", async () => {
      const { page } = admin;
      await page.goto("/console/policy");
      await check(page, "policy");
    });

    it("audit log", async () => {
      const { page } = admin;
      await page.goto("/console/audit");
      await check(page, "audit");
    });

    it("webhooks page, its register dialog with a refusal, its delete confirmation and an endpoint's deliveries", async () => {
      const { page } = admin;
      await page.goto("/console/webhooks");
      await check(page, "webhooks");
      await page.getByRole("button", { name: "+ Register endpoint" }).click();
      const dialog = page.getByRole("dialog", { name: "Register a webhook endpoint" });
      await check(page, "webhook-register");
      await dialog.getByLabel("URL").fill("http://localhost:8080/hook");
      await dialog.getByRole("button", { name: "Register" }).click();
      await page.getByRole("dialog", { name: "Register a webhook endpoint" }).getByRole("alert").first().waitFor();
      await check(page, "webhook-register-refused");
      await page.goto("/console/webhooks");
      await page.locator(`tr[data-webhook-id="${webhookId}"]`).getByRole("button", { name: /^Delete / }).click();
      await page.getByRole("dialog", { name: "Delete this endpoint?" }).waitFor();
      await check(page, "webhook-delete-confirmation");
      await page.goto(`/console/webhooks/${webhookId}`);
      expect(await page.locator("#deliveries tbody tr").count()).toBeGreaterThan(0);
      await check(page, "webhook-deliveries");
    });

    it("apps page", async (ctx) => {
      if (!appsPage) ctx.skip();
      const { page } = admin;
      await page.goto("/console/apps");
      await check(page, "apps");
    });

    it("error page", async () => {
      const { page } = admin;
      await page.goto("/console/keys/00000000000000000000");
      await check(page, "error");
    });

    it("keys page of a key manager: rows it may not touch are disabled, their reasons wrap inside the row", async () => {
      const { context, page } = await signedIn(world, managerKey, { viewport, bypassCSP: true });
      const locked = page.locator("#rbac-keys tr", { hasText: "Layout admin (90 days)" });
      expect(await locked.getByRole("button", { name: "Delete Layout admin (90 days)" }).isDisabled()).toBe(true);
      expect(await locked.locator(".locked-reason").isVisible()).toBe(true);
      await check(page, "keys-as-manager");
      await context.close();
    });

    it("a key without key management: every disabled control's tooltip stays inside the viewport", async () => {
      const { context, page } = await signedIn(world, readerKey, { viewport, bypassCSP: true });
      await check(page, "keys-disabled");
      const wraps = await page.locator(".disabled-wrap").all();
      expect(wraps.length).toBeGreaterThan(0);
      for (const [i, wrap] of wraps.entries()) {
        await wrap.focus({ timeout: 5000 });
        const tip = wrap.locator(".tooltip");
        expect(await tip.isVisible()).toBe(true);
        expect(await sidewaysOverflow(page), `tooltip ${i + 1} at ${viewport.width}px`).toEqual([]);
        await wrap.hover({ timeout: 5000 });
        expect(await sidewaysOverflow(page), `tooltip ${i + 1} hovered at ${viewport.width}px`).toEqual([]);
        await page.mouse.move(0, viewport.height - 1); // away, so that this tooltip does not cover the next control
      }
      await wraps.at(-1)!.focus();
      await check(page, "disabled-tooltip");
      await context.close();
    });
  });
}
