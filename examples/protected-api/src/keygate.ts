import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
// Types only: erased when bundled, so this Worker ships none of the gateway's code.
import type { Permission } from "../../../src/domain/catalog";
import type { VerifyMode } from "../../../src/domain/lease";
import type { KeyVerifier } from "../../../src/index";

/**
 * What `KEYGATE.verify` answers: the verdict of `POST /v1/keys/verify` as an authenticated verifier gets it
 * (the binding is the credential). Only VALID describes the key; a refusal has its code, message, and the
 * `keyId`/`orgId` of a key that exists, for your logs.
 */
export type Verdict = Awaited<ReturnType<KeyVerifier["verify"]>>;
/**
 * The verified key, on the context as `c.get("keygate")`: who called (`keyId`, `orgId`, `name`, `kind`),
 * its roles, scopes or mode, and `permissions`, every grant it holds. One member per kind of key.
 */
export type KeyIdentity = Extract<Verdict, { keyId: string }> extends infer V ? (V extends unknown ? Omit<V, "valid" | "code" | "message"> : never) : never;

/** Bindings and variables of a Hono app that uses `requireKey`: `new Hono<KeygateEnv>()`. */
export type KeygateEnv = {
  Bindings: { KEYGATE: Service<KeyVerifier> };
  Variables: { keygate: KeyIdentity };
};

export interface RequireKeyOptions {
  /** The permission the route needs. */
  permission: Permission;
  /** The app it is needed on: a fixed id, or read from the request (a path parameter, say). Org-wide when absent. */
  appId?: string | ((c: Context<KeygateEnv>) => string | undefined);
  /** How fresh the verdict must be (`lease` by default; `strict` for what must never act on a revoked key). */
  mode?: VerifyMode;
}

const CHALLENGE = 'Bearer realm="keygate"';

/**
 * Refuses the request unless it carries `Authorization: Bearer <key>` for a key that holds `permission`
 * (on `appId`). Refusals are `{ error: { code, message } }` with the verdict's code; an allowed request
 * reaches the route with the key's identity in `c.get("keygate")`.
 */
export function requireKey(options: RequireKeyOptions) {
  return createMiddleware<KeygateEnv>(async (c, next) => {
    const key = /^Bearer +(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1];
    if (!key) {
      return c.json({ error: { code: "MISSING", message: "An API key is required: send Authorization: Bearer <key>." } }, 401, {
        "WWW-Authenticate": CHALLENGE,
      });
    }
    const app = typeof options.appId === "function" ? options.appId(c) : options.appId;
    let verdict: Verdict;
    try {
      // The caller's address, which Cloudflare sets: keys limited to allowed networks are checked against it.
      const ip = c.req.header("cf-connecting-ip");
      verdict = await c.env.KEYGATE.verify(key, { permission: options.permission, app, mode: options.mode, ip });
    } catch (err) {
      // Options the gateway refuses (`INVALID_REQUEST: …`) are this Worker's bug: retrying will not help.
      if (err instanceof Error && err.message.startsWith("INVALID_REQUEST:")) {
        return c.json({ error: { code: "MISCONFIGURED", message: "This route's key check is misconfigured." } }, 500);
      }
      // The gateway could not answer (its storage is down, say): fail closed, and say it is worth retrying.
      return c.json({ error: { code: "UNAVAILABLE", message: "Key verification is unavailable; retry shortly." } }, 503, { "Retry-After": "1" });
    }
    if (!("keyId" in verdict) || !verdict.valid) {
      const message = "message" in verdict && verdict.message ? verdict.message : "The key was refused.";
      // A key that proved who it is but may not do this (here, from there) is 403, as on the gateway; others 401.
      if (verdict.code === "INSUFFICIENT_PERMISSIONS" || verdict.code === "IP_NOT_ALLOWED") {
        return c.json({ error: { code: verdict.code, message } }, 403);
      }
      return c.json({ error: { code: verdict.code, message } }, 401, { "WWW-Authenticate": `${CHALLENGE}, error="invalid_token"` });
    }
    const { valid: _valid, code: _code, ...identity } = verdict;
    c.set("keygate", identity);
    await next();
  });
}
