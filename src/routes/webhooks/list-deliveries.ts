import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import { and, desc, eq, lt } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { events, webhookDeliveries, webhookEndpoints } from "../../storage/schema";
import { decodeCursor, pageOf, PageQuery } from "../pagination";
import { errorResponses, json } from "../schemas";
import { DELIVERY_EXAMPLE, DELIVERY_ID_PATTERN, DeliveryObject, toDeliveryObject, WebhookIdParams } from "./webhook-object";

const DeliveryList = z
  .object({
    deliveries: z.array(DeliveryObject).openapi({ description: "Deliveries to this endpoint, newest first." }),
    nextCursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
  })
  .openapi("WebhookDeliveryList", { example: { deliveries: [DELIVERY_EXAMPLE], nextCursor: null } });

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/webhooks/{webhookId}/deliveries",
  operationId: "listWebhookDeliveries",
  tags: ["Webhooks"],
  summary: "List an endpoint's deliveries",
  description:
    "The delivery log of one endpoint, newest first: each event sent to it, its status, attempts, the last answer's " +
    "status and error, and when the next attempt is due. Failed deliveries are retried with exponential backoff " +
    "(30 s, doubling, at most 12 h apart) for 24 h, then marked `dead`. Needs `org:admin`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: { params: WebhookIdParams, query: z.object(PageQuery) },
  responses: {
    200: json(DeliveryList, "A page of deliveries."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, webhookId } = c.req.valid("param");
  const { limit, cursor } = c.req.valid("query");
  const beforeId = cursor === undefined ? undefined : decodeCursor(cursor, DELIVERY_ID_PATTERN);
  const database = databaseFor(c.env, orgId);
  const endpoint = await database
    .select({ id: webhookEndpoints.id })
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.id, webhookId), eq(webhookEndpoints.orgId, orgId)))
    .get();
  if (!endpoint) throw new ApiError("NOT_FOUND", "No such webhook endpoint.");
  const rows = await database
    .select({ delivery: webhookDeliveries, eventType: events.type })
    .from(webhookDeliveries)
    .leftJoin(events, eq(events.id, webhookDeliveries.eventId))
    .where(and(eq(webhookDeliveries.endpointId, webhookId), eq(webhookDeliveries.orgId, orgId), beforeId ? lt(webhookDeliveries.id, beforeId) : undefined))
    .orderBy(desc(webhookDeliveries.id))
    .limit(limit + 1)
    .all();
  const { page, nextCursor } = pageOf(rows, limit, (r) => r.delivery.id);
  return c.json(
    {
      deliveries: page.map((r) => toDeliveryObject(r.delivery, r.eventType)),
      nextCursor,
    },
    200,
  );
};

export const registerListWebhookDeliveries = (app: App) => app.openapi(route, handler);
