/** @jsxImportSource hono/jsx */
import type { App } from "../../app";
import { ApiError } from "../../errors";
import { VERIFY_CODES, type VerifyCode } from "../../verification/verify-key";
import { consoleApi } from "../api";
import { keyPath, unlessUnavailable, viewerOf } from "../context";
import type { Key } from "../views/keys-page";
import { Page } from "../views/layout";
import { formatCount, GROUP_OF, keyUsageHref, OUTCOME_GROUPS, UsageChart, type Granularity, type UsageBucket } from "../views/usage-chart";

interface KeyUsage {
  keyId: string;
  granularity: Granularity;
  from: string;
  to: string;
  buckets: UsageBucket[];
}

/** The two periods the page offers, each the API's default range for its granularity. */
const PERIODS: Record<Granularity, { link: string; chart: string }> = {
  hour: { link: "Last 24 hours", chart: "per hour, last 24 hours" },
  day: { link: "Last 30 days", chart: "per day, last 30 days" },
};

/** Each verify code in words, for the totals table (the code is shown beside it). */
const OUTCOME_LABELS: Record<VerifyCode, string> = {
  VALID: "Valid",
  MALFORMED: "Not a key",
  NOT_FOUND: "Unknown key",
  EXPIRED: "Expired",
  REVOKED: "Deleted",
  DISABLED: "Disabled",
  NOT_YET_VALID: "Not yet valid",
  POLICY_VIOLATION: "Breaks the key policy",
  IP_NOT_ALLOWED: "Network not allowed",
  INSUFFICIENT_PERMISSIONS: "Missing permission",
  RATE_LIMITED: "Rate limited",
  USAGE_EXCEEDED: "Out of credits",
};


/**
 * A key's usage page: its verifications by outcome over the last 24 hours (hourly) or 30 days (daily),
 * as a chart and as totals. A key this session may not read answers as the edit page does: 404 for a key
 * not in the org (or deleted), and the API's own refusal (403, why) for a session without key management.
 */
export function registerConsoleKeyUsage(app: App) {
  app.get("/console/keys/:keyId/usage", async (c) => {
    const api = consoleApi(app, c);
    const granularity: Granularity = c.req.query("granularity") === "day" ? "day" : "hour";
    const [key, usage] = await Promise.all([api<Key>("GET", keyPath(c)), api<KeyUsage>("GET", `${keyPath(c)}/usage?granularity=${granularity}`)]);
    for (const result of [unlessUnavailable(key), unlessUnavailable(usage)]) {
      if (result.ok) continue;
      if (result.status === 403) throw new ApiError("FORBIDDEN", result.error.message);
      throw new ApiError("NOT_FOUND", "No such key in your organization.");
    }
    const k = (key as { data: Key }).data;
    const { buckets } = (usage as { data: KeyUsage }).data;
    const totals = new Map<VerifyCode, number>();
    for (const b of buckets) for (const [code, n] of Object.entries(b.counts) as [VerifyCode, number][]) totals.set(code, (totals.get(code) ?? 0) + n);
    const total = buckets.reduce((s, b) => s + b.total, 0);
    // Valid always, refusals only when they happened: eleven rows of zeros would bury the one that matters.
    const rows = VERIFY_CODES.filter((code) => code === "VALID" || (totals.get(code) ?? 0) > 0);
    const colourOf = (code: VerifyCode) => OUTCOME_GROUPS.find((g) => g.id === GROUP_OF[code])!.colour;

    return c.html(
      <Page title={`Usage of ${k.name}`} viewer={viewerOf(c)} tab="keys">
        <p class="hint">
          <a href="/console/keys">API keys</a> · <a href={`/console/keys/${encodeURIComponent(k.id)}`}>Edit this key</a> ·{" "}
          <a href="/console/usage">Usage across keys</a>
        </p>
        <h1>
          Usage of <span class="key-name">{k.name}</span>
        </h1>
        <p class="hint">
          Key <code>{k.id}</code>. Every verification of this key, at the verify endpoint, over KeyVerifier and at the gateway,
          counted by outcome. Counts arrive within about 10 seconds and are kept 90 days.
        </p>
        <nav aria-label="Period">
          {(Object.keys(PERIODS) as Granularity[]).map((g) => (
            <a class="tab" href={keyUsageHref(k.id, g)} aria-current={g === granularity ? "page" : undefined}>
              {PERIODS[g].link}
            </a>
          ))}
        </nav>
        <UsageChart buckets={buckets} granularity={granularity} label={`Verifications of ${k.name} ${PERIODS[granularity].chart}`} />
        <h2 id="totals-heading">Totals by outcome, {PERIODS[granularity].link.toLowerCase()}</h2>
        <table id="usage-totals" aria-labelledby="totals-heading">
          <thead>
            <tr>
              <th scope="col">Outcome</th>
              <th scope="col">Verifications</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((code) => (
              <tr data-outcome={code}>
                <td data-label="Outcome">
                  <svg width="12" height="12" aria-hidden="true">
                    <rect width="12" height="12" rx="2" fill={colourOf(code)} />
                  </svg>{" "}
                  {OUTCOME_LABELS[code]} <code>{code}</code>
                </td>
                <td data-label="Verifications">{formatCount(totals.get(code) ?? 0)}</td>
              </tr>
            ))}
            <tr data-outcome="total">
              <th scope="row">All outcomes</th>
              <td data-label="Verifications">
                <strong>{formatCount(total)}</strong>
              </td>
            </tr>
          </tbody>
        </table>
      </Page>,
    );
  });
}
