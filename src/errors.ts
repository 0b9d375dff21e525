import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** The closed set of error codes, each with its one HTTP status. */
export const ERROR_STATUS = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  MISCONFIGURED: 500,
  BAD_GATEWAY: 502,
  SERVICE_UNAVAILABLE: 503,
} as const satisfies Record<string, ContentfulStatusCode>;
export type ErrorCode = keyof typeof ERROR_STATUS;

/** The one error envelope every failure is answered with. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId: string; details?: unknown };
}

/**
 * The one error type: throw it anywhere below a route and the app's error handler answers with the
 * envelope and the code's status.
 * @example throw new ApiError("NOT_FOUND", "No such key.");
 */
export class ApiError extends HTTPException {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(ERROR_STATUS[code], { message });
  }
}

export function errorBody(code: ErrorCode, message: string, requestId: string, details?: unknown): ErrorBody {
  return { error: { code, message, requestId, ...(details === undefined ? {} : { details }) } };
}

/**
 * A Worker secret the request needs is missing or shorter than 32 bytes: 500 `MISCONFIGURED`, with the
 * secret's name in `details.secret`. Nothing that needs the secret is done (fail closed); the operator
 * sets it with `wrangler secret put <name>`.
 */
export function misconfigured(secret: string): ApiError {
  return new ApiError(
    "MISCONFIGURED",
    `The deployment is misconfigured: the ${secret} secret is missing or shorter than 32 bytes, so this is refused. The operator must set it (wrangler secret put ${secret}).`,
    { secret },
  );
}

/** A bad field, in the same shape the validation hook uses for zod failures. */
export interface FieldIssue {
  field: string;
  message: string;
  /** A stable code for programs, where the field's rule has several ways to fail. */
  reason?: string;
}

/**
 * A 400 naming each bad field in `details.issues`, like a schema failure.
 * @example throw invalidFields([{ field: "expiresAt", message: "must be in the future" }]);
 */
export function invalidFields(issues: FieldIssue[], target: "body" | "query" = "body"): ApiError {
  const message = `Invalid ${target}: ${issues.map((i) => `${i.field}: ${i.message}`).join("; ")}`;
  return new ApiError("INVALID_REQUEST", message, { issues });
}

/** A storage fault (D1, KV or the key authority): answered with 503; verification never treats it as valid. */
export class StorageUnavailableError extends Error {
  constructor(readonly store: "kv" | "d1" | "authority", cause: unknown) {
    super(`${store} unavailable`, { cause });
  }
}
