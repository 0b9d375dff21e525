import { SECURITY_HEADERS, STORAGE_RETRY_AFTER_SECONDS } from "../app";
import { ApiError, ERROR_STATUS, errorBody, StorageUnavailableError, type ErrorCode } from "../errors";
import { KEY_PATTERN_SOURCE } from "../domain/key-format";
import { encodeMetadataHeader, type Metadata } from "../domain/metadata";
import { presentedKey, unauthorized } from "../middleware/authenticate";
import { clientIp, recordFailure, refuseLimited } from "../verification/abuse-limit";
import { verifyKey, type VerifiedKey } from "../verification/verify-key";
import { compileGateway, matchRoute, type CompiledRoute } from "./config";
import { GATEWAY_ROUTES } from "./routes";

/** Compiled when the worker loads: an invalid route table is a startup error, not a runtime one. */
const ROUTES = compileGateway(GATEWAY_ROUTES);

/** Headers that carry the caller's credential (removed) or our identity (never taken from the caller). */
const CREDENTIAL_HEADERS = ["authorization", "proxy-authorization", "x-api-key", "cookie"];
export const IDENTITY_HEADER_PREFIX = "x-keygate-";
/**
 * The client's claims about where a request came from: dropped. The gateway sets `X-Forwarded-For` and
 * `X-Real-IP` from `CF-Connecting-IP` (the connecting address, set by Cloudflare) and
 * `X-Forwarded-Proto`/`-Host` from the URL it was called on.
 */
const FORWARDING_HEADERS = [
  "forwarded", "x-forwarded", "forwarded-for", "x-forwarded-for", "x-original-forwarded-for", "x-real-ip", "true-client-ip",
  "x-client-ip", "x-cluster-client-ip", "client-ip", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
];
/**
 * Upstream response headers that act on the whole origin, and so on the console that shares it:
 * cookies (a path is no isolation, RFC 6265 §8.5), `Clear-Site-Data` (would sign the console out),
 * `Service-Worker-Allowed` (would let a worker control `/console`). Removed from every proxied response.
 */
const ORIGIN_WIDE_RESPONSE_HEADERS = ["set-cookie", "clear-site-data", "service-worker-allowed"];
/**
 * Added after the upstream's own policy (both are enforced; where several have `sandbox`, the last
 * one applies): an upstream page runs with an opaque origin, no script, no forms, so it cannot read
 * the console's CSRF token, post to it, or touch its cookies.
 */
export const GATEWAY_RESPONSE_CSP = "sandbox";
/** The base URL of a service-binding upstream: the binding, not the host, decides where it goes. */
const SERVICE_UPSTREAM_BASE = "https://upstream.internal";
/** A key anywhere in a string (the scanners' pattern): keys never travel in the URL. */
const KEY_IN_TEXT = new RegExp(KEY_PATTERN_SOURCE);
const PERCENT_TRIPLET = /%[0-9A-Fa-f]{2}/;
const PERCENT_TRIPLETS = /%([0-9A-Fa-f]{2})/g;

function refusal(code: ErrorCode, message: string, requestId: string, details?: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(errorBody(code, message, requestId, details)), {
    status: ERROR_STATUS[code],
    headers: { ...SECURITY_HEADERS, "content-type": "application/json", "x-request-id": requestId, ...headers },
  });
}

/**
 * Why a gateway path cannot be forwarded, or null. An upstream (or a proxy before it) may decode a
 * path once or twice, or treat `\` as `/` and `..;` as `..`: a segment that would then become a
 * separator or a dot-segment could step from one app into another after the route and permission
 * were decided. So each segment is percent-decoded until nothing is left to decode (a `%25` hides any
 * of the others) and must hold no `/` or `\` and not be `.` or `..`; empty segments (`//`) too.
 */
