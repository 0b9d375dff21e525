import { env } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import { verifyKey } from "../src/verification/verify-key";
import { createOrg, gatewayFetch, trials } from "./helpers";
import { damagedKey, expectWellFormedRefusal, hostileString, storageSnapshot } from "./fuzz-helpers";
import { createKeyAs, seedApp } from "./key-fixtures";

type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;
let other: Org;
let victimId: string;
let appId: string;

/** Requests sent by this file; the suite asserts it sends at least as many as it claims. */
let sent = 0;
/** A fresh client each time: IPv6 addresses are counted by their /64, so the request number goes there. */
const freshAddress = () => `2001:db8:${(sent >>> 16).toString(16)}:${(sent & 0xffff).toString(16)}::1`;
const RUNS_PER_PROPERTY = trials(1500, 200); // deep profile, quick profile (see helpers.ts)

beforeAll(async () => {
  org = await createOrg("Fuzz Co");
  other = await createOrg("Fuzz Other");
  appId = await seedApp(org.orgId, "fuzz-app");
  victimId = (await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "victim", scopes: ["app:read"], secure: false })).id;
  // Fill the KV cache for the callers first: a cache fill is not a change a refused request makes.
  await verifyKey(env, org.adminKey);
  await verifyKey(env, other.adminKey);
});

/**
 * Sends a request and, when it is refused, asserts storage is exactly as before it. The snapshot
 * after one request is the one before the next, so each request costs one snapshot.
 */
let lastSnapshot: string | undefined;
async function sendAndCheck(method: string, path: string, headers: Headers, body: string | undefined) {
  lastSnapshot ??= await storageSnapshot();
  const res = await send(method, path, headers, body);
  expectWellFormedRefusal(res.status, res.text);
  const after = await storageSnapshot();
  if (res.status >= 400) expect(after, `${method} ${path} ${(body ?? "").slice(0, 200)} → ${res.text}`).toBe(lastSnapshot);
  lastSnapshot = after;
  return res;
}

const ROUTES: [method: string, path: (ids: Ids) => string][] = [
  ["POST", () => "/v1/orgs"],
  ["GET", (i) => `/v1/orgs/${i.org}/keys`],
  ["POST", (i) => `/v1/orgs/${i.org}/keys`],
  ["GET", (i) => `/v1/orgs/${i.org}/keys/${i.key}`],
  ["PATCH", (i) => `/v1/orgs/${i.org}/keys/${i.key}`],
  ["DELETE", (i) => `/v1/orgs/${i.org}/keys/${i.key}`],
  ["POST", (i) => `/v1/orgs/${i.org}/keys/${i.key}/regenerate`],
  ["POST", (i) => `/v1/orgs/${i.org}/keys/${i.key}/reveal`],
  ["GET", (i) => `/v1/orgs/${i.org}/apps`],
  ["POST", (i) => `/v1/orgs/${i.org}/apps`],
  ["DELETE", (i) => `/v1/orgs/${i.org}/apps/${i.app}`],
  ["GET", (i) => `/v1/orgs/${i.org}/policy`],
  ["PUT", (i) => `/v1/orgs/${i.org}/policy`],
  ["GET", (i) => `/v1/orgs/${i.org}/audit-log`],
];
interface Ids {
  org: string;
  key: string;
  app: string;
}

/** `s` as a client would put it in a path; lone surrogates (which cannot be encoded) are escaped as %EF%BF%BD. */
const pathSegment = (s: string) => encodeURIComponent(s.toWellFormed());

const idLike = fc.oneof(
  fc.constant("ORG"),
  fc.constant("OTHER"),
  fc.constant(newId()),
  hostileString.map((s) => pathSegment(s).slice(0, 300)),
  fc.constantFrom("", "%00", "..", "%2F..%2F", "' or '1'='1", "0".repeat(20), "Z".repeat(20)),
);

