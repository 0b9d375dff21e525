/** @jsxImportSource hono/jsx */
import type { App } from "../../app";
import { ID_PATTERN } from "../../domain/key-format";
import { AUDIT_ACTIONS, type AuditAction } from "../../routes/audit/list-audit-log";
import { consoleApi } from "../api";
import { cursorParam, orgPath, unlessUnavailable, viewerOf } from "../context";
import { Notice, Page, When } from "../views/layout";
import { allApps, allKeys } from "./apps";

interface AuditEntry {
  id: number;
  actorKeyId: string | null;
  action: string;
  /** `key`, `app` or `org` today; any other kind is shown by its id. */
  targetType: string;
  targetId: string;
  requestId: string;
  createdAt: string;
  details: Record<string, unknown> | null;
}

const PAGE_SIZE = 50;
/** Pages remembered for "Previous page": each is one cursor in the link, and links stay short. */
const MAX_TRAIL = 40;

/** Each action in words; one without a label here shows as its code. */
const ACTION_LABELS: Record<string, string> = {
  "org.create": "Organization created",
  "key.create": "Key created",
  "key.update": "Key edited",
  "key.regenerate": "Key regenerated",
  "key.reveal": "Key revealed",
  "key.revoke": "Key deleted",
  "key.disable": "Key disabled",
  "key.enable": "Key enabled",
  "key.end_overlap": "Previous secret ended",
  "key.leaked": "Key leaked (secret scanning)",
  "key.expiring": "Expiry reminder",
  "key.expired": "Key expired",
  "key.unused": "Key unused",
  "app.create": "App created",
  "app.delete": "App deleted",
  "policy.update": "Policy changed",
  "webhook.create": "Webhook endpoint registered",
  "webhook.delete": "Webhook endpoint deleted",
};

/**
 * What a secret scanning report said: where the key was found and what was done. The URL is the reporter's
 * word, so it is shown as text, never as a link to follow.
 */
function LeakDetails(props: { details: Record<string, unknown> | null }) {
  const d = props.details ?? {};
  const text = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const url = text(d.url);
  const source = text(d.source);
  const outcome = text(d.outcome);
  return (
    <dl class="details">
      {url && (
        <>
          <dt>Found at</dt>
          <dd>
            <code>{url}</code>
            {source && <span class="hint">{` (${source})`}</span>}
          </dd>
        </>
      )}
      {outcome && (
        <>
          <dt>Outcome</dt>
          <dd>{outcome}</dd>
        </>
      )}
    </dl>
  );
}

/** The filters and the page a link shows; `trail` holds the cursors of the pages before it, oldest first. */
interface View {
  action?: AuditAction;
  keyId?: string;
  cursor?: string;
  trail: string[];
}

function link(view: View): string {
  const q = new URLSearchParams();
  if (view.action) q.set("action", view.action);
  if (view.keyId) q.set("keyId", view.keyId);
  if (view.cursor) q.set("cursor", view.cursor);
  // Cursors are base64url: a dot never occurs in one.
  if (view.cursor && view.trail.length > 0) q.set("trail", view.trail.slice(-MAX_TRAIL).join("."));
  const s = q.toString();
  return `/console/audit${s ? `?${s}` : ""}`;
}

/** A key or an app by name, with its id; one that no longer exists says so, with the last name the page saw. */
function Named(props: { id: string; names: Map<string, string>; complete: boolean; seen: Map<string, string>; filterHref?: string }) {
  const current = props.names.get(props.id);
  const deleted = current === undefined && props.complete;
  const name = current ?? props.seen.get(props.id);
  const label = name && <strong>{name}</strong>;
  return (
    <span class="named">
      {props.filterHref && name ? (
        <a href={props.filterHref} title={`Only entries about ${name}`}>
          {label}
        </a>
      ) : (
        label
      )}{" "}
      <code>{props.id}</code>
      {deleted && <span class="hint"> (deleted)</span>}
    </span>
  );
}

