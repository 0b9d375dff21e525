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
import { dailyTotals } from "./daily-usage";

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

interface LeakEntry {
  targetId: string;
  createdAt: string;
}

/** How many of the newest leak reports one page of keys is judged against. */
const LEAK_ENTRIES_READ = 100;

/**
 * The listed keys a secret scanning report has left disabled: disabled at or after their latest `key.leaked`
 * entry, and not enabled since. (A leak whose policy says revoke removes the key from the list altogether.)
 * The key object says nothing of leaks, so this reads the audit log filtered by `key.leaked`, one call per
 * page, newest 100 reports only: a `leakedAt` on the key would make it exact and free.
 */
export function leakedKeyIds(keys: readonly Key[], entries: readonly LeakEntry[]): Set<string> {
  const latest = new Map<string, number>();
  for (const e of entries) latest.set(e.targetId, Math.max(latest.get(e.targetId) ?? 0, Date.parse(e.createdAt)));
  return new Set(
    keys.filter((k) => k.status === "disabled" && k.disabledAt !== null && (latest.get(k.id) ?? -Infinity) >= Date.parse(k.disabledAt)).map((k) => k.id),
  );
}

/** Everything the keys page shows, read through the API as the signed-in key. */
export async function loadKeysPage(c: Context<AppEnv>, api: ConsoleApi, extra: Partial<KeysPageProps> = {}): Promise<KeysPageProps> {
  const cursor = cursorParam(c.req.query("cursor"));
  const legacyCursor = cursorParam(c.req.query("legacyCursor"));
  const list = (kind: string, from?: string) =>
    api<KeyPage>("GET", `${orgPath(c)}/keys?kind=${kind}&limit=${PAGE_SIZE}${from ? `&cursor=${encodeURIComponent(from)}` : ""}`);
  const [rbac, legacy, policy, apps, leaks] = await Promise.all([
    list("rbac,scoped", cursor),
    list("legacy", legacyCursor),
    api<KeysPageProps["policy"]>("GET", `${orgPath(c)}/policy`),
    allApps(c, api),
    api<{ entries: LeakEntry[] }>("GET", `${orgPath(c)}/audit-log?action=key.leaked&limit=${LEAK_ENTRIES_READ}`),
  ]);
  const badCursor = [rbac, legacy].some((r) => !unlessUnavailable(r).ok);
  const appList = apps.items;
  const notice = c.req.query("notice");
  const rbacPage = dataOr(rbac, EMPTY);
  const legacyPage = dataOr(legacy, EMPTY);
  const listed = [...rbacPage.keys, ...legacyPage.keys];
  return {
    viewer: viewerOf(c),
    rbac: rbacPage,
    legacy: legacyPage,
    leaked: leakedKeyIds(listed, dataOr(leaks, { entries: [] }).entries),
    usage: await dailyTotals(api, c, listed.map((k) => k.id)),
    now: Date.now(),
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
