/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { allows } from "../../domain/permissions";
import { consoleApi, type ApiResult, type ConsoleApi } from "../api";
import { cursorParam, dataOr, orgPath, unlessUnavailable, viewerOf } from "../context";
import { fieldErrors, first } from "../forms";
import { AppsPage, type AppItem, type AppsPageProps } from "../views/apps-page";
import type { Key } from "../views/keys-page";

const PAGE_SIZE = 50;
/** Name lookups read at most this many pages of 100: past that, ids are shown without names. */
const MAX_LOOKUP_PAGES = 10;

/**
 * Every item of a paginated API list, page by page up to {@link MAX_LOOKUP_PAGES}; `complete` is false
 * when the list was longer (an id missing from it may then still exist) or could not be read.
 */
export async function listAll<T>(api: ConsoleApi, path: string, field: string): Promise<{ items: T[]; complete: boolean }> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < MAX_LOOKUP_PAGES; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const result: ApiResult<Record<string, unknown> & { nextCursor: string | null }> = unlessUnavailable(
      await api("GET", `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`),
    );
    if (!result.ok) return { items, complete: false };
    items.push(...(result.data[field] as T[]));
    cursor = result.data.nextCursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

/** The org's current keys (never revoked ones), when the signed-in key may list them. */
export const allKeys = (c: Context<AppEnv>, api: ConsoleApi) =>
  allows(c.var.caller.grants, "apiKeyManagement") ? listAll<Key>(api, `${orgPath(c)}/keys`, "keys") : Promise.resolve({ items: [] as Key[], complete: false });

/** The org's apps, when the signed-in key may read them. */
export const allApps = (c: Context<AppEnv>, api: ConsoleApi) =>
  allows(c.var.caller.grants, "org:read") ? listAll<AppItem>(api, `${orgPath(c)}/apps`, "apps") : Promise.resolve({ items: [] as AppItem[], complete: false });

const NOTICES: Record<string, string> = {
  deleted: "The app was deleted. Keys that held a role on it no longer do.",
};

async function loadAppsPage(c: Context<AppEnv>, api: ConsoleApi, extra: Partial<AppsPageProps> = {}): Promise<AppsPageProps> {
  const grants = c.var.caller.grants;
  const base = { viewer: viewerOf(c), canRead: allows(grants, "org:read"), canAdmin: allows(grants, "org:admin") };
  if (!base.canRead) return { ...base, apps: [], nextCursor: null, ...extra };
  const asked = cursorParam(c.req.query("cursor"));
  const list = (from?: string) =>
    api<{ apps: AppItem[]; nextCursor: string | null }>("GET", `${orgPath(c)}/apps?limit=${PAGE_SIZE}${from ? `&cursor=${encodeURIComponent(from)}` : ""}`);
  const [first, keys] = await Promise.all([list(asked), allKeys(c, api)]);
  // A page link that no longer works (the API refuses its cursor) shows the first page instead.
  const badCursor = asked !== undefined && !unlessUnavailable(first).ok;
  const cursor = badCursor ? undefined : asked;
  const page = dataOr(badCursor ? await list() : first, { apps: [], nextCursor: null });
  // Who loses a role when an app goes: counted only from a complete key list, never guessed.
  const holders = keys.complete ? new Map<string, string[]>() : undefined;
  for (const k of keys.items) for (const r of k.appRoles) holders?.set(r.appId, [...(holders.get(r.appId) ?? []), k.name]);
  const created = c.req.query("created");
  const createdApp = created ? page.apps.find((a) => a.id === created) : undefined;
  const notice = c.req.query("notice");
  return {
    ...base,
    apps: page.apps,
    nextCursor: page.nextCursor,
    cursor,
    holders,
    notice: badCursor
      ? { kind: "error", text: "That page link is no longer valid; showing the first page." }
      : createdApp
        ? { kind: "ok", text: `App “${createdApp.name}” created. RBAC keys can now be given a role on it.` }
        : notice && NOTICES[notice]
          ? { kind: "ok", text: NOTICES[notice] }
          : undefined,
    ...extra,
  };
}

/** The delete refusals a user can act on, in their words; anything else is the API's own message. */
function deleteRefusal(result: { status: number; error: { code: string; message: string; details?: unknown } }): string {
  // 409 is APP_IN_USE (details.reason) from the org's authority, or the route giving up after its passes.
  if (result.status === 409) {
    return "The app was not deleted: keys were given roles on it while it was being deleted, so it is still in use. Nothing else changed. Try again: the delete first takes the role away from every key holding one.";
  }
  if (result.status === 404) return "The app was not deleted: it no longer exists (someone may have deleted it already).";
  return `The app was not deleted: ${result.error.message}`;
}

/**
 * Apps: list, create (a form on the page) and delete (confirmed in a dialog). Each success answers
 * with a redirect (post/redirect/get), so a reload never creates or deletes again.
 */
export function registerConsoleApps(app: App) {
  app.get("/console/apps", async (c) => c.html(<AppsPage {...await loadAppsPage(c, consoleApi(app, c))} />));

  app.post("/console/apps", async (c) => {
    const api = consoleApi(app, c);
    const name = first(c.var.form, "name");
    const created = unlessUnavailable(await api<AppItem>("POST", `${orgPath(c)}/apps`, { name }));
    if (created.ok) return c.redirect(`/console/apps?created=${encodeURIComponent(created.data.id)}`, 303);
    const errors = fieldErrors(created.error);
    return c.html(<AppsPage {...await loadAppsPage(c, api, { create: { name, errors } })} />, created.status as 400);
  });

  app.post("/console/apps/:appId/delete", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api("DELETE", `${orgPath(c)}/apps/${encodeURIComponent(c.req.param("appId"))}`));
    if (result.ok) return c.redirect("/console/apps?notice=deleted", 303);
    return c.html(<AppsPage {...await loadAppsPage(c, api, { notice: { kind: "error", text: deleteRefusal(result) } })} />, result.status as 400);
  });
}
