/** @jsxImportSource hono/jsx */
import { APP_ROLES, ORG_ROLES, SCOPES, type OrgRole, type Scope } from "../../domain/catalog";
import type { OrgPolicy } from "../../domain/policy";
import {
  defaultExpiration,
  first,
  limitsText,
  networkLines,
  offeredExpirations,
  RATE_LIMIT_ROWS,
  RATE_PERIODS,
  rateLimitRows,
  type FieldErrors,
  type FormValues,
  type RateLimit,
} from "../forms";
import { describedBy, FieldError } from "./layout";

/** Fields shared by the create dialog and the edit page. `id` prefixes every control's id. */

export interface AppOption {
  id: string;
  name: string;
}

export interface Grantable {
  orgRoles: OrgRole[];
  scopes: Set<Scope>;
  /** Apps the signed-in key may hand roles on (it administers them). */
  apps: AppOption[];
}

/** What the org's app list says for the app-role rows: known empty (a new org), some, or not visible to this key. */
export interface AppsState {
  orgHasNoApps: boolean;
  /** The signed-in key may create apps (org:admin). */
  canCreateApps: boolean;
}

const ORG_ROLE_LABELS: Record<OrgRole, string> = {
  none: "None — access only to the apps assigned below",
  member: "Member — read access to the organization",
  admin: "Admin — full access, every app included",
};

export const APP_ROLE_LABELS: Record<string, string> = {
  reader: "App Reader",
  uploader: "App Uploader",
  developer: "App Developer",
  admin: "App Admin",
};

export function NameField(props: { id: string; value: string; errors?: FieldErrors }) {
  const id = `${props.id}-name`;
  return (
    <>
      <label for={id}>Name</label>
      <input
        type="text"
        id={id}
        name="name"
        value={props.value}
        required
        maxlength={100}
        aria-invalid={props.errors?.name ? "true" : undefined}
        aria-describedby={describedBy(id, props.errors, "name")}
      />
      <FieldError id={id} errors={props.errors} field="name" />
    </>
  );
}

/** The signed-in key's expiry as a day, for hints. */
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Expiration: none, a preset, or a date. `keep` (edit only) leaves it as it is. Offered only what the
 * API would accept: no "no expiration" when the policy requires one or the signed-in key itself
 * expires, no preset past the policy's cap or the signed-in key's own expiry.
 */
export function ExpirationField(props: {
  id: string;
  form: FormValues;
  errors?: FieldErrors;
  policy: OrgPolicy;
  signerExpiresAt: number | null;
  keep?: string;
}) {
  const id = `${props.id}-expiration`;
  const offered = offeredExpirations(props.policy, props.signerExpiresAt);
  const chosen = first(props.form, "expiration") || (props.keep ? "keep" : first(defaultExpiration(props.policy, props.signerExpiresAt), "expiration"));
  const rules = [
    props.policy.requireExpiration ? "Your organization's policy requires an expiration." : "",
    props.policy.maxLifetimeDays !== null ? `Keys may live at most ${props.policy.maxLifetimeDays} days.` : "",
    props.signerExpiresAt !== null ? `Your key expires on ${day(props.signerExpiresAt)}: a key it gives out cannot live longer.` : "",
  ].filter(Boolean);
  return (
    <>
      <label for={id}>Expiration{props.policy.requireExpiration ? " (required)" : ""}</label>
      <select
        id={id}
        name="expiration"
        aria-invalid={props.errors?.expiration ? "true" : undefined}
        aria-describedby={[rules.length ? `${id}-hint` : "", describedBy(id, props.errors, "expiration") ?? ""].join(" ").trim() || undefined}
      >
        {props.keep && <option value="keep" selected={chosen === "keep"}>{`Keep: ${props.keep}`}</option>}
        {offered.none && (
          <option value="none" selected={chosen === "none"}>
            No expiration
          </option>
        )}
        {offered.presets.map((d) => (
          <option value={String(d)} selected={chosen === String(d)}>{`${d} days`}</option>
        ))}
        <option value="date" selected={chosen === "date"}>
          On a date…
        </option>
      </select>
      {rules.length > 0 && (
        <p class="hint" id={`${id}-hint`}>
          {rules.join(" ")}
        </p>
      )}
      <div data-when-date>
        <label for={`${id}-date`}>Expiration date</label>
        <input type="date" id={`${id}-date`} name="expiresOn" value={first(props.form, "expiresOn")} />
      </div>
      <FieldError id={id} errors={props.errors} field="expiration" />
    </>
  );
}

