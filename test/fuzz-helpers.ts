import { env } from "cloudflare:workers";
import fc from "fast-check";
import { expect } from "vitest";
import { ERROR_STATUS } from "../src/errors";

/**
 * Shared pieces of the generated-input tests: what storage looks like (to prove a rejected request
 * changed nothing), hostile strings, and the check every response must pass.
 */

const TABLES = ["orgs", "apps", "api_keys", "key_app_roles", "org_policies", "audit_log"] as const;

/**
 * Everything a request could change, as one string: every D1 row of every table and every KV entry.
 * `last_used_at` is left out: a rejected request from a valid caller still counts as a use of its key.
 */
export async function storageSnapshot(): Promise<string> {
  const parts: string[] = [];
  const tables = await env.DB.batch(TABLES.map((t) => env.DB.prepare(`select * from ${t} order by rowid`)));
  tables.forEach((rows, i) => {
    const results = (rows.results as Record<string, unknown>[]).map(({ last_used_at: _ignored, ...rest }) => rest);
    parts.push(TABLES[i]!, JSON.stringify(results));
  });
  let cursor: string | undefined;
  do {
    const page = await env.KEYS_KV.list({ cursor });
    // The cached mode's copies (`key:`, `policy:`, `app:`) are written by the authorities off the request
    // path, a second apart per record, so one may land during a later request; D1 is the truth compared above.
    const kept = page.keys.filter(({ name }) => !/^(key|policy|app):/.test(name));
    const values = await Promise.all(kept.map(({ name }) => env.KEYS_KV.get(name)));
    kept.forEach(({ name }, i) => parts.push(name, values[i] ?? ""));
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return parts.join("\n");
}

/** Strings that have broken other systems: control characters, bidi marks, lone surrogates, SQL, paths. */
export const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "a\u0000b",
    "\u202e\u0644\u0627 RTL",
    "\ud800",
    "x\udfffy",
    "'; drop table api_keys; --",
    "\" or 1=1 --",
    "../../etc/passwd",
    "%2e%2e%2f",
    "..%00",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "🙂".repeat(60),
    "x".repeat(5000),
    "null",
    "undefined",
    "__proto__",
    "constructor",
  ),
);

const CODES = new Set(Object.keys(ERROR_STATUS));

/** Every generated request: never a 5xx, and a 4xx always comes in the error envelope with a known code. */
export function expectWellFormedRefusal(status: number, text: string): void {
  expect(status, text).toBeLessThan(500);
  if (status >= 400) {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; requestId?: string } };
    expect(CODES.has(body.error?.code ?? ""), text).toBe(true);
    expect(typeof body.error?.message, text).toBe("string");
    expect(body.error?.requestId, text).toMatch(/^req_/);
  }
}

/** Flips one bit of one character of `key`, or cuts it short: a mistyped or damaged key. */
export const damagedKey = (key: string) =>
  fc.oneof(
    fc.nat({ max: key.length - 1 }).map((i) => key.slice(0, i)),
    fc.tuple(fc.nat({ max: key.length - 1 }), fc.integer({ min: 0, max: 6 })).map(
      ([i, bit]) => key.slice(0, i) + String.fromCharCode(key.charCodeAt(i) ^ (1 << bit)) + key.slice(i + 1),
    ),
  );
