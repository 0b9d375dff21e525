import { hashKey } from "../domain/crypto";
import { parseKey } from "../domain/key-format";
import { ApiError } from "../errors";
import { isolateEdge, type Edge } from "./edge";
import type { VerifyCode } from "./verify-key";

/**
 * Limits failed authentications per client address: the verify endpoint, the gateway, management
 * calls, console sign-in and the bootstrap secret all report failures here. Successful verifications
 * never touch it, so the hot path gains no storage read.
 *
 * Past the limit, failures cost nothing: every entry point asks {@link refuseLimited} before it
 * touches D1, KV, an authority or the limiter, and a limited address is answered 429 there. One
 * exception keeps clients behind a shared egress address (CI runners, offices, NAT) working at no
 * cost: a secret whose key this isolate holds a live lease on, as active, for that very hash, in the
 * lease mode. Only a genuine, live secret can match such a lease, so a guesser gains nothing from it,
 * and its answer comes from the lease. Management keys are verified strictly (by their authority,
 * never from a lease), so a limited address gets 429 for management calls and console sign-in.
 * A limited client learns nothing more: every answer it could learn from is a 429.
 *
 * Every failure is counted synchronously by this isolate, in the request that failed, so a burst of
 * concurrent failures from one address gets at most the limit answered with their code in this
 * isolate: the 31st failure to finish is a 429, whatever the timing. Failures that reached storage
 * are also sent to the rate limiting binding, which counts them across the location's isolates off
 * the response path; once it says an address is over, this isolate treats it as limited until the
 * window ends. Failures refused before any storage read (malformed keys, and keys whose keyed tag is
 * wrong) are counted by the isolate alone: they cost nothing and teach a guesser nothing, and a
 * limiter call per refusal would make the cheapest refusal as costly as a storage read.
 *
 * IPv4 addresses are counted one by one; IPv6 addresses by their /64, the block one client is given.
 */

/** The binding's window (`simple.period` in wrangler.toml), in seconds: how long a blocked address waits. */
export const AUTH_FAILURE_WINDOW_SECONDS = 60;
const TRACKED_LIMIT = 10_000; // bound memory under a flood from many addresses

/** `[vars] AUTH_FAILURE_LIMIT`, equal to the binding's `simple.limit`: failures allowed per window. */
const DEFAULT_FAILURE_LIMIT = 30;

const blockedUntil = new Map<string, number>();
/** Failures per `scope:address` counted by this isolate, in fixed windows. */
const failureCounts = new Map<string, { count: number; windowEnds: number }>();

export type LimitScope = "verify" | "management" | "gateway" | "bootstrap" | "secret-scanning";

/** What the limiter needs to know of a failure: `beforeStorage` when it was refused without any storage read. */
export interface Failure {
  code: VerifyCode;
  beforeStorage?: boolean;
}

/** The client's address as Cloudflare reports it; one shared bucket when absent (local tools). */
export function clientIp(headers: Headers): string {
  return headers.get("cf-connecting-ip") ?? "unknown";
}

