/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { allows } from "../../domain/permissions";
import { NO_POLICY } from "../../domain/policy";
import { consoleApi, type ConsoleApi } from "../api";
import { cursorParam, dataOr, grantableFor, orgPath, unlessUnavailable, viewerOf } from "../context";
import { createKeyBody, fieldErrors, FormError, type Signer } from "../forms";
import { stashSecret, takeSecret } from "../one-time-secret";
import type { AppsState } from "../views/key-fields";
import { KeysPage, KeysPageDisabled, type Key, type KeyPage, type KeysPageProps } from "../views/keys-page";
import { allApps } from "./apps";

const PAGE_SIZE = 25;
const EMPTY: KeyPage = { keys: [], nextCursor: null };

/**
 * Whether to lead the org to its first app: only when the whole list was read and is empty (a key that
 * may not list apps cannot know there are none).
 */
export const appsStateOf = (c: Context<AppEnv>, apps: { items: unknown[]; complete: boolean }): AppsState => ({
  orgHasNoApps: apps.complete && apps.items.length === 0,
  canCreateApps: allows(c.var.caller.grants, "org:admin"),
});

/** The signed-in key, as the pages judge which actions it may take. */
export const signerOf = (c: Context<AppEnv>): Signer => ({ grants: c.var.caller.grants, expiresAt: c.var.caller.expiresAt });

const NOTICES: Record<string, string> = {
  revoked: "The key was deleted. Requests that use it now fail.",
  updated: "Changes saved.",
};

/** Everything the keys page shows, read through the API as the signed-in key. */
export async function loadKeysPage(c: Context<AppEnv>, api: ConsoleApi, extra: Partial<KeysPageProps> = {}): Promise<KeysPageProps> {
  const cursor = cursorParam(c.req.query("cursor"));
  const legacyCursor = cursorParam(c.req.query("legacyCursor"));
  const list = (kind: string, from?: string) =>
    api<KeyPage>("GET", `${orgPath(c)}/keys?kind=${kind}&limit=${PAGE_SIZE}${from ? `&cursor=${encodeURIComponent(from)}` : ""}`);
  const [rbac, legacy, policy, apps] = await Promise.all([
    list("rbac,scoped", cursor),
    list("legacy", legacyCursor),
    api<KeysPageProps["policy"]>("GET", `${orgPath(c)}/policy`),
    allApps(c, api),
  ]);
  const badCursor = [rbac, legacy].some((r) => !unlessUnavailable(r).ok);
  const appList = apps.items;
  const notice = c.req.query("notice");
  return {
    viewer: viewerOf(c),
    rbac: dataOr(rbac, EMPTY),
    legacy: dataOr(legacy, EMPTY),
    cursors: { cursor, legacyCursor },
    apps: appList,
    appsState: appsStateOf(c, apps),
    policy: dataOr(policy, NO_POLICY),
    grantable: grantableFor(c, appList),
    signer: signerOf(c),
    notice: badCursor
      ? { kind: "error", text: "That page link is no longer valid; showing the first page." }
      : notice && NOTICES[notice]
        ? { kind: "ok", text: NOTICES[notice] }
        : undefined,
    ...extra,
  };
}

export function registerConsoleKeys(app: App) {
  app.get("/console/keys", async (c) => {
    if (!viewerOf(c).canManageKeys) return c.html(<KeysPageDisabled viewer={viewerOf(c)} />);
    // The page a create, regenerate or reveal redirected to: its secret, this one time.
    const shown = c.req.query("secret");
    const secret = await takeSecret(c, shown);
    const extra: Partial<KeysPageProps> = secret
      ? { secret }
      : shown !== undefined
        ? { notice: { kind: "error", text: "That key was shown once already: it is not shown again. Regenerate it for a new secret." } }
        : {};
    return c.html(<KeysPage {...await loadKeysPage(c, consoleApi(app, c), extra)} />);
  });

  // The create dialog. Success redirects to the one-time secret (post/redirect/get); a refusal reopens
  // the dialog with each message next to its field.
  app.post("/console/keys", async (c) => {
    const api = consoleApi(app, c);
    const form = c.var.form;
    try {
      const created = unlessUnavailable(await api<Key & { key: string }>("POST", `${orgPath(c)}/keys`, createKeyBody(form)));
      if (created.ok) {
        const { key, name, secure } = created.data;
        return c.redirect(await stashSecret(c, { key, name, secure, how: "created" }), 303);
      }
      return c.html(<KeysPage {...await loadKeysPage(c, api, { create: { form, errors: fieldErrors(created.error) } })} />, created.status as 400);
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
      return c.html(<KeysPage {...await loadKeysPage(c, api, { create: { form, errors: err.errors } })} />, 400);
    }
  });
}
