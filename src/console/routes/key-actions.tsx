/** @jsxImportSource hono/jsx */
import type { App } from "../../app";
import { consoleApi } from "../api";
import { keyPath, unlessUnavailable } from "../context";
import { stashSecret } from "../one-time-secret";
import { KeysPage, type Key } from "../views/keys-page";
import { loadKeysPage } from "./keys";

/**
 * Regenerate, reveal and delete, confirmed in the list's dialogs, through the key's authority via the
 * API. A success answers with a redirect (post/redirect/get): a reload never runs the action again.
 */
export function registerConsoleKeyActions(app: App) {
  app.post("/console/keys/:keyId/regenerate", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api<Key & { key: string }>("POST", `${keyPath(c)}/regenerate`));
    if (result.ok) {
      const { key, name, secure } = result.data;
      return c.redirect(await stashSecret(c, { key, name, secure, how: "regenerated" }), 303);
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
}
