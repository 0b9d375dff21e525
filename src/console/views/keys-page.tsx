/** @jsxImportSource hono/jsx */
import type { z } from "@hono/zod-openapi";
import type { Child } from "hono/jsx";
import type { OrgPolicy } from "../../domain/policy";
import type { KeyObject } from "../../routes/schemas";
import { defaultCreateForm, defaultExpiration, first, keyPolicyViolation, limitsText, refusalsFor, type FieldErrors, type FormValues, type Signer } from "../forms";
import { APP_ROLE_LABELS, CreditsFields, ExpirationField, inheritedLimitsText, LifecycleFields, RateLimitFields, NameField, RbacFields, ScopeFields, type AppOption, type AppsState, type Grantable } from "./key-fields";
import { Badge, Csrf, Disabled, NO_KEY_MANAGEMENT, Notice, OneTimeSecretDialog, Page, When, type Viewer } from "./layout";
import { SparklineLink } from "./usage-chart";

export type Key = z.infer<typeof KeyObject>;
export interface KeyPage {
  keys: Key[];
  nextCursor: string | null;
}

export interface KeysPageProps {
  viewer: Viewer;
  rbac: KeyPage;
  legacy: KeyPage;
  /** The cursors the shown pages started from, so pagination links keep the other section in place. */
  cursors: { cursor?: string; legacyCursor?: string };
  apps: AppOption[];
  /** Whether the org has apps at all, for leading a new org to its first. */
  appsState: AppsState;
  policy: OrgPolicy;
  grantable: Grantable;
  /** The signed-in key: actions on keys it cannot manage are disabled with the reason. */
  signer: Signer;
  create?: { form: FormValues; errors: FieldErrors };
  secret?: { key: string; name: string; secure: boolean; how: "created" | "regenerated" | "revealed"; previousUntil?: string | null };
  notice?: { kind: "ok" | "error"; text: string };
  /** Ids of listed keys a secret scanning report has disabled (see `leakedKeyIds`). */
  leaked?: ReadonlySet<string>;
  /** Epoch ms the page judges "unused for N days" at. */
  now?: number;
  /** The listed keys' verifications per day, the last 7 UTC days (see `dailyTotals`). */
  usage?: ReadonlyMap<string, number[]>;
}

const DAY_MS = 86_400_000;
/** Unused for this long is worth saying when the policy sets no `unusedKeyDays` of its own. */
export const DEFAULT_UNUSED_DAYS = 30;

/** Whole days since the key was last used (or created, when never used), once that reaches the policy's threshold; else null. */
export function unusedDays(k: Pick<Key, "lastUsedAt" | "createdAt">, policy: OrgPolicy, now: number): number | null {
  const since = Date.parse(k.lastUsedAt ?? k.createdAt);
  const days = Math.floor((now - since) / DAY_MS);
  return days >= (policy.unusedKeyDays ?? DEFAULT_UNUSED_DAYS) ? days : null;
}

/** The overlaps regenerate offers for the old secret, in seconds (the API allows at most 7 days). */
export const OVERLAP_CHOICES = [
  { seconds: 0, label: "No: it stops working at once" },
  { seconds: 3600, label: "For 1 hour" },
  { seconds: 86400, label: "For 1 day" },
  { seconds: 604800, label: "For 7 days" },
] as const;

/**
 * What state the key is in, as badges: Disabled, Leaked, Rotating (until when), Starts (a pending key),
 * Networks (how many, the ranges as the badge's description), Unused for N days, the credits left on a metered
 * key and its own rate limits.
 */
export function StateBadges(props: { k: Key; policy: OrgPolicy; leaked: boolean; now: number }) {
  const { k } = props;
  const unused = k.status === "active" ? unusedDays(k, props.policy, props.now) : null;
  const nets = k.allowedNetworks ?? [];
  return (
    <span class="state-badges">
      {k.status === "disabled" && <Badge tone="danger">Disabled</Badge>}
      {props.leaked && <Badge tone="danger">Leaked</Badge>}
      {k.rotation && (
        <Badge tone="warn">
          Rotating until <When iso={k.rotation.endsAt} />
        </Badge>
      )}
      {k.status === "pending" && k.notBefore && (
        <Badge tone="muted">
          Starts <When iso={k.notBefore} />
        </Badge>
      )}
      {nets.length > 0 && (
        <span class="tip-wrap" tabindex={0} aria-describedby={`networks-${k.id}`}>
          <Badge tone="muted">{`Networks: ${nets.length}`}</Badge>
          <span class="tooltip" role="tooltip" id={`networks-${k.id}`}>
            {`Works only from ${nets.join(", ")}`}
          </span>
        </span>
      )}
      {unused !== null && <Badge tone="warn">{`Unused for ${unused} days`}</Badge>}
      {k.credits && (k.credits.remaining > 0 ? <Badge tone="muted">{`Credits: ${k.credits.remaining.toLocaleString("en-US")} left`}</Badge> : <Badge tone="danger">No credits left</Badge>)}
      {k.rateLimits.length > 0 && <Badge tone="muted">{`Limited: ${limitsText(k.rateLimits)}`}</Badge>}
    </span>
  );
}

