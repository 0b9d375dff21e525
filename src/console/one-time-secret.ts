import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import type { AppEnv } from "../context";
import { decryptSecret, encryptSecret, hashKey } from "../domain/crypto";
import { randomToken, SESSION_COOKIE } from "./session";

/**
 * The one-time secret across a post/redirect/get: a create, regenerate or reveal answers with a redirect,
 * never with the secret itself, so a reload or Back never runs the action again. The secret waits in KV
 * for the page the redirect opens, for one view only: encrypted (AES-GCM) under a key derived from the
 * session's cookie, which only that browser holds, and deleted when it is shown or after a minute (KV's
 * shortest TTL). Its id rides in the redirect's URL and is useless without the cookie.
 */

export interface ShownSecret {
  key: string;
  name: string;
  secure: boolean;
  how: "created" | "regenerated" | "revealed";
  /** A regeneration with an overlap: when the previous secret stops working (ISO); null or absent: at once. */
  previousUntil?: string | null;
}

export const ONE_TIME_SECRET_PREFIX = "console-secret:";
/** KV's shortest TTL: the redirect is followed in milliseconds, and an unopened secret does not linger. */
const ONE_TIME_SECRET_TTL_SECONDS = 60;
const ID = /^[A-Za-z0-9_-]{22}$/;

const recordName = async (id: string) => ONE_TIME_SECRET_PREFIX + (await hashKey(id));


/** A webhook endpoint's signing secret, shown once on the webhooks page. */
export interface ShownSigningSecret {
  secret: string;
  url: string;
}

/** The page that shows a kept secret, and what it shows there. */
interface Kept {
  keys: ShownSecret;
  webhooks: ShownSigningSecret;
}

/**
 * Keeps `secret` for one view by this browser's session, on `page`; returns the URL to redirect to.
 * @example return c.redirect(await stashSecret(c, { key, name, secure, how: "created" }), 303);
 */
export async function stashSecret<P extends keyof Kept = "keys">(c: Context<AppEnv>, secret: Kept[P], page: P = "keys" as P): Promise<string> {
  const id = randomToken(16);
  const sealed = await encryptSecret(getCookie(c, SESSION_COOKIE)!, JSON.stringify({ page, secret }), id);
  await c.env.KEYS_KV.put(await recordName(id), sealed, { expirationTtl: ONE_TIME_SECRET_TTL_SECONDS });
  return `/console/${page}?secret=${id}`;
}

/**
 * The secret kept under `id` for this session and `page`, removed as it is read; undefined when gone, not this
 * session's, or kept for another page (which it then stays for).
 */
export async function takeSecret<P extends keyof Kept = "keys">(c: Context<AppEnv>, id: string | undefined, page: P = "keys" as P): Promise<Kept[P] | undefined> {
  if (!id || !ID.test(id)) return undefined;
  const name = await recordName(id);
  const sealed = await c.env.KEYS_KV.get(name);
  if (!sealed) return undefined;
  let kept: { page: P; secret: Kept[P] };
  try {
    kept = JSON.parse(await decryptSecret(getCookie(c, SESSION_COOKIE)!, sealed, id)) as { page: P; secret: Kept[P] };
  } catch {
    return undefined; // another session's: its cookie does not open it, and it stays for its own
  }
  if (kept.page !== page) return undefined;
  await c.env.KEYS_KV.delete(name);
  return kept.secret;
}
