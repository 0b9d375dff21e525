/** @jsxImportSource hono/jsx */
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { App } from "../../app";
import { ApiError } from "../../errors";
import { hashKey } from "../../domain/crypto";
import { clientIp, recordFailure, refuseLimited } from "../../verification/abuse-limit";
import { verifyKey } from "../../verification/verify-key";
import { FAVICON_SVG } from "../assets";
import { parseForm } from "../context";
import { first } from "../forms";
import { createSession, deleteSession, isSameOriginRequest, SESSION_COOKIE, SESSION_TTL_SECONDS } from "../session";
import { Notice, Page } from "../views/layout";

/** Why a session ended, as the sign-in page says it. Only these fixed texts are ever shown. */
export const ENDED: Record<string, string> = {
  signed_out: "You are signed out.",
  expired: "Your session has ended. Sign in again.",
  REVOKED: "Your session ended because its key has been revoked.",
  EXPIRED: "Your session ended because its key has expired.",
  POLICY_VIOLATION: "Your session ended because its key no longer complies with your organization's key policy.",
  NOT_FOUND: "Your session ended because its key no longer exists.",
};

// `__Host-` (SESSION_COOKIE) requires Secure, Path=/ and no Domain: no subdomain or sibling path can set
// or shadow the session cookie. http://localhost is a secure context, so local development keeps it.
export const COOKIE_OPTIONS = { path: "/", httpOnly: true, secure: true, sameSite: "Strict" } as const;

function SignInPage(props: { error?: string; ended?: string }) {
  return (
    <Page title="Sign in">
      <div class="signin">
        <h1>Sign in to the console</h1>
        {props.ended && <Notice kind="ok">{props.ended}</Notice>}
        <form method="post" action="/console/sign-in" autocomplete="off">
          <label for="signin-key">API key</label>
          <input
            type="password"
            id="signin-key"
            name="key"
            required
            autocomplete="off"
            spellcheck={false}
            aria-invalid={props.error ? "true" : undefined}
            aria-describedby={props.error ? "signin-key-error" : "signin-key-hint"}
          />
          <p class="hint" id="signin-key-hint">
            Use an admin key (or one with the apiKeyManagement permission). The key is exchanged for a 30-minute session
            cookie and is not kept by your browser.
          </p>
          {props.error && (
            <p class="field-error" id="signin-key-error" role="alert">
              {props.error}
            </p>
          )}
          <div class="actions">
            <button type="submit" class="primary">
              Sign in
            </button>
          </div>
        </form>
      </div>
    </Page>
  );
}

export function registerConsoleSignIn(app: App) {
  app.get("/console", (c) => c.redirect("/console/keys", 302));
  // Beside the console's script and stylesheet, with no session: the sign-in page shows it too.
  app.get("/console/favicon.svg", (c) =>
    c.body(FAVICON_SVG, 200, { "Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400" }),
  );

  app.get("/console/sign-in", (c) => c.html(<SignInPage ended={ENDED[c.req.query("ended") ?? ""]} />));

  app.post("/console/sign-in", async (c) => {
    // No session yet, so no token: a cross-site form must not sign a victim in as the attacker's key.
    if (!isSameOriginRequest(c.req.raw.headers, c.req.url)) throw new ApiError("FORBIDDEN", "Sign-in must come from the console's own page.");
    const ip = clientIp(c.req.raw.headers);
    // A limited address is answered 429 before the key's authority is asked (sign-in is strict).
    await refuseLimited(ip, "management");
    const key = first(await parseForm(c), "key").trim();
    const result = await verifyKey(c.env, key, { strict: true, unmetered: true, ip: c.req.header("cf-connecting-ip"), waitUntil: (p) => c.executionCtx.waitUntil(p) });
    if (!result.valid) {
      recordFailure(c.env, ip, "management", result, (p) => c.executionCtx.waitUntil(p)); // 429 past the limit
      c.set("outcome", result.code);
      const reason = key === "" ? "Enter an API key." : `That key cannot sign in: ${result.message}`;
      return c.html(<SignInPage error={reason} />, 401);
    }
    const { sessionId } = await createSession(c.env.KEYS_KV, { keyId: result.key.keyId, keyHash: await hashKey(key), orgId: result.key.orgId });
    setCookie(c, SESSION_COOKIE, sessionId, { ...COOKIE_OPTIONS, maxAge: SESSION_TTL_SECONDS });
    return c.redirect("/console/keys", 303);
  });

  // Behind the session and CSRF checks (see ../index.ts).
  app.post("/console/sign-out", async (c) => {
    await deleteSession(c.env.KEYS_KV, getCookie(c, SESSION_COOKIE) ?? "");
    deleteCookie(c, SESSION_COOKIE, COOKIE_OPTIONS);
    return c.redirect("/console/sign-in?ended=signed_out", 303);
  });
}
