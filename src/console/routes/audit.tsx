/** @jsxImportSource hono/jsx */
import type { App } from "../../app";
import { consoleApi } from "../api";
import { cursorParam, orgPath, unlessUnavailable, viewerOf } from "../context";
import { Notice, Page, When } from "../views/layout";

interface AuditEntry {
  id: number;
  actorKeyId: string | null;
  action: string;
  targetType: string;
  targetId: string;
  requestId: string;
  createdAt: string;
}

/** The audit log, newest first, one page at a time. */
export function registerConsoleAudit(app: App) {
  app.get("/console/audit", async (c) => {
    const cursor = cursorParam(c.req.query("cursor"));
    const result = unlessUnavailable(
      await consoleApi(app, c)<{ entries: AuditEntry[]; nextCursor: string | null }>(
        "GET",
        `${orgPath(c)}/audit-log?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      ),
    );
    const page = result.ok ? result.data : { entries: [], nextCursor: null };
    return c.html(
      <Page title="Audit log" viewer={viewerOf(c)} tab="audit">
        <h1>Audit log</h1>
        {!result.ok && <Notice kind="error">{result.error.message}</Notice>}
        {page.entries.length === 0 ? (
          <p class="empty">No changes recorded yet.</p>
        ) : (
          <table id="audit-log">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">By key</th>
                <th scope="col">Request</th>
              </tr>
            </thead>
            <tbody>
              {page.entries.map((e) => (
                <tr>
                  <td>
                    <When iso={e.createdAt} />
                  </td>
                  <td>
                    <code>{e.action}</code>
                  </td>
                  <td>
                    {e.targetType} <code>{e.targetId}</code>
                  </td>
                  <td>{e.actorKeyId ? <code>{e.actorKeyId}</code> : "bootstrap secret"}</td>
                  <td>
                    <code>{e.requestId}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <nav class="pager" aria-label="Audit log pages">
          {cursor && <a href="/console/audit">First page</a>}
          {page.nextCursor && <a href={`/console/audit?cursor=${encodeURIComponent(page.nextCursor)}`}>Next page</a>}
        </nav>
      </Page>,
      result.ok ? 200 : (result.status as 400),
    );
  });
}
