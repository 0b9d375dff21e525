/** @jsxImportSource hono/jsx */
import type { OrgPolicy } from "../../domain/policy";
import { keyPolicyViolation, limitsText, localInputValue, metadataText, rateLimitFormOf, refusalsFor, type FieldErrors, type FormValues, type Signer } from "../forms";
import { CreditsFields, ExpirationField, inheritedLimitsText, LifecycleFields, NameField, RateLimitFields, RbacFields, ScopeFields, type AppOption, type AppsState, type Grantable } from "./key-fields";
import { ConfirmDialog, StateBadges, type Key } from "./keys-page";
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
  notice?: { kind: "ok" | "error"; text: string };
  /** Disabling was refused because this is the org's last admin key: offer to do it anyway. */
  offerForce?: boolean;
  /** A secret scanning report left the key disabled (see `leakedKeyIds`). */
  leaked?: boolean;
  now?: number;
}

/** The form values that show a key as it is. */
export function formOfKey(k: Key): FormValues {
  return {
    name: [k.name],
    orgRole: k.orgRole ? [k.orgRole] : [],
    appId: k.appRoles.map((r) => r.appId),
    appRole: k.appRoles.map((r) => r.role),
    scopes: k.scopes ?? [],
    // A start already passed is no longer a choice to show: only a pending key's start is.
    notBefore: [k.status === "pending" ? localInputValue(k.notBefore) : ""],
    allowedNetworks: [(k.allowedNetworks ?? []).join("\n")],
    metadata: [metadataText(k.metadata)],
    ...rateLimitFormOf(k.rateLimits),
    credits: [k.credits ? String(k.credits.remaining) : ""],
    refillAmount: [k.credits?.refill ? String(k.credits.refill.amount) : ""],
    refillInterval: [k.credits?.refill?.interval ?? "month"],
  };
}

/** What meters the key now: credits left and the next refill, the limits in force (its own or the org's), its usage. */
function MeteringSection(props: { k: Key; policy: OrgPolicy }) {
  const { k } = props;
  const orgLimits = props.policy.rateLimits ?? [];
  return (
    <section aria-labelledby="metering-heading" id="metering" class="panel">
      <h2 id="metering-heading">Credits and rate limits</h2>
      <dl class="details">
        <dt>Credits</dt>
        <dd id="metering-credits">
          {k.credits === null ? (
            "Unmetered: every allowed use is free."
          ) : (
            <>
              {k.credits.remaining > 0 ? `${k.credits.remaining.toLocaleString("en-US")} left` : "None left: the key answers USAGE_EXCEEDED"}
              {k.credits.refill && k.credits.nextRefillAt && (
                <>
                  {`; refilled to ${k.credits.refill.amount.toLocaleString("en-US")} each ${k.credits.refill.interval}, next `}
                  <When iso={k.credits.nextRefillAt} />
                </>
              )}
              {!k.credits.refill && "; no refill"}
            </>
          )}
        </dd>
        <dt>Rate limits</dt>
        <dd id="metering-limits">
          {k.rateLimits.length > 0
            ? `Its own: ${limitsText(k.rateLimits)}`
            : orgLimits.length > 0
              ? `The organization's default: ${limitsText(orgLimits)}`
              : "None"}
        </dd>
      </dl>
      <p>
        <a href={`/console/keys/${k.id}/usage`}>Usage</a>
        <span class="hint"> — this key's verifications by outcome over time</span>
      </p>
    </section>
  );
}

