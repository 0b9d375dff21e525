import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../src/domain/crypto";
import { compileGateway, GatewayConfigError } from "../src/gateway/config";
import { keyRecordName } from "../src/storage/key-record";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus, gatewayFetch } from "./helpers";
import { authoritySettled, createKeyAs, seedApp } from "./key-fixtures";

let org: Awaited<ReturnType<typeof createOrg>>;
let appId: string;
let reader: { id: string; key: string };
let uploader: { id: string; key: string };
beforeAll(async () => {
  org = await createOrg("Gateway Co");
  appId = await seedApp(org.orgId, "gw-app");
  reader = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Reader ☃", orgRole: "none", appRoles: [{ appId, role: "reader" }] });
  uploader = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Uploader", orgRole: "none", appRoles: [{ appId, role: "uploader" }] });
});

async function gw(method: string, path: string, init: { key?: string; headers?: Record<string, string>; body?: BodyInit } = {}) {
  const headers = new Headers(init.headers);
  if (init.key) headers.set("authorization", `Bearer ${init.key}`);
  return gatewayFetch(new Request(`https://gateway.test${path}`, { method, headers, body: init.body }));
}

describe("gateway: allowed requests", () => {
  it("forwards with the credential removed and the caller's identity attached", async () => {
    const res = await gw("GET", `/gw/demo/apps/${appId}/info?x=1`, {
      key: reader.key,
      headers: { "x-api-key": "leak", "x-keygate-org-id": "spoofed", cookie: "session=1", "x-custom": "kept" },
    });
    expect(res.status).toBe(200);
    const echo = (await res.json()) as { path: string; query: string; headers: Record<string, string> };
    expect(echo.path).toBe(`/apps/${appId}/info`);
    expect(echo.query).toBe("?x=1");
    expect(echo.headers.authorization).toBeUndefined();
    expect(echo.headers["x-api-key"]).toBeUndefined();
    expect(echo.headers.cookie).toBeUndefined();
    expect(echo.headers["x-custom"]).toBe("kept");
    expect(echo.headers["x-keygate-key-id"]).toBe(reader.id);
    expect(echo.headers["x-keygate-org-id"]).toBe(org.orgId);
    expect(decodeURIComponent(echo.headers["x-keygate-key-name"]!)).toBe("Reader ☃");
    expect(echo.headers["x-keygate-permissions"]).toBe(`app:read@${appId}`);
    expect(JSON.stringify(echo)).not.toContain(reader.key);
  });

  it("accepts the key from x-api-key too, never from the query string", async () => {
    expect((await gw("GET", `/gw/demo/apps/${appId}/info`, { headers: { "x-api-key": reader.key } })).status).toBe(200);
    const res = await gw("GET", `/gw/demo/apps/${appId}/info?key=${reader.key}&api_key=${reader.key}`);
    expect(res.status).toBe(400); // refused outright: a key in a URL is a key in someone's logs
    expect(res.headers.get("x-demo-upstream")).toBeNull();
  });

  it("streams the upstream's response back: status, headers and a large body, with cookies removed and a sandbox added", async () => {
    const res = await gw("GET", "/gw/demo/stream?chunks=2000", { key: reader.key });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-demo-upstream")).toBe("stream");
    const text = await res.text();
    expect(text.length).toBeGreaterThan(2_000_000);
    expect(text.split("\n").filter(Boolean)).toHaveLength(2000);
    const teapot = await gw("GET", `/gw/demo/apps/${appId}/teapot`, { key: reader.key });
    expect(teapot.status).toBe(418);
    expect(teapot.headers.get("x-demo-upstream")).toBe("echo");
    // The console shares this origin: no upstream cookie, and the page is sandboxed (test/gateway-hardening.test.ts).
    expect(teapot.headers.get("set-cookie")).toBeNull();
    expect(teapot.headers.get("content-security-policy")).toBe("sandbox");
  });

  it("forwards request bodies intact", async () => {
    const body = "b".repeat(300_000);
    const res = await gw("POST", `/gw/demo/apps/${appId}/bundles`, { key: uploader.key, body });
    expect(res.status).toBe(200);
    const echo = (await res.json()) as { bodyLength: number; method: string };
    expect(echo).toMatchObject({ bodyLength: body.length, method: "POST" });
  });

  it("serves open routes without a key", async () => {
    const res = await gw("GET", "/gw/demo/public/hello");
    expect(res.status).toBe(200);
    expect(((await res.json()) as { headers: Record<string, string> }).headers["x-keygate-key-id"]).toBeUndefined();
  });
});

