import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { topKeys } from "../../storage/usage";
import { errorResponses, iso, json, OrgIdParam, Timestamp } from "../schemas";
import { rangeOf, RangeQuery } from "./usage-range";

const Query = z.object({
  by: z
    .enum(["requests", "refusals"])
    .default("requests")
    .openapi({ param: { name: "by", in: "query" }, description: "Rank by all verifications, or by refused ones.", example: "requests" }),
  limit: z.coerce
    .number()
    .int("must be a whole number")
    .min(1, "must be at least 1")
    .max(100, "must be at most 100")
    .default(10)
    .openapi({ param: { name: "limit", in: "query" }, description: "How many keys, 1–100.", example: 10 }),
  ...RangeQuery,
});

const OrgUsage = z
  .object({
    from: Timestamp,
    to: Timestamp,
    by: z.enum(["requests", "refusals"]),
    keys: z.array(
      z.object({
        keyId: z.string(),
        name: z.string().nullable().openapi({ description: "The key's name; null for a key deleted since." }),
        total: z.number().int(),
        valid: z.number().int(),
        refused: z.number().int(),
      }),
    ),
  })
  .openapi("OrgUsage", {
    example: {
      from: "2026-11-21T00:00:00.000Z",
      to: "2026-11-22T00:00:00.000Z",
      by: "requests",
      keys: [{ keyId: "01jd8x7a0b1c2d3e4f5g", name: "CI/CD Deploy", total: 1203, valid: 1200, refused: 3 }],
    },
  });

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/usage",
  operationId: "getOrgUsage",
  tags: ["Usage"],
  summary: "The organization's most used and most refused keys",
  description:
    "The keys with the most verifications (`by=requests`) or the most refused ones (`by=refusals`) in the range " +
    "(whole days; default the last 30 days). Needs `apiKeyManagement`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: OrgIdParam, query: Query },
  responses: {
    200: json(OrgUsage, "The top keys."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const query = c.req.valid("query");
  const { from, to } = rangeOf(query, "day");
  const rows = await topKeys(databaseFor(c.env, orgId), orgId, from, to, query.by, query.limit);
  return c.json(
    {
      from: iso(from)!,
      to: iso(to)!,
      by: query.by,
      keys: rows.map((r) => ({ keyId: r.keyId, name: r.name, total: Number(r.total), refused: Number(r.refused), valid: Number(r.total) - Number(r.refused) })),
    },
    200,
  );
};

export const registerGetOrgUsage = (app: App) => app.openapi(route, handler);
