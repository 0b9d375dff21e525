/** @jsxImportSource hono/jsx */
import type { VerifyCode } from "../../verification/verify-key";

/**
 * A key's usage drawn as server-rendered SVG: no charting library (the console ships two small files)
 * and no script (the CSP allows none inline). Colours are SVG presentation attributes, which the CSP's
 * `style-src` does not govern, so the chart needs nothing from the console's stylesheet.
 */

export interface UsageBucket {
  /** ISO start of the bucket (UTC). */
  start: string;
  total: number;
  counts: Partial<Record<VerifyCode, number>>;
}

export type Granularity = "hour" | "day";

type GroupId = "valid" | "state" | "access" | "rate" | "other";

/**
 * Outcomes by what an admin would do about them, each with one colour: eleven colours could not be told
 * apart. Valid is blue rather than green so that it and the refusals stay distinct to red-green colour
 * blindness; every colour has 3:1 contrast with the white background (non-text contrast).
 */
export const OUTCOME_GROUPS: readonly { id: GroupId; label: string; colour: string }[] = [
  { id: "valid", label: "Valid", colour: "#0969da" },
  { id: "state", label: "Expired, revoked or disabled", colour: "#bc4c00" },
  { id: "access", label: "Permission, network or policy", colour: "#cf222e" },
  { id: "rate", label: "Rate limit or credits", colour: "#8250df" },
  { id: "other", label: "Malformed or not found", colour: "#6e7781" },
];

/** A Record so that a verify code added later fails to compile until it is given a group. */
export const GROUP_OF: Record<VerifyCode, GroupId> = {
  VALID: "valid",
  EXPIRED: "state",
  REVOKED: "state",
  DISABLED: "state",
  NOT_YET_VALID: "state",
  INSUFFICIENT_PERMISSIONS: "access",
  IP_NOT_ALLOWED: "access",
  POLICY_VIOLATION: "access",
  RATE_LIMITED: "rate",
  USAGE_EXCEEDED: "rate",
  MALFORMED: "other",
  NOT_FOUND: "other",
};

/** Each group's count in a bucket's counts. */
export function groupCounts(counts: Partial<Record<VerifyCode, number>>): Record<GroupId, number> {
  const sums: Record<GroupId, number> = { valid: 0, state: 0, access: 0, rate: 0, other: 0 };
  for (const [code, n] of Object.entries(counts) as [VerifyCode, number][]) {
    const group = GROUP_OF[code];
    if (group) sums[group] += n;
  }
  return sums;
}

