import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { bundleWorker, startLocalWorker } from "../../scripts/local-worker";

/**
 * The browser tests' world: the worker bundled as it deploys, served by workerd on localhost, and a
 * headless Chromium. Every test saves a screenshot of its page to test-results/screenshots/.
 */

export const BOOTSTRAP_SECRET = "browser-bootstrap-secret-0123456789";
const SCREENSHOTS = "test-results/screenshots";

const CANDIDATES = [
  process.env.CHROMIUM_PATH,
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
];

export function chromiumPath(): string {
  const found = CANDIDATES.find((p) => p && existsSync(p));
  if (!found) {
    throw new Error(
      "The console's browser tests need Chromium: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH.",
    );
  }
  return found;
}

export interface World {
  url: string;
  browser: Browser;
  stop: () => Promise<void>;
}

export async function startWorld(): Promise<World> {
  const bundle = bundleWorker(join(mkdtempSync(join(tmpdir(), "keygate-browser-")), "dist"));
  const { mf, url } = await startLocalWorker({
    bundle,
    bindings: {
      BOOTSTRAP_SECRET,
      KEY_ENCRYPTION_SECRET: "browser-encryption-secret-0123456789abcdef",
      KEY_TAG_SECRET: "browser-key-tag-secret-0123456789abcdef",
    },
    handleStructuredLogs: () => undefined,
  });
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--headless", "--no-sandbox", "--disable-gpu"] });
  rmSync(SCREENSHOTS, { recursive: true, force: true }); // only this run's screens
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Secure cookies and the clipboard need a secure context: http://localhost is one, 127.0.0.1 by name is too,
  // but the console is addressed as a user would type it.
  return { url: url.replace("127.0.0.1", "localhost"), browser, stop: async () => void (await browser.close(), await mf.dispose()) };
}

/** Calls the JSON API as a key, as a script would. */
export async function api(world: World, method: string, path: string, key: string, body?: unknown) {
  const res = await fetch(world.url + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

export async function verifyCode(world: World, key: string): Promise<string> {
  const res = await fetch(`${world.url}/v1/keys/verify`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key }) });
  return ((await res.json()) as { code: string }).code;
}

/** A fresh browser profile signed in to the console with `key`, on the keys page. */
export async function signedIn(world: World, key: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await world.browser.newContext({ baseURL: world.url, viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: world.url });
  const page = await context.newPage();
  await page.goto("/console/sign-in");
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("**/console/keys");
  return { context, page };
}

let shots = 0;
/** Saves a full-page screenshot named after the test step, numbered in the order taken. */
export async function shot(page: Page, name: string) {
  shots += 1;
  await page.screenshot({ path: join(SCREENSHOTS, `${String(shots).padStart(2, "0")}-${name}.png`), fullPage: true });
}
