/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { NO_POLICY, type OrgPolicy } from "../../domain/policy";
import { ID_PATTERN } from "../../domain/key-format";
import { ApiError } from "../../errors";
import { consoleApi, type ConsoleApi } from "../api";
import { dataOr, grantableFor, keyPath, orgPath, unlessUnavailable, viewerOf } from "../context";
import { fieldErrors, FormError, updateKeyBody, type FieldErrors, type FormValues } from "../forms";
import { EditKeyPage } from "../views/edit-page";
import type { Key } from "../views/keys-page";
import { allApps } from "./apps";
import { appsStateOf, leakedKeyIds, signerOf } from "./keys";

/** What the edit page shows besides the key: a refused form, a notice, the offer to disable the last admin key anyway. */
export interface EditShown {
  form?: FormValues;
  errors?: FieldErrors;
  notice?: { kind: "ok" | "error"; text: string };
  offerForce?: boolean;
}

const NOTICES: Record<string, string> = {
  disabled: "The key is disabled: every request that uses it is refused (DISABLED) until you enable it.",
  enabled: "The key is enabled again: requests that use it work as before.",
  overlap_ended: "The overlap has ended: the previous secret no longer works.",
};

export async function renderEdit(c: Context<AppEnv>, api: ConsoleApi, shown: EditShown = {}, status = 200) {
  const keyId = c.req.param("keyId") ?? "";
  const [key, policy, apps, leaks] = await Promise.all([
    api<Key>("GET", keyPath(c)),
    api<OrgPolicy>("GET", `${orgPath(c)}/policy`),
    allApps(c, api),
    // This key's latest leak report, for the Leaked badge (see leakedKeyIds).
    ID_PATTERN.test(keyId)
      ? api<{ entries: { targetId: string; createdAt: string }[] }>("GET", `${orgPath(c)}/audit-log?action=key.leaked&keyId=${keyId}&limit=1`)
      : Promise.resolve(undefined),
  ]);
  if (!unlessUnavailable(key).ok) throw new ApiError("NOT_FOUND", "No such key in your organization.");
  const k = (key as { data: Key }).data;
  const leakEntries = leaks ? dataOr(leaks, { entries: [] }).entries.filter((e) => e.targetId === k.id) : [];
  const appList = apps.items;
  const asked = c.req.method === "GET" ? c.req.query("notice") : undefined;
  return c.html(
    <EditKeyPage
      viewer={viewerOf(c)}
      k={k}
      leaked={leakedKeyIds([k], leakEntries).has(k.id)}
      apps={appList}
      appsState={appsStateOf(c, apps)}
      policy={dataOr(policy, NO_POLICY)}
      grantable={grantableFor(c, appList)}
      signer={signerOf(c)}
      form={shown.form}
      errors={shown.errors}
      notice={shown.notice ?? (asked && NOTICES[asked] ? { kind: "ok", text: NOTICES[asked] } : undefined)}
      offerForce={shown.offerForce}
    />,
    status as 200,
  );
}

/**
 * The edit page: name, expiration, start, networks, metadata, org role and app roles (or scopes); disable or
 * enable; a rotation's overlap. Legacy keys say why they cannot be edited.
 */
export function registerConsoleEditKey(app: App) {
  app.get("/console/keys/:keyId", (c) => renderEdit(c, consoleApi(app, c)));

  app.post("/console/keys/:keyId", async (c) => {
    const api = consoleApi(app, c);
    const form = c.var.form;
    const current = unlessUnavailable(await api<Key>("GET", keyPath(c)));
    if (!current.ok) throw new ApiError("NOT_FOUND", "No such key in your organization.");
    try {
      const saved = unlessUnavailable(await api<Key>("PATCH", keyPath(c), updateKeyBody(current.data, form)));
      if (saved.ok) return c.redirect("/console/keys?notice=updated", 303);
      return renderEdit(c, api, { form, errors: fieldErrors(saved.error) }, saved.status);
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
      return renderEdit(c, api, { form, errors: err.errors }, 400);
    }
  });
}
