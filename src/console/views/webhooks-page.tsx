/** @jsxImportSource hono/jsx */
import { EVENT_TYPES } from "../../storage/events";
import { first, type FieldErrors, type FormValues } from "../forms";
import type { ShownSigningSecret } from "../one-time-secret";
import { ConfirmDialog, DialogActions } from "./keys-page";
import { Badge, Csrf, describedBy, FieldError, Notice, OneTimeSecretDialog, Page, When, type Viewer } from "./layout";

/** Webhook endpoints and their delivery logs, as the API gives them. */

export interface Webhook {
  id: string;
  url: string;
  eventTypes: string[];
  description: string | null;
  createdAt: string;
  disabledAt: string | null;
}

export interface Delivery {
  id: string;
  eventId: string;
  eventType: string | null;
  status: "pending" | "succeeded" | "failed" | "dead";
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** What each event means, for the register dialog's checkboxes. */
const EVENT_LABELS: Record<(typeof EVENT_TYPES)[number], string> = {
  "key.created": "a key is created",
  "key.updated": "a key is edited",
  "key.regenerated": "a key gets a new secret",
  "key.rotation_ended": "a rotation's overlap is ended early",
  "key.disabled": "a key is disabled",
  "key.enabled": "a key is enabled",
  "key.revoked": "a key is deleted",
  "key.leaked": "a key is reported leaked by secret scanning",
  "key.expiring": "a key expires in 7 days, or in 1 day",
  "key.expired": "a key has expired",
  "key.unused": "a key has gone unused for the policy's days",
  "policy.updated": "the key policy changes",
  "app.created": "an app is created",
  "app.deleted": "an app is deleted",
};

const STATUS_TONES: Record<Delivery["status"], "role" | "danger" | "muted" | "warn"> = {
  pending: "muted",
  succeeded: "role",
  failed: "warn",
  dead: "danger",
};

const STATUS_LABELS: Record<Delivery["status"], string> = {
  pending: "Pending",
  succeeded: "Delivered",
  failed: "Failed, will retry",
  dead: "Gave up",
};

export interface WebhooksPageProps {
  viewer: Viewer;
  webhooks: Webhook[];
  /** The API's refusal to list them (a key without org:admin), said instead of an empty list. */
  refused?: string;
  register?: { form: FormValues; errors: FieldErrors };
  secret?: ShownSigningSecret;
  notice?: { kind: "ok" | "error"; text: string };
}

function Events(props: { types: string[] }) {
  if (props.types.includes("*")) return <Badge tone="scope">every event</Badge>;
  return <>{props.types.map((t) => <Badge tone="scope">{t}</Badge>)}</>;
}

function RegisterDialog(props: { viewer: Viewer; register?: WebhooksPageProps["register"] }) {
  const form = props.register?.form ?? { eventTypes: ["*"] };
  const errors = props.register?.errors;
  const chosen = new Set(form.eventTypes ?? []);
  return (
    <dialog id="register-dialog" aria-labelledby="register-title" data-autoopen={props.register ? true : undefined}>
      <form method="post" action="/console/webhooks" novalidate>
        <Csrf viewer={props.viewer} />
        <h2 id="register-title">Register a webhook endpoint</h2>
        {errors?.form && <Notice kind="error">{errors.form}</Notice>}
        <label for="webhook-url">URL</label>
        <input
          type="url"
          id="webhook-url"
          name="url"
          value={first(form, "url")}
          required
          placeholder="https://hooks.example.com/keygate"
          aria-invalid={errors?.url ? "true" : undefined}
          aria-describedby={["webhook-url-hint", describedBy("webhook-url", errors, "url") ?? ""].join(" ").trim()}
        />
        <p class="hint" id="webhook-url-hint">
          An https address on the public internet. Each event is POSTed to it as JSON, signed (Standard Webhooks).
        </p>
        <FieldError id="webhook-url" errors={errors} field="url" />
        <label for="webhook-description">Description (optional)</label>
        <input
          type="text"
          id="webhook-description"
          name="description"
          maxlength={200}
          value={first(form, "description")}
          aria-invalid={errors?.description ? "true" : undefined}
          aria-describedby={describedBy("webhook-description", errors, "description")}
        />
        <FieldError id="webhook-description" errors={errors} field="description" />
        <fieldset aria-describedby={describedBy("webhook-events", errors, "eventTypes")}>
          <legend>Events to send</legend>
          <label class="check">
            <input type="checkbox" name="eventTypes" value="*" checked={chosen.has("*")} /> Every event, including kinds added later
          </label>
          {EVENT_TYPES.map((t) => (
            <label class="check">
              <input type="checkbox" name="eventTypes" value={t} checked={chosen.has(t)} />
              <span>
                <code>{t}</code> <span class="hint">— {EVENT_LABELS[t]}</span>
              </span>
            </label>
          ))}
          <FieldError id="webhook-events" errors={errors} field="eventTypes" />
        </fieldset>
        <DialogActions submit="Register" tone="primary" />
      </form>
    </dialog>
  );
}

/** The signing secret, once, as the keys page shows a new key. */
function SigningSecretDialog(props: { secret: ShownSigningSecret }) {
  const warning = (
    <>
      Copy the signing secret of <strong>{props.secret.url}</strong> now. It will not be shown again. Your receiver checks each
      request's <code>webhook-signature</code> with it.
    </>
  );
  return <OneTimeSecretDialog title="Endpoint registered" warning={warning} label="Signing secret" value={props.secret.secret} done="/console/webhooks" />;
}

/** The webhooks page: the org's endpoints, registering one (its secret shown once), deleting one. */
export function WebhooksPage(props: WebhooksPageProps) {
  return (
    <Page title="Webhooks" viewer={props.viewer} tab="webhooks">
      <div class="toolbar">
        <h1>Webhooks</h1>
        {!props.refused && (
          <button type="button" class="primary" data-open="register-dialog">
            + Register endpoint
          </button>
        )}
      </div>
      <p class="hint">
        Every change to keys, apps and the key policy is an event; each endpoint receives the kinds it asks for, signed
        with its own secret. Failed deliveries are retried with growing delays for 24 hours.
      </p>
      {props.notice && <Notice kind={props.notice.kind}>{props.notice.text}</Notice>}
      {props.refused ? (
        <Notice kind="error">{props.refused}</Notice>
      ) : props.webhooks.length === 0 ? (
        <p class="empty">No endpoints yet. Register one to be told when a key leaks, expires or changes.</p>
      ) : (
        <table id="webhooks" class="cards">
          <caption class="visually-hidden">Webhook endpoints</caption>
          <thead>
            <tr>
              <th scope="col">Endpoint</th>
              <th scope="col">Events</th>
              <th scope="col">Registered</th>
              <th scope="col">
                <span class="hint">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {props.webhooks.map((w) => (
              <tr data-webhook-id={w.id}>
                <td data-label="Endpoint">
                  <code class="url">{w.url}</code>
                  {w.description && <p class="hint">{w.description}</p>}
                  {w.disabledAt && <Badge tone="danger">Deliveries stopped</Badge>}
                </td>
                <td data-label="Events">
                  <Events types={w.eventTypes} />
                </td>
                <td data-label="Registered">
                  <When iso={w.createdAt} />
                </td>
                <td class="actions-cell">
                  <div class="row-actions">
                    <a class="button" href={`/console/webhooks/${w.id}`} aria-label={`Deliveries to ${w.url}`}>
                      Deliveries
                    </a>
                    <button type="button" class="danger" data-open={`delete-${w.id}`} aria-label={`Delete ${w.url}`}>
                      Delete
                    </button>
                  </div>
                  <ConfirmDialog id={`delete-${w.id}`} viewer={props.viewer} action={`/console/webhooks/${w.id}/delete`} title="Delete this endpoint?" submit="Delete endpoint" tone="danger">
                    {w.url} will receive no more events, and its delivery log is deleted with it. Pending retries are
                    dropped.
                  </ConfirmDialog>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {!props.refused && <RegisterDialog viewer={props.viewer} register={props.register} />}
      {props.secret && <SigningSecretDialog secret={props.secret} />}
    </Page>
  );
}

/** One endpoint's delivery log, newest first, with Resend on each delivery. */
export function DeliveriesPage(props: { viewer: Viewer; webhook: Webhook; deliveries: Delivery[]; next?: string; first?: string; notice?: { kind: "ok" | "error"; text: string } }) {
  const { webhook } = props;
  return (
    <Page title="Webhook deliveries" viewer={props.viewer} tab="webhooks">
      <p>
        <a href="/console/webhooks">← Webhooks</a>
      </p>
      <h1>Deliveries</h1>
      <p>
        To <code class="url">{webhook.url}</code>
        {webhook.description && <> · {webhook.description}</>}
      </p>
      <p>
        <Events types={webhook.eventTypes} />
      </p>
      {props.notice && <Notice kind={props.notice.kind}>{props.notice.text}</Notice>}
      {props.deliveries.length === 0 ? (
        <p class="empty">Nothing sent yet: events from now on appear here.</p>
      ) : (
        <table id="deliveries" class="cards">
          <caption class="visually-hidden">Deliveries to this endpoint</caption>
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last error</th>
              <th scope="col">Next attempt</th>
              <th scope="col">
                <span class="hint">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {props.deliveries.map((d) => (
              <tr data-delivery-id={d.id}>
                <td data-label="Event">
                  <code>{d.eventType ?? d.eventId}</code>
                  <br />
                  <When iso={d.createdAt} />
                </td>
                <td data-label="Status">
                  <Badge tone={STATUS_TONES[d.status]}>{STATUS_LABELS[d.status]}</Badge>
                </td>
                <td data-label="Attempts">{String(d.attempts)}</td>
                <td data-label="Last error">{d.lastError ?? "—"}</td>
                <td data-label="Next attempt">{d.nextAttemptAt ? <When iso={d.nextAttemptAt} /> : "—"}</td>
                <td class="actions-cell">
                  <form method="post" action={`/console/webhooks/${webhook.id}/deliveries/${d.id}/resend`} class="inline">
                    <Csrf viewer={props.viewer} />
                    <button type="submit" aria-label={`Resend ${d.eventType ?? "event"} delivery ${d.id}`}>
                      Resend
                    </button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(props.next || props.first) && (
        <nav class="pager" aria-label="Delivery pages">
          {props.first && <a href={props.first}>First page</a>}
          {props.next && <a href={props.next}>Next page</a>}
        </nav>
      )}
    </Page>
  );
}
