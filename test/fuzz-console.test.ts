import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import { ConsoleClient, ORIGIN } from "./console-helpers";
import { hostileString, storageSnapshot } from "./fuzz-helpers";
import { createOrg, gatewayFetch, trials } from "./helpers";
import { createKeyAs } from "./key-fixtures";

/**
 * Generated bad input at the console: hostile form fields and values, odd content types, missing or
 * wrong CSRF tokens, random ids and cursors. Never a 5xx, always an HTML page, and a refused request
 * changes nothing in D1 or KV.
 */
let client: ConsoleClient;
let victimId: string;
let sent = 0;
const RUNS = trials(1000, 120); // deep profile, quick profile (see helpers.ts)

beforeAll(async () => {
  const org = await createOrg("Console Fuzz Co");
  victimId = (await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "victim", orgRole: "member" })).id;
  client = new ConsoleClient();
  await client.signIn(org.adminKey);
});

/** Percent-encodes anything, lone surrogates included (as U+FFFD). */
const enc = (s: string) => encodeURIComponent(s.toWellFormed());

const FIELDS = ["_csrf", "name", "kind", "secure", "expiration", "expiresOn", "orgRole", "appId", "appRole", "scopes", "requireExpiration", "maxLifetimeDays", "key"];
const form = fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), hostileString), fc.oneof(hostileString, fc.array(hostileString, { maxLength: 4 })), { maxKeys: 8 });
/** Console POST routes, with the victim's id, an unknown id or junk where an id goes. */
const postTarget = () => {
  const id = fc.oneof(fc.constant(victimId), fc.constant(newId()), hostileString.map(enc), fc.constantFrom("%", "%E0%A4%A", "%00", "..%2f.."));
  return fc.oneof(
    fc.constant("/console/keys"),
    id.map((i) => `/console/keys/${i}`),
    id.map((i) => `/console/keys/${i}/regenerate`),
    id.map((i) => `/console/keys/${i}/reveal`),
    id.map((i) => `/console/keys/${i}/revoke`),
    fc.constant("/console/policy"),
    fc.constant("/console/sign-in"),
  );
};
const contentType = fc.constantFrom("application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "multipart/form-data", "application/json", "text/plain", undefined);
const withToken = fc.constantFrom("valid", "valid", "valid", "missing", "wrong");

function encode(fields: Record<string, string | string[]>, type: string | undefined, token: string): string {
  const entries = Object.entries(fields).flatMap(([k, v]) => [v].flat().map((x) => [k, x] as [string, string]));
  if (token === "valid") entries.push(["_csrf", client.csrf]);
  if (token === "wrong") entries.push(["_csrf", "A".repeat(43)]);
  if (type?.startsWith("multipart") && type.includes("boundary=xyz")) {
    return entries.map(([k, v]) => `--xyz\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`).join("") + "--xyz--\r\n";
  }
  if (type === "application/json") return JSON.stringify(Object.fromEntries(entries));
  return new URLSearchParams(entries).toString();
}

describe("console: generated bad input", () => {
  it("never answers 5xx, always answers with a page, and a refused request changes nothing", async () => {
    let before = await storageSnapshot();
    await fc.assert(
      fc.asyncProperty(postTarget(), form, contentType, withToken, async (target, fields, type, token) => {
        const headers: Record<string, string> = { "sec-fetch-site": "same-origin", origin: ORIGIN };
        if (client.cookie) headers.cookie = client.cookie;
        if (type) headers["content-type"] = type;
        const res = await gatewayFetch(new Request(`${ORIGIN}${target}`, { method: "POST", headers, body: encode(fields, type, token), redirect: "manual" }));
        const text = await res.text();
        sent++;
        expect(res.status, `${target} → ${text.slice(0, 300)}`).toBeLessThan(500);
        if (res.status >= 400) expect(res.headers.get("content-type"), text.slice(0, 200)).toContain("text/html");
        const after = await storageSnapshot();
        if (res.status >= 400) expect(after, `${target} ${JSON.stringify(fields).slice(0, 200)} → ${res.status}`).toBe(before);
        before = after;
      }),
      { numRuns: RUNS },
    );
    expect(sent).toBeGreaterThanOrEqual(RUNS);
  }, 300_000);

  it("answers random GETs (ids, cursors, unknown pages) with pages, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          hostileString.map((s) => `/console/keys?cursor=${enc(s)}&legacyCursor=${enc(s)}`),
          hostileString.map((s) => `/console/audit?cursor=${enc(s)}`),
          hostileString.map((s) => `/console/keys/${enc(s)}`),
          hostileString.map((s) => `/console/${enc(s)}`),
          hostileString.map((s) => `/console/sign-in?ended=${enc(s)}`),
          fc.constantFrom("/console/keys/%", "/console/keys?cursor=%E0%A4%A", "/console/audit?cursor=%", "/console/keys/%00/x"),
        ),
        async (target) => {
          const res = await client.get(target);
          sent++;
          expect(res.status, `${target} → ${res.html.slice(0, 300)}`).toBeLessThan(500);
          if (res.status !== 303) expect(res.headers.get("content-type")).toContain("text/html");
        },
      ),
      { numRuns: 300 },
    );
  }, 120_000);
});
