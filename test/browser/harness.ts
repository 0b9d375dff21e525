import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { expect } from "vitest";
import { bundleWorker, startLocalWorker } from "../../scripts/local-worker";

/**
 * The browser tests' world: the worker bundled as it deploys, served by workerd on localhost, and a
 * headless Chromium. Tests save screenshots of their pages to test-results/screenshots/<test file>/.
 */

export const BOOTSTRAP_SECRET = "browser-bootstrap-secret-0123456789";
/** This file's screenshots: one folder per test file, since browser test files run side by side. */
const SCREENSHOTS = join("test-results/screenshots", basename(expect.getState().testPath ?? "browser", ".test.ts"));

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
  /** Runs one statement on the worker's D1, for state no API call makes on demand (a webhook's failed deliveries). */
  sql: (query: string, ...params: unknown[]) => Promise<void>;
  stop: () => Promise<void>;
}

export async function startWorld(): Promise<World> {
  const bundle = bundleWorker(join(mkdtempSync(join(tmpdir(), "keygate-browser-")), "dist"));
  const { mf, url, d1 } = await startLocalWorker({
    bundle,
    bindings: {
      BOOTSTRAP_SECRET,
      KEY_ENCRYPTION_SECRET: "browser-encryption-secret-0123456789abcdef",
      KEY_TAG_SECRET: "browser-key-tag-secret-0123456789abcdef",
      // Usage counts and uses reach the keys' authorities 100 ms after a verification, not 10 s, and the
      // org's usage pages read the authorities' daily roll-ups every second here, not every hour.
      USAGE_FLUSH_MS: "100",
      USAGE_ROLLUP_MS: "1000",
    },
    handleStructuredLogs: () => undefined,
  });
  const found = await findChromium();
  const browser = await chromium.launch({ executablePath: found.path, args: found.args });
  rmSync(SCREENSHOTS, { recursive: true, force: true }); // only this run's screens
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Secure cookies and the clipboard need a secure context: http://localhost is one, 127.0.0.1 by name is too,
  // but the console is addressed as a user would type it.
  return {
    url: url.replace("127.0.0.1", "localhost"),
    browser,
    sql: async (query, ...params) => void (await d1.prepare(query).bind(...params).run()),
    stop: async () => void (await browser.close(), await mf.dispose()),
  };
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

export interface ProfileOptions {
  viewport?: { width: number; height: number };
  /**
   * Lets the test inject scripts (axe-core) into the console's pages, whose CSP allows only the console's own
   * script. Off by default, so that every other test sees the pages under their real CSP.
   */
  bypassCSP?: boolean;
}

/** A fresh browser profile, signed out. */
export function profile(world: World, options: ProfileOptions = {}): Promise<BrowserContext> {
  return world.browser.newContext({ baseURL: world.url, viewport: options.viewport ?? { width: 1280, height: 900 }, bypassCSP: options.bypassCSP });
}

/** A fresh browser profile signed in to the console with `key`, on the keys page. */
export async function signedIn(world: World, key: string, options: ProfileOptions = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await profile(world, options);
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: world.url });
  const page = await context.newPage();
  await page.goto("/console/sign-in");
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  // A refused key says why at once, instead of leaving the test to time out waiting for the keys page.
  const refused = page.getByRole("alert");
  const settled = () => undefined; // the loser of the race rejects when the profile closes
  await Promise.race([page.waitForURL("**/console/keys").catch(settled), refused.waitFor().catch(settled)]);
  if (!page.url().endsWith("/console/keys")) throw new Error(`sign-in refused: ${await refused.first().textContent({ timeout: 1000 }).catch(() => page.url())}`);
  return { context, page };
}

/** The widths every console screen is checked at: a desktop and a phone. */
export const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];

/** Fits the viewport (nothing sideways, see `sidewaysOverflow`), passes axe, and is saved as `<screen>-<width>.png`. */
export async function checkScreen(page: Page, screen: string) {
  const width = page.viewportSize()!.width;
  expect(await sidewaysOverflow(page), `${screen} at ${width}px`).toEqual([]);
  expect(await axeViolations(page), `${screen} at ${width}px`).toEqual([]);
  await shot(page, `${screen}-${width}`);
}

let shots = 0;
/** Saves a full-page screenshot named after the test step, numbered in the order taken. */
export async function shot(page: Page, name: string) {
  shots += 1;
  await page.screenshot({ path: join(SCREENSHOTS, `${String(shots).padStart(2, "0")}-${name}.png`), fullPage: true });
}

const AXE_PATH = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

/**
 * The accessibility problems axe-core finds on the page as it is now (open dialogs included), as lines
 * that say what and where; empty when there are none. Needs a profile with `bypassCSP`.
 */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE_PATH });
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (context: unknown, options: unknown) => Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: string[]; failureSummary: string }[] }[] }> } }).axe;
    const result = await axe.run(document, { resultTypes: ["violations"] });
    return result.violations;
  });
  return violations.flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${v.help} at ${n.target.join(" ")}: ${n.failureSummary}`));
}

/**
 * How the page overflows the viewport sideways, if it does: the page itself, an open dialog, or any
 * visible element whose box leaves the viewport (a tooltip cut off at the edge, say). Empty when it fits.
 */
export async function sidewaysOverflow(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const width = window.innerWidth;
    const problems: string[] = [];
    const root = document.documentElement;
    if (root.scrollWidth > width) problems.push(`the page is ${root.scrollWidth}px wide in a ${width}px viewport`);
    for (const dialog of document.querySelectorAll("dialog[open]")) {
      if (dialog.scrollWidth > dialog.clientWidth) problems.push(`dialog #${dialog.id} scrolls sideways (${dialog.scrollWidth} > ${dialog.clientWidth})`);
    }
    for (const el of document.body.querySelectorAll("*")) {
      const box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0 || getComputedStyle(el).visibility === "hidden") continue;
      if (el.closest(".visually-hidden, thead") && box.width <= 1) continue;
      if (box.left < -0.5 || box.right > width + 0.5) {
        const name = el.tagName.toLowerCase() + (el.id ? `#${el.id}` : "") + (el.className && typeof el.className === "string" ? `.${el.className.split(" ").join(".")}` : "");
        problems.push(`${name} spans ${Math.round(box.left)}–${Math.round(box.right)}px of ${width}px: "${(el.textContent ?? "").trim().slice(0, 60)}"`);
      }
    }
    return problems.slice(0, 10);
  });
}
