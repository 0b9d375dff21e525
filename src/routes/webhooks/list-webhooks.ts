import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import { and, desc, eq, lt } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { webhookEndpoints } from "../../storage/schema";
import { decodeCursor, pageOf, PageQuery } from "../pagination";
import { errorResponses, json, OrgIdParam } from "../schemas";
import { toWebhookObject, WebhookObject } from "./webhook-object";

const WebhookList = z
  .object({
    webhooks: z.array(WebhookObject).openapi({ description: "Endpoints, newest first. Never their secrets." }),
    nextCursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
  })
  .openapi("WebhookList", {
    example: {
      webhooks: [
        {
          id: "01jd8xb3c4d5e6f7g8h9",
          orgId: "01jd8x6w2m9k3v7q4r5t",
          url: "https://hooks.example.com/keygate",
          eventTypes: ["key.revoked", "key.leaked"],
          description: "Security alerts",
          createdAt: "2026-11-22T14:00:00.000Z",
          disabledAt: null,
        },
      ],
      nextCursor: null,
    },
  });

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/webhooks",
  operationId: "listWebhooks",
  tags: ["Webhooks"],
  summary: "List webhook endpoints",
  description: "The organization's webhook endpoints, newest first, cursor-paginated. Never their signing secrets. Needs `org:admin`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: { params: OrgIdParam, query: z.object(PageQuery) },
  responses: {
    200: json(WebhookList, "A page of endpoints."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const { limit, cursor } = c.req.valid("query");
  const beforeId = cursor === undefined ? undefined : decodeCursor(cursor);
  // Walks the `webhook_endpoints_org` index (org, id).
  const rows = await databaseFor(c.env, orgId)
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.orgId, orgId), beforeId ? lt(webhookEndpoints.id, beforeId) : undefined))
    .orderBy(desc(webhookEndpoints.id))
    .limit(limit + 1)
    .all();
  const { page, nextCursor } = pageOf(rows, limit, (r) => r.id);
  return c.json({ webhooks: page.map(toWebhookObject), nextCursor }, 200);
};

export const registerListWebhooks = (app: App) => app.openapi(route, handler);
