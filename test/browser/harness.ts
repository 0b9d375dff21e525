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

/** Where a system Chromium or Chrome lives, when there is one. */
const SYSTEM_BROWSERS = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
  "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
];
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu"];

/**
 * The browser the tests drive, in this order: `CHROMIUM_PATH`; a system Chromium or Chrome; else the
 * Linux x64 Chromium that `npm install` brought (@sparticuz/chromium, unpacked to the temp dir on first
 * use). `KEYGATE_BROWSER=bundled` skips the first two (this is how CI shows that a machine without a
 * browser passes); `KEYGATE_BROWSER=system` refuses the bundled one.
 */
export async function findChromium(): Promise<{ path: string; args: string[]; source: string }> {
  const want = process.env.KEYGATE_BROWSER ?? "auto";
  if (!["auto", "system", "bundled"].includes(want)) throw new Error(`KEYGATE_BROWSER is "${want}": use auto, system or bundled.`);
  if (want !== "bundled") {
    const env = process.env.CHROMIUM_PATH;
    if (env) {
      if (!existsSync(env)) throw new Error(`CHROMIUM_PATH is ${env}, which does not exist.`);
      return { path: env, args: ARGS, source: "CHROMIUM_PATH" };
    }
    const found = SYSTEM_BROWSERS.find((p) => existsSync(p));
    if (found) return { path: found, args: ARGS, source: "system" };
  }
  if (want !== "system" && process.platform === "linux" && process.arch === "x64") {
    const { default: bundled } = await import("@sparticuz/chromium");
    bundled.setGraphicsMode = false; // no WebGL wanted: skips unpacking SwiftShader
    // Its own flags include --single-process, which Playwright's browser contexts do not survive: only
    // the flags a headless run as root needs.
    return { path: await bundled.executablePath(), args: [...ARGS, "--no-zygote"], source: "@sparticuz/chromium" };
  }
  throw new Error(
    "The console's browser tests need Chromium: on Linux x64 `npm install` brings one (@sparticuz/chromium); " +
      "elsewhere install Chromium or Chrome, or set CHROMIUM_PATH.",
  );
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
  const found = await findChromium();
  const browser = await chromium.launch({ executablePath: found.path, args: found.args });
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