export function unsafePathReason(pathname: string): string | null {
  if (pathname.includes("//")) return "an empty path segment (//)";
  for (const segment of pathname.split("/")) {
    let decoded = segment;
    for (let round = 0; PERCENT_TRIPLET.test(decoded); round++) {
      if (round === 4) return "a path segment encoded more than four times";
      decoded = decoded.replace(PERCENT_TRIPLETS, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
    if (decoded.includes("/") || decoded.includes("\\")) return "an encoded / or \\ in a path segment";
    const bare = decoded.split(";")[0];
    if (bare === "." || bare === "..") return "an encoded . or .. path segment";
  }
  return null;
}

/** Whether the URL carries something shaped like a key (in the path, a query name or value, raw or decoded). */
function keyInUrl(url: URL): boolean {
  if (KEY_IN_TEXT.test(url.pathname)) return true;
  if (!url.search) return false;
  if (KEY_IN_TEXT.test(url.search)) return true;
  for (const [name, value] of url.searchParams) if (KEY_IN_TEXT.test(name) || KEY_IN_TEXT.test(value)) return true;
  return false;
}

// A leased record keeps its metadata object between requests: encode it once per isolate, not per request.
const encodedMetadata = new WeakMap<Metadata, string>();
function metadataHeader(metadata: Metadata): string {
  let value = encodedMetadata.get(metadata);
  if (value === undefined) encodedMetadata.set(metadata, (value = encodeMetadataHeader(metadata)));
  return value;
}

/**
 * The request the upstream receives: same method, body and headers, less credentials and forwarding
 * claims, plus identity. The URL is the route's upstream with the request's path (less `stripPrefix`)
 * set as its path, never concatenated, and is refused (400) if its origin is not the upstream's.
 * @example const forwarded = upstreamRequest(request, route, key, requestId);
 */
export function upstreamRequest(request: Request, route: CompiledRoute, key: VerifiedKey | null, requestId: string, url = new URL(request.url)) {
  const base = new URL("url" in route.upstream ? route.upstream.url : SERVICE_UPSTREAM_BASE);
  let path = url.pathname;
  if (route.stripPrefix) {
    if (!path.startsWith(route.stripPrefix)) throw cannotForward("the path does not start with the route's stripPrefix");
    path = path.slice(route.stripPrefix.length) || "/";
  }
  // Config validation makes stripPrefix end on a segment boundary; a path cut mid-segment is refused.
  if (!path.startsWith("/")) throw cannotForward("stripPrefix cuts a path segment");
  const target = new URL(base);
  target.pathname = base.pathname.replace(/\/$/, "") + path;
  target.search = url.search;
  target.hash = "";
  if (target.origin !== base.origin) throw cannotForward("the path would change the upstream's host or port");
  const headers = new Headers(request.headers);
  for (const name of CREDENTIAL_HEADERS) headers.delete(name);
  for (const name of FORWARDING_HEADERS) headers.delete(name);
  for (const name of [...headers.keys()]) if (name.startsWith(IDENTITY_HEADER_PREFIX)) headers.delete(name);
  const connecting = request.headers.get("cf-connecting-ip");
  if (connecting) {
    headers.set("x-forwarded-for", connecting);
    headers.set("x-real-ip", connecting);
  }
  headers.set("x-forwarded-proto", url.protocol.slice(0, -1));
  headers.set("x-forwarded-host", url.host);
  headers.set("x-request-id", requestId);
  if (key) {
    headers.set("x-keygate-key-id", key.keyId);
    headers.set("x-keygate-org-id", key.orgId);
    // Header values are bytes: a name with non-ASCII characters travels percent-encoded.
    headers.set("x-keygate-key-name", encodeURIComponent(key.name));
    headers.set("x-keygate-permissions", key.grants.map((g) => `${g.permission}@${g.app ?? "*"}`).join(","));
    if (key.rotating) headers.set("x-keygate-key-rotating", "true");
    if (key.metadata) headers.set("x-keygate-key-metadata", metadataHeader(key.metadata));
  }
  return new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" });
}

function cannotForward(why: string) {
  return new ApiError("INVALID_REQUEST", `This path cannot be forwarded: ${why}.`, { reason: "UNSAFE_PATH" });
}

/**
 * The upstream's response as the client gets it: status and body streamed unchanged; the headers less
 * those that act on the whole origin, plus our sandbox policy (see `GATEWAY_RESPONSE_CSP`).
 */
function defused(response: Response): Response {
  if (response.webSocket) return response; // an upgrade: no document, no cookies to a browser page
  const headers = new Headers(response.headers);
  for (const name of ORIGIN_WIDE_RESPONSE_HEADERS) headers.delete(name);
  headers.append("content-security-policy", GATEWAY_RESPONSE_CSP);
  // Nothing from an upstream may be sniffed into a script on the console's origin.
  if (!headers.has("x-content-type-options")) headers.set("x-content-type-options", "nosniff");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/**
 * Serves `/gw/…`: the route table decides the upstream and the permission; the one verifier decides
 * the key. Paths with encoded separators and URLs carrying a key are refused first (400). Allowed
 * requests stream to the upstream and its response streams back with its status and body unchanged,
 * its headers defused (`defused`); refused ones never reach it. Returns null when no route matches
 * (the app answers 404).
 */
export async function handleGateway(request: Request, env: Env, ctx: ExecutionContext): Promise<Response | null> {
  const url = new URL(request.url);
  const found = matchRoute(ROUTES, url.pathname);
  if (!found) return null;
  const { route, params } = found;
  const started = Date.now();
  const requestId = `req_${crypto.randomUUID().replaceAll("-", "")}`;
  let outcome = "OK";
  let response: Response;
  try {
    // Before the method and the key: a refused path or URL never costs a verification.
    const unsafe = unsafePathReason(url.pathname);
    if (unsafe) throw cannotForward(unsafe);
    if (keyInUrl(url)) {
      throw new ApiError("INVALID_REQUEST", "An API key must not travel in the URL, where logs keep it: send it in Authorization: Bearer <key>, and consider this key exposed.", {
        reason: "KEY_IN_URL",
      });
    }
    if (!(route.methods as string[]).includes(request.method)) {
      throw new ApiError("METHOD_NOT_ALLOWED", `This route accepts ${route.methods.join(", ")}.`, undefined, { Allow: route.methods.join(", ") });
    }
    let key: VerifiedKey | null = null;
    if (route.auth) {
      const presented = presentedKey(request.headers);
      if (presented === undefined) throw unauthorized("An API key is required: send Authorization: Bearer <key>.", "MISSING");
      const ip = clientIp(request.headers);
      // A limited address is answered 429 before any storage, unless this isolate leases the very secret.
      await refuseLimited(ip, "gateway", (route.mode ?? (route.strict ? "strict" : "lease")) === "lease" ? presented : undefined);
      const result = await verifyKey(env, presented, {
        ip: request.headers.get("cf-connecting-ip") ?? undefined,
        cost: route.cost,
        permission: route.permission,
        app: route.appParam ? params[route.appParam] : undefined,
        mode: route.mode,
        strict: route.strict,
        waitUntil: (p) => ctx.waitUntil(p),
      });
      outcome = result.code;
      if (result.code === "INSUFFICIENT_PERMISSIONS") {
        throw new ApiError("FORBIDDEN", result.message, { reason: result.code, required: route.permission });
      }
      if (result.code === "RATE_LIMITED" && result.rateLimit) {
        // The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): the policy, and that nothing is left.
        const { limit, periodSeconds, resetAt } = result.rateLimit;
        const seconds = String(Math.max(1, Math.ceil((resetAt - Date.now()) / 1000)));
        throw new ApiError("RATE_LIMITED", result.message, { reason: result.code, limit, periodSeconds, resetAt: new Date(resetAt).toISOString() }, {
          "Retry-After": seconds,
          "RateLimit-Policy": `"key";q=${limit};w=${periodSeconds}`,
          RateLimit: `"key";r=0;t=${seconds}`,
        });
      }
      if (result.code === "USAGE_EXCEEDED") throw new ApiError("RATE_LIMITED", result.message, { reason: result.code });
      if (result.code === "IP_NOT_ALLOWED") {
        recordFailure(env, ip, "gateway", result, (p) => ctx.waitUntil(p));
        throw new ApiError("FORBIDDEN", result.message, { reason: result.code });
      }
      if (!result.valid) {
        recordFailure(env, ip, "gateway", result, (p) => ctx.waitUntil(p)); // 429 past the limit
        throw unauthorized(result.message, result.code);
      }
      key = result.key;
    }
    const forwarded = upstreamRequest(request, route, key, requestId, url);
    let upstream: Response;
    try {
      upstream = "service" in route.upstream
        ? await (env as unknown as Record<string, Fetcher>)[route.upstream.service]!.fetch(forwarded)
        : await fetch(forwarded);
    } catch {
      throw new ApiError("BAD_GATEWAY", "The upstream did not answer.");
    }
    response = defused(upstream);
  } catch (err) {
    if (err instanceof ApiError) {
      outcome = outcome === "OK" || err.code === "RATE_LIMITED" ? err.code : outcome;
      response = refusal(err.code, err.message, requestId, err.details, err.headers);
    } else if (err instanceof StorageUnavailableError) {
      outcome = "SERVICE_UNAVAILABLE";
      response = refusal("SERVICE_UNAVAILABLE", "Key storage is unavailable; the request was not forwarded. Retry shortly.", requestId, undefined, {
        "Retry-After": String(STORAGE_RETRY_AFTER_SECONDS),
      });
    } else {
      outcome = "INTERNAL";
      console.error(JSON.stringify({ level: "error", requestId, error: err instanceof Error ? err.name : "unknown" }));
      response = refusal("INTERNAL", "Internal error.", requestId);
    }
  }
  console.log(
    JSON.stringify({ requestId, method: request.method, route: `gateway:${route.name}`, status: response.status, outcome, latencyMs: Date.now() - started }),
  );
  return response;
}
