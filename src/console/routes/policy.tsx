/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { allows } from "../../domain/permissions";
import { MAX_LIFETIME_DAYS_LIMIT, type OrgPolicy } from "../../domain/policy";
import { consoleApi } from "../api";
import { dataOr, orgPath, unlessUnavailable, viewerOf } from "../context";
import { fieldErrors, FormError, policyBody, type FieldErrors } from "../forms";
import { Csrf, Disabled, FieldError, Notice, Page, type Viewer } from "../views/layout";

const NEEDS_ORG_ADMIN = "Changing the key policy needs the org:admin permission (an org admin key).";

function PolicyPage(props: { viewer: Viewer; policy: OrgPolicy; canEdit: boolean; errors?: FieldErrors; saved?: boolean }) {
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
      {errors?.form && <Notice kind="error">{errors.form}</Notice>}
      <form method="post" action="/console/policy">
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
        <div class="actions">{props.canEdit ? save : <Disabled id="policy-save" reason={NEEDS_ORG_ADMIN}>{save}</Disabled>}</div>
      </form>
    </Page>
  );
}

async function render(c: Context<AppEnv>, app: App, extra: { errors?: FieldErrors; saved?: boolean; shown?: OrgPolicy } = {}, status = 200) {
  const current = dataOr(
    await consoleApi(app, c)<OrgPolicy>("GET", `${orgPath(c)}/policy`),
    { requireExpiration: false, maxLifetimeDays: null },
  );
  const canEdit = allows(c.var.caller.grants, "org:admin");
  return c.html(<PolicyPage viewer={viewerOf(c)} policy={extra.shown ?? current} canEdit={canEdit} errors={extra.errors} saved={extra.saved} />, status as 200);
}

export function registerConsolePolicy(app: App) {
  app.get("/console/policy", (c) => render(c, app, { saved: c.req.query("saved") === "1" }));

  app.post("/console/policy", async (c) => {
    try {
      const body = policyBody(c.var.form);
      const result = unlessUnavailable(await consoleApi(app, c)("PUT", `${orgPath(c)}/policy`, body));
      if (result.ok) return c.redirect("/console/policy?saved=1", 303);
      const errors = fieldErrors(result.error);
      return render(c, app, { errors: errors.policy ? errors : { form: result.error.message }, shown: body }, result.status);
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
      return render(c, app, { errors: err.errors }, 400);
    }
  });
}
