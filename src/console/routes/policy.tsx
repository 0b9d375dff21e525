/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import type { VerifiedKey } from "../../verification/verify-key";
import { allows } from "../../domain/permissions";
import { MAX_LIFETIME_DAYS_LIMIT, NO_POLICY, policyViolation, type OrgPolicy } from "../../domain/policy";
import { consoleApi } from "../api";
import { orgPath, unlessUnavailable, viewerOf } from "../context";
import { fieldErrors, FormError, keyPolicyViolation, policyBody, rateLimitFormOf, type FieldErrors, type FormValues } from "../forms";
import { RateLimitFields } from "../views/key-fields";
import type { Key } from "../views/keys-page";
import { Csrf, Disabled, FieldError, Notice, Page, When, type Viewer } from "../views/layout";
import { allKeys } from "./apps";

const NEEDS_ORG_ADMIN = "Changing the key policy needs the org:admin permission (an org admin key).";
/** Where the way out starts: the keys page with its create dialog open. */
export const CREATE_KEY_LINK = "/console/keys?create=1";

/** The signed-in key, as the policy judges it. */
interface Self {
  name: string;
  createdAt: number;
  expiresAt: number | null;
  grants: VerifiedKey["grants"];
  allowedNetworks?: string[] | null;
}

/**
 * The smallest lifetime cap the signed-in key complies with, asked of the policy check itself; null
 * when no cap allows it (it never expires).
 */
function smallestCapFor(self: Self): number | null {
  const complies = (days: number) => policyViolation({ requireExpiration: false, maxLifetimeDays: days }, self) === null;
  if (!complies(MAX_LIFETIME_DAYS_LIMIT)) return null;
  let [low, high] = [1, MAX_LIFETIME_DAYS_LIMIT];
  while (low < high) {
    const mid = Math.floor((low + high) / 2);
    if (complies(mid)) high = mid;
    else low = mid + 1;
  }
  return low;
}

/** Why the key making the change must comply, what that means for the signed-in key, and the way out. */
function SelfRule(props: { self: Self; canEdit: boolean }) {
  const { self } = props;
  const cap = smallestCapFor(self);
  const networksRule = policyViolation({ ...NO_POLICY, requireNetworksForAdmin: true }, self);
  return (
    <section aria-labelledby="self-rule-heading" id="self-rule">
      <h2 id="self-rule-heading">Your own key must comply</h2>
      <p>
        The policy applies to every key on every request, including the key you are signed in with. A change your own
        key would break is refused: once saved, it would refuse that key on its very next request, and if it is the
        organization's only admin key, nobody could sign in to change the policy back.
      </p>
      <p>
        {self.expiresAt === null ? (
          <>
            Your key, <strong>{self.name}</strong>, never expires, so it cannot require an expiration or cap the
            lifetime of keys.
          </>
        ) : (
          <>
            Your key, <strong>{self.name}</strong>, expires on <When iso={new Date(self.expiresAt).toISOString()} />
            {cap === null ? "." : `: it can set a lifetime cap of ${cap} days or more.`}
          </>
        )}
        {networksRule && " It administers without allowed networks, so it cannot require them on administrator keys."}
      </p>
      <p>
        <strong>The way out:</strong> to set a stricter policy, first create an organization admin key that complies
        with it (for example, one that expires in 30 days), sign in with that key, then save the policy here. Delete the
        old key once nothing uses it.
      </p>
      {props.canEdit && (
        <p>
          <a class="button" href={CREATE_KEY_LINK}>
            Create a compliant admin key
          </a>
        </p>
      )}
    </section>
  );
}

/** The keys that break the policy now in force: they are refused on every request until they comply. */
function Violations(props: { keys: Key[]; complete: boolean; policy: OrgPolicy }) {
  const violating = props.keys.flatMap((k) => {
    const violation = keyPolicyViolation(props.policy, k);
    return violation ? [{ k, violation }] : [];
  });
  const n = violating.length;
  return (
    <section aria-labelledby="violations-heading" id="violations">
      <h2 id="violations-heading">Keys that violate this policy</h2>
      {n === 0 ? (
        <p>{props.complete ? "Every key complies with the policy in force." : "None of the keys checked violates the policy in force."}</p>
      ) : (
        <>
          <p>
            <strong>{`${n === 1 ? "1 key violates" : `${n} keys violate`} the policy in force.`}</strong> Every request
            with {n === 1 ? "it" : "them"} is refused until {n === 1 ? "it complies" : "they comply"}: give {n === 1 ? "it" : "each"} an
            expiration within the policy (Manage), or replace {n === 1 ? "it" : "them"} with compliant keys.
          </p>
          <ul id="violating-keys">
            {violating.map(({ k, violation }) => (
              <li>
                {k.kind === "legacy" ? <strong>{k.name}</strong> : <a href={`/console/keys/${k.id}`}>{k.name}</a>} — {violation.message}
              </li>
            ))}
          </ul>
        </>
      )}
      {!props.complete && <p class="hint">Only the first 1,000 keys were checked.</p>}
    </section>
  );
}