/** Bodies a careless or hostile client sends: anything JSON, half-right objects, malformed text. */
const badBody = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.record(
    {
      name: hostileString,
      kind: fc.oneof(fc.constantFrom("rbac", "scoped", "legacy", "RBAC", ""), hostileString),
      orgRole: fc.oneof(fc.constantFrom("none", "member", "admin", "owner"), fc.integer()),
      appRoles: fc.oneof(fc.array(fc.record({ appId: idLike, role: hostileString })), hostileString),
      scopes: fc.oneof(fc.array(hostileString), fc.array(fc.constantFrom("app:publish", "org:admin", "apiKeyManagement"))),
      mode: hostileString,
      secure: fc.oneof(fc.boolean(), hostileString),
      expiresInDays: fc.oneof(fc.integer(), fc.constantFrom(30, 60, 90, 365), fc.double()),
      expiresAt: fc.oneof(hostileString, fc.constant("1999-01-01T00:00:00Z"), fc.constant(null)),
      requireExpiration: fc.oneof(fc.boolean(), hostileString),
      maxLifetimeDays: fc.oneof(fc.integer({ min: -10, max: 5000 }), fc.constant(null), hostileString),
      extra: fc.jsonValue(),
    },
    { requiredKeys: [] },
  ).map((o) => JSON.stringify(o)),
  hostileString,
  fc.constantFrom("{", "{\"name\":", "[]", "null", "\"\"", "{\"name\":\"a\"}".repeat(3)),
);

const contentType = fc.constantFrom(
  "application/json",
  "application/json; charset=utf-8",
  "APPLICATION/JSON",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/jsonx",
  "",
);

async function send(method: string, path: string, headers: Headers, body: string | undefined) {
  sent++;
  const res = await gatewayFetch(
    new Request(`https://gateway.test${path}`, { method, headers, body: method === "GET" ? undefined : body }),
  );
  return { status: res.status, text: await res.text() };
}

describe("generated bad input against every management endpoint", () => {
  it("never answers 5xx, always answers 4xx in the envelope, and a refused request changes nothing", async () => {
    const authFor = (choice: string) =>
      ({ admin: org.adminKey, other: other.adminKey, none: undefined, garbage: "kgw_garbage" })[choice];
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: ROUTES.length - 1 }),
        idLike,
        idLike,
        fc.constantFrom("admin", "admin", "other", "none", "garbage"),
        badBody,
        contentType,
        async (routeIndex, orgChoice, idChoice, auth, body, type) => {
          const [method, path] = ROUTES[routeIndex]!;
          const resolve = (v: string, own: string) => (v === "ORG" ? own : v === "OTHER" ? other.orgId : v);
          const url = path({ org: resolve(orgChoice, org.orgId), key: resolve(idChoice, victimId), app: resolve(idChoice, appId) });
          // A fresh client address each time: this property is about input, not the abuse limiter.
          const headers = new Headers({ "cf-connecting-ip": freshAddress() });
          const key = authFor(auth);
          if (key) headers.set("authorization", `Bearer ${key}`);
          if (type) headers.set("content-type", type);
          await sendAndCheck(method, url, headers, body);
        },
      ),
      { numRuns: RUNS_PER_PROPERTY },
    );
  }, 300_000);

  it("refuses damaged, duplicated and oddly encoded credentials with 401, changing nothing", async () => {
    await fc.assert(
      fc.asyncProperty(
        damagedKey(org.adminKey),
        fc.constantFrom("bearer", "x-api-key", "both", "duplicate", "lowercase-scheme", "basic", "query"),
        fc.constantFrom(`/v1/orgs/ORG/keys`, `/v1/orgs/ORG/policy`, `/v1/orgs/ORG/audit-log`),
        async (damaged, style, template) => {
          // A header value with CR, LF or NUL cannot be sent at all (the client's Headers refuses it).
          fc.pre(damaged !== org.adminKey && !/[\r\n\0]/.test(damaged));
          const headers = new Headers({ "cf-connecting-ip": freshAddress() });
          let url = template.replace("ORG", org.orgId);
          if (style === "bearer") headers.set("authorization", `Bearer ${damaged}`);
          if (style === "x-api-key") headers.set("x-api-key", damaged);
          if (style === "both") {
            headers.set("authorization", `Bearer ${damaged}`);
            headers.set("x-api-key", org.adminKey);
          }
          if (style === "duplicate") {
            headers.append("authorization", `Bearer ${damaged}`);
            headers.append("authorization", `Bearer ${org.adminKey}`);
          }
          if (style === "lowercase-scheme") headers.set("authorization", `bearer\t${damaged}`);
          if (style === "basic") headers.set("authorization", `Basic ${btoa(`${org.adminKey}:`)}`);
          // A key in the query string is never read, even a valid one.
          if (style === "query") url += `?key=${encodeURIComponent(org.adminKey)}&api_key=${encodeURIComponent(org.adminKey)}`;
          const res = await sendAndCheck("GET", url, headers, undefined);
          expect(res.status, res.text).toBe(401);
        },
      ),
      { numRuns: RUNS_PER_PROPERTY },
    );
  }, 300_000);

  it("sent the number of generated requests it claims", () => {
    expect(sent).toBeGreaterThanOrEqual(2 * RUNS_PER_PROPERTY);
  });
});
