/** @jsxImportSource hono/jsx */
import type { App } from "../../app";
import { consoleApi } from "../api";
import { keyPath, unlessUnavailable } from "../context";
import { KeysPage, type Key } from "../views/keys-page";
import { loadKeysPage } from "./keys";

/** Regenerate, reveal and delete, confirmed in the list's dialogs. Both go through the key's authority via the API. */
export function registerConsoleKeyActions(app: App) {
  app.post("/console/keys/:keyId/regenerate", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api<Key & { key: string }>("POST", `${keyPath(c)}/regenerate`));
    const extra = result.ok
      ? { secret: { key: result.data.key, name: result.data.name, secure: result.data.secure, how: "regenerated" as const } }
      : { notice: { kind: "error" as const, text: `The key was not regenerated: ${result.error.message}` } };
    return c.html(<KeysPage {...await loadKeysPage(c, api, extra)} />, result.ok ? 200 : (result.status as 400));
  });

  // Non-secure keys only; the API audits every reveal.
  app.post("/console/keys/:keyId/reveal", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api<{ key: string }>("POST", `${keyPath(c)}/reveal`));
    const key = result.ok ? unlessUnavailable(await api<Key>("GET", keyPath(c))) : undefined;
    const extra =
      result.ok && key?.ok
        ? { secret: { key: result.data.key, name: key.data.name, secure: false, how: "revealed" as const } }
        : { notice: { kind: "error" as const, text: `The key was not revealed: ${result.ok ? "it no longer exists" : result.error.message}` } };
    return c.html(<KeysPage {...await loadKeysPage(c, api, extra)} />, result.ok ? 200 : (result.status as 400));
  });

  app.post("/console/keys/:keyId/revoke", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api("DELETE", keyPath(c)));
    if (result.ok) return c.redirect("/console/keys?notice=revoked", 303);
    const notice = { kind: "error" as const, text: `The key was not deleted: ${result.error.message}` };
    return c.html(<KeysPage {...await loadKeysPage(c, api, { notice })} />, result.status as 400);
  });
}
