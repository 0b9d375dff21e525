/** @jsxImportSource hono/jsx */
import type { OrgPolicy } from "../../domain/policy";
import { keyPolicyViolation, refusalsFor, type FieldErrors, type FormValues, type Signer } from "../forms";
import { ExpirationField, NameField, RbacFields, ScopeFields, type AppOption, type AppsState, type Grantable } from "./key-fields";
import type { Key } from "./keys-page";
import { Badge, Csrf, Notice, Page, When, type Viewer } from "./layout";

export interface EditPageProps {
  viewer: Viewer;
  k: Key;
  apps: AppOption[];
  appsState: AppsState;
  policy: OrgPolicy;
  grantable: Grantable;
  signer: Signer;
  /** The submitted form when re-shown with errors; the key's current values otherwise. */
  form?: FormValues;
  errors?: FieldErrors;
}

/** The form values that show a key as it is. */
export function formOfKey(k: Key): FormValues {
  return {
    name: [k.name],
    orgRole: k.orgRole ? [k.orgRole] : [],
    appId: k.appRoles.map((r) => r.appId),
    appRole: k.appRoles.map((r) => r.role),
    scopes: k.scopes ?? [],
  };
}

export function EditKeyPage(props: EditPageProps) {
  const { k, errors } = props;
  const form = props.form ?? formOfKey(k);
  const appNames = new Map(props.apps.map((a) => [a.id, a.name]));
  const locked = refusalsFor(props.signer, k, appNames).manage;
  const violation = keyPolicyViolation(props.policy, k);
  return (
    <Page title={`Manage ${k.name}`} viewer={props.viewer} tab="keys">
      <p>
        <a href="/console/keys">← API keys</a>
      </p>
      <h1>{`Manage “${k.name}”`}</h1>
      <p class="hint">
        <code>{k.prefix}…</code> · {k.kind === "rbac" ? "RBAC key" : k.kind === "scoped" ? "Scoped key" : `Legacy key (mode ${k.mode})`} ·
        created <When iso={k.createdAt} />
      </p>
      {violation && (
        <p class="violation" id="edit-violation">
          <Badge tone="danger">Violates policy</Badge> {violation.message} Requests with this key are refused until it
          complies{k.kind !== "legacy" && violation.code !== "NETWORKS_REQUIRED" ? ": give it an expiration that fits the policy below." : "."}
        </p>
      )}
      {k.kind === "legacy" ? (
        <Notice kind="error">
          Legacy keys cannot be edited: they use the older mode-based permissions ({k.mode}) and cannot be turned into
          RBAC keys. Create a new RBAC key with the access this integration needs, then delete this one from the list.
        </Notice>
      ) : (
        <form method="post" action={`/console/keys/${k.id}`} data-key-form novalidate>
          <Csrf viewer={props.viewer} />
          {locked && (
            <p class="notice error" id="edit-locked">
              {locked} Sign in with a key that holds at least this key's access to change it.
            </p>
          )}
          {errors?.form && <Notice kind="error">{errors.form}</Notice>}
          <fieldset class="plain" disabled={locked ? true : undefined}>
            <legend class="visually-hidden">Key settings</legend>
            <NameField id="edit" value={form.name?.[0] ?? ""} errors={errors} />
            <ExpirationField
              id="edit"
              form={form}
              errors={errors}
              policy={props.policy}
              signerExpiresAt={props.signer.expiresAt}
              keep={k.expiresAt ? `expires ${k.expiresAt.slice(0, 10)}` : "never expires"}
            />
            {k.kind === "rbac" ? (
              <RbacFields id="edit" form={form} errors={errors} grantable={props.grantable} appNames={appNames} apps={props.appsState} />
            ) : (
              <ScopeFields id="edit" form={form} errors={errors} grantable={props.grantable} />
            )}
          </fieldset>
          <div class="actions">
            <a class="button" href="/console/keys">
              Cancel
            </a>
            {locked ? (
              <button type="button" class="primary" aria-disabled="true" aria-describedby="edit-locked">
                Save Changes
              </button>
            ) : (
              <button type="submit" class="primary">
                Save Changes
              </button>
            )}
          </div>
        </form>
      )}
    </Page>
  );
}
