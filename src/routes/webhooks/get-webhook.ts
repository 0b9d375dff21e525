import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { webhookEndpoints } from "../../storage/schema";
import { errorResponses, json } from "../schemas";
import { toWebhookObject, WebhookIdParams, WebhookObject } from "./webhook-object";

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/webhooks/{webhookId}",
  operationId: "getWebhook",
  tags: ["Webhooks"],
  summary: "Get a webhook endpoint",
  description: "One webhook endpoint of the organization, never its signing secret. Another organization's answers 404. Needs `org:admin`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: { params: WebhookIdParams },
  responses: {
    200: json(WebhookObject, "The endpoint."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, webhookId } = c.req.valid("param");
  const row = await databaseFor(c.env, orgId)
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.id, webhookId), eq(webhookEndpoints.orgId, orgId)))
    .get();
  if (!row) throw new ApiError("NOT_FOUND", "No such webhook endpoint.");
  return c.json(toWebhookObject(row), 200);
};

export const registerGetWebhook = (app: App) => app.openapi(route, handler);