/** Where a key's app roles come from when there are none to offer: the first app, or who can make one. */
function NoApps(props: { id: string; apps?: AppsState }) {
  if (!props.apps?.orgHasNoApps) {
    return <p class="hint">There are no apps your key administers, so it cannot give this key a role on an app.</p>;
  }
  return (
    <div class="callout" id={`${props.id}-first-app`}>
      <p>
        <strong>Your organization has no apps yet.</strong> Per-app roles give a key access to one app only.
      </p>
      {props.apps.canCreateApps ? (
        <p>
          <a class="button" href="/console/apps">
            Create your first app
          </a>{" "}
          then come back to give this key a role on it. Until then, an organization role (Member reads the
          organization) is all a key can hold.
        </p>
      ) : (
        <p>An org admin creates apps on the Apps page. Until then, an organization role is all a key can hold.</p>
      )}
    </div>
  );
}

/** Org role and per-app roles of an RBAC key. */
export function RbacFields(props: {
  id: string;
  form: FormValues;
  errors?: FieldErrors;
  grantable: Grantable;
  appNames: Map<string, string>;
  apps?: AppsState;
}) {
  const { id, form, errors, grantable } = props;
  const orgRole = first(form, "orgRole") || "none";
  const offered = ORG_ROLES.filter((r) => grantable.orgRoles.includes(r) || r === orgRole);
  const rows = (form.appId ?? []).map((appId, i) => ({ appId, role: form.appRole?.[i] ?? "reader" })).filter((r) => r.appId);
  while (rows.length < 1) rows.push({ appId: "", role: "reader" });
  // An app the key already has a role on stays listed even if the signer cannot administer it.
  const apps = [...grantable.apps];
  for (const r of rows) if (r.appId && !apps.some((a) => a.id === r.appId)) apps.push({ id: r.appId, name: props.appNames.get(r.appId) ?? r.appId });
  return (
    <>
      <label for={`${id}-org-role`}>Organization role</label>
      <select
        id={`${id}-org-role`}
        name="orgRole"
        aria-invalid={errors?.orgRole ? "true" : undefined}
        aria-describedby={describedBy(`${id}-org-role`, errors, "orgRole")}
      >
        {offered.map((r) => (
          <option value={r} selected={r === orgRole} disabled={!grantable.orgRoles.includes(r)}>
            {ORG_ROLE_LABELS[r]}
          </option>
        ))}
      </select>
      <p class="hint">Only the roles your own key may grant are offered.</p>
      <FieldError id={`${id}-org-role`} errors={errors} field="orgRole" />
      <fieldset data-unless-admin aria-describedby={describedBy(`${id}-app-roles`, errors, "appRoles")}>
        <legend>Per-app roles</legend>
        {grantable.apps.length === 0 && rows.every((r) => !r.appId) ? (
          <NoApps id={id} apps={props.apps} />
        ) : (
          <>
            <div id={`${id}-app-rows`}>
              {rows.map((row, i) => (
                <div class="app-row">
                  <select name="appId" aria-label={`App ${i + 1}`}>
                    <option value="">— No app —</option>
                    {apps.map((a) => (
                      <option value={a.id} selected={a.id === row.appId}>
                        {a.name}
                      </option>
                    ))}
                  </select>
                  <select name="appRole" aria-label={`Role on app ${i + 1}`}>
                    {APP_ROLES.map((r) => (
                      <option value={r} selected={r === row.role}>
                        {APP_ROLE_LABELS[r]}
                      </option>
                    ))}
                  </select>
                </div>
              ))}
            </div>
            <button type="button" data-add-row={`${id}-app-rows`}>
              + Add App
            </button>
          </>
        )}
        <FieldError id={`${id}-app-roles`} errors={errors} field="appRoles" />
      </fieldset>
    </>
  );
}

/** Scope checkboxes of a scoped key: at least one; scopes the signer lacks cannot be ticked, and say why. */
export function ScopeFields(props: { id: string; form: FormValues; errors?: FieldErrors; grantable: Grantable }) {
  const chosen = new Set(props.form.scopes ?? []);
  const errorId = `${props.id}-scopes`;
  const lockedId = `${props.id}-scopes-locked`;
  const someLocked = SCOPES.some((scope) => !props.grantable.scopes.has(scope));
  return (
    <fieldset aria-describedby={describedBy(errorId, props.errors, "scopes")}>
      <legend>Scopes (at least one)</legend>
      {someLocked && (
        <p class="hint" id={lockedId}>
          Scopes marked “not yours” are ones your key does not hold: a key cannot grant access it lacks.
        </p>
      )}
      {SCOPES.map((scope) => {
        const allowed = props.grantable.scopes.has(scope);
        return (
          <label class="check">
            <input type="checkbox" name="scopes" value={scope} checked={chosen.has(scope)} disabled={!allowed} aria-describedby={allowed ? undefined : lockedId} />
            <code>{scope}</code>
            {!allowed && <span class="hint"> (not yours)</span>}
          </label>
        );
      })}
      <FieldError id={errorId} errors={props.errors} field="scopes" />
    </fieldset>
  );
}