export const formatCount = (n: number) => n.toLocaleString("en-US");

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const dayLabel = (d: Date) => `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
const hourLabel = (d: Date) => `${String(d.getUTCHours()).padStart(2, "0")}:00`;

/** A bucket's start as the data table and the bar's tooltip name it. */
export function bucketLabel(iso: string, granularity: Granularity): string {
  const d = new Date(iso);
  return granularity === "hour" ? `${dayLabel(d)}, ${hourLabel(d)}` : dayLabel(d);
}

/** The y axis: a top value from 1, 2 or 5 × 10ⁿ steps, so gridlines fall on round numbers. */
export function yTicks(max: number, wanted = 4): number[] {
  const rough = Math.max(1, max) / wanted;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)!);
  const top = Math.max(step, Math.ceil(max / step) * step);
  return Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
}

/**
 * Which buckets get an x-axis label: every 6th hour (at midnight the date instead), or every 7th day
 * counted back from the newest, so that at 390 px wide no two labels touch.
 */
function xLabels(buckets: readonly UsageBucket[], granularity: Granularity): { index: number; text: string }[] {
  if (granularity === "hour") {
    return buckets.flatMap((b, index) => {
      const d = new Date(b.start);
      if (d.getUTCHours() % 6 !== 0) return [];
      return [{ index, text: d.getUTCHours() === 0 ? dayLabel(d) : hourLabel(d) }];
    });
  }
  const every = buckets.length > 14 ? 7 : buckets.length > 7 ? 2 : 1;
  return buckets.flatMap((b, index) => ((buckets.length - 1 - index) % every === 0 ? [{ index, text: dayLabel(new Date(b.start)) }] : []));
}

/** Chart geometry in CSS pixels: the height is fixed, the width is the container's. */
const HEIGHT = 220;
const PLOT_TOP = 14;
const PLOT_BOTTOM = 186;
const LABEL_Y = 206;
const FONT = 12;
const MUTED = "#59636e";

/**
 * A stacked bar chart of a key's verifications by outcome over time, times in UTC, with a legend that
 * gives each group's total, and the numbers as a table in a `<details>` for screen readers and for
 * anyone who wants them exact.
 *
 * A `<div>`, not a `<figure>`: the browser's default figure margins would take 80 px from a phone.
 * The SVG is as wide as its container: text and gridlines are placed in pixels and percentages of the
 * outer SVG, while the bars live in a nested SVG whose viewBox (one unit per bucket, one per
 * verification) is stretched to the plot. So bars fill any width and text stays 12 px, readable at
 * 390 px and not huge at 1280.
 *
 * @example <UsageChart buckets={usage.buckets} granularity="hour" label="Verifications of CI deploy per hour, last 24 hours" />
 */
export function UsageChart(props: { buckets: readonly UsageBucket[]; granularity: Granularity; label: string; id?: string }) {
  const { buckets, granularity } = props;
  const id = props.id ?? "usage";
  const n = Math.max(1, buckets.length);
  const ticks = yTicks(Math.max(0, ...buckets.map((b) => b.total)));
  const top = ticks.at(-1)!;
  const plotHeight = PLOT_BOTTOM - PLOT_TOP;
  const yOf = (v: number) => PLOT_BOTTOM - (v / top) * plotHeight;
  const sums = groupCounts({});
  const perBucket = buckets.map((b) => groupCounts(b.counts));
  for (const g of perBucket) for (const k of Object.keys(sums) as GroupId[]) sums[k] += g[k];
  const total = buckets.reduce((s, b) => s + b.total, 0);
  const refused = total - sums.valid;
  const unit = granularity === "hour" ? "hour" : "day";
  const shownGroups = OUTCOME_GROUPS.filter((g) => g.id === "valid" || sums[g.id] > 0);
  const summary = `${props.label}: ${formatCount(total)} in all, ${formatCount(sums.valid)} valid, ${formatCount(refused)} refused. The data table below lists each ${unit}.`;

  return (
    <div class="usage-chart">
      <p class="hint">
        {props.label} (times in UTC)
      </p>
      <svg role="img" aria-label={summary} width="100%" height={HEIGHT} font-size={FONT} font-family="system-ui, sans-serif">
        {ticks.map((t) => (
          <line x1="0" x2="100%" y1={yOf(t)} y2={yOf(t)} stroke={t === 0 ? "#8c959f" : "#d1d9e0"} stroke-width="1" />
        ))}
        <svg x="0" y={PLOT_TOP} width="100%" height={plotHeight} viewBox={`0 0 ${n} ${top}`} preserveAspectRatio="none">
          {buckets.map((b, i) => {
            let y = top;
            const groups = perBucket[i]!;
            return (
              <g>
                <title>{`${bucketLabel(b.start, granularity)} UTC: ${formatCount(b.total)} (${formatCount(groups.valid)} valid)`}</title>
                {/* An invisible full-height hit area, so an empty or tiny bar still shows its tooltip. */}
                <rect x={i + 0.1} width="0.8" y="0" height={top} fill="transparent" />
                {OUTCOME_GROUPS.map((g) => {
                  const v = groups[g.id];
                  if (v === 0) return null;
                  y -= v;
                  return <rect x={i + 0.1} width="0.8" y={y} height={v} fill={g.colour} />;
                })}
              </g>
            );
          })}
        </svg>
        {/* Tick values sit just above their gridline at the left, haloed so a bar behind never hides them. */}
        {ticks.slice(1).map((t) => (
          <text x="2" y={yOf(t) - 3} fill={MUTED} stroke="#fff" stroke-width="3" paint-order="stroke">
            {formatCount(t)}
          </text>
        ))}
        {xLabels(buckets, granularity).map(({ index, text }) => {
          const pct = (v: number) => `${+v.toFixed(2)}%`;
          const centre = ((index + 0.5) / n) * 100;
          // Near an edge the label hangs inwards, so it is never cut off by the SVG's box.
          const anchor = centre < 8 ? "start" : centre > 92 ? "end" : "middle";
          const x = anchor === "start" ? (index / n) * 100 : anchor === "end" ? ((index + 1) / n) * 100 : centre;
          return (
            <>
              <line x1={pct(centre)} x2={pct(centre)} y1={PLOT_BOTTOM} y2={PLOT_BOTTOM + 4} stroke="#8c959f" />
              <text x={pct(x)} y={LABEL_Y} text-anchor={anchor} fill={MUTED}>
                {text}
              </text>
            </>
          );
        })}
        {total === 0 && (
          <text x="50%" y={(PLOT_TOP + PLOT_BOTTOM) / 2} text-anchor="middle" fill={MUTED} font-size="14">
            No verifications in this period
          </text>
        )}
      </svg>
      <dl class="details">
        {shownGroups.map((g) => (
          <>
            <dt>
              <svg width="12" height="12" aria-hidden="true">
                <rect width="12" height="12" rx="2" fill={g.colour} />
              </svg>{" "}
              {g.label}
            </dt>
            <dd>{formatCount(sums[g.id])}</dd>
          </>
        ))}
      </dl>
      <details>
        <summary>Data table</summary>
        <table id={`${id}-table`}>
          <caption class="visually-hidden">{`${props.label}, by outcome (times in UTC)`}</caption>
          <thead>
            <tr>
              <th scope="col">{granularity === "hour" ? "Hour (UTC)" : "Day (UTC)"}</th>
              <th scope="col">Total</th>
              {shownGroups.map((g) => (
                <th scope="col">{g.label}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {buckets.map((b, i) => (
              <tr>
                <td data-label={granularity === "hour" ? "Hour (UTC)" : "Day (UTC)"}>
                  <time datetime={b.start}>{bucketLabel(b.start, granularity)}</time>
                </td>
                <td data-label="Total">{formatCount(b.total)}</td>
                {shownGroups.map((g) => (
                  <td data-label={g.label}>{formatCount(perBucket[i]![g.id])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}

const SPARK_WIDTH = 72;
const SPARK_HEIGHT = 20;
/** Keeps the 1.5 px line's round caps inside the box at the extremes. */
const SPARK_PAD = 1.5;

/**
 * A key's last 7 days at a glance, for a table row: one polyline of its daily totals, oldest first,
 * each scaled to the busiest of those days. Its accessible name says the total, which is all a glance
 * at the line gives.
 *
 * @example <Sparkline totals={[0, 4, 12, 9, 30, 2, 7]} />  // "64 verifications in the last 7 days"
 */
export function Sparkline(props: { totals: readonly number[] }) {
  const { totals } = props;
  const sum = totals.reduce((s, v) => s + v, 0);
  const max = Math.max(1, ...totals);
  const step = totals.length > 1 ? (SPARK_WIDTH - 2 * SPARK_PAD) / (totals.length - 1) : 0;
  const points = totals
    .map((v, i) => {
      const x = SPARK_PAD + i * step;
      const y = SPARK_HEIGHT - SPARK_PAD - (v / max) * (SPARK_HEIGHT - 2 * SPARK_PAD);
      return `${+x.toFixed(1)},${+y.toFixed(1)}`;
    })
    .join(" ");
  const label = `${formatCount(sum)} verification${sum === 1 ? "" : "s"} in the last ${totals.length} days`;
  return (
    <svg class="sparkline" role="img" aria-label={label} width={SPARK_WIDTH} height={SPARK_HEIGHT} viewBox={`0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`}>
      <polyline points={points} fill="none" stroke="#0969da" stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round" />
    </svg>
  );
}

/** The console page of a key's usage chart. */
export const keyUsageHref = (keyId: string, granularity?: Granularity) =>
  `/console/keys/${encodeURIComponent(keyId)}/usage${granularity === "day" ? "?granularity=day" : ""}`;

/** A key's sparkline as a link to its usage page, named with the key's name and the total. */
export function SparklineLink(props: { keyId: string; name: string; totals: readonly number[] }) {
  return (
    <a class="spark-link" href={keyUsageHref(props.keyId)}>
      <span class="visually-hidden">Usage of {props.name}: </span>
      <Sparkline totals={props.totals} />
    </a>
  );
}