/** The audit log, newest first, filtered by action and by key, one page at a time. */
export function registerConsoleAudit(app: App) {
  app.get("/console/audit", async (c) => {
    const api = consoleApi(app, c);
    const actionParam = c.req.query("action");
    const keyParam = c.req.query("keyId");
    // Filters the API would refuse are dropped with a notice instead of failing the whole page.
    const action = (AUDIT_ACTIONS as readonly string[]).includes(actionParam ?? "") ? (actionParam as AuditAction) : undefined;
    const keyId = keyParam && ID_PATTERN.test(keyParam) ? keyParam : undefined;
    const badFilter = (actionParam && !action) || (keyParam && !keyId);
    const asked = cursorParam(c.req.query("cursor"));
    const filters = { action, keyId };

    const read = (from?: string) => {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (action) query.set("action", action);
      if (keyId) query.set("keyId", keyId);
      if (from) query.set("cursor", from);
      return api<{ entries: AuditEntry[]; nextCursor: string | null }>("GET", `${orgPath(c)}/audit-log?${query}`);
    };
    const [first, keys, apps] = await Promise.all([read(asked), allKeys(c, api), allApps(c, api)]);
    // A page link whose cursor the API refuses shows the first page instead, saying so.
    const staleCursor = asked !== undefined && unlessUnavailable(first).status === 400;
    const result = staleCursor ? unlessUnavailable(await read()) : first;
    const cursor = staleCursor ? undefined : asked;
    const trail = cursor ? (c.req.query("trail") ?? "").split(".").filter((t) => cursorParam(t)).slice(-MAX_TRAIL) : [];
    const page = result.ok ? result.data : { entries: [], nextCursor: null };
    const keyNames = new Map(keys.items.map((k) => [k.id, k.name]));
    const appNames = new Map(apps.items.map((a) => [a.id, a.name]));
    // The names the entries themselves recorded: what a deleted key or app was called.
    const seen = new Map<string, string>();
    for (const e of [...page.entries].reverse()) {
      if ((e.targetType === "key" || e.targetType === "app") && typeof e.details?.name === "string") seen.set(e.targetId, e.details.name);
    }
    // A key's name filters the log by that key, as the form's Key select does.
    const keyRef = (id: string) => <Named id={id} names={keyNames} complete={keys.complete} seen={seen} filterHref={link({ action, keyId: id, trail: [] })} />;

    const previous: View | undefined = cursor ? { ...filters, cursor: trail.at(-1), trail: trail.slice(0, -1) } : undefined;
    const next: View | undefined = page.nextCursor ? { ...filters, cursor: page.nextCursor, trail: cursor ? [...trail, cursor] : [] } : undefined;
    const filtered = Boolean(action || keyId);
    const filterKeyListed = keyId === undefined || keyNames.has(keyId);

    return c.html(
      <Page title="Audit log" viewer={viewerOf(c)} tab="audit">
        <h1>Audit log</h1>
        <p class="hint">
          Every change to keys, apps and the key policy, and every reveal, newest first. Never any key material. Filtered
          by key, it shows the changes the key made and those made to it.
        </p>
        {!result.ok && <Notice kind="error">{result.error.message}</Notice>}
        {badFilter && <Notice kind="error">That filter is not one the audit log knows; it was left out.</Notice>}
        {staleCursor && <Notice kind="error">That page link is no longer valid; showing the first page.</Notice>}
        <form method="get" action="/console/audit" class="filters" aria-label="Filter the audit log">
          <div>
            <label for="audit-action">Action</label>
            <select id="audit-action" name="action">
              <option value="">All actions</option>
              {AUDIT_ACTIONS.map((a) => (
                <option value={a} selected={a === action}>
                  {ACTION_LABELS[a] ? `${ACTION_LABELS[a]} (${a})` : a}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label for="audit-key">Key</label>
            <select id="audit-key" name="keyId">
              <option value="">All keys</option>
              {!filterKeyListed && (
                <option value={keyId} selected>
                  {`${seen.get(keyId!) ?? keyId}${keys.complete ? " (deleted)" : ""}`}
                </option>
              )}
              {keys.items.map((k) => (
                <option value={k.id} selected={k.id === keyId}>
                  {k.name}
                </option>
              ))}
            </select>
          </div>
          <div class="actions">
            {filtered && (
              <a class="button" href="/console/audit">
                Clear filters
              </a>
            )}
            <button type="submit" class="primary">
              Filter
            </button>
          </div>
        </form>
        {page.entries.length === 0 ? (
          <p class="empty">{filtered ? "No entries match these filters." : "No changes recorded yet."}</p>
        ) : (
          <table id="audit-log">
            <caption class="visually-hidden">Audit log entries</caption>
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
                <tr data-entry-id={String(e.id)}>
                  <td data-label="Time">
                    <When iso={e.createdAt} />
                  </td>
                  <td data-label="Action">
                    {ACTION_LABELS[e.action] ?? e.action} <code>{e.action}</code>
                    {e.action === "key.leaked" && <LeakDetails details={e.details} />}
                  </td>
                  <td data-label="Target">
                    {e.targetType === "org" ? (
                      <>organization</>
                    ) : e.targetType === "app" ? (
                      <>
                        app <Named id={e.targetId} names={appNames} complete={apps.complete} seen={seen} />
                      </>
                    ) : e.targetType === "key" ? (
                      <>key {keyRef(e.targetId)}</>
                    ) : (
                      <>
                        {e.targetType} <code>{e.targetId}</code>
                      </>
                    )}
                  </td>
                  <td data-label="By key">{e.actorKeyId ? keyRef(e.actorKeyId) : "bootstrap secret"}</td>
                  <td data-label="Request">
                    <code>{e.requestId}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {(previous || next) && (
          <nav class="pager" aria-label="Audit log pages">
            {previous && previous.cursor && <a href={link({ ...filters, trail: [] })}>First page</a>}
            {previous && <a href={link(previous)} rel="prev">Previous page</a>}
            {next && <a href={link(next)} rel="next">Next page</a>}
          </nav>
        )}
      </Page>,
      result.ok ? 200 : (result.status as 400),
    );
  });
}
