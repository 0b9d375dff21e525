import type { Context } from "hono";
import type { AppEnv } from "../context";
import { allows } from "../domain/permissions";
import { ApiError } from "../errors";
import type { ApiResult } from "./api";
import { formValues, grantableOrgRoles, grantableScopes, type FormValues } from "./forms";
import type { AppOption, Grantable } from "./views/key-fields";
import type { Viewer } from "./views/layout";

/** Shared by the console's routes: who is signed in, and what the signed-in key may hand out. */

export const viewerOf = (c: Context<AppEnv>): Viewer => ({
  keyName: c.var.caller.name,
  orgId: c.var.caller.orgId,
  csrfToken: c.var.session.csrfToken,
  canManageKeys: allows(c.var.caller.grants, "apiKeyManagement"),
});

export function grantableFor(c: Context<AppEnv>, apps: AppOption[]): Grantable {
  const grants = c.var.caller.grants;
  return {
    orgRoles: grantableOrgRoles(grants),
    scopes: grantableScopes(grants),
    apps: apps.filter((a) => allows(grants, "app:admin", a.id)),
  };
}

export const orgPath = (c: Context<AppEnv>) => `/v1/orgs/${c.var.caller.orgId}`;

/** The API path of the key named by the console route's `:keyId`. */
export const keyPath = (c: Context<AppEnv>) => `${orgPath(c)}/keys/${encodeURIComponent(c.req.param("keyId") ?? "")}`;

/** A storage fault behind an API call is the console's fault page too (503, Retry-After), never a half page. */
export function unlessUnavailable<T>(result: ApiResult<T>): ApiResult<T> {
  if (!result.ok && result.status >= 500) throw new ApiError("SERVICE_UNAVAILABLE", result.error.message);
  return result;
}

export const dataOr = <T>(result: ApiResult<T>, fallback: T): T => (unlessUnavailable(result).ok ? (result as { data: T }).data : fallback);

/** A query parameter the console passes on to the API, bounded like the API's own. */
export const cursorParam = (value: string | undefined) => (value && value.length <= 200 ? value : undefined);

/** The submitted form; a body that is not a readable form is the client's error, not ours. */
export async function parseForm(c: Context<AppEnv>): Promise<FormValues> {
  try {
    return formValues(await c.req.parseBody({ all: true }));
  } catch {
    throw new ApiError("INVALID_REQUEST", "The form could not be read. Reload the page and try again.");
  }
}
