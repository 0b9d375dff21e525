/** @jsxImportSource hono/jsx */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie } from "hono/cookie";
import { MAX_BODY_BYTES, type App } from "../app";
import type { AppEnv } from "../context";
import { ApiError, type ErrorBody } from "../errors";
import { verifyHash } from "../verification/verify-key";
import { CONSOLE_CSS, CONSOLE_JS } from "./assets";
import { parseForm } from "./context";
import { registerConsoleApps } from "./routes/apps";
import { registerConsoleAudit } from "./routes/audit";
import { registerConsoleEditKey } from "./routes/edit-key";
import { registerConsoleKeyActions } from "./routes/key-actions";
import { registerConsoleKeyUsage } from "./routes/key-usage";
import { registerConsoleKeys } from "./routes/keys";
import { registerConsoleOrgUsage } from "./routes/org-usage";
import { registerConsolePolicy } from "./routes/policy";
import { COOKIE_OPTIONS, registerConsoleSignIn } from "./routes/sign-in";
import { registerConsoleWebhooks } from "./routes/webhooks";
import { csrfTokenMatches, deleteSession, isSameOriginRequest, loadSession, SESSION_COOKIE } from "./session";
import { Notice, Page } from "./views/layout";

/**
 * No inline script or style anywhere: the console's code is its two files, and the policy names those
 * two files, not the origin. `'self'` would also allow whatever `/gw/` proxies from an upstream.
 */
export function consoleCsp(origin: string): string {
  return (
    `default-src 'none'; script-src ${origin}/console/app.js; style-src ${origin}/console/app.css; img-src 'self'; ` +
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
  );
}

/**
 * Every console response: the HTML CSP, and errors (storage faults, CSRF refusals, unknown keys)
 * as a page in the console's shell instead of the API's JSON envelope.
 */
const consoleShell: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  if (c.res.headers.get("content-type")?.startsWith("application/json")) {
    const { error } = (await c.res.clone().json()) as ErrorBody;
    const status = c.res.status;
    const retryAfter = c.res.headers.get("retry-after");
    c.res = undefined;
    c.res = await c.html(
      <Page title="Error">
        <h1>{status === 503 ? "Try again shortly" : "That did not work"}</h1>
        <Notice kind="error">{error.message}</Notice>
        <p>
          <a href="/console/keys">Back to the console</a>
        </p>
      </Page>,
      status as 400,
      retryAfter ? { "Retry-After": retryAfter } : {},
    );
  }
  if (c.res.headers.get("content-type")?.startsWith("text/html")) {
    c.header("Content-Security-Policy", consoleCsp(new URL(c.req.url).origin));
    // With `no-referrer` browsers send `Origin: null` on form posts, and the CSRF check needs the origin.
    c.header("Referrer-Policy", "same-origin");
  }
};

/**
 * The session behind the cookie, re-verified by its key's hash through the one verifier on every
 * request; on POST, the form is parsed once and must carry the session's CSRF token and come from
 * this origin.
 */
const requireSession: MiddlewareHandler<AppEnv> = async (c, next) => {
  const sessionId = getCookie(c, SESSION_COOKIE);
  const session = await loadSession(c.env.KEYS_KV, sessionId);
  let ended = session ? undefined : "expired";
  if (session) {
    // Strict, like every management call: a revoked key's session ends everywhere, not when a cache expires.
    const result = await verifyHash(c.env, session.keyId, session.keyHash, {
      strict: true,
      unmetered: true,
      ip: c.req.header("cf-connecting-ip"),
      waitUntil: (p) => c.executionCtx.waitUntil(p),
    });
    if (result.valid) {
      c.set("session", session);
      c.set("caller", result.key);
    } else {
      ended = result.code;
      await deleteSession(c.env.KEYS_KV, sessionId!);
    }
  }
  if (ended) {
    // No cookie at all is a first visit, not a session that ended: the sign-in page says nothing of one.
    if (sessionId === undefined) return c.redirect("/console/sign-in", 303);
    deleteCookie(c, SESSION_COOKIE, COOKIE_OPTIONS);
    return c.redirect(`/console/sign-in?ended=${ended}`, 303);
  }
  if (c.req.method === "POST") {
    const type = c.req.header("content-type") ?? "";
    const form = /^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type) ? await parseForm(c) : {};
    if (!isSameOriginRequest(c.req.raw.headers, c.req.url) || !csrfTokenMatches(c.var.session, form._csrf?.[0])) {
      throw new ApiError("FORBIDDEN", "This form did not come from your console session (CSRF check failed). Nothing was changed; reload the page and try again.");
    }
    c.set("form", form);
  }
  await next();
};

/** The admin console at /console: server-rendered pages over the same API, as the signed-in key. */
export function registerConsole(app: App): App {
  app.use("/console", consoleShell);
  app.use("/console/*", consoleShell);
  app.use(
    "/console/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new ApiError("PAYLOAD_TOO_LARGE", `Forms are limited to ${MAX_BODY_BYTES} bytes.`);
      },
    }),
  );
  for (const path of ["/console/keys", "/console/keys/*", "/console/apps", "/console/apps/*", "/console/policy", "/console/audit", "/console/webhooks", "/console/webhooks/*", "/console/usage", "/console/sign-out"]) {
    app.use(path, requireSession);
  }
  app.get("/console/app.js", (c) => c.body(CONSOLE_JS, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
  app.get("/console/app.css", (c) => c.body(CONSOLE_CSS, 200, { "Content-Type": "text/css; charset=utf-8" }));
  registerConsoleSignIn(app);
  registerConsoleKeys(app);
  registerConsoleKeyActions(app);
  registerConsoleEditKey(app);
  registerConsoleApps(app);
  registerConsolePolicy(app);
  registerConsoleAudit(app);
  registerConsoleWebhooks(app);
  registerConsoleKeyUsage(app);
  registerConsoleOrgUsage(app);
  return app;
}
