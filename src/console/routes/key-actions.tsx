/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { consoleApi } from "../api";
import { keyPath, unlessUnavailable } from "../context";
import { first } from "../forms";
import { stashSecret } from "../one-time-secret";
import { KeysPage, OVERLAP_CHOICES, type Key } from "../views/keys-page";
import { renderEdit } from "./edit-key";
import { loadKeysPage } from "./keys";

/** The overlap the regenerate dialog chose, in seconds; anything but its own choices is none. */
function overlapOf(c: Context<AppEnv>): number {
  const asked = Number(first(c.var.form, "overlapSeconds"));
  return OVERLAP_CHOICES.some((o) => o.seconds === asked) ? asked : 0;
}

/** Where a key's own page goes after a change, with the notice saying what happened. */
const keyPage = (c: Context<AppEnv>, notice: string) => `/console/keys/${encodeURIComponent(c.req.param("keyId") ?? "")}?notice=${notice}`;

/**
 * Regenerate, reveal, delete, disable, enable and end-overlap, confirmed in dialogs, through the key's
 * authority via the API. A success answers with a redirect (post/redirect/get): a reload never runs the
 * action again.
 */
export function registerConsoleKeyActions(app: App) {
  app.post("/console/keys/:keyId/regenerate", async (c) => {
    const api = consoleApi(app, c);
    const overlapSeconds = overlapOf(c);
    const result = unlessUnavailable(await api<Key & { key: string }>("POST", `${keyPath(c)}/regenerate`, overlapSeconds ? { overlapSeconds } : undefined));
    if (result.ok) {
      const { key, name, secure, rotation } = result.data;
      return c.redirect(await stashSecret(c, { key, name, secure, how: "regenerated", previousUntil: rotation?.endsAt ?? null }), 303);
    }
    const notice = { kind: "error" as const, text: `The key was not regenerated: ${result.error.message}` };
    return c.html(<KeysPage {...await loadKeysPage(c, api, { notice })} />, result.status as 400);
  });

  // Non-secure keys only; the API audits every reveal.
  app.post("/console/keys/:keyId/reveal", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api<{ key: string }>("POST", `${keyPath(c)}/reveal`));
    const key = result.ok ? unlessUnavailable(await api<Key>("GET", keyPath(c))) : undefined;
    if (result.ok && key?.ok) return c.redirect(await stashSecret(c, { key: result.data.key, name: key.data.name, secure: false, how: "revealed" }), 303);
    const notice = { kind: "error" as const, text: `The key was not revealed: ${result.ok ? "it no longer exists" : result.error.message}` };
    return c.html(<KeysPage {...await loadKeysPage(c, api, { notice })} />, result.ok ? 404 : (result.status as 400));
  });

  app.post("/console/keys/:keyId/revoke", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api("DELETE", keyPath(c)));
    if (result.ok) return c.redirect("/console/keys?notice=revoked", 303);
    const notice = { kind: "error" as const, text: `The key was not deleted: ${result.error.message}` };
    return c.html(<KeysPage {...await loadKeysPage(c, api, { notice })} />, result.status as 400);
  });

  // Disable pauses the key everywhere before the API answers; the org's last admin key needs the
  // second, explicit confirmation the refusal offers (force).
  app.post("/console/keys/:keyId/disable", async (c) => {
    const api = consoleApi(app, c);
    const force = first(c.var.form, "force") === "true";
    const result = unlessUnavailable(await api("POST", `${keyPath(c)}/disable${force ? "?force=true" : ""}`));
    if (result.ok) return c.redirect(keyPage(c, "disabled"), 303);
    const lastAdmin = (result.error.details as { reason?: string } | undefined)?.reason === "LAST_ADMIN_KEY";
    return renderEdit(c, api, { notice: { kind: "error", text: `The key was not disabled: ${result.error.message}` }, offerForce: lastAdmin }, result.status);
  });

  app.post("/console/keys/:keyId/enable", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api("POST", `${keyPath(c)}/enable`));
    if (result.ok) return c.redirect(keyPage(c, "enabled"), 303);
    return renderEdit(c, api, { notice: { kind: "error", text: `The key was not enabled: ${result.error.message}` } }, result.status);
  });

  app.post("/console/keys/:keyId/end-overlap", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api("POST", `${keyPath(c)}/end-overlap`));
    if (result.ok) return c.redirect(keyPage(c, "overlap_ended"), 303);
    return renderEdit(c, api, { notice: { kind: "error", text: `The overlap was not ended: ${result.error.message}` } }, result.status);
  });
}
