import type { Context } from "hono";
import type { AppEnv } from "../../context";
import type { ConsoleApi } from "../api";
import { dataOr, orgPath } from "../context";

/**
 * The last 7 UTC days' totals of the given keys, by key id, in one API call (a page's sparklines). Keys
 * the API leaves out (revoked, deleted since) are absent: the page shows no sparkline rather than a
 * wrong one.
 */
export async function dailyTotals(api: ConsoleApi, c: Context<AppEnv>, keyIds: readonly string[]): Promise<ReadonlyMap<string, number[]>> {
  const ids = [...new Set(keyIds)];
  if (ids.length === 0) return new Map();
  const path = `${orgPath(c)}/usage/daily?days=7&keyIds=${ids.map(encodeURIComponent).join(",")}`;
  const { keys } = dataOr(await api<{ keys: { keyId: string; days: { total: number }[] }[] }>("GET", path), { keys: [] });
  return new Map(keys.map((k) => [k.keyId, k.days.map((d) => d.total)]));
}
