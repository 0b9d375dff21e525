import type { Context } from "hono";
import type { App } from "../app";
import type { AppEnv } from "../context";
import type { ErrorBody } from "../errors";
import { envActingAs } from "../middleware/internal-caller";

export type ApiResult<T> =
  | { ok: true; status: number; data: T }
  | { ok: false; status: number; error: ErrorBody["error"] };

export type ConsoleApi = <T>(method: string, path: string, body?: unknown) => Promise<ApiResult<T>>;

/**
 * The API, called in-process as the signed-in key: every console action goes through the same
 * route, validation, escalation checks, authority and audit entry as a curl call would.
 */
export function consoleApi(app: App, c: Context<AppEnv>): ConsoleApi {
  const env = envActingAs(c.env, c.var.caller);
  return async <T>(method: string, path: string, body?: unknown): Promise<ApiResult<T>> => {
    const request = new Request(new URL(path, c.req.url), {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const response = await app.fetch(request, env, c.executionCtx);
    const text = await response.text(); // empty for 204
    const json = (text ? JSON.parse(text) : undefined) as T & ErrorBody;
    return response.ok ? { ok: true, status: response.status, data: json } : { ok: false, status: response.status, error: json.error };
  };
}
