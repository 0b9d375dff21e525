import { beforeAll, describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import { call, createOrg } from "./helpers";
import { createKeyAs, seedApp } from "./key-fixtures";
import { storageSnapshot } from "./fuzz-helpers";

/**
 * A key of org A against every route naming an object of org B: with B's real ids, with A's own ids
 * under B's path, and with random ids. Always 404, never 403, nothing changed, and the same answer
 * whether B's object exists or not.
 */
type Org = Awaited<ReturnType<typeof createOrg>> & { appId: string; keyId: string };
let a: Org;
let b: Org;
beforeAll(async () => {
  const make = async (name: string) => {
    const org = await createOrg(name);
    const appId = await seedApp(org.orgId, "app");
    const keyId = (await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "k", scopes: ["app:read"], secure: false })).id;
    return { ...org, appId, keyId };
  };
  a = await make("Org A");
  b = await make("Org B");
});

const ROUTES: [string, (o: string, k: string, app: string) => string, unknown?][] = [
  ["GET", (o) => `/v1/orgs/${o}/keys`],
  ["POST", (o) => `/v1/orgs/${o}/keys`, { kind: "scoped", name: "x", scopes: ["app:read"] }],
  ["GET", (o, k) => `/v1/orgs/${o}/keys/${k}`],
  ["PATCH", (o, k) => `/v1/orgs/${o}/keys/${k}`, { name: "x" }],
  ["DELETE", (o, k) => `/v1/orgs/${o}/keys/${k}`],
  ["POST", (o, k) => `/v1/orgs/${o}/keys/${k}/regenerate`],
  ["POST", (o, k) => `/v1/orgs/${o}/keys/${k}/reveal`],
  ["POST", (o, k) => `/v1/orgs/${o}/keys/${k}/disable`],
  ["POST", (o, k) => `/v1/orgs/${o}/keys/${k}/enable`],
  ["POST", (o, k) => `/v1/orgs/${o}/keys/${k}/end-overlap`],
  ["GET", (o) => `/v1/orgs/${o}/apps`],
  ["POST", (o) => `/v1/orgs/${o}/apps`, { name: "x" }],
  ["DELETE", (o, _k, app) => `/v1/orgs/${o}/apps/${app}`],
  ["GET", (o) => `/v1/orgs/${o}/policy`],
  ["PUT", (o) => `/v1/orgs/${o}/policy`, { requireExpiration: false, maxLifetimeDays: null }],
  ["GET", (o) => `/v1/orgs/${o}/audit-log`],
];

describe("cross-organization matrix", () => {
  for (const [method, path, body] of ROUTES) {
    const label = `${method} ${path(":org", ":key", ":app")}`;
    it(`${label}: 404 for B's objects, A's objects under B, and random ids; nothing changes`, async () => {
      const before = await storageSnapshot();
      const variants = [
        path(b.orgId, b.keyId, b.appId), // B's real objects
        path(b.orgId, a.keyId, a.appId), // A's objects under B's org
        path(a.orgId, b.keyId, b.appId), // B's objects under A's own org
        path(newId(), newId(), newId()), // nothing at all
      ];
      const shapes = new Set<string>();
      // Under A's own path, routes that name no key or app (list, create, policy) are A's business.
      const namesB = (url: string) => !url.startsWith(`/v1/orgs/${a.orgId}/`) || url.includes(b.keyId) || url.includes(b.appId);
      for (const url of variants.filter(namesB)) {
        const res = await call(method, url, { key: a.adminKey, body });
        expect(res.status, `${method} ${url}: ${res.text}`).toBe(404);
        expect(res.body.error.code).toBe("NOT_FOUND");
        shapes.add(`${res.body.error.message}`);
      }
      expect(shapes.size, [...shapes].join(" | ")).toBeLessThanOrEqual(2); // "No such organization." / "No such key|app."
      expect(await storageSnapshot()).toBe(before);
    });
  }
});
