import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { auditEntry } from "../../storage/audit";
import { databaseFor } from "../../storage/db";
import { changeStatements } from "../../storage/events";
import { webhookDeliveries, webhookEndpoints } from "../../storage/schema";
import { errorResponses, noContent } from "../schemas";
import { WebhookIdParams } from "./webhook-object";

const route = createRoute({
  method: "delete",
  path: "/v1/orgs/{orgId}/webhooks/{webhookId}",
  operationId: "deleteWebhook",
  tags: ["Webhooks"],
  summary: "Delete a webhook endpoint",
  description:
    "Deletes the endpoint, its signing secret and its delivery log. Deliveries still queued or being retried are dropped: " +
    "no request is sent to it once this returns, except one already in flight. Audited (`webhook.delete`). Needs `org:admin`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: { params: WebhookIdParams },
  responses: {
    204: noContent("Deleted."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, webhookId } = c.req.valid("param");
  const database = databaseFor(c.env, orgId);
  const mine = and(eq(webhookEndpoints.id, webhookId), eq(webhookEndpoints.orgId, orgId));
  const row = await database.select().from(webhookEndpoints).where(mine).get();
  if (!row) throw new ApiError("NOT_FOUND", "No such webhook endpoint.");
  const details = { origin: new URL(row.url).origin, eventTypes: row.eventTypes, description: row.description };
  // One batch: its queued deliveries find no row and are dropped by the consumer.
  await database.batch([
    database.delete(webhookDeliveries).where(and(eq(webhookDeliveries.endpointId, webhookId), eq(webhookDeliveries.orgId, orgId))),
    database.delete(webhookEndpoints).where(mine),
    ...changeStatements(database, auditEntry(orgId, { actorKeyId: c.var.caller.keyId, requestId: c.var.requestId }, "webhook.delete", webhookId, details, "webhook")),
  ]);
  return c.body(null, 204);
};

export const registerDeleteWebhook = (app: App) => app.openapi(route, handler);