/**
 * When the key starts working, where from, and the data it carries: the same three fields on create and edit.
 * Each range the API refuses is listed under the textarea with its line number and text.
 */
export function LifecycleFields(props: { id: string; form: FormValues; errors?: FieldErrors }) {
  const { id, form, errors } = props;
  const nb = `${id}-not-before`;
  const nets = `${id}-networks`;
  const meta = `${id}-metadata`;
  const refused = errors?.networkLines ?? {};
  const lines = networkLines(first(form, "allowedNetworks"));
  const badLines = lines.flatMap((l, index) => (refused[index] ? [{ ...l, message: refused[index]! }] : []));
  const netDescribed = [`${nets}-hint`, errors?.allowedNetworks ? `${nets}-error` : "", badLines.length ? `${nets}-lines` : ""].join(" ").trim();
  return (
    <fieldset>
      <legend>Start, networks and metadata (optional)</legend>
      <label for={nb}>Starts working at (UTC)</label>
      <input
        type="datetime-local"
        id={nb}
        name="notBefore"
        value={first(form, "notBefore")}
        aria-invalid={errors?.notBefore ? "true" : undefined}
        aria-describedby={[`${nb}-hint`, describedBy(nb, errors, "notBefore") ?? ""].join(" ").trim()}
      />
      <p class="hint" id={`${nb}-hint`}>
        Empty: at once. Until then the key answers NOT_YET_VALID and is listed as “Starts …”.
      </p>
      <FieldError id={nb} errors={errors} field="notBefore" />
      <label for={nets}>Allowed networks</label>
      <textarea
        id={nets}
        name="allowedNetworks"
        rows={3}
        spellcheck={false}
        autocomplete="off"
        placeholder={"203.0.113.0/24\n2001:db8::/32"}
        aria-invalid={errors?.allowedNetworks ? "true" : undefined}
        aria-describedby={netDescribed}
      >
        {first(form, "allowedNetworks")}
      </textarea>
      <p class="hint" id={`${nets}-hint`}>
        One IPv4 or IPv6 CIDR range a line (at most 50). Empty: the key works from anywhere. From elsewhere it answers
        IP_NOT_ALLOWED.
      </p>
      <FieldError id={nets} errors={errors} field="allowedNetworks" />
      {badLines.length > 0 && (
        <ul class="field-error line-errors" id={`${nets}-lines`}>
          {badLines.map((l) => (
            // The API's message quotes the range itself.
            <li>{`Line ${l.line}: ${l.message}`}</li>
          ))}
        </ul>
      )}
      <label for={meta}>Metadata (JSON)</label>
      <textarea
        id={meta}
        name="metadata"
        rows={3}
        spellcheck={false}
        autocomplete="off"
        class="code"
        placeholder={'{"customerId": "cus_123", "plan": "pro"}'}
        aria-invalid={errors?.metadata ? "true" : undefined}
        aria-describedby={[`${meta}-hint`, describedBy(meta, errors, "metadata") ?? ""].join(" ").trim()}
      >
        {first(form, "metadata")}
      </textarea>
      <p class="hint" id={`${meta}-hint`}>
        A JSON object of at most 1 KiB, returned when the key is verified and sent upstream. Not a place for secrets.
      </p>
      <FieldError id={meta} errors={errors} field="metadata" />
    </fieldset>
  );
}

/** The refused limits' messages by the row (from 1) they were typed in; the API numbers them as sent. */
function rowMessages(form: FormValues, errors?: FieldErrors): Map<number, string> {
  const refused = errors?.rateLimitRows ?? {};
  let rows: { row: number }[] = [];
  try {
    rows = rateLimitRows(form);
  } catch {
    // A row the console itself refused has its message in errors.rateLimits already.
  }
  return new Map(rows.flatMap((r, sent) => (refused[sent] ? [[r.row, refused[sent]!] as const] : [])));
}

/**
 * Up to three windows, one a row: "limit per period", the period named (second … day) or typed in seconds.
 * A row left without a limit is no limit. `emptyMeans` says what applies when every row is empty.
 */
