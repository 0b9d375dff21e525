import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { DAY_MS, USAGE_RETENTION_DAYS, dailyTotals } from "../../storage/usage";
import { errorResponses, Id, iso, json, OrgIdParam, Timestamp } from "../schemas";

/** Keys one call answers for: a page of the key list at its largest. */
export const MAX_DAILY_USAGE_KEYS = 100;

const Query = z.object({
  keyIds: z
    .string()
    .transform((s) => [...new Set(s.split(","))])
    .pipe(
      z
        .array(Id)
        .min(1, "must name at least one key")
        .max(MAX_DAILY_USAGE_KEYS, `must name at most ${MAX_DAILY_USAGE_KEYS} keys`),
    )
    .openapi({
      param: { name: "keyIds", in: "query" },
      description: `Comma-separated ids of the keys, 1–${MAX_DAILY_USAGE_KEYS} (a page of the key list).`,
      example: "01jd8x7a0b1c2d3e4f5g,01jd8x7a0b1c2d3e4f5h",
    }),
  days: z.coerce
    .number()
    .int("must be a whole number")
    .min(1, "must be at least 1")
    .max(USAGE_RETENTION_DAYS, `must be at most ${USAGE_RETENTION_DAYS}`)
    .default(7)
    .openapi({ param: { name: "days", in: "query" }, description: "How many UTC days, today included.", example: 7 }),
});

const Day = z.object({ start: Timestamp, total: z.number().int(), valid: z.number().int(), refused: z.number().int() });

const DailyUsage = z
  .object({
    from: Timestamp,
    to: Timestamp,
    keys: z
      .array(z.object({ keyId: z.string(), total: z.number().int(), days: z.array(Day).openapi({ description: "Every day of the range, oldest first." }) }))
      .openapi({ description: "The named keys that are live keys of the organization, in the order named; others are left out." }),
  })
  .openapi("DailyUsage", {
    example: {
      from: "2026-11-17T00:00:00.000Z",
      to: "2026-11-19T00:00:00.000Z",
      keys: [
        {
          keyId: "01jd8x7a0b1c2d3e4f5g",
          total: 1203,
          days: [
            { start: "2026-11-17T00:00:00.000Z", total: 1200, valid: 1200, refused: 0 },
            { start: "2026-11-18T00:00:00.000Z", total: 3, valid: 0, refused: 3 },
          ],
        },
      ],
    },
  });

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/usage/daily",
  operationId: "getDailyUsage",
  tags: ["Usage"],
  summary: "Daily totals of several keys",
  description:
    "Verifications per UTC day (today included) of each named key, valid and refused: a page of the key list's " +
    "sparklines in one call. Needs `apiKeyManagement`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: OrgIdParam, query: Query },
  responses: {
    200: json(DailyUsage, "The keys' daily totals."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const { keyIds, days } = c.req.valid("query");
  const to = (Math.floor(Date.now() / DAY_MS) + 1) * DAY_MS;
  const from = to - days * DAY_MS;
  const rows = await dailyTotals(databaseFor(c.env, orgId), orgId, keyIds, from, to);
  const series = new Map<string, { total: number; refused: number }[]>();
  for (const r of rows) {
    const totals = series.get(r.keyId) ?? Array.from({ length: days }, () => ({ total: 0, refused: 0 }));
    series.set(r.keyId, totals);
    if (r.day !== null) totals[(Number(r.day) - from) / DAY_MS] = { total: Number(r.total), refused: Number(r.refused) };
  }
  const keys = keyIds.flatMap((keyId) => {
    const totals = series.get(keyId);
    if (!totals) return [];
    const daily = totals.map((d, i) => ({ start: iso(from + i * DAY_MS)!, total: d.total, valid: d.total - d.refused, refused: d.refused }));
    return [{ keyId, total: daily.reduce((sum, d) => sum + d.total, 0), days: daily }];
  });
  return c.json({ from: iso(from)!, to: iso(to)!, keys }, 200);
};

export const registerGetDailyUsage = (app: App) => app.openapi(route, handler);
