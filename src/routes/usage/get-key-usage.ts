import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { loadKeyRow } from "../../storage/key-record";
import { askAuthority } from "../../durable-objects/key-authority";
import { VERIFY_CODES } from "../../verification/verify-key";
import { errorResponses, iso, json, KeyIdParams, Timestamp } from "../schemas";
import { GRANULARITIES, rangeOf, RangeQuery, type Granularity } from "./usage-range";

const Query = z.object({
  granularity: z
    .enum(Object.keys(GRANULARITIES) as [Granularity, ...Granularity[]])
    .default("hour")
    .openapi({ param: { name: "granularity", in: "query" }, description: "Bucket size: `hour` (up to 31 days) or `day` (up to 90).", example: "hour" }),
  ...RangeQuery,
});

const Counts = z.record(z.enum(VERIFY_CODES), z.number().int()).openapi("UsageCounts", {
  description: "Verifications in the bucket by outcome (verify code); outcomes with none are left out.",
  example: { VALID: 1200, INSUFFICIENT_PERMISSIONS: 3 },
});

const KeyUsage = z
  .object({
    keyId: z.string(),
    granularity: z.enum(["hour", "day"]),
    from: Timestamp,
    to: Timestamp,
    buckets: z.array(z.object({ start: Timestamp, total: z.number().int(), counts: Counts })).openapi({
      description: "Every bucket of the range, oldest first, empty ones included (total 0).",
    }),
  })
  .openapi("KeyUsage", {
    example: {
      keyId: "01jd8x7a0b1c2d3e4f5g",
      granularity: "hour",
      from: "2026-11-22T14:00:00.000Z",
      to: "2026-11-22T16:00:00.000Z",
      buckets: [
        { start: "2026-11-22T14:00:00.000Z", total: 1203, counts: { VALID: 1200, INSUFFICIENT_PERMISSIONS: 3 } },
        { start: "2026-11-22T15:00:00.000Z", total: 0, counts: {} },
      ],
    },
  });

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/keys/{keyId}/usage",
  operationId: "getKeyUsage",
  tags: ["Usage"],
  summary: "A key's usage over time",
  description:
    "Verifications of the key (at the verify endpoint, over `KeyVerifier` and at the gateway; a management call's own " +
    "authentication is not counted) per " +
    "hour or day and outcome, kept 90 days. Counted at the edge and held by the key's authority within about 10 s " +
    "(`USAGE_FLUSH_MS`), which answers this. " +
    "Needs `apiKeyManagement`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams, query: Query },
  responses: {
    200: json(KeyUsage, "The key's usage in the range."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const query = c.req.valid("query");
  const { from, to, size } = rangeOf(query, query.granularity);
  const database = databaseFor(c.env, orgId);
  const row = await loadKeyRow(database, keyId, orgId);
  if (!row || row.revokedAt !== null) throw new ApiError("NOT_FOUND", "No such key.");
  // The key's hourly detail is kept by its authority (cheap there, and fresh within USAGE_FLUSH_MS);
  // D1 holds only the daily roll-ups the org views read.
  const rows = await askAuthority(c.env, keyId, (a) => a.usageSeries(keyId, orgId, from, to, size));
  const buckets = new Map<number, { total: number; counts: Record<string, number> }>();
  for (let start = from; start < to; start += size) buckets.set(start, { total: 0, counts: {} });
  for (const r of rows) {
    const bucket = buckets.get(Number(r.bucket));
    if (!bucket) continue;
    bucket.counts[r.outcome] = Number(r.count);
    bucket.total += Number(r.count);
  }
  return c.json(
    {
      keyId,
      granularity: query.granularity,
      from: iso(from)!,
      to: iso(to)!,
      buckets: [...buckets].map(([start, b]) => ({ start: iso(start)!, total: b.total, counts: b.counts as z.infer<typeof Counts> })),
    },
    200,
  );
};

export const registerGetKeyUsage = (app: App) => app.openapi(route, handler);