function Access(props: { k: Key; appNames: Map<string, string> }) {
  const { k } = props;
  if (k.kind === "legacy") return <Badge tone="muted">{`mode: ${k.mode}`}</Badge>;
  if (k.kind === "scoped") return <>{(k.scopes ?? []).map((s) => <Badge tone="scope">{s}</Badge>)}</>;
  return (
    <>
      <Badge>{`org: ${k.orgRole}`}</Badge>
      {k.appRoles.map((r) => (
        <Badge>{`${props.appNames.get(r.appId) ?? `app ${r.appId}`}: ${APP_ROLE_LABELS[r.role]}`}</Badge>
      ))}
    </>
  );
}

function Expires(props: { k: Key }) {
  if (props.k.status === "expired") return <Badge tone="danger">Expired</Badge>;
  return props.k.expiresAt ? <When iso={props.k.expiresAt} /> : <>Never</>;
}

/** Cancel (closes the dialog) and the dialog's submit button. */
export function DialogActions(props: { submit: string; tone: "primary" | "danger" }) {
  return (
    <div class="actions">
      <button type="button" data-close>
        Cancel
      </button>
      <button type="submit" class={props.tone}>
        {props.submit}
      </button>
    </div>
  );
}

/** A confirmation before an action that reduces access: it says what will stop working. */
export function ConfirmDialog(props: { id: string; viewer: Viewer; action: string; title: string; submit: string; tone: "primary" | "danger"; children: Child }) {
  return (
    <dialog id={props.id} aria-labelledby={`${props.id}-title`}>
      <form method="post" action={props.action}>
        <Csrf viewer={props.viewer} />
        <h2 id={`${props.id}-title`}>{props.title}</h2>
        <p>{props.children}</p>
        <DialogActions submit={props.submit} tone={props.tone} />
      </form>
    </dialog>
  );
}

/** An action the signed-in key may not take: focusable, announced as disabled, described by the visible reason. */
function LockedAction(props: { label: string; name: string; reasonId: string; tone?: "danger" }) {
  return (
    <button type="button" class={`locked ${props.tone ?? ""}`.trim()} aria-disabled="true" aria-label={`${props.label} ${props.name}`} aria-describedby={props.reasonId}>
      {props.label}
    </button>
  );
}

/** Regenerate's confirmation, with the choice to keep the old secret working for a while. */
function RegenerateDialog(props: { k: Key; viewer: Viewer }) {
  const { k } = props;
  const id = `regenerate-${k.id}`;
  return (
    <dialog id={id} aria-labelledby={`${id}-title`}>
      <form method="post" action={`/console/keys/${k.id}/regenerate`}>
        <Csrf viewer={props.viewer} />
        <h2 id={`${id}-title`}>{`Regenerate “${k.name}”?`}</h2>
        <p>
          A new secret replaces the current one and is shown once. Its name and access stay the same. Unless you keep
          the current secret working for a while, every integration still using it stops working immediately.
        </p>
        {k.status === "disabled" ? (
          // The API refuses an overlap on a disabled key (409 KEY_DISABLED): a leaked secret must not come back.
          <p class="hint">
            This key is disabled, so its current secret is not kept: it never verifies again, even once you enable the key.
          </p>
        ) : (
          <>
            <label for={`${id}-overlap`}>Keep the current secret working</label>
            <select id={`${id}-overlap`} name="overlapSeconds" aria-describedby={`${id}-overlap-hint`}>
              {OVERLAP_CHOICES.map((o) => (
                <option value={String(o.seconds)}>{o.label}</option>
              ))}
            </select>
            <p class="hint" id={`${id}-overlap-hint`}>
              During the overlap both secrets work, the old one reported as rotating, so running clients can switch without
              an outage. It never lasts past the key's expiry, and you can end it early from the key's page.
            </p>
          </>
        )}
        <DialogActions submit="Regenerate" tone="primary" />
      </form>
    </dialog>
  );
}