export function RateLimitFields(props: { id: string; form: FormValues; errors?: FieldErrors; legend?: string; emptyMeans: string; disabled?: boolean }) {
  const { id, form, errors } = props;
  const byRow = rowMessages(form, errors);
  const hint = `${id}-rl-hint`;
  return (
    <fieldset class="rate-limits" disabled={props.disabled ? true : undefined} aria-describedby={[hint, describedBy(`${id}-rl`, errors, "rateLimits") ?? ""].join(" ").trim()}>
      <legend>{props.legend ?? "Rate limits (optional)"}</legend>
      <p class="hint" id={hint}>
        {`At most ${RATE_LIMIT_ROWS}, one per period. Over a limit, verification answers RATE_LIMITED until the window ends. ${props.emptyMeans}`}
      </p>
      {Array.from({ length: RATE_LIMIT_ROWS }, (_, i) => {
        const n = i + 1;
        const period = form.rlPeriod?.[i] || "60";
        const rowId = `${id}-rl-${n}`;
        const message = byRow.get(n);
        return (
          <div class="rl-row" data-rl-row>
            <div>
              <label for={`${rowId}-limit`}>{`Limit ${n}: requests`}</label>
              <input
                type="number"
                id={`${rowId}-limit`}
                name="rlLimit"
                min={1}
                inputmode="numeric"
                value={form.rlLimit?.[i] ?? ""}
                aria-invalid={message ? "true" : undefined}
                aria-describedby={message ? `${rowId}-error` : undefined}
              />
            </div>
            <div>
              <label for={`${rowId}-period`}>
                <span class="visually-hidden">{`Limit ${n}: `}</span>per
              </label>
              <select id={`${rowId}-period`} name="rlPeriod">
                {RATE_PERIODS.map((p) => (
                  <option value={String(p.seconds)} selected={period === String(p.seconds)}>
                    {p.label}
                  </option>
                ))}
                <option value="other" selected={period === "other"}>
                  seconds…
                </option>
              </select>
            </div>
            <div data-when-other>
              <label for={`${rowId}-seconds`}>
                <span class="visually-hidden">{`Limit ${n}: `}</span>seconds
              </label>
              <input type="number" id={`${rowId}-seconds`} name="rlSeconds" min={1} inputmode="numeric" value={form.rlSeconds?.[i] ?? ""} />
            </div>
            {message && (
              <p class="field-error rl-error" id={`${rowId}-error`}>
                {`Limit ${n}: ${message}`}
              </p>
            )}
          </div>
        );
      })}
      <FieldError id={`${id}-rl`} errors={errors} field="rateLimits" />
    </fieldset>
  );
}

/** "the organization's default: 100 per 10 s" or "none": what a key without its own limits gets. */
export const inheritedLimitsText = (policyLimits: readonly RateLimit[] | null | undefined) =>
  policyLimits?.length ? `Empty: the organization's default applies (${limitsText(policyLimits)}).` : "Empty: no limit.";

/** The balance (empty: unmetered) and an optional refill each day or month. `was` (edit): the balance shown. */
export function CreditsFields(props: { id: string; form: FormValues; errors?: FieldErrors; was?: string }) {
  const { id, form, errors } = props;
  const balance = `${id}-credits`;
  const refill = `${id}-refill`;
  const interval = first(form, "refillInterval") || "month";
  return (
    <fieldset>
      <legend>Credits (optional)</legend>
      {props.was !== undefined && <input type="hidden" name="creditsWas" value={props.was} />}
      <label for={balance}>Credits left</label>
      <input
        type="number"
        id={balance}
        name="credits"
        min={0}
        inputmode="numeric"
        value={first(form, "credits")}
        aria-invalid={errors?.credits ? "true" : undefined}
        aria-describedby={[`${balance}-hint`, describedBy(balance, errors, "credits") ?? ""].join(" ").trim()}
      />
      <p class="hint" id={`${balance}-hint`}>
        Each allowed use spends one; at zero the key answers USAGE_EXCEEDED. Empty: unmetered.
      </p>
      <FieldError id={balance} errors={errors} field="credits" />
      <div class="refill-row">
        <div>
          <label for={refill}>Refill to</label>
          <input
            type="number"
            id={refill}
            name="refillAmount"
            min={1}
            inputmode="numeric"
            value={first(form, "refillAmount")}
            aria-invalid={errors?.creditsRefill ? "true" : undefined}
            aria-describedby={[`${refill}-hint`, describedBy(refill, errors, "creditsRefill") ?? ""].join(" ").trim()}
          />
        </div>
        <div>
          <label for={`${refill}-interval`}>every</label>
          <select id={`${refill}-interval`} name="refillInterval">
            <option value="day" selected={interval === "day"}>
              day
            </option>
            <option value="month" selected={interval === "month"}>
              month
            </option>
          </select>
        </div>
      </div>
      <p class="hint" id={`${refill}-hint`}>
        The balance is set back to this at the start of each day or month (UTC). Empty: no refill.
      </p>
      <FieldError id={refill} errors={errors} field="creditsRefill" />
    </fieldset>
  );
}
