/** @jsxImportSource hono/jsx */
import { APP_ROLES, EXPIRY_PRESETS_DAYS, ORG_ROLES, SCOPES, type OrgRole, type Scope } from "../../domain/catalog";
import { first, type FieldErrors, type FormValues } from "../forms";
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

/**
 * Expiration: none, a preset, or a date. `keep` (edit only) leaves it as it is. The policy removes
 * "no expiration" when it requires one and presets longer than its cap.
 */
export function ExpirationField(props: {
  id: string;
  form: FormValues;
  errors?: FieldErrors;
  policy: { requireExpiration: boolean; maxLifetimeDays: number | null };
  keep?: string;
}) {
  const id = `${props.id}-expiration`;
  const chosen = first(props.form, "expiration") || (props.keep ? "keep" : props.policy.requireExpiration ? "30" : "none");
  const presets = EXPIRY_PRESETS_DAYS.filter((d) => props.policy.maxLifetimeDays === null || d <= props.policy.maxLifetimeDays);
  const rules = [
    props.policy.requireExpiration ? "Your organization's policy requires an expiration." : "",
    props.policy.maxLifetimeDays !== null ? `Keys may live at most ${props.policy.maxLifetimeDays} days.` : "",
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
        {!props.policy.requireExpiration && (
          <option value="none" selected={chosen === "none"}>
            No expiration
          </option>
        )}
        {presets.map((d) => (
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

/** Org role and per-app roles of an RBAC key. */
export function RbacFields(props: { id: string; form: FormValues; errors?: FieldErrors; grantable: Grantable; appNames: Map<string, string> }) {
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
          <p class="hint">There are no apps your key administers. Apps are created with POST /v1/orgs/{"{orgId}"}/apps.</p>
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

/** Scope checkboxes of a scoped key: at least one; scopes the signer lacks cannot be ticked. */
export function ScopeFields(props: { id: string; form: FormValues; errors?: FieldErrors; grantable: Grantable }) {
  const chosen = new Set(props.form.scopes ?? []);
  const errorId = `${props.id}-scopes`;
  return (
    <fieldset aria-describedby={describedBy(errorId, props.errors, "scopes")}>
      <legend>Scopes (at least one)</legend>
      {SCOPES.map((scope) => {
        const allowed = props.grantable.scopes.has(scope);
        return (
          <label class="check" title={allowed ? undefined : "Your key does not hold this scope, so it cannot grant it."}>
            <input type="checkbox" name="scopes" value={scope} checked={chosen.has(scope)} disabled={!allowed} />
            <code>{scope}</code>
          </label>
        );
      })}
      <FieldError id={errorId} errors={props.errors} field="scopes" />
    </fieldset>
  );
}
