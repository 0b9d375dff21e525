import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import { and, desc, eq, lt } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { apps } from "../../storage/schema";
import { decodeCursor, pageOf, PageQuery } from "../pagination";
import { errorResponses, json, OrgIdParam } from "../schemas";
import { AppObject, toAppObject } from "./app-object";

const AppList = z
  .object({
    apps: z.array(AppObject).openapi({ description: "Apps, newest first." }),
    nextCursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
  })
  .openapi("AppList", {
    example: { apps: [{ id: "01jd8x9b2c3d4e5f6g7h", orgId: "01jd8x6w2m9k3v7q4r5t", name: "mobile", createdAt: "2026-11-22T14:00:00.000Z" }], nextCursor: null },
  });

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/apps",
  operationId: "listApps",
  tags: ["Apps"],
  summary: "List apps",
  description: "The organization's apps, newest first, cursor-paginated. Needs `org:read`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:read" })] as const,
  request: { params: OrgIdParam, query: z.object(PageQuery) },
  responses: {
    200: json(AppList, "A page of apps."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const { limit, cursor } = c.req.valid("query");
  const beforeId = cursor === undefined ? undefined : decodeCursor(cursor);
  // Ordered by id within the org: the `apps_org_name` index does not cover it, but an org's apps are few.
  const rows = await databaseFor(c.env, orgId)
    .select()
    .from(apps)
    .where(and(eq(apps.orgId, orgId), beforeId ? lt(apps.id, beforeId) : undefined))
    .orderBy(desc(apps.id))
    .limit(limit + 1)
    .all();
  const { page, nextCursor } = pageOf(rows, limit, (r) => r.id);
  return c.json({ apps: page.map(toAppObject), nextCursor }, 200);
};

export const registerListApps = (app: App) => app.openapi(route, handler);