/** The 8 groups of an IPv6 address as numbers, or null when it is not one. */
function ipv6Groups(ip: string): number[] | null {
  const halves = ip.split("::");
  if (halves.length > 2) return null;
  const parse = (part: string) => (part === "" ? [] : part.split(":"));
  const head = parse(halves[0]!);
  const tail = parse(halves[1] ?? "");
  // An IPv4 tail (`::ffff:192.0.2.1`) counts as two groups.
  const last = tail.length ? tail : head;
  const v4 = last.length && /^\d{1,3}(\.\d{1,3}){3}$/.test(last.at(-1)!) ? last.pop()!.split(".").map(Number) : null;
  if (v4) last.push(((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16));
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return null;
  return groups.map((g) => parseInt(g, 16));
}

/**
 * The bucket an address is counted in: an IPv4 address itself; an IPv6 address's /64 (one client is
 * usually given a whole /64, so counting single addresses would give it 2^64 buckets); an
 * IPv4-mapped IPv6 address as its IPv4 address.
 * @example addressBucket("2001:db8:1:2:a:b:c:d") // "2001:db8:1:2::/64"
 */
export function addressBucket(ip: string): string {
  if (!ip.includes(":")) return ip.slice(0, 64);
  const groups = ipv6Groups(ip);
  if (!groups) return ip.slice(0, 64).toLowerCase();
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join(".");
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

function limited(retryAfter: number): ApiError {
  return new ApiError(
    "RATE_LIMITED",
    "Too many failed authentications from this address. Retry later.",
    { retryAfterSeconds: retryAfter },
    { "Retry-After": String(retryAfter) },
  );
}

/** The seconds `key` stays limited, or 0. */
function blockedFor(key: string, now: number): number {
  const until = blockedUntil.get(key);
  if (until === undefined) return 0;
  if (until > now) return Math.ceil((until - now) / 1000);
  blockedUntil.delete(key);
  return 0;
}

/**
 * Throws 429 when the address is limited in this isolate, for a credential that is not a key (the
 * bootstrap secret, a reporter's signature). Keys go through {@link refuseLimited}.
 * @example assertNotBlocked(clientIp(c.req.raw.headers), "bootstrap")
 */
export function assertNotBlocked(ip: string, scope: LimitScope, now = Date.now()): void {
  const wait = blockedFor(`${scope}:${addressBucket(ip)}`, now);
  if (wait) throw limited(wait);
}

/** Whether this isolate holds a live lease on this exact secret's hash, for an active key: no storage is read to tell. */
async function holdsActiveLease(edge: Edge, presented: string, now: number): Promise<boolean> {
  const parsed = parseKey(presented);
  if (!parsed || !edge.leasedKeyIds.has(parsed.keyId)) return false;
  return edge.heldKey(await hashKey(presented), now)?.status === "active";
}

/**
 * Throws 429 (`RATE_LIMITED`, with `Retry-After`) when `ip` is past its failure limit in this
 * isolate; call it before anything reads storage, asks an authority or calls the limiter, so a
 * limited address costs nothing. `leased`: the presented key, when it is about to be verified in the
 * lease mode: a secret this isolate holds a live lease on, as an active key, is let through (it is
 * answered from that lease; see the module's comment). Strict and cached verifications pass nothing.
 * @example await refuseLimited(clientIp(headers), "verify", mode === "lease" ? body.key : undefined);
 */
export async function refuseLimited(ip: string, scope: LimitScope, leased?: string, edge: Edge = isolateEdge, now = Date.now()): Promise<void> {
  const wait = blockedFor(`${scope}:${addressBucket(ip)}`, now);
  if (!wait) return;
  if (leased !== undefined && (await holdsActiveLease(edge, leased, now))) return;
  throw limited(wait);
}

function block(key: string, now: number): void {
  if (blockedUntil.size >= TRACKED_LIMIT) blockedUntil.clear();
  blockedUntil.set(key, now + AUTH_FAILURE_WINDOW_SECONDS * 1000);
}

function failureLimit(env: Env): number {
  const limit = Number(env.AUTH_FAILURE_LIMIT);
  return Number.isSafeInteger(limit) && limit > 0 ? limit : DEFAULT_FAILURE_LIMIT;
}

/** Counts a failure in this isolate; true once the address is past the limit in this window. */
function countFailure(env: Env, key: string, now: number): boolean {
  let entry = failureCounts.get(key);
  if (!entry || entry.windowEnds <= now) {
    if (failureCounts.size >= TRACKED_LIMIT) failureCounts.clear();
    entry = { count: 0, windowEnds: now + AUTH_FAILURE_WINDOW_SECONDS * 1000 };
    failureCounts.set(key, entry);
  }
  entry.count++;
  return entry.count > failureLimit(env);
}

/**
 * Counts a failed authentication from `ip`, and throws 429 (`RATE_LIMITED`, with `Retry-After`)
 * when the address is past the limit: the caller then answers the 429 instead of the failure's own
 * code. Call it only for failures, after verifying (and after {@link refuseLimited}, before it).
 *
 * Counted here first, synchronously; a failure that reached storage is also sent to the location's
 * limiter off the response path (`waitUntil`), and when the limiter says the address is over, it is
 * limited here until the window ends. A limiter that cannot be reached changes nothing: the
 * isolate's own count stands. Failures of a limited address make no limiter call.
 * @example recordFailure(env, ip, "verify", result, (p) => ctx.waitUntil(p));
 */
export function recordFailure(
  env: Env,
  ip: string,
  scope: LimitScope,
  failure: Failure,
  waitUntil: (p: Promise<unknown>) => void,
  now = Date.now(),
): void {
  const key = `${scope}:${addressBucket(ip)}`;
  const wait = blockedFor(key, now);
  if (wait) throw limited(wait);
  if (countFailure(env, key, now)) {
    block(key, now);
    throw limited(AUTH_FAILURE_WINDOW_SECONDS);
  }
  if (failure.beforeStorage) return;
  const counted = env.AUTH_FAILURES.limit({ key }).then(
    ({ success }) => {
      if (!success) block(key, Date.now());
    },
    () => undefined,
  );
  waitUntil(counted);
}
