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


/**
 * Keeps `secret` for one view by this browser's session; returns the URL to redirect to.
 * @example return c.redirect(await stashSecret(c, { key, name, secure, how: "created" }), 303);
 */
export async function stashSecret(c: Context<AppEnv>, secret: ShownSecret): Promise<string> {
  const id = randomToken(16);
  const sealed = await encryptSecret(getCookie(c, SESSION_COOKIE)!, JSON.stringify(secret), id);
  await c.env.KEYS_KV.put(await recordName(id), sealed, { expirationTtl: ONE_TIME_SECRET_TTL_SECONDS });
  return `/console/keys?secret=${id}`;
}

/** The secret kept under `id` for this session, removed as it is read; undefined when gone or not this session's. */
export async function takeSecret(c: Context<AppEnv>, id: string | undefined): Promise<ShownSecret | undefined> {
  if (!id || !ID.test(id)) return undefined;
  const name = await recordName(id);
  const sealed = await c.env.KEYS_KV.get(name);
  if (!sealed) return undefined;
  let secret: ShownSecret;
  try {
    secret = JSON.parse(await decryptSecret(getCookie(c, SESSION_COOKIE)!, sealed, id)) as ShownSecret;
  } catch {
    return undefined; // another session's: its cookie does not open it, and it stays for its own
  }
  await c.env.KEYS_KV.delete(name);
  return secret;
}
