import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { routePath } from "hono/route";
import type { AppEnv } from "./context";
import { ApiError, ERROR_STATUS, errorBody, StorageUnavailableError, type ErrorCode } from "./errors";

export type App = OpenAPIHono<AppEnv>;

/** Largest accepted request body. Key requests are small; this keeps parsing cheap and bounded. */
export const MAX_BODY_BYTES = 64 * 1024;
/** How long a client should wait after a storage fault before retrying, in seconds. */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

/**
 * Headers on every response unless a route set its own (the console sets a CSP with its nonce).
 * API responses are private data: never cached by browsers or intermediaries.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  "Cache-Control": "no-store",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
  "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
};

const SECURITY_HEADER_ENTRIES = Object.entries(SECURITY_HEADERS);

/**
 * `res` with the request id and the security headers it did not set itself. Sets them in place when
 * the headers are mutable: Hono's `c.header` on a finished response copies the whole response once
 * per header, which was a quarter of a cheap request's CPU time. Copies once when they are not.
 */
export function withResponseHeaders(res: Response, requestId: string): Response {
  const apply = (headers: Headers) => {
    headers.set("x-request-id", requestId);
    for (const [name, value] of SECURITY_HEADER_ENTRIES) if (!headers.has(name)) headers.set(name, value);
  };
  try {
    apply(res.headers);
    return res;
  } catch {
    const copy = new Response(res.body, res);
    apply(copy.headers);
    return copy;
  }
}

/** The storage fault behind `err`, if any: query builders wrap the seam's error in their own. */
function storageFault(err: unknown): StorageUnavailableError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof StorageUnavailableError) return e;
  }
  return undefined;
}

/** Answers `err` with the one error envelope. Unexpected errors are logged without their message. */
export function onError(err: Error, c: Context<AppEnv>): Response {
  const requestId = c.get("requestId") ?? "unknown";
  let code: ErrorCode;
  let message: string;
  let details: unknown;
  const headers: Record<string, string> = {};
  if (err instanceof ApiError) {
    ({ code, message, details } = err);
    Object.assign(headers, err.headers);
  } else if (storageFault(err)) {
    console.error(JSON.stringify({ level: "error", requestId, error: "storage_unavailable", store: storageFault(err)!.store }));
    code = "SERVICE_UNAVAILABLE";
    message = "Storage is unavailable; nothing was changed. Retry shortly.";
    headers["Retry-After"] = String(STORAGE_RETRY_AFTER_SECONDS);
  } else if (err instanceof HTTPException && err.status < 500) {
    // Hono's own client errors, such as malformed JSON in a request body.
    code = err.status === 413 ? "PAYLOAD_TOO_LARGE" : "INVALID_REQUEST";
    message = err.message || "The request is invalid.";
  } else {
    code = "INTERNAL";
    message = "Internal error.";
    console.error(JSON.stringify({ level: "error", requestId, error: err.name }));
  }
  c.set("outcome", code);
  return c.json(errorBody(code, message, requestId, details), ERROR_STATUS[code], headers);
}

/** A route path segment as a regular expression: `:param` is any one segment, `*` anything. */
const segmentPattern = (segment: string) =>
  segment.startsWith(":") ? "[^/]+" : segment === "*" ? ".*" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The methods `app`'s routes take at a path (with HEAD wherever GET is), none for an unknown path. The
 * route table is read on first use, once every route has been registered.
 * @example allowedMethodsOf(app)("/v1/orgs/01jd8x6w2m9k3v7q4r5t/policy") // ["GET", "HEAD", "PUT"]
 */
function allowedMethodsOf(app: App): (path: string) => string[] {
  let table: { pattern: RegExp; method: string }[] | undefined;
  return (path) => {
    table ??= app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => ({
        method: r.method,
        pattern: new RegExp(`^${r.path.split("/").map(segmentPattern).join("/")}$`),
      }));
    const methods = new Set(table.filter((r) => r.pattern.test(path)).map((r) => r.method));
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort();
  };
}

/**
 * The app factory: request ids, body limits, the validation hook that turns zod failures into the
 * error envelope, the error handler, and `/openapi.json`.
 *
 * @example
 * const app = newApp();
 * registerRoutes(app);
 */