describe("gateway: refused requests never reach the upstream", () => {
  it("401 with WWW-Authenticate and the reason for missing, malformed, unknown and revoked keys", async () => {
    const victim = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "v", orgRole: "member", appRoles: [{ appId, role: "reader" }] });
    await call("DELETE", `/v1/orgs/${org.orgId}/keys/${victim.id}`, { key: org.adminKey });
    const cases: [string | undefined, string][] = [
      [undefined, "MISSING"],
      ["kgw_nope", "MALFORMED"],
      [reader.key.slice(0, -1) + (reader.key.endsWith("a") ? "b" : "a"), "MALFORMED"],
      [victim.key, "REVOKED"],
    ];
    for (const [key, reason] of cases) {
      const res = await gw("GET", `/gw/demo/apps/${appId}/info`, { key, headers: { "cf-connecting-ip": `2001:db8::${reason.length}` } });
      const body = (await res.json()) as { error: { code: string; details: { reason: string } } };
      expect(res.status, JSON.stringify(body)).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      expect(body.error).toMatchObject({ code: "UNAUTHORIZED", details: { reason } });
      expect(res.headers.get("x-demo-upstream")).toBeNull();
    }
  });

  it("403 for a valid key without the route's permission, or on another app", async () => {
    const upload = await gw("POST", `/gw/demo/apps/${appId}/bundles`, { key: reader.key, body: "x" });
    expect(upload.status).toBe(403);
    expect(((await upload.json()) as { error: { details: { reason: string } } }).error.details.reason).toBe("INSUFFICIENT_PERMISSIONS");
    const otherApp = await seedApp(org.orgId, "other-gw-app");
    expect((await gw("GET", `/gw/demo/apps/${otherApp}/info`, { key: reader.key })).status).toBe(403);
  });

  it("405 for a method the route does not allow, 404 for no route", async () => {
    const res = await gw("DELETE", `/gw/demo/apps/${appId}/info`, { key: reader.key });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
    expect((await gw("GET", "/gw/nowhere", { key: reader.key })).status).toBe(404);
  });

  it("a revoked key is refused on its very next gateway call", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "soon", orgRole: "none", appRoles: [{ appId, role: "reader" }] });
    expect((await gw("GET", `/gw/demo/apps/${appId}/x`, { key: key.key })).status).toBe(200);
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey }), 204);
    expect((await gw("GET", `/gw/demo/apps/${appId}/x`, { key: key.key })).status).toBe(401);
  });

  it("a strict route sees a revoke even through a stale cache", async () => {
    const deployer = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "deployer", scopes: ["project:deploy"] });
    expect((await gw("POST", "/gw/demo/deploy", { key: deployer.key })).status).toBe(200);
    // Another location's cache may still hold the old record: put it back behind the authority's back.
    await verifyKey(env, deployer.key, { mode: "cached" });
    await authoritySettled(deployer.id);
    const name = keyRecordName(await hashKey(deployer.key));
    const stale = await env.KEYS_KV.get(name);
    expect(stale).toContain('"active"');
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${deployer.id}`, { key: org.adminKey }), 204);
    await authoritySettled(deployer.id);
    await env.KEYS_KV.put(name, stale!);
    expect((await verifyKey(env, deployer.key, { mode: "cached" })).valid).toBe(true); // what that location would answer
    expect((await gw("POST", "/gw/demo/deploy", { key: deployer.key })).status).toBe(401);
  });
});

describe("gateway route table validation", () => {
  const good = { name: "r", pattern: "/gw/a/:appId/*", upstream: { service: "UP" }, permission: "app:read", appParam: "appId" };
  it("accepts a valid table and rejects bad ones at load with a clear error", () => {
    expect(compileGateway([good])).toHaveLength(1);
    const bad: [unknown, RegExp][] = [
      [[{ ...good, pattern: "/api/x" }], /pattern: must start with \/gw\//],
      [[{ ...good, appParam: "app" }], /appParam: :app is not a parameter/],
      [[{ ...good, auth: false }], /open route cannot require/],
      [[{ ...good, upstream: { url: "ftp://x" } }], /upstream/],
      [[{ ...good, permission: "root" }], /permission/],
      [[good, good], /duplicate route name/],
      [[{ ...good, extra: 1 }], /extra|Unrecognized/i],
    ];
    for (const [table, message] of bad) {
      expect(() => compileGateway(table)).toThrow(GatewayConfigError);
      expect(() => compileGateway(table)).toThrow(message);
    }
  });
});

describe("verification over a service binding", () => {
  it("KeyVerifier.verify gives the same verdict as the HTTP endpoint", async () => {
    const verifier = (exports as unknown as { KeyVerifier: { verify: (k: string, o?: object) => Promise<{ code: string; keyId?: string }> } }).KeyVerifier;
    const ok = await verifier.verify(uploader.key, { permission: "app:upload", app: appId });
    expect(ok).toMatchObject({ valid: true, code: "VALID", keyId: uploader.id });
    expect((await verifier.verify(uploader.key, { permission: "app:admin", app: appId })).code).toBe("INSUFFICIENT_PERMISSIONS");
    expect((await verifier.verify("kgw_bad")).code).toBe("MALFORMED");
  });
});
