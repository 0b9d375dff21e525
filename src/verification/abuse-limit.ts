import { ApiError } from "../errors";
import type { VerifyCode } from "./verify-key";

/**
 * Limits failed authentications per client IP: the verify endpoint, the gateway and management
 * calls all report failures here. Successful verifications never touch it, so the hot path gains
 * no storage read.
 *
 * The rate limiting binding counts failures per location, off the response path; once it says an IP
 * is over the limit, this isolate refuses that IP *before* verifying anything until the window ends,
 * so a limited client cannot go on learning whether its guesses are valid.
 *
 * Malformed keys (the checksum fails) are the exception: they are counted by this isolate alone, at
 * the same limit. Such a key can never be valid, so it teaches a guesser nothing and reads no storage
 * to refuse; a limiter call per refusal would make the cheapest refusal as costly as a storage read.
 */

/** The binding's window (`simple.period` in wrangler.toml), in seconds: how long a blocked IP waits. */
export const AUTH_FAILURE_WINDOW_SECONDS = 60;
const BLOCKED_TRACKED_LIMIT = 10_000; // bound memory under a flood from many addresses

/** `[vars] AUTH_FAILURE_LIMIT`, equal to the binding's `simple.limit`: failures allowed per window. */
const DEFAULT_FAILURE_LIMIT = 30;

const blockedUntil = new Map<string, number>();
/** Malformed-key failures per `scope:ip` in this isolate, in fixed windows. */
const malformedCounts = new Map<string, { count: number; windowEnds: number }>();

export type LimitScope = "verify" | "management" | "gateway";

/** The client's address as Cloudflare reports it; one shared bucket when absent (local tools). */
export function clientIp(headers: Headers): string {
  return headers.get("cf-connecting-ip") ?? "unknown";
}

function limited(retryAfter: number): ApiError {
  return new ApiError(
    "RATE_LIMITED",
    "Too many failed authentications from this address. Retry later.",
    { retryAfterSeconds: retryAfter },
    { "Retry-After": String(retryAfter) },
  );
}

/**
 * Throws 429 when `ip` is blocked in this isolate. Call before verifying a presented key.
 * @example assertNotBlocked(clientIp(c.req.raw.headers), "management")
 */
export function assertNotBlocked(ip: string, scope: LimitScope, now = Date.now()): void {
  const until = blockedUntil.get(`${scope}:${ip}`);
  if (until === undefined) return;
  if (until > now) throw limited(Math.ceil((until - now) / 1000));
  blockedUntil.delete(`${scope}:${ip}`);
}

function block(key: string, now: number): void {
  if (blockedUntil.size >= BLOCKED_TRACKED_LIMIT) blockedUntil.clear();
  blockedUntil.set(key, now + AUTH_FAILURE_WINDOW_SECONDS * 1000);
}

function failureLimit(env: Env): number {
  const limit = Number(env.AUTH_FAILURE_LIMIT);
  return Number.isSafeInteger(limit) && limit > 0 ? limit : DEFAULT_FAILURE_LIMIT;
}

/** Counts a malformed-key failure in this isolate; blocks the address once past the limit. */
function countMalformed(env: Env, key: string, now: number): void {
  let entry = malformedCounts.get(key);
  if (!entry || entry.windowEnds <= now) {
    if (malformedCounts.size >= BLOCKED_TRACKED_LIMIT) malformedCounts.clear();
    entry = { count: 0, windowEnds: now + AUTH_FAILURE_WINDOW_SECONDS * 1000 };
    malformedCounts.set(key, entry);
  }
  entry.count++;
  if (entry.count > failureLimit(env)) block(key, now);
}

/**
 * Counts a failed authentication from `ip` (`code` is the verifier's), off the response path
 * (`waitUntil`): the refusal is not delayed by the limiter. Once the limiter says the IP is over the
 * limit, `assertNotBlocked` refuses it before any verification until the window ends. A limiter that
 * cannot be reached changes nothing: the caller's own refusal stands.
 * @example recordFailure(env, ip, "verify", result.code, (p) => ctx.waitUntil(p));
 */
export function recordFailure(
  env: Env,
  ip: string,
  scope: LimitScope,
  code: VerifyCode,
  waitUntil: (p: Promise<unknown>) => void,
  now = Date.now(),
): void {
  const key = `${scope}:${ip}`;
  if (code === "MALFORMED") return countMalformed(env, key, now);
  const counted = env.AUTH_FAILURES.limit({ key }).then(
    ({ success }) => {
      if (!success) block(key, Date.now());
    },
    () => undefined,
  );
  waitUntil(counted);
}
