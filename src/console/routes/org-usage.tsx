/** @jsxImportSource hono/jsx */
import type { App } from "../../app";
import { ApiError } from "../../errors";
import { consoleApi, type ApiResult } from "../api";
import { orgPath, unlessUnavailable, viewerOf } from "../context";
import { Page } from "../views/layout";
import { formatCount, Sparkline, type UsageBucket } from "../views/usage-chart";
import { keyUsageHref } from "./key-usage";

interface TopKey {
  keyId: string;
  name: string | null;
  total: number;
  valid: number;
  refused: number;
}

const DAY_MS = 86_400_000;
/** Rows in each table: the few keys worth a look, not a second key list. */
const TOP_KEYS = 10;
const SPARK_DAYS = 7;

type Ranking = "requests" | "refusals";

/** A ranked table; a key whose 7-day series could not be read (deleted since) is named without a link. */
function TopTable(props: { id: string; caption: string; keys: TopKey[]; series: Map<string, number[] | undefined> }) {
  return (
    <table id={props.id}>
      <caption class="visually-hidden">{props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">Key</th>
          <th scope="col">Verifications</th>
          <th scope="col">Valid</th>
          <th scope="col">Refused</th>
          <th scope="col">Last 7 days</th>
        </tr>
      </thead>
      <tbody>
        {props.keys.map((k) => {
          const totals = props.series.get(k.keyId);
          return (
            <tr data-key-id={k.keyId}>
              <td data-label="Key">
                {totals ? (
                  <a class="key-name" href={keyUsageHref(k.keyId)}>
                    {k.name}
                  </a>
                ) : (
                  <span class="key-name">{k.name ?? "Deleted key"}</span>
                )}{" "}
                <code>{k.keyId}</code>
                {!totals && <span class="hint"> (deleted)</span>}
              </td>
              <td data-label="Verifications">{formatCount(k.total)}</td>
              <td data-label="Valid">{formatCount(k.valid)}</td>
              <td data-label="Refused">{formatCount(k.refused)}</td>
              <td data-label="Last 7 days">{totals ? <Sparkline totals={totals} /> : <span class="hint">Not kept for deleted keys</span>}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/**
 * The org's most used and most refused keys over the last 30 days, each with its last 7 days as a
 * sparkline and a link to its usage page. Needs apiKeyManagement, as the API does; without it the page
 * is the API's refusal (403, why), as on the audit log.
 */
export function registerConsoleOrgUsage(app: App) {
  app.get("/console/usage", async (c) => {
    const api = consoleApi(app, c);
    const top = (by: Ranking) => api<{ keys: TopKey[] }>("GET", `${orgPath(c)}/usage?by=${by}&limit=${TOP_KEYS}`);
    const [used, refused] = await Promise.all([top("requests"), top("refusals")]);
    for (const result of [used, refused]) {
      const checked = unlessUnavailable(result);
      if (!checked.ok) throw new ApiError(checked.status === 403 ? "FORBIDDEN" : "INVALID_REQUEST", checked.error.message);
    }
    const mostUsed = (used as { data: { keys: TopKey[] } }).data.keys.filter((k) => k.total > 0);
    // Ranked by refusals, a key with none is not "most refused".
    const mostRefused = (refused as { data: { keys: TopKey[] } }).data.keys.filter((k) => k.refused > 0);

    // The last 7 whole UTC days, today included: one call per listed key, in parallel (at most 2 × TOP_KEYS).
    const from = new Date((Math.floor(Date.now() / DAY_MS) - (SPARK_DAYS - 1)) * DAY_MS).toISOString();
    const ids = [...new Set([...mostUsed, ...mostRefused].map((k) => k.keyId))];
    const results = await Promise.all(
      ids.map((id) => api<{ buckets: UsageBucket[] }>("GET", `${orgPath(c)}/keys/${encodeURIComponent(id)}/usage?granularity=day&from=${from}`)),
    );
    const series = new Map<string, number[] | undefined>(
      ids.map((id, i) => {
        const r: ApiResult<{ buckets: UsageBucket[] }> = unlessUnavailable(results[i]!);
        // A key deleted since still has its counts ranked, but no usage of its own to show (404).
        return [id, r.ok ? r.data.buckets.map((b) => b.total) : undefined];
      }),
    );

    return c.html(
      <Page title="Usage" viewer={viewerOf(c)} tab="usage">
        <h1>Usage</h1>
        <p class="hint">
          The keys of your organization with the most verifications, and with the most refused ones, over the last 30 days (UTC
          days, today included). Open a key for its chart by hour or day.
        </p>
        <h2 id="most-used-heading">Most used keys</h2>
        {mostUsed.length === 0 ? (
          <p class="empty">No key has been verified in the last 30 days.</p>
        ) : (
          <TopTable id="most-used" caption="Most used keys, last 30 days" keys={mostUsed} series={series} />
        )}
        <h2 id="most-refused-heading">Most refused keys</h2>
        {mostRefused.length === 0 ? (
          <p class="empty">No verification of any key was refused in the last 30 days.</p>
        ) : (
          <TopTable id="most-refused" caption="Most refused keys, last 30 days" keys={mostRefused} series={series} />
        )}
      </Page>,
    );
  });
}
