import { z } from "@hono/zod-openapi";
import { invalidFields } from "../../errors";
import { DAY_MS, HOUR_MS, USAGE_RETENTION_DAYS } from "../../storage/usage";
import { Timestamp } from "../schemas";

/** The time range of a usage query, in whole buckets of its granularity (UTC). */

export const GRANULARITIES = { hour: HOUR_MS, day: DAY_MS } as const;
export type Granularity = keyof typeof GRANULARITIES;
/** Buckets one answer holds at most: a month of hours, or the retention in days. */
const MAX_BUCKETS = { hour: 31 * 24, day: USAGE_RETENTION_DAYS + 1 } as const;
const DEFAULT_SPAN = { hour: 24, day: 30 } as const;

export const RangeQuery = {
  from: Timestamp.optional().openapi({
    param: { name: "from", in: "query" },
    description: "Start (inclusive), rounded down to its bucket. Default: 24 hours (hour) or 30 days (day) before `to`.",
  }),
  to: Timestamp.optional().openapi({ param: { name: "to", in: "query" }, description: "End (exclusive), rounded up to its bucket. Default: now." }),
};

/**
 * The range `query` asks for, as bucket-aligned ms: `to` rounded up, `from` rounded down; 400 when it
 * is empty, backwards or more buckets than one answer holds.
 */
export function rangeOf(query: { from?: string; to?: string }, granularity: Granularity, now = Date.now()) {
  const size = GRANULARITIES[granularity];
  const ceil = (ms: number) => Math.ceil(ms / size) * size;
  const to = ceil(query.to === undefined ? now : Date.parse(query.to));
  const from = query.from === undefined ? to - DEFAULT_SPAN[granularity] * size : Math.floor(Date.parse(query.from) / size) * size;
  if (!(from < to)) throw invalidFields([{ field: "from", message: "must be before to" }]);
  if ((to - from) / size > MAX_BUCKETS[granularity]) {
    throw invalidFields([{ field: "from", message: `must be at most ${MAX_BUCKETS[granularity]} ${granularity}s before to` }]);
  }
  return { from, to, size };
}
