import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import type { Permission } from "../domain/catalog";
import { allows } from "../domain/permissions";
import { ApiError } from "../errors";
import { clientIp, recordFailure, refuseLimited } from "../verification/abuse-limit";
import { verifyKey, type VerifiedKey } from "../verification/verify-key";
import { internalCaller } from "./internal-caller";

export const WWW_AUTHENTICATE_REALM = 'Bearer realm="keygate"';

/**
 * The presented credential: `Authorization: Bearer <key>` or `x-api-key`, never the query string.
 * `undefined` when absent; the raw value otherwise (the verifier judges its shape).
 */
export function presentedKey(headers: Headers): string | undefined {
  const auth = headers.get("authorization");
  if (auth !== null) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
    return match ? match[1] : "";
  }
  return headers.get("x-api-key") ?? undefined;
}

/** A 401 in the envelope, with the `WWW-Authenticate` challenge RFC 6750 asks for. */
export function unauthorized(message: string, reason: string): ApiError {
  const error = reason === "MISSING" ? "" : ', error="invalid_token"';
  return new ApiError("UNAUTHORIZED", message, { reason }, { "WWW-Authenticate": WWW_AUTHENTICATE_REALM + error });
}

/**
 * The key presented as the request's credential, verified unmetered with the connecting address
 * judged; a missing or refused one is thrown as 401 (403 from outside its networks) and counts as a
 * failed authentication. `mode` is strict for management calls; the verify endpoint's verifier
 * credential passes `lease` (the same guarantee once a change returns, without an authority call per
 * verification).
 * @example const verifier = await verifyPresentedKey(c, "lease");
 */
export async function verifyPresentedKey(c: Context<AppEnv>, mode: "strict" | "lease" = "strict"): Promise<VerifiedKey> {
  const key = presentedKey(c.req.raw.headers);
  if (key === undefined) throw unauthorized("An API key is required: send Authorization: Bearer <key>.", "MISSING");
  const ip = clientIp(c.req.raw.headers);
  // A limited address is answered 429 before the key's authority is asked: management keys are never
  // answered from a lease, so no presented key is let through (see abuse-limit.ts).
  await refuseLimited(ip, "management");
  // Strict: management keys are the keys to the kingdom and their calls are few, so they are judged
  // by their authority, never by a cached record that may be stale at this location.
  const result = await verifyKey(c.env, key, {
    mode,
    unmetered: true,
    ip: c.req.header("cf-connecting-ip"),
    waitUntil: (p) => c.executionCtx.waitUntil(p),
  });
  if (!result.valid) {
    recordFailure(c.env, ip, "management", result, (p) => c.executionCtx.waitUntil(p)); // 429 past the limit
    // The key is genuine, but not from here: forbidden rather than unauthenticated.
    if (result.code === "IP_NOT_ALLOWED") throw new ApiError("FORBIDDEN", result.message, { reason: result.code });
    throw unauthorized(result.message, result.code);
  }
  return result.key;
}

/**
 * Authenticates a management call with the one verifier and checks it against the `{orgId}` in the
 * path: another organization's objects answer 404 (existence does not leak), a missing permission
 * answers 403.
 *
 * @example
 * createRoute({ ..., middleware: [authenticate({ permission: "apiKeyManagement" })] })
 */
export function authenticate(options: { permission?: Permission } = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    // The console's in-process calls arrive already verified (see internal-caller.ts).
    const caller = internalCaller(c.env) ?? (await verifyPresentedKey(c));
    const orgId = c.req.param("orgId");
    if (orgId !== undefined && orgId !== caller.orgId) throw new ApiError("NOT_FOUND", "No such organization.");
    if (options.permission && !allows(caller.grants, options.permission)) {
      throw new ApiError("FORBIDDEN", `This key lacks the ${options.permission} permission.`, {
        required: options.permission,
      });
    }
    c.set("caller", caller);
    await next();
  };
}
