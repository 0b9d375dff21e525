import { SECURITY_HEADERS, STORAGE_RETRY_AFTER_SECONDS } from "../app";
import { ApiError, ERROR_STATUS, errorBody, StorageUnavailableError, type ErrorCode } from "../errors";
import { presentedKey, unauthorized } from "../middleware/authenticate";
import { assertNotBlocked, clientIp, recordFailure } from "../verification/abuse-limit";
import { verifyKey, type VerifiedKey } from "../verification/verify-key";
import { compileGateway, matchRoute, type CompiledRoute } from "./config";
import { GATEWAY_ROUTES } from "./routes";

/** Compiled when the worker loads: an invalid route table is a startup error, not a runtime one. */
const ROUTES = compileGateway(GATEWAY_ROUTES);

/** Headers that carry the caller's credential (removed) or our identity (never taken from the caller). */
const CREDENTIAL_HEADERS = ["authorization", "x-api-key", "cookie"];
export const IDENTITY_HEADER_PREFIX = "x-keygate-";

function refusal(code: ErrorCode, message: string, requestId: string, details?: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(errorBody(code, message, requestId, details)), {
    status: ERROR_STATUS[code],
    headers: { ...SECURITY_HEADERS, "content-type": "application/json", "x-request-id": requestId, ...headers },
  });
}

/** The request the upstream receives: same method, body and headers, less credentials, plus identity. */
function upstreamRequest(request: Request, route: CompiledRoute, url: URL, key: VerifiedKey | null, requestId: string) {
  const path = route.stripPrefix ? url.pathname.slice(route.stripPrefix.length) || "/" : url.pathname;
  const base = "url" in route.upstream ? route.upstream.url.replace(/\/$/, "") : "https://upstream.internal";
  const target = `${base}${path}${url.search}`;
  const headers = new Headers(request.headers);
  for (const name of CREDENTIAL_HEADERS) headers.delete(name);
  for (const name of [...headers.keys()]) if (name.startsWith(IDENTITY_HEADER_PREFIX)) headers.delete(name);
  headers.set("x-request-id", requestId);
  if (key) {
    headers.set("x-keygate-key-id", key.keyId);
    headers.set("x-keygate-org-id", key.orgId);
    // Header values are bytes: a name with non-ASCII characters travels percent-encoded.
    headers.set("x-keygate-key-name", encodeURIComponent(key.name));
    headers.set("x-keygate-permissions", key.grants.map((g) => `${g.permission}@${g.app ?? "*"}`).join(","));
  }
  return new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" });
}

/**
 * Serves `/gw/…`: the route table decides the upstream and the permission; the one verifier decides
 * the key. Allowed requests stream to the upstream and its response streams back unchanged; refused
 * ones never reach it. Returns null when no route matches (the app answers 404).
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
    if (!(route.methods as string[]).includes(request.method)) {
      throw new ApiError("METHOD_NOT_ALLOWED", `This route accepts ${route.methods.join(", ")}.`, undefined, { Allow: route.methods.join(", ") });
    }
    let key: VerifiedKey | null = null;
    if (route.auth) {
      const presented = presentedKey(request.headers);
      if (presented === undefined) throw unauthorized("An API key is required: send Authorization: Bearer <key>.", "MISSING");
      const ip = clientIp(request.headers);
      assertNotBlocked(ip, "gateway");
      const result = await verifyKey(env, presented, {
        permission: route.permission,
        app: route.appParam ? params[route.appParam] : undefined,
        strict: route.strict,
        waitUntil: (p) => ctx.waitUntil(p),
      });
      outcome = result.code;
      if (result.code === "INSUFFICIENT_PERMISSIONS") {
        throw new ApiError("FORBIDDEN", result.message, { reason: result.code, required: route.permission });
      }
      if (!result.valid) {
        recordFailure(env, ip, "gateway", result.code, (p) => ctx.waitUntil(p));
        throw unauthorized(result.message, result.code);
      }
      key = result.key;
    }
    const forwarded = upstreamRequest(request, route, url, key, requestId);
    try {
      response = "service" in route.upstream
        ? await (env as unknown as Record<string, Fetcher>)[route.upstream.service]!.fetch(forwarded)
        : await fetch(forwarded);
    } catch {
      throw new ApiError("BAD_GATEWAY", "The upstream did not answer.");
    }
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
