/** @jsxImportSource hono/jsx */
import type { App } from "../../app";
import { ApiError } from "../../errors";
import { consoleApi } from "../api";
import { orgPath, unlessUnavailable, viewerOf } from "../context";
import { Page } from "../views/layout";
import { formatCount, keyUsageHref, Sparkline } from "../views/usage-chart";
import { dailyTotals } from "./daily-usage";

interface TopKey {
  keyId: string;
  name: string | null;
  total: number;
  valid: number;
  refused: number;
}

/** Rows in each table: the few keys worth a look, not a second key list. */
const TOP_KEYS = 10;

type Ranking = "requests" | "refusals";

/** A ranked table; a key whose 7-day series could not be read (deleted since) is named without a link. */
function TopTable(props: { id: string; caption: string; keys: TopKey[]; series: ReadonlyMap<string, number[]> }) {
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

    // The listed keys' last 7 days, in one call; a key deleted since has none (its counts still rank).
    const series = await dailyTotals(api, c, [...mostUsed, ...mostRefused].map((k) => k.keyId));

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
