/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";
import type { FieldErrors, FieldName } from "../forms";

/** Who is signed in, as every page header shows it. */
export interface Viewer {
  keyName: string;
  orgId: string;
  csrfToken: string;
  canManageKeys: boolean;
}

export const NO_KEY_MANAGEMENT =
  "Your key lacks the apiKeyManagement permission. Sign in with a key that holds it (an org admin key, or a key with the apiKeyManagement scope) to manage keys.";

const TABS = [
  { id: "keys", href: "/console/keys", label: "API keys", needsKeyManagement: true },
  // The apps page says itself what a key without org:read or org:admin may not do there.
  { id: "apps", href: "/console/apps", label: "Apps", needsKeyManagement: false },
  { id: "policy", href: "/console/policy", label: "Key policy", needsKeyManagement: true },
  { id: "audit", href: "/console/audit", label: "Audit log", needsKeyManagement: true },
  { id: "usage", href: "/console/usage", label: "Usage", needsKeyManagement: true },
  // Needs org:admin, not key management: the page itself says so to a key without it.
  { id: "webhooks", href: "/console/webhooks", label: "Webhooks", needsKeyManagement: false },
] as const;

export type Tab = (typeof TABS)[number]["id"];

/**
 * A control that cannot be used, with the reason as a tooltip reachable by mouse and keyboard (and read
 * as the control's description). The tooltip takes no room until shown, and the script keeps it inside
 * the viewport, so it never widens a narrow page or gets cut off.
 */
export function Disabled(props: { id: string; reason: string; children: Child }) {
  return (
    <span class="disabled-wrap" tabindex={0} aria-describedby={`${props.id}-tip`}>
      {props.children}
      <span class="tooltip" role="tooltip" id={`${props.id}-tip`}>
        {props.reason}
      </span>
    </span>
  );
}

export function Page(props: { title: string; viewer?: Viewer; tab?: Tab; children: Child }) {
  const { viewer } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · keygate console`}</title>
        <link rel="icon" href="/console/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href="/console/app.css" />
        <script src="/console/app.js" defer></script>
      </head>
      <body>
        <header class="top">
          <span class="brand">keygate</span>
          {viewer && (
            <>
              <nav aria-label="Console">
                {TABS.map((t) =>
                  t.needsKeyManagement && !viewer.canManageKeys ? (
                    <Disabled id={`tab-${t.id}`} reason={NO_KEY_MANAGEMENT}>
                      <span class="tab" aria-disabled="true">
                        {t.label}
                      </span>
                    </Disabled>
                  ) : (
                    <a class="tab" href={t.href} aria-current={props.tab === t.id ? "page" : undefined}>
                      {t.label}
                    </a>
                  ),
                )}
              </nav>
              <span class="who">
                Signed in as <strong>{viewer.keyName}</strong> · org <code>{viewer.orgId}</code>
              </span>
              <form method="post" action="/console/sign-out" class="inline">
                <Csrf viewer={viewer} />
                <button type="submit" class="link">
                  Sign out
                </button>
              </form>
            </>
          )}
        </header>
        <main id="main">{props.children}</main>
      </body>
    </html>
  );
}

export const Csrf = (props: { viewer: Viewer }) => <input type="hidden" name="_csrf" value={props.viewer.csrfToken} />;

/** The message for a field, tied to its control by `aria-describedby` (`<id>-error`). */
export function FieldError(props: { id: string; errors?: FieldErrors; field: FieldName }) {
  const message = props.errors?.[props.field];
  return message ? (
    <p class="field-error" id={`${props.id}-error`} role="alert">
      {message}
    </p>
  ) : null;
}

export const describedBy = (id: string, errors: FieldErrors | undefined, field: FieldName) =>
  errors?.[field] ? `${id}-error` : undefined;

export function Notice(props: { kind: "ok" | "error"; children: Child }) {
  return (
    <p class={`notice ${props.kind}`} role={props.kind === "error" ? "alert" : "status"}>
      {props.children}
    </p>
  );
}

/** A UTC date and time, compact and unambiguous. */
export function When(props: { iso: string }) {
  return <time datetime={props.iso}>{props.iso.slice(0, 16).replace("T", " ")} UTC</time>;
}

export const Badge = (props: { tone?: "role" | "scope" | "danger" | "muted" | "warn"; children: Child }) => (
  <span class={`badge ${props.tone ?? "role"}`}>{props.children}</span>
);

/**
 * A secret shown once (a new key, a webhook's signing secret): opened on load, Copy, the warning, and
 * Done, which (like Escape) clears the secret from the page before leaving for `done`.
 */
export function OneTimeSecretDialog(props: { title: string; warning: Child; label: string; value: string; done: string }) {
  return (
    <dialog id="secret-dialog" aria-labelledby="secret-title" data-autoopen data-secret="secret-value">
      <h2 id="secret-title">{props.title}</h2>
      <p class="warning" id="secret-warning">
        {props.warning}
      </p>
      <label for="secret-value">{props.label}</label>
      <div class="copy-row">
        <input type="text" id="secret-value" class="secret-value" value={props.value} readonly aria-describedby="secret-warning" autocomplete="off" spellcheck={false} />
        <button type="button" data-copy="secret-value">
          Copy
        </button>
      </div>
      <p class="hint" id="secret-value-copied" role="status" hidden>
        Copied to the clipboard.
      </p>
      <div class="actions">
        <a class="button primary" href={props.done} data-clear="secret-value" data-done>
          Done
        </a>
      </div>
    </dialog>
  );
}
