/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { ApiError } from "../../errors";
import { consoleApi, type ConsoleApi } from "../api";
import { cursorParam, orgPath, unlessUnavailable, viewerOf } from "../context";
import { fieldErrors, webhookBody, type FieldErrors, type FormValues } from "../forms";
import { stashSecret, takeSecret } from "../one-time-secret";
import { DeliveriesPage, WebhooksPage, type Delivery, type Webhook, type WebhooksPageProps } from "../views/webhooks-page";

/** The API allows 20 endpoints per org: one page holds them all. */
const WEBHOOKS_READ = 100;
const DELIVERIES_PAGE_SIZE = 25;

const NOTICES: Record<string, string> = {
  deleted: "The endpoint was deleted: it receives no more events.",
  resent: "The delivery is queued for a new attempt; its status here changes when it has been tried.",
};

const webhookPath = (c: Context<AppEnv>) => `${orgPath(c)}/webhooks/${encodeURIComponent(c.req.param("webhookId") ?? "")}`;

async function renderList(c: Context<AppEnv>, api: ConsoleApi, extra: Partial<WebhooksPageProps> = {}, status = 200) {
  const listed = unlessUnavailable(await api<{ webhooks: Webhook[] }>("GET", `${orgPath(c)}/webhooks?limit=${WEBHOOKS_READ}`));
  const notice = c.req.method === "GET" ? c.req.query("notice") : undefined;
  return c.html(
    <WebhooksPage
      viewer={viewerOf(c)}
      webhooks={listed.ok ? listed.data.webhooks : []}
      // A key that may not manage webhooks is told so, never shown a made-up empty list.
      refused={listed.ok ? undefined : listed.error.message}
      notice={notice && NOTICES[notice] ? { kind: "ok", text: NOTICES[notice] } : undefined}
      {...extra}
    />,
    (listed.ok ? status : listed.status) as 200,
  );
}

async function renderDeliveries(c: Context<AppEnv>, api: ConsoleApi, notice?: { kind: "ok" | "error"; text: string }, status = 200) {
  const cursor = cursorParam(c.req.query("cursor"));
  const [webhook, deliveries] = await Promise.all([
    api<Webhook>("GET", webhookPath(c)),
    api<{ deliveries: Delivery[]; nextCursor: string | null }>(
      "GET",
      `${webhookPath(c)}/deliveries?limit=${DELIVERIES_PAGE_SIZE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
    ),
  ]);
  if (!unlessUnavailable(webhook).ok) throw new ApiError("NOT_FOUND", "No such webhook endpoint in your organization.");
  const page = unlessUnavailable(deliveries).ok ? (deliveries as { data: { deliveries: Delivery[]; nextCursor: string | null } }).data : { deliveries: [], nextCursor: null };
  const base = `/console/webhooks/${(webhook as { data: Webhook }).data.id}`;
  const asked = c.req.method === "GET" ? c.req.query("notice") : undefined;
  return c.html(
    <DeliveriesPage
      viewer={viewerOf(c)}
      webhook={(webhook as { data: Webhook }).data}
      deliveries={page.deliveries}
      next={page.nextCursor ? `${base}?cursor=${encodeURIComponent(page.nextCursor)}` : undefined}
      first={cursor ? base : undefined}
      notice={
        notice ??
        (!deliveries.ok
          ? { kind: "error", text: "That page link is no longer valid; go back to the first page." }
          : asked && NOTICES[asked]
            ? { kind: "ok", text: NOTICES[asked] }
            : undefined)
      }
    />,
    status as 200,
  );
}

/**
 * The webhooks page: endpoints, registering one (its signing secret shown once, post/redirect/get like a
 * key's), deleting one after a confirmation, and each endpoint's delivery log with Resend. All through the
 * webhooks API, which needs org:admin.
 */
export function registerConsoleWebhooks(app: App) {
  app.get("/console/webhooks", async (c) => {
    const shown = c.req.query("secret");
    const secret = await takeSecret(c, shown, "webhooks");
    const extra: Partial<WebhooksPageProps> = secret
      ? { secret }
      : shown !== undefined
        ? { notice: { kind: "error", text: "That signing secret was shown once already: it is not shown again. Delete the endpoint and register it again for a new one." } }
        : {};
    return renderList(c, consoleApi(app, c), extra);
  });

  app.post("/console/webhooks", async (c) => {
    const api = consoleApi(app, c);
    const form: FormValues = c.var.form;
    const created = unlessUnavailable(await api<Webhook & { secret: string }>("POST", `${orgPath(c)}/webhooks`, webhookBody(form)));
    if (created.ok) return c.redirect(await stashSecret(c, { secret: created.data.secret, url: created.data.url }, "webhooks"), 303);
    const errors: FieldErrors = fieldErrors(created.error);
    return renderList(c, api, { register: { form, errors } }, created.status);
  });

  app.post("/console/webhooks/:webhookId/delete", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api("DELETE", webhookPath(c)));
    if (result.ok) return c.redirect("/console/webhooks?notice=deleted", 303);
    return renderList(c, api, { notice: { kind: "error", text: `The endpoint was not deleted: ${result.error.message}` } }, result.status);
  });

  app.get("/console/webhooks/:webhookId", (c) => renderDeliveries(c, consoleApi(app, c)));

  app.post("/console/webhooks/:webhookId/deliveries/:deliveryId/resend", async (c) => {
    const api = consoleApi(app, c);
    const result = unlessUnavailable(await api("POST", `${webhookPath(c)}/deliveries/${encodeURIComponent(c.req.param("deliveryId"))}/resend`));
    if (result.ok) return c.redirect(`/console/webhooks/${encodeURIComponent(c.req.param("webhookId"))}?notice=resent`, 303);
    return renderDeliveries(c, api, { kind: "error", text: `The delivery was not resent: ${result.error.message}` }, result.status);
  });
}
