import { ApiError } from "../errors";

/**
 * Limits failed authentications per client IP: the verify endpoint, the gateway and management
 * calls all report failures here. Successful verifications never touch it, so the hot path gains
 * no storage read.
 *
 * The rate limiting binding counts failures per location, off the response path; once it says an IP
 * is over the limit, this isolate refuses that IP *before* verifying anything until the window ends,
 * so a limited client cannot go on learning whether its guesses are valid.
 */

/** The binding's window (`simple.period` in wrangler.toml), in seconds: how long a blocked IP waits. */
export const AUTH_FAILURE_WINDOW_SECONDS = 60;
const BLOCKED_TRACKED_LIMIT = 10_000; // bound memory under a flood from many addresses

const blockedUntil = new Map<string, number>();

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

/**
 * Counts a failed authentication from `ip`, off the response path (`waitUntil`): the refusal is not
 * delayed by the limiter. Once the limiter says the IP is over the limit, `assertNotBlocked` refuses
 * it before any verification until the window ends. A limiter that cannot be reached changes nothing:
 * the caller's own refusal stands.
 * @example recordFailure(env, ip, "verify", (p) => ctx.waitUntil(p));
 */
export function recordFailure(env: Env, ip: string, scope: LimitScope, waitUntil: (p: Promise<unknown>) => void): void {
  const key = `${scope}:${ip}`;
  const counted = env.AUTH_FAILURES.limit({ key }).then(
    ({ success }) => {
      if (success) return;
      if (blockedUntil.size >= BLOCKED_TRACKED_LIMIT) blockedUntil.clear();
      blockedUntil.set(key, Date.now() + AUTH_FAILURE_WINDOW_SECONDS * 1000);
    },
    () => undefined,
  );
  waitUntil(counted);
}