interface PolicyPageProps {
  viewer: Viewer;
  policy: OrgPolicy;
  current: OrgPolicy;
  canEdit: boolean;
  self: Self;
  keys: { items: Key[]; complete: boolean };
  errors?: FieldErrors;
  /** The rate limit rows as submitted, when a refusal shows them again. */
  limitsForm?: FormValues;
  /** The API refused the change because the signed-in key would break it. */
  selfViolation?: string;
  saved?: boolean;
}

function PolicyPage(props: PolicyPageProps) {
  const { policy, errors } = props;
  const save = (
    <button type="submit" class="primary" disabled={!props.canEdit}>
      Save policy
    </button>
  );
  return (
    <Page title="Key policy" viewer={props.viewer} tab="policy">
      <h1>Key policy</h1>
      <p class="hint">
        Enforced when a key is created, when it is edited and on every use: a key that breaks a policy set after it was
        made stops working, and its callers are told why.
      </p>
      {props.saved && <Notice kind="ok">Policy saved. It applies to every key from now on.</Notice>}
      {props.selfViolation && (
        <Notice kind="error">
          {`Not saved: your own key, ${props.self.name}, would break this policy (${props.selfViolation}) `}
          <a href={CREATE_KEY_LINK}>Create a compliant admin key</a>, sign in with it, and save the policy again.
        </Notice>
      )}
      {errors?.form && <Notice kind="error">{errors.form}</Notice>}
      <form method="post" action="/console/policy" data-policy-form>
        <Csrf viewer={props.viewer} />
        <fieldset disabled={!props.canEdit}>
          <legend>Expiration</legend>
          <label class="check">
            <input type="checkbox" name="requireExpiration" checked={policy.requireExpiration} /> Require an expiration on every key
          </label>
          <label for="policy-max">Maximum lifetime in days (empty: no cap)</label>
          <input
            type="number"
            id="policy-max"
            name="maxLifetimeDays"
            min={1}
            max={MAX_LIFETIME_DAYS_LIMIT}
            value={policy.maxLifetimeDays === null ? "" : String(policy.maxLifetimeDays)}
            aria-invalid={errors?.policy ? "true" : undefined}
            aria-describedby={errors?.policy ? "policy-max-error" : undefined}
          />
          <FieldError id="policy-max" errors={errors} field="policy" />
        </fieldset>
        <fieldset disabled={!props.canEdit}>
          <legend>Administrator keys</legend>
          <label class="check">
            <input type="checkbox" name="requireNetworksForAdmin" checked={policy.requireNetworksForAdmin ?? false} aria-describedby="policy-networks-hint" />{" "}
            Require allowed networks on keys that hold org:admin or apiKeyManagement
          </label>
          <p class="hint" id="policy-networks-hint">
            Such a key must list the networks it may be used from: without them it cannot be created or saved, and an
            existing one is refused on every request (POLICY_VIOLATION) until it has some.
          </p>
        </fieldset>
        <fieldset disabled={!props.canEdit}>
          <legend>Leaked keys</legend>
          <p class="hint">When secret scanning reports one of your keys found in public (a commit on GitHub, say):</p>
          <label class="check">
            <input type="radio" name="leakedKeyAction" value="revoke" checked={(policy.leakedKeyAction ?? "revoke") === "revoke"} aria-describedby="policy-leak-revoke" />{" "}
            Revoke it
          </label>
          <p class="hint indent" id="policy-leak-revoke">
            The key is deleted at once and for good; whoever used it needs a new key.
          </p>
          <label class="check">
            <input type="radio" name="leakedKeyAction" value="disable" checked={policy.leakedKeyAction === "disable"} aria-describedby="policy-leak-disable" />{" "}
            Disable it
          </label>
          <p class="hint indent" id="policy-leak-disable">
            The key is paused at once and listed as Leaked: regenerate its secret, then enable it, and its integrations
            keep their access.
          </p>
        </fieldset>
        <fieldset disabled={!props.canEdit}>
          <legend>Unused keys</legend>
          <label for="policy-unused">Flag keys unused for this many days (empty: never)</label>
          <input
            type="number"
            id="policy-unused"
            name="unusedKeyDays"
            min={1}
            max={MAX_LIFETIME_DAYS_LIMIT}
            value={policy.unusedKeyDays === null || policy.unusedKeyDays === undefined ? "" : String(policy.unusedKeyDays)}
            aria-invalid={errors?.unusedKeyDays ? "true" : undefined}
            aria-describedby={["policy-unused-hint", errors?.unusedKeyDays ? "policy-unused-error" : ""].join(" ").trim()}
          />
          <p class="hint" id="policy-unused-hint">
            Once a day, a key not used for this long (since its last use, or its creation) is recorded as unused in the
            audit log and sent to webhooks; the key list says “Unused for N days” (from 30 days when this is empty).
          </p>
          <FieldError id="policy-unused" errors={errors} field="unusedKeyDays" />
          <label class="check">
            <input type="checkbox" name="expireUnusedKeys" checked={policy.expireUnusedKeys ?? false} aria-describedby="policy-expire-unused-hint" /> Also
            expire them
          </label>
          <p class="hint indent" id="policy-expire-unused-hint">
            Such keys then stop working (expired) instead of only being flagged. The organization's last active admin
            key is never expired this way.
          </p>
        </fieldset>
        <RateLimitFields
          id="policy"
          form={props.limitsForm ?? rateLimitFormOf(policy.rateLimits)}
          errors={errors}
          legend="Default rate limits"
          emptyMeans="They apply to every key that has none of its own (a key's own limits replace them). Empty: no default."
          disabled={!props.canEdit}
        />
        <div class="actions">{props.canEdit ? save : <Disabled id="policy-save" reason={NEEDS_ORG_ADMIN}>{save}</Disabled>}</div>
      </form>
      <SelfRule self={props.self} canEdit={props.canEdit} />
      <Violations keys={props.keys.items} complete={props.keys.complete} policy={props.current} />
    </Page>
  );
}