/** "3 min ago", "5 h ago", "2 days ago": how long since `iso`, roughly. */
export function ago(iso: string, now: number): string {
  const minutes = Math.max(0, Math.round((now - Date.parse(iso)) / 60_000));
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

/** A control the signed-in key may not use here, described by the page's reason. */
function LockedButton(props: { label: string; tone?: "danger" }) {
  return (
    <button type="button" class={props.tone} aria-disabled="true" aria-describedby="edit-locked">
      {props.label}
    </button>
  );
}

/** The previous secret of a rotation: until when it works, whether clients still use it, and ending it now. */
function RotationSection(props: { k: Key; viewer: Viewer; locked: boolean; now: number }) {
  const { k } = props;
  const rotation = k.rotation!;
  return (
    <section aria-labelledby="rotation-heading" id="rotation" class="panel">
      <h2 id="rotation-heading">Rotation in progress</h2>
      <p>
        The previous secret (<code>{rotation.previousPrefix}…</code>) keeps working beside the new one until{" "}
        <When iso={rotation.endsAt} />, reported as rotating.
      </p>
      <p id="rotation-last-used">
        {rotation.previousLastUsedAt ? (
          <>
            Old secret last used <When iso={rotation.previousLastUsedAt} /> ({ago(rotation.previousLastUsedAt, props.now)}): some
            client still uses it.
          </>
        ) : (
          <>No client has used the old secret since the rotation began.</>
        )}
      </p>
      <div class="actions start">
        {props.locked ? (
          <LockedButton label="End overlap now" tone="danger" />
        ) : (
          <button type="button" class="danger" data-open="end-overlap-dialog">
            End overlap now
          </button>
        )}
      </div>
      {!props.locked && (
        <ConfirmDialog id="end-overlap-dialog" viewer={props.viewer} action={`/console/keys/${k.id}/end-overlap`} title="End the overlap now?" submit="End overlap" tone="danger">
          The previous secret stops working immediately, everywhere: any client still using it is refused from its next
          request. The new secret is not affected.
        </ConfirmDialog>
      )}
    </section>
  );
}

/** Disable (a reversible pause, confirmed first) or enable. */
function StatusSection(props: { k: Key; viewer: Viewer; locked: boolean; offerForce?: boolean }) {
  const { k } = props;
  const disabled = k.status === "disabled";
  return (
    <section aria-labelledby="status-heading" id="status" class="panel">
      <h2 id="status-heading">{disabled ? "This key is disabled" : "Disable"}</h2>
      {disabled ? (
        <p>
          Disabled {k.disabledAt && <When iso={k.disabledAt} />}: every request that uses it is refused (DISABLED).
          Enabling restores it as it was, with the same secret.
        </p>
      ) : (
        <p>Pause the key without deleting it: requests that use it are refused until you enable it again.</p>
      )}
      <div class="actions start">
        {props.locked ? (
          <LockedButton label={disabled ? "Enable" : "Disable"} tone={disabled ? undefined : "danger"} />
        ) : disabled ? (
          <form method="post" action={`/console/keys/${k.id}/enable`} class="inline">
            <Csrf viewer={props.viewer} />
            <button type="submit" class="primary">
              Enable
            </button>
          </form>
        ) : (
          <button type="button" class="danger" data-open="disable-dialog">
            Disable
          </button>
        )}
      </div>
      {!props.locked && !disabled && (
        <ConfirmDialog id="disable-dialog" viewer={props.viewer} action={`/console/keys/${k.id}/disable`} title={`Disable “${k.name}”?`} submit="Disable key" tone="danger">
          Every request that uses this key is refused (DISABLED) as soon as you confirm, everywhere, until you enable it
          again. Integrations relying on it stop working meanwhile.
        </ConfirmDialog>
      )}
      {props.offerForce && !disabled && (
        <form method="post" action={`/console/keys/${k.id}/disable`} class="callout" id="disable-force">
          <Csrf viewer={props.viewer} />
          <input type="hidden" name="force" value="true" />
          <p>
            This is the organization's last active admin key. Disabled, nobody can manage the organization until it is
            enabled again — and enabling it needs another admin key, or the bootstrap secret.
          </p>
          <p>
            <button type="submit" class="danger">
              Disable the last admin key anyway
            </button>
          </p>
        </form>
      )}
    </section>
  );
}

export function EditKeyPage(props: EditPageProps) {
  const { k, errors } = props;
  const form = props.form ?? formOfKey(k);
  const appNames = new Map(props.apps.map((a) => [a.id, a.name]));
  const locked = refusalsFor(props.signer, k, appNames).manage;
  const violation = keyPolicyViolation(props.policy, k);
  const now = props.now ?? Date.now();
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
      <p>
        <StateBadges k={k} policy={props.policy} leaked={props.leaked ?? false} now={now} />
      </p>
      {props.notice && <Notice kind={props.notice.kind}>{props.notice.text}</Notice>}
      {violation && (
        <p class="violation" id="edit-violation">
          <Badge tone="danger">Violates policy</Badge> {violation.message} Requests with this key are refused until it
          complies{k.kind !== "legacy" && violation.code !== "NETWORKS_REQUIRED" ? ": give it an expiration that fits the policy below." : "."}
        </p>
      )}
      {locked && (
        <p class="notice error" id="edit-locked">
          {locked} Sign in with a key that holds at least this key's access to change it.
        </p>
      )}
      <MeteringSection k={k} policy={props.policy} />
      {k.kind === "legacy" ? (
        <Notice kind="error">
          Legacy keys cannot be edited: they use the older mode-based permissions ({k.mode}) and cannot be turned into
          RBAC keys. Create a new RBAC key with the access this integration needs, then delete this one from the list.
        </Notice>
      ) : (
        <form method="post" action={`/console/keys/${k.id}`} data-key-form novalidate>
          <Csrf viewer={props.viewer} />
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
            <LifecycleFields id="edit" form={form} errors={errors} />
            <RateLimitFields id="edit" form={form} errors={errors} emptyMeans={inheritedLimitsText(props.policy.rateLimits)} />
            <CreditsFields id="edit" form={form} errors={errors} was={props.form ? (form.creditsWas?.[0] ?? "") : k.credits ? String(k.credits.remaining) : ""} />
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
      {k.rotation && <RotationSection k={k} viewer={props.viewer} locked={Boolean(locked)} now={now} />}
      <StatusSection k={k} viewer={props.viewer} locked={Boolean(locked)} offerForce={props.offerForce} />
    </Page>
  );
}