function KeyRow(props: {
  k: Key;
  viewer: Viewer;
  appNames: Map<string, string>;
  policy: OrgPolicy;
  signer: Signer;
  leaked: boolean;
  now: number;
  totals: number[] | undefined;
}) {
  const { k, viewer } = props;
  const regen = `regenerate-${k.id}`;
  const del = `delete-${k.id}`;
  const reveal = `reveal-${k.id}`;
  const reasonId = `locked-${k.id}`;
  const refused = refusalsFor(props.signer, k, props.appNames);
  const reason = refused.manage ?? refused.secret;
  const violation = keyPolicyViolation(props.policy, k);
  return (
    <tr data-key-id={k.id}>
      <td data-label="Name">
        <span class="key-name">{k.name}</span> <StateBadges k={k} policy={props.policy} leaked={props.leaked} now={props.now} />
        {violation && (
          <p class="violation" id={`violation-${k.id}`}>
            <Badge tone="danger">Violates policy</Badge> {violation.message} Requests with this key are refused until it complies.
          </p>
        )}
      </td>
      <td data-label="Key">
        <code>{k.prefix}…</code>
        {!k.secure && (
          <>
            {" "}
            <Badge tone="muted">not secure</Badge>
          </>
        )}
      </td>
      <td data-label="Roles / scopes">
        <Access k={k} appNames={props.appNames} />
      </td>
      <td data-label="Last used">{k.lastUsedAt ? <When iso={k.lastUsedAt} /> : "Never"}</td>
      <td data-label="Last 7 days">{props.totals ? <SparklineLink keyId={k.id} name={k.name} totals={props.totals} /> : <span class="hint">—</span>}</td>
      <td data-label="Expires">
        <Expires k={k} />
      </td>
      <td class="actions-cell">
        <div class="row-actions">
          {k.kind !== "legacy" &&
            (refused.manage ? (
              <LockedAction label="Manage" name={k.name} reasonId={reasonId} />
            ) : (
              <a class="button" href={`/console/keys/${k.id}`} aria-label={`Manage ${k.name}`}>
                Manage
              </a>
            ))}
          {!k.secure &&
            (reason ? (
              <LockedAction label="Reveal" name={k.name} reasonId={reasonId} />
            ) : (
              <button type="button" data-open={reveal} aria-label={`Reveal ${k.name}`}>
                Reveal
              </button>
            ))}
          {reason ? (
            <LockedAction label="Regenerate" name={k.name} reasonId={reasonId} />
          ) : (
            <button type="button" data-open={regen} aria-label={`Regenerate ${k.name}`}>
              Regenerate
            </button>
          )}
          {refused.manage ? (
            <LockedAction label="Delete" name={k.name} reasonId={reasonId} tone="danger" />
          ) : (
            <button type="button" class="danger" data-open={del} aria-label={`Delete ${k.name}`}>
              Delete
            </button>
          )}
        </div>
        {reason && (
          <p class="locked-reason" id={reasonId}>
            {reason}
          </p>
        )}
        {!reason && <RegenerateDialog k={k} viewer={viewer} />}
        {!k.secure && !reason && (
          <ConfirmDialog id={reveal} viewer={viewer} action={`/console/keys/${k.id}/reveal`} title={`Reveal “${k.name}”?`} submit="Reveal key" tone="primary">
            The full key will be shown on this screen. Every reveal is recorded in the audit log. The key itself does
            not change, and nothing stops working.
          </ConfirmDialog>
        )}
        {!refused.manage && (
          <ConfirmDialog id={del} viewer={viewer} action={`/console/keys/${k.id}/revoke`} title={`Delete “${k.name}”?`} submit="Delete key" tone="danger">
            The key is revoked immediately and cannot be restored: every request that uses it will fail, and any
            automation relying on it stops working until you give it a new key.
          </ConfirmDialog>
        )}
      </td>
    </tr>
  );
}