async function render(c: Context<AppEnv>, app: App, { shown, ...extra }: Partial<PolicyPageProps> & { shown?: OrgPolicy } = {}, status = 200) {
  const api = consoleApi(app, c);
  const [policy, keys] = await Promise.all([api<OrgPolicy>("GET", `${orgPath(c)}/policy`), allKeys(c, api)]);
  // A key that may not read the policy is told so, never shown a made-up empty policy.
  const read = unlessUnavailable(policy);
  if (!read.ok) {
    return c.html(
      <Page title="Key policy" viewer={viewerOf(c)} tab="policy">
        <h1>Key policy</h1>
        <Notice kind="error">{read.error.message}</Notice>
      </Page>,
      read.status as 403,
    );
  }
  const current = read.data;
  const { caller } = c.var;
  return c.html(
    <PolicyPage
      viewer={viewerOf(c)}
      policy={shown ?? current}
      current={current}
      canEdit={allows(caller.grants, "org:admin")}
      self={caller}
      keys={keys}
      {...extra}
    />,
    status as 200,
  );
}

export function registerConsolePolicy(app: App) {
  app.get("/console/policy", (c) => render(c, app, { saved: c.req.query("saved") === "1" }));

  app.post("/console/policy", async (c) => {
    try {
      const api = consoleApi(app, c);
      const fromForm = policyBody(c.var.form);
      // PUT replaces the whole policy: a rule this form does not show is sent back as it stands, never dropped.
      const current = unlessUnavailable(await api<OrgPolicy>("GET", `${orgPath(c)}/policy`));
      if (!current.ok) return render(c, app, { errors: { form: current.error.message } }, current.status);
      const body: OrgPolicy = { ...current.data, ...fromForm };
      const result = unlessUnavailable(await api("PUT", `${orgPath(c)}/policy`, body));
      if (result.ok) return c.redirect("/console/policy?saved=1", 303);
      // The API's refusal of a policy its author breaks names the rule (details.code): say it as the way out.
      const selfRule = result.status === 409 ? policyViolation(body, c.var.caller) : null;
      if (selfRule) return render(c, app, { selfViolation: selfRule.message, shown: body }, result.status);
      const errors = fieldErrors(result.error);
      const limitsForm = c.var.form;
      return render(c, app, { errors: errors.policy || errors.unusedKeyDays || errors.rateLimits ? errors : { form: result.error.message }, shown: body, limitsForm }, result.status);
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
      return render(c, app, { errors: err.errors, limitsForm: c.var.form }, 400);
    }
  });
}
