import { env } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { verifyKey } from "../src/verification/verify-key";
import { createOrg, gatewayFetch, trials } from "./helpers";
import { damagedKey, expectWellFormedRefusal, hostileString, storageSnapshot } from "./fuzz-helpers";
import { createKeyAs, seedApp } from "./key-fixtures";

/**
 * Generated hostile input against the edge: the verify endpoint and the gateway. With
 * test/fuzz-management.test.ts (3,000 requests) the suite sends over 10,000 generated requests.
 */
const RUNS = trials(3500, 350); // per property: deep profile, quick profile (see helpers.ts)
let sent = 0;
let key: string;
let appId: string;

beforeAll(async () => {
  const org = await createOrg("Edge fuzz");
  appId = await seedApp(org.orgId, "edge");
  key = (await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "edge", orgRole: "none", appRoles: [{ appId, role: "reader" }] })).key;
  await verifyKey(env, key); // cached: a cache fill is not a change a refused request makes
});

let last: string | undefined;
async function send(request: Request) {
  last ??= await storageSnapshot();
  sent++;
  const res = await gatewayFetch(request);
  const text = await res.text();
  const after = await storageSnapshot();
  return { status: res.status, text, changed: after !== last, headers: res.headers, commit: () => (last = after) };
}
// A fresh client each time: IPv6 addresses are counted by their /64, so the request number goes there.
const ip = () => ({ "cf-connecting-ip": `2001:db8:${(sent >>> 16).toString(16)}:${(sent & 0xffff).toString(16)}::e` });

describe("generated bad input at the edge", () => {
  it("POST /v1/keys/verify: no 5xx, refusals in the envelope, nothing written for a refused key", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          damagedKey(key).map((k) => JSON.stringify({ key: k })),
          fc.record({ key: fc.oneof(hostileString, fc.jsonValue()), permission: fc.oneof(hostileString, fc.constantFrom("app:read", "root")), app: hostileString, strict: fc.jsonValue() }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
          fc.jsonValue().map((v) => JSON.stringify(v)),
          hostileString,
        ),
        fc.constantFrom("application/json", "text/plain", ""),
        async (body, type) => {
          const headers = new Headers(ip());
          if (type) headers.set("content-type", type);
          const res = await send(new Request("https://gateway.test/v1/keys/verify", { method: "POST", headers, body }));
          expectWellFormedRefusal(res.status, res.text);
          if (res.status === 200) expect(JSON.parse(res.text).valid, res.text).toBe(body.includes(key) && JSON.parse(res.text).code === "VALID");
          if (res.status >= 400 || !JSON.parse(res.text).valid) expect(res.changed, `${body.slice(0, 200)} → ${res.text}`).toBe(false);
          res.commit();
        },
      ),
      { numRuns: RUNS },
    );
  }, 300_000);

  it("the gateway: no 5xx, refused requests get 4xx in the envelope and never reach the upstream", async () => {
    await fc.assert(
      fc.asyncProperty(
        // Header values are bytes: hostile strings are cut to Latin-1 (what a raw client can put on the wire).
        fc.oneof(damagedKey(key), hostileString.map((s) => s.replace(/[^\x01-\xff]/g, "")), fc.constant(key)),
        fc.constantFrom("authorization-bearer", "x-api-key", "authorization-raw", "none"),
        fc.oneof(
          fc.constant(`/gw/demo/apps/${appId}/x`),
          hostileString.map((s) => `/gw/demo/apps/${encodeURIComponent(s.toWellFormed()).slice(0, 200)}/x`),
          fc.constantFrom("/gw/demo/apps//x", "/gw/demo/%2e%2e/apps", "/gw/demo/apps/../../v1/orgs", "/gw/", "/gw/demo/deploy"),
        ),
        fc.constantFrom("GET", "POST", "DELETE", "OPTIONS"),
        async (credential, style, path, method) => {
          fc.pre(!/[\r\n\0]/.test(credential));
          const headers = new Headers(ip());
          if (style === "authorization-bearer") headers.set("authorization", `Bearer ${credential}`);
          if (style === "authorization-raw") headers.set("authorization", credential);
          if (style === "x-api-key") headers.set("x-api-key", credential);
          let request: Request;
          try {
            request = new Request(`https://gateway.test${path}`, { method, headers });
          } catch {
            return; // not a request a client can send
          }
          const res = await send(request);
          expectWellFormedRefusal(res.status, res.text);
          if (res.status >= 400) {
            expect(res.headers.get("x-demo-upstream"), res.text).toBeNull();
            expect(res.changed, `${method} ${path} → ${res.text}`).toBe(false);
          }
          res.commit();
        },
      ),
      { numRuns: RUNS },
    );
  }, 300_000);

  it("sent the generated requests it claims", () => {
    expect(sent).toBeGreaterThanOrEqual(2 * RUNS - 100);
  });
});