function KeyTable(props: {
  label: string;
  id: string;
  page: KeyPage;
  viewer: Viewer;
  appNames: Map<string, string>;
  policy: OrgPolicy;
  signer: Signer;
  leaked: ReadonlySet<string>;
  now: number;
  usage: ReadonlyMap<string, number[]>;
  empty: string;
  next?: string;
  first?: string;
}) {
  return (
    <section aria-labelledby={`${props.id}-heading`}>
      {props.page.keys.length === 0 ? (
        <p class="empty">{props.empty}</p>
      ) : (
        <table id={props.id} class="cards">
          <caption class="visually-hidden">{props.label}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Key</th>
              <th scope="col">Roles / scopes</th>
              <th scope="col">Last used</th>
              <th scope="col">Last 7 days</th>
              <th scope="col">Expires</th>
              <th scope="col">
                <span class="hint">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {props.page.keys.map((k) => (
              <KeyRow k={k} viewer={props.viewer} appNames={props.appNames} policy={props.policy} signer={props.signer} leaked={props.leaked.has(k.id)} now={props.now} totals={props.usage.get(k.id)} />
            ))}
          </tbody>
        </table>
      )}
      {(props.next || props.first) && (
        <nav class="pager" aria-label={`${props.label} pages`}>
          {props.first && <a href={props.first}>First page</a>}
          {props.next && <a href={props.next}>Next page</a>}
        </nav>
      )}
    </section>
  );
}

function pageLink(cursor: string | undefined, legacyCursor: string | undefined): string {
  const q = new URLSearchParams();
  if (cursor) q.set("cursor", cursor);
  if (legacyCursor) q.set("legacyCursor", legacyCursor);
  const s = q.toString();
  return `/console/keys${s ? `?${s}` : ""}`;
}

/** The practices the product pages recommend, where keys are made. */
function SecurityPractices() {
  return (
    <aside class="practices" aria-labelledby="practices-title">
      <h3 id="practices-title">Good practice</h3>
      <ul>
        <li>
          <strong>Least privilege:</strong> one key per integration, with only the roles or scopes it needs.
        </li>
        <li>
          <strong>Set an expiry</strong> and <strong>rotate regularly</strong> (Regenerate); short expirations for
          temporary work.
        </li>
        <li>
          <strong>Never commit keys</strong> to git: keep them in CI variables or a secret manager.
        </li>
        <li>Delete keys you no longer use, or that may have leaked.</li>
      </ul>
    </aside>
  );
}

function CreateDialog(props: KeysPageProps & { appNames: Map<string, string> }) {
  const form = props.create?.form ?? defaultCreateForm(props.grantable, defaultExpiration(props.policy, props.signer.expiresAt));
  const errors = props.create?.errors;
  const kind = first(form, "kind") || "rbac";
  const secure = first(form, "secure") === "on";
  return (
    <dialog id="create-dialog" aria-labelledby="create-title" data-autoopen={props.create ? true : undefined}>
      <form method="post" action="/console/keys" data-key-form novalidate>
        <Csrf viewer={props.viewer} />
        <h2 id="create-title">Create API key</h2>
        {errors?.form && <Notice kind="error">{errors.form}</Notice>}
        <SecurityPractices />
        <NameField id="create" value={first(form, "name")} errors={errors} />
        <label class="check">
          <input type="checkbox" name="secure" checked={secure} /> Create secure key
        </label>
        <p class="hint">
          A secure key is stored only as a hash: it is shown once, after creation, and can never be retrieved again.
        </p>
        <ExpirationField id="create" form={form} errors={errors} policy={props.policy} signerExpiresAt={props.signer.expiresAt} />
        <LifecycleFields id="create" form={form} errors={errors} />
        <RateLimitFields id="create" form={form} errors={errors} emptyMeans={inheritedLimitsText(props.policy.rateLimits)} />
        <CreditsFields id="create" form={form} errors={errors} />
        <fieldset>
          <legend>Kind of key</legend>
          <label class="check">
            <input type="radio" name="kind" value="rbac" checked={kind === "rbac"} /> RBAC key — an organization role and per-app roles
          </label>
          <label class="check">
            <input type="radio" name="kind" value="scoped" checked={kind === "scoped"} /> Scoped key — a fixed set of scopes
          </label>
        </fieldset>
        <div data-kind-section="rbac">
          <RbacFields id="create" form={form} errors={errors} grantable={props.grantable} appNames={props.appNames} apps={props.appsState} />
        </div>
        <div data-kind-section="scoped">
          <ScopeFields id="create" form={form} errors={errors} grantable={props.grantable} />
        </div>
        <DialogActions submit="Create" tone="primary" />
      </form>
    </dialog>
  );
}

