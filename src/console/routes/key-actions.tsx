/** @jsxImportSource hono/jsx */
import type { App } from "../../app";
import { consoleApi } from "../api";
import { orgPath, unlessUnavailable } from "../context";
import { KeysPage, type Key } from "../views/keys-page";
import { loadKeysPage } from "./keys";

/** Regenerate and delete, confirmed in the list's dialogs. Both go through the key's authority via the API. */
export function registerConsoleKeyActions(app: App) {
  app.post("/console/keys/:keyId/regenerate", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api<Key & { key: string }>("POST", `${orgPath(c)}/keys/${encodeURIComponent(c.req.param("keyId"))}/regenerate`));
    const extra = result.ok
      ? { secret: { key: result.data.key, name: result.data.name, secure: result.data.secure, regenerated: true } }
      : { notice: { kind: "error" as const, text: `The key was not regenerated: ${result.error.message}` } };
    return c.html(<KeysPage {...await loadKeysPage(c, api, extra)} />, result.ok ? 200 : (result.status as 400));
  });

  app.post("/console/keys/:keyId/revoke", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api("DELETE", `${orgPath(c)}/keys/${encodeURIComponent(c.req.param("keyId"))}`));
    if (result.ok) return c.redirect("/console/keys?notice=revoked", 303);
    const notice = { kind: "error" as const, text: `The key was not deleted: ${result.error.message}` };
    return c.html(<KeysPage {...await loadKeysPage(c, api, { notice })} />, result.status as 400);
  });
}