export function newApp(): App {
  const app = new OpenAPIHono<AppEnv>({
    strict: true,
    defaultHook: (result) => {
      if (!result.success) {
        const issues = result.error.issues.map((i) => ({
          field: i.path.join(".") || (result.target === "json" ? "(body)" : `(${result.target})`),
          message: i.message,
        }));
        throw new ApiError("INVALID_REQUEST", `Invalid ${result.target === "json" ? "body" : result.target}: ${issues.map((i) => `${i.field}: ${i.message}`).join("; ")}`, { issues });
      }
    },
  });

  app.use("*", async (c, next) => {
    const started = Date.now();
    c.set("requestId", `req_${crypto.randomUUID().replaceAll("-", "")}`);
    await next();
    const finished = withResponseHeaders(c.res, c.get("requestId"));
    if (finished !== c.res) c.res = finished;
    // One structured line per request. Never the URL's query or any header: keys may be in them.
    console.log(
      JSON.stringify({
        requestId: c.get("requestId"),
        method: c.req.method,
        route: routePath(c, -1),
        status: c.res.status,
        outcome: c.get("outcome") ?? (c.res.ok ? "OK" : String(c.res.status)),
        latencyMs: Date.now() - started,
      }),
    );
  });

  app.use("/v1/*", async (c, next) => {
    const method = c.req.method;
    if (method === "POST" || method === "PUT" || method === "PATCH") {
      const type = c.req.header("content-type");
      const length = c.req.header("content-length");
      const hasBody = (length !== undefined && length !== "0") || c.req.header("transfer-encoding") !== undefined;
      if ((hasBody || type !== undefined) && !/^application\/json\s*(;|$)/i.test(type ?? "")) {
        throw new ApiError("UNSUPPORTED_MEDIA_TYPE", "Request bodies must be JSON: send Content-Type: application/json.");
      }
    }
    await next();
  });
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new ApiError("PAYLOAD_TOO_LARGE", `Request bodies are limited to ${MAX_BODY_BYTES} bytes.`);
      },
    }),
  );

  app.onError(onError);
  const allowedMethods = allowedMethodsOf(app);
  app.notFound((c) => {
    // A known path asked with a method it does not take: 405 naming the ones it does.
    const allow = allowedMethods(c.req.path);
    if (allow.length) {
      c.set("outcome", "METHOD_NOT_ALLOWED");
      const body = errorBody("METHOD_NOT_ALLOWED", `This path accepts ${allow.join(", ")}.`, c.get("requestId"), { allow });
      return c.json(body, 405, { Allow: allow.join(", ") });
    }
    c.set("outcome", "NOT_FOUND");
    return c.json(errorBody("NOT_FOUND", "No such route.", c.get("requestId")), 404);
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "An API key: `Authorization: Bearer kgw_…`.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "reporterSignature", {
    type: "apiKey",
    in: "header",
    name: "Github-Public-Key-Signature",
    description:
      "A secret scanning reporter's ECDSA P-256 / SHA-256 signature of the raw body (base64 DER), with the id of its public key " +
      "in `Github-Public-Key-Identifier`.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bootstrapSecret", {
    type: "http",
    scheme: "bearer",
    description: "The deployment's bootstrap secret (the `BOOTSTRAP_SECRET` Worker secret), not an API key: `Authorization: Bearer <BOOTSTRAP_SECRET>`. Only creating an organization takes it.",
  });
  app.doc("/openapi.json", {
    openapi: "3.0.3",
    info: {
      title: "keygate",
      version: "1.0.0",
      description: "Edge API-key gateway: organization API keys with RBAC roles, scopes and legacy modes.",
    },
    servers: [{ url: "/", description: "The deployment serving this document." }],
    tags: [
      { name: "Health", description: "Whether the worker is up." },
      { name: "Verification", description: "Verifying a key a client presented, for services behind or beside the gateway." },
      { name: "Organizations", description: "Creating an organization and its first admin key, with the bootstrap secret." },
      { name: "Keys", description: "The organization's API keys: RBAC, scoped and legacy; create, list, edit, regenerate (with overlap), reveal, disable, enable, revoke." },
      { name: "Apps", description: "The organization's apps, which per-app roles of RBAC keys point at." },
      { name: "Policy", description: "The organization's key policy: required expiration, maximum lifetime, networks for administering keys, what a leak does." },
      { name: "Audit log", description: "Every change to the organization's keys, apps and policy, and every reveal." },
      { name: "Webhooks", description: "Endpoints that receive the organization's events, signed (Standard Webhooks), with their delivery log and resend." },
      { name: "Usage", description: "Verifications per key over time, and the organization's most used and most refused keys." },
      { name: "Secret scanning", description: "Reports of leaked keys from secret scanning partners (GitHub), signed; our keys in them are revoked." },
    ],
  });
  return app;
}