const SECRET_TITLES = {
  created: (name: string) => `Key “${name}” created`,
  regenerated: (name: string) => `New secret for “${name}”`,
  revealed: (name: string) => `Key “${name}”`,
};

function SecretDialog(props: { secret: NonNullable<KeysPageProps["secret"]> }) {
  const { secret } = props;
  const warning =
    (secret.secure
      ? "Copy this key now. It will not be shown again: only its hash is stored, so nobody can retrieve it later."
      : "Copy this key now. It will not be shown here again; this key is not secure, so a key manager can reveal it later (each reveal is audited).") +
    (secret.how !== "regenerated"
      ? ""
      : secret.previousUntil
        ? ` The previous secret keeps working until ${secret.previousUntil.slice(0, 16).replace("T", " ")} UTC, reported as rotating: switch every client before then.`
        : " The previous secret has already stopped working.");
  return <OneTimeSecretDialog title={SECRET_TITLES[secret.how](secret.name)} warning={warning} label="API key" value={secret.key} done="/console/keys" />;
}

/** The API keys page: RBAC and scoped keys, then legacy keys, each paginated on its own. */
export function KeysPage(props: KeysPageProps) {
  const appNames = new Map(props.apps.map((a) => [a.id, a.name]));
  const { cursor, legacyCursor } = props.cursors;
  const leaked = props.leaked ?? new Set<string>();
  const now = props.now ?? Date.now();
  const usage = props.usage ?? new Map<string, number[]>();
  return (
    <Page title="API keys" viewer={props.viewer} tab="keys">
      <div class="toolbar">
        <h1>API keys</h1>
        <button type="button" class="primary" data-open="create-dialog">
          + Create key
        </button>
      </div>
      {props.notice && <Notice kind={props.notice.kind}>{props.notice.text}</Notice>}
      <h2 id="rbac-keys-heading">RBAC and scoped keys</h2>
      <KeyTable
        id="rbac-keys"
        label="RBAC and scoped keys"
        page={props.rbac}
        viewer={props.viewer}
        appNames={appNames}
        policy={props.policy}
        signer={props.signer}
        leaked={leaked}
        now={now}
        usage={usage}
        empty="No RBAC or scoped keys yet. Create one to give an integration exactly the access it needs."
        next={props.rbac.nextCursor ? pageLink(props.rbac.nextCursor, legacyCursor) : undefined}
        first={cursor ? pageLink(undefined, legacyCursor) : undefined}
      />
      <h2 id="legacy-keys-heading">Legacy keys</h2>
      <p class="hint">
        Mode-based keys (read, upload, write, all). They still work and can be regenerated or deleted, but cannot be
        edited into RBAC keys: create an RBAC key instead and delete the legacy one.
      </p>
      <KeyTable
        id="legacy-keys"
        label="Legacy keys"
        page={props.legacy}
        viewer={props.viewer}
        appNames={appNames}
        policy={props.policy}
        signer={props.signer}
        leaked={leaked}
        now={now}
        usage={usage}
        empty="No legacy keys."
        next={props.legacy.nextCursor ? pageLink(cursor, props.legacy.nextCursor) : undefined}
        first={legacyCursor ? pageLink(cursor, undefined) : undefined}
      />
      <CreateDialog {...props} appNames={appNames} />
      {props.secret && <SecretDialog secret={props.secret} />}
    </Page>
  );
}

/** What a signed-in key without `apiKeyManagement` sees: the page, disabled, saying why. */
export function KeysPageDisabled(props: { viewer: Viewer }) {
  return (
    <Page title="API keys" viewer={props.viewer} tab="keys">
      <div class="toolbar">
        <h1>API keys</h1>
        <Disabled id="create-disabled" reason={NO_KEY_MANAGEMENT}>
          <button type="button" class="primary" disabled>
            + Create key
          </button>
        </Disabled>
      </div>
      <section aria-disabled="true" class="empty" id="keys-disabled">
        <p>
          <strong>Key management is not available to this key.</strong>
        </p>
        <p>{NO_KEY_MANAGEMENT}</p>
      </section>
    </Page>
  );
}

