import { hashKey, timingSafeEqual } from "../domain/crypto";

/**
 * Console sessions. The browser holds only a random 256-bit session id in a `__Host-`, `HttpOnly`,
 * `Secure`, `SameSite=Strict` cookie; KV holds, under the id's SHA-256, the key's id and hash (never the key)
 * and the session's CSRF token. Every console request re-verifies the key by its hash through the
 * one verifier, so a revoked, expired or policy-violating key ends its sessions on their next request.
 */

/**
 * `__Host-`: the browser accepts it only with Secure, Path=/ and no Domain, so a sibling subdomain or a
 * response on another path cannot plant or overwrite a session (session fixation). The gateway never
 * forwards it upstream (it strips `Cookie`), and never lets an upstream set cookies.
 */
export const SESSION_COOKIE = "__Host-keygate_session";
/** Absolute lifetime: a session is never extended; sign in again after it. */
export const SESSION_TTL_SECONDS = 30 * 60;
export const SESSION_RECORD_PREFIX = "console-session:";

export interface ConsoleSession {
  keyId: string;
  /** SHA-256 of the signed-in key, as stored in `key:<hash>`: enough to verify, useless to call the API. */
  keyHash: string;
  orgId: string;
  csrfToken: string;
  expiresAt: number;
}

const sessionRecordName = async (sessionId: string) => SESSION_RECORD_PREFIX + (await hashKey(sessionId));

/** A random base64url token of `bytes` random bytes (sessions and CSRF tokens: 32). */
export function randomToken(bytes = 32): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...random)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** A new session for a verified key: returns the id to set in the cookie. */
export async function createSession(kv: KVNamespace, key: { keyId: string; keyHash: string; orgId: string }, now = Date.now()) {
  const sessionId = randomToken();
  const session: ConsoleSession = { ...key, csrfToken: randomToken(), expiresAt: now + SESSION_TTL_SECONDS * 1000 };
  await kv.put(await sessionRecordName(sessionId), JSON.stringify(session), { expirationTtl: SESSION_TTL_SECONDS });
  return { sessionId, session };
}

/** The live session behind a cookie value, or null (absent, unknown, expired, or not one of ours). */
export async function loadSession(kv: KVNamespace, sessionId: string | undefined, now = Date.now()): Promise<ConsoleSession | null> {
  if (!sessionId || !/^[A-Za-z0-9_-]{43}$/.test(sessionId)) return null;
  const session = await kv.get<ConsoleSession>(await sessionRecordName(sessionId), "json");
  return session && session.expiresAt > now ? session : null;
}

export async function deleteSession(kv: KVNamespace, sessionId: string): Promise<void> {
  await kv.delete(await sessionRecordName(sessionId));
}

/**
 * Whether a state-changing request came from the console itself: the session's token in the form,
 * compared in constant time, and the browser's own word on where the request came from.
 */
export function isSameOriginRequest(headers: Headers, requestUrl: string): boolean {
  const site = headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") return false;
  const origin = headers.get("origin");
  return origin === null || origin === new URL(requestUrl).origin;
}

export function csrfTokenMatches(session: ConsoleSession, presented: unknown): boolean {
  return typeof presented === "string" && timingSafeEqual(presented, session.csrfToken);
}
