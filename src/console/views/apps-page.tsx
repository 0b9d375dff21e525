/** @jsxImportSource hono/jsx */
import type { FieldErrors } from "../forms";
import { Csrf, FieldError, Notice, Page, When, type Viewer } from "./layout";

export interface AppItem {
  id: string;
  name: string;
  createdAt: string;
}

export interface AppsPageProps {
  viewer: Viewer;
  /** `org:read`: may list apps. */
  canRead: boolean;
  /** `org:admin`: may create and delete apps. */
  canAdmin: boolean;
  apps: AppItem[];
  nextCursor: string | null;
  /** The cursor the shown page started from. */
  cursor?: string;
  /** App id → names of the keys holding a role on it; absent (and its column with it) when the signed-in key cannot list every key. */
  holders?: Map<string, string[]>;
  create?: { name: string; errors: FieldErrors };
  notice?: { kind: "ok" | "error"; text: string };
}

export const NEEDS_ORG_READ = "Your key lacks the org:read permission, so it cannot list this organization's apps. Sign in with an org member or admin key.";
export const NEEDS_ORG_ADMIN = "Creating and deleting apps needs the org:admin permission. Sign in with an org admin key.";

/** The delete confirmation: it says which keys lose access before anything happens. */
function DeleteDialog(props: { app: AppItem; viewer: Viewer; holders?: string[] }) {
  const { app, holders } = props;
  const id = `delete-app-${app.id}`;
  const who =
    holders === undefined
      ? "Every key holding a role on it loses that role immediately, and its requests to this app fail."
      : holders.length === 0
        ? "No key holds a role on it: no key loses access."
        : `${holders.length === 1 ? "1 key holds" : `${holders.length} keys hold`} a role on it (${holders.join(", ")}): ${holders.length === 1 ? "it loses" : "they lose"} that role immediately, and requests to this app made with ${holders.length === 1 ? "it" : "them"} fail.`;
  return (
    <dialog id={id} aria-labelledby={`${id}-title`}>
      <form method="post" action={`/console/apps/${app.id}/delete`}>
        <Csrf viewer={props.viewer} />
        <h2 id={`${id}-title`}>{`Delete app “${app.name}”?`}</h2>
        <p>The app is deleted and cannot be restored. {who} Keys with organization-wide access are not changed.</p>
        <div class="actions">
          <button type="button" data-close>
            Cancel
          </button>
          <button type="submit" class="danger">
            Delete app
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** Why Create and Delete are locked, shown once on the page and described by each locked control. */
const LOCKED_ID = "apps-locked";

function AppRow(props: { app: AppItem; viewer: Viewer; canAdmin: boolean; holders?: string[] }) {
  const { app } = props;
  return (
    <tr data-app-id={app.id}>
      <td data-label="Name">
        <span class="key-name">{app.name}</span>
      </td>
      <td data-label="ID">
        <code>{app.id}</code>
      </td>
      <td data-label="Created">
        <When iso={app.createdAt} />
      </td>
      {props.holders !== undefined && <td data-label="Keys with a role">{String(props.holders.length)}</td>}
      <td class="actions-cell">
        <div class="row-actions">
          {props.canAdmin ? (
            <button type="button" class="danger" data-open={`delete-app-${app.id}`} aria-label={`Delete ${app.name}`}>
              Delete
            </button>
          ) : (
            // Focusable and announced as disabled, with the page's reason as its description: never a dialog that would then be refused.
            <button type="button" class="locked danger" aria-disabled="true" aria-label={`Delete ${app.name}`} aria-describedby={LOCKED_ID}>
              Delete
            </button>
          )}
        </div>
      </td>
    </tr>
  );
}

function CreateForm(props: { viewer: Viewer; canAdmin: boolean; create?: AppsPageProps["create"]; first: boolean }) {
  const errors = props.create?.errors;
  return (
    <form method="post" action="/console/apps" novalidate aria-labelledby="create-app-title">
      <Csrf viewer={props.viewer} />
      <h2 id="create-app-title">{props.first ? "Create your first app" : "Create an app"}</h2>
      {errors?.form && <Notice kind="error">{errors.form}</Notice>}
      <fieldset disabled={!props.canAdmin}>
        <legend class="visually-hidden">New app</legend>
        <label for="app-name">App name</label>
        <input
          type="text"
          id="app-name"
          name="name"
          maxlength={100}
          required
          value={props.create?.name ?? ""}
          aria-invalid={errors?.name ? "true" : undefined}
          aria-describedby={errors?.name ? "app-name-error app-name-hint" : "app-name-hint"}
        />
        <FieldError id="app-name" errors={errors} field="name" />
        <p class="hint" id="app-name-hint">
          Unique in the organization, up to 100 characters, for example “mobile” or “billing-api”.
        </p>
      </fieldset>
      <div class="actions">
        {props.canAdmin ? (
          <button type="submit" class="primary">
            Create app
          </button>
        ) : (
          <button type="button" class="locked primary" aria-disabled="true" aria-describedby={LOCKED_ID}>
            Create app
          </button>
        )}
      </div>
    </form>
  );
}

/** The apps page: what per-app roles point at, listed, created and deleted as the signed-in key may. */
export function AppsPage(props: AppsPageProps) {
  const holdersOf = (id: string) => (props.holders ? (props.holders.get(id) ?? []) : undefined);
  return (
    <Page title="Apps" viewer={props.viewer} tab="apps">
      <h1>Apps</h1>
      <p class="hint">
        RBAC keys hold roles on apps (reader, uploader, developer, admin). Create an app here, then give keys a role on
        it from the API keys page.
      </p>
      {props.notice && <Notice kind={props.notice.kind}>{props.notice.text}</Notice>}
      {props.canRead && !props.canAdmin && (
        <div class="callout">
          <p id={LOCKED_ID}>{NEEDS_ORG_ADMIN}</p>
        </div>
      )}
      {!props.canRead ? (
        <section aria-disabled="true" class="empty" id="apps-disabled">
          <p>
            <strong>Apps are not available to this key.</strong>
          </p>
          <p>{NEEDS_ORG_READ}</p>
        </section>
      ) : (
        <>
          <section aria-labelledby="apps-heading">
            <h2 id="apps-heading">Your apps</h2>
            {props.apps.length === 0 ? (
              <p class="empty">{props.cursor ? "No more apps." : "No apps yet. Create the first one below: per-app roles of RBAC keys point at apps."}</p>
            ) : (
              <table id="apps">
                <caption class="visually-hidden">Apps</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">ID</th>
                    <th scope="col">Created</th>
                    {props.holders && <th scope="col">Keys with a role</th>}
                    <th scope="col">
                      <span class="hint">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {props.apps.map((app) => (
                    <AppRow app={app} viewer={props.viewer} canAdmin={props.canAdmin} holders={holdersOf(app.id)} />
                  ))}
                </tbody>
              </table>
            )}
            {/* Outside the table: a dialog inside a cell would take on the cell's layout. */}
            {props.canAdmin && props.apps.map((app) => <DeleteDialog app={app} viewer={props.viewer} holders={holdersOf(app.id)} />)}
            {(props.cursor || props.nextCursor) && (
              <nav class="pager" aria-label="Apps pages">
                {props.cursor && <a href="/console/apps">First page</a>}
                {props.nextCursor && <a href={`/console/apps?cursor=${encodeURIComponent(props.nextCursor)}`}>Next page</a>}
              </nav>
            )}
          </section>
          <CreateForm viewer={props.viewer} canAdmin={props.canAdmin} create={props.create} first={props.apps.length === 0 && !props.cursor} />
        </>
      )}
    </Page>
  );
}
