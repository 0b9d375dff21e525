import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import type { QueueMessage } from "../../storage/events";
import { events, webhookDeliveries } from "../../storage/schema";
import { errorResponses, json } from "../schemas";
import { DeliveryIdParams, DeliveryObject, toDeliveryObject } from "./webhook-object";

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/webhooks/{webhookId}/deliveries/{deliveryId}/resend",
  operationId: "resendWebhookDelivery",
  tags: ["Webhooks"],
  summary: "Resend a delivery",
  description:
    "Queues a new attempt of the delivery now, whatever its status (a succeeded one is sent again, a dead one gets " +
    "another chance), with the same `webhook-id` so the receiver can tell. Answers at once with the delivery as queued " +
    "(`pending`); the delivery log shows the outcome. A failed resend is retried while the delivery is less than 24 h " +
    "old. Needs `org:admin`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: { params: DeliveryIdParams },
  responses: {
    202: json(DeliveryObject, "The delivery, queued for a new attempt."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, webhookId, deliveryId } = c.req.valid("param");
  const database = databaseFor(c.env, orgId);
  const now = Date.now();
  const d = webhookDeliveries;
  const row = await database
    .update(d)
    .set({ status: "pending", nextAttemptAt: now, updatedAt: now })
    .where(and(eq(d.id, deliveryId), eq(d.endpointId, webhookId), eq(d.orgId, orgId)))
    .returning()
    .get();
  if (!row) throw new ApiError("NOT_FOUND", "No such delivery.");
  try {
    await c.env.EVENTS.send({ kind: "delivery", deliveryId } satisfies QueueMessage);
  } catch {
    // The row says pending and due, but no message carries it: say so, and a retry of this call sends one.
    throw new ApiError("SERVICE_UNAVAILABLE", "The delivery queue is unavailable; nothing was sent. Retry shortly.", undefined, { "Retry-After": "5" });
  }
  const event = await database.select({ type: events.type }).from(events).where(eq(events.id, row.eventId)).get();
  return c.json(toDeliveryObject(row, event?.type ?? null), 202);
};

export const registerResendWebhookDelivery = (app: App) => app.openapi(route, handler);
