import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { compileGateway, GatewayConfigError } from "../src/gateway/config";
import { upstreamRequest } from "../src/gateway/proxy";
import { createOrg } from "./helpers";
import { createKeyAs, seedApp } from "./key-fixtures";

/**
 * Issue 11, the gateway's share: what an upstream's response may do to the console on the same origin
 * (5), encoded separators in paths (6), route-config SSRF (7), other credential carriers (14), and
 * client-supplied identity headers on every route (20).
 */

let org: Awaited<ReturnType<typeof createOrg>>;
let appId: string;
let otherAppId: string;
let reader: { id: string; key: string };
beforeAll(async () => {
  org = await createOrg("Gateway hardening Co");
  appId = await seedApp(org.orgId, "hardened-app");
  otherAppId = await seedApp(org.orgId, "neighbour-app");
  reader = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Reader", orgRole: "none", appRoles: [{ appId, role: "reader" }] });
});

/** A gateway call; `dump` is the whole response (status, headers, body) for failure messages. */
async function gw(method: string, path: string, init: { key?: string; headers?: Record<string, string> } = {}) {
  const headers = new Headers(init.headers);
  if (init.key) headers.set("authorization", `Bearer ${init.key}`);
  const res = await exports.default.fetch(new Request(`https://gateway.test${path}`, { method, headers }));
  const text = await res.text();
  const headerLines = [...res.headers].map(([n, v]) => `${n}: ${v}`).join("\n");
  const dump = `${method} ${path} → ${res.status}\n${headerLines}\n\n${text}`;
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json, dump };
}

/** The headers the demo upstream says it received. */
async function upstreamSaw(path: string, init: { key?: string; headers?: Record<string, string> } = {}) {
  const res = await gw("GET", path, init);
  expect(res.status, res.dump).toBe(200);
  expect(res.headers.get("x-demo-upstream"), res.dump).toBe("echo");
  return { headers: res.json.headers as Record<string, string>, query: res.json.query as string, dump: res.dump };
}

describe("an upstream's response cannot act on the console (same origin)", () => {
  it("a page an upstream returns, through an open or an authenticated route, is sandboxed and sets no cookie", async () => {
    for (const [path, key] of [
      ["/gw/demo/public/hostile-page", undefined],
      [`/gw/demo/apps/${appId}/hostile-page`, reader.key],
    ] as const) {
      const res = await gw("GET", path, { key });
      expect(res.status, res.dump).toBe(200);
      expect(res.headers.get("x-demo-upstream"), res.dump).toBe("hostile-page"); // it did reach the upstream
      expect(res.text, res.dump).toContain("<script>"); // the body is the upstream's, unchanged
      // Our policy comes last, so it is the sandbox the browser applies; the upstream's own policy is kept.
      const policies = (res.headers.get("content-security-policy") ?? "").split(",").map((p) => p.trim());
      expect(policies.at(-1), res.dump).toBe("sandbox");
      expect(policies, res.dump).toContain("sandbox allow-scripts allow-same-origin allow-forms; img-src 'self'");
      expect(res.headers.getSetCookie(), res.dump).toEqual([]);
      expect(res.headers.get("clear-site-data"), res.dump).toBeNull();
      expect(res.headers.get("service-worker-allowed"), res.dump).toBeNull();
    }
  });

  it("every proxied response is sandboxed, whatever its status or type, and carries no upstream cookie", async () => {
    for (const [path, status] of [
      [`/gw/demo/apps/${appId}/teapot`, 418],
      [`/gw/demo/apps/${appId}/info`, 200],
      ["/gw/demo/public/hello", 200],
      ["/gw/demo/stream?chunks=3", 200],
    ] as const) {
      const res = await gw("GET", path, { key: reader.key });
      expect(res.status, res.dump).toBe(status);
      expect(res.headers.get("content-security-policy"), res.dump).toBe("sandbox");
      expect(res.headers.getSetCookie(), res.dump).toEqual([]); // the echo sets demo=1; Path=/
      expect(res.headers.get("x-content-type-options"), res.dump).toBe("nosniff");
    }
  });
});

describe("encoded separators in a gateway path are refused before the key is checked", () => {
  const variants = (a: () => string, b: () => string) => [
    `/gw/demo/apps/${a()}/..%2f${b()}/info`,
    `/gw/demo/apps/${a()}/..%2F${b()}/info`,
    `/gw/demo/apps/${a()}/..%5c${b()}/info`,
    `/gw/demo/apps/${a()}/..%5C${b()}/info`,
    `/gw/demo/apps/${a()}/%2e%2e%2f${b()}/info`,
    `/gw/demo/apps/${a()}/%2E%2E%2F${b()}/info`,
    `/gw/demo/apps/${a()}/%252e%252e%252f${b()}/info`,
    `/gw/demo/apps/${a()}/%25252e%25252e%25252f${b()}/info`,
    `/gw/demo/apps/${a()}/%252e%252e/${b()}/info`,
    `/gw/demo/apps/${a()}/.%252e/${b()}/info`,
    `/gw/demo/apps/${a()}/%252e/info`,
    `/gw/demo/apps/${a()}/..;/${b()}/info`,
    `/gw/demo/apps/${a()}//${b()}/info`,
    `/gw/demo/apps/${a()}%2f..%2f${b()}/info`,
    `/gw/demo/apps/${a()}/x%2fy`,
    `/gw/demo/apps/${a()}/x%5cy`,
    `/gw/demo/public/..%2f..%2fv1/orgs`,
    `/gw/demo/public//admin`,
    `/gw/demo/public/%252e%252e%252fadmin`,
  ];

  it("each encoded /, \\ and dot-segment, single or double encoded, answers 400 with or without a key", async () => {
    for (const path of variants(() => appId, () => otherAppId)) {
      for (const key of [undefined, reader.key]) {
        const res = await gw("GET", path, { key });
        expect(res.status, res.dump).toBe(400);
        expect(res.json?.error?.code, res.dump).toBe("INVALID_REQUEST");
        expect(res.json?.error?.requestId, res.dump).toMatch(/^req_/);
        expect(res.headers.get("x-demo-upstream"), res.dump).toBeNull();
        expect(res.headers.get("www-authenticate"), res.dump).toBeNull(); // refused before verification
      }
    }
  });

  it("ordinary paths with dots, spaces, percent signs and a trailing slash still pass", async () => {
    for (const path of [
      "/gw/demo/public/bundle.tar.gz",
      "/gw/demo/public/.well-known/x",
      "/gw/demo/public/.../x",
      "/gw/demo/public/a%20b",
      "/gw/demo/public/100%25",
      "/gw/demo/public/caf%C3%A9",
      "/gw/demo/public/dir/",
    ]) {
      const res = await gw("GET", path);
      expect(res.status, res.dump).toBe(200);
      expect(res.json.path, res.dump).toBe(path.slice("/gw/demo".length));
    }
  });
});

describe("a route's upstream URL cannot be steered to another host or port", () => {
  const route = { name: "svc", pattern: "/gw/svc/*", upstream: { url: "https://upstream.example" }, stripPrefix: "/gw/svc", auth: false };

  it("a route table whose stripPrefix ends inside a segment, or whose upstream has a query, is refused when it loads", () => {
    const bad: [unknown, RegExp][] = [
      [[{ ...route, stripPrefix: "/gw/svc/" }], /stripPrefix: .*segment/],
      [[{ ...route, stripPrefix: "/gw/sv" }], /stripPrefix: .*segment/],
      [[{ ...route, stripPrefix: "/gw/s" }], /stripPrefix: .*segment/],
      [[{ ...route, pattern: "/gw/:tenant/x", stripPrefix: "/gw/:tenant" }], /stripPrefix: .*literal/],
      [[{ ...route, stripPrefix: "/gw/svc/*" }], /stripPrefix/],
      [[{ ...route, upstream: { url: "https://upstream.example/?token=1" } }], /upstream.*query/],
      [[{ ...route, upstream: { url: "https://upstream.example/#x" } }], /upstream.*query/],
    ];
    for (const [table, message] of bad) {
      expect(() => compileGateway(table), JSON.stringify(table)).toThrow(GatewayConfigError);
      expect(() => compileGateway(table), JSON.stringify(table)).toThrow(message);
    }
    expect(compileGateway([route])).toHaveLength(1);
    expect(compileGateway([{ ...route, pattern: "/gw/svc", stripPrefix: "/gw/svc" }])).toHaveLength(1);
  });

  it("whatever the path, a request for a URL route goes to that route's host and port", () => {
    const [compiled] = compileGateway([route]);
    const [withBase] = compileGateway([{ ...route, upstream: { url: "https://upstream.example:8443/v2/" } }]);
    const cases: [typeof compiled, string, string, string][] = [
      [compiled, "/gw/svc/.evil.example", "https://upstream.example", "/.evil.example"],
      [compiled, "/gw/svc/:8443", "https://upstream.example", "/:8443"],
      [compiled, "/gw/svc/@evil.example/x", "https://upstream.example", "/@evil.example/x"],
      [compiled, "/gw/svc//evil.example/x", "https://upstream.example", "//evil.example/x"],
      [compiled, "/gw/svc/apps/1/info?q=1", "https://upstream.example", "/apps/1/info"],
      [compiled, "/gw/svc", "https://upstream.example", "/"],
      [withBase, "/gw/svc/.evil.example", "https://upstream.example:8443", "/v2/.evil.example"],
      [withBase, "/gw/svc/:9000", "https://upstream.example:8443", "/v2/:9000"],
    ];
    for (const [r, path, origin, pathname] of cases) {
      const forwarded = upstreamRequest(new Request(`https://gateway.test${path}`), r!, null, "req_test");
      const target = new URL(forwarded.url);
      expect(target.origin, `${path} → ${forwarded.url}`).toBe(origin);
      expect(target.pathname, `${path} → ${forwarded.url}`).toBe(pathname);
    }
  });

  it("even a route whose stripPrefix slipped past validation cannot send a request to another host", () => {
    const [compiled] = compileGateway([route]);
    for (const stripPrefix of ["/gw/svc/", "/gw/sv", "/gw/s"]) {
      for (const path of ["/gw/svc/.evil.example", "/gw/svc/:8443", "/gw/svc/@evil.example"]) {
        let target: string;
        try {
          target = upstreamRequest(new Request(`https://gateway.test${path}`), { ...compiled!, stripPrefix }, null, "req_test").url;
        } catch (err) {
          expect((err as { code?: string }).code, `${stripPrefix} ${path}: ${String(err)}`).toBe("INVALID_REQUEST");
          continue;
        }
        expect(new URL(target).origin, `${stripPrefix} ${path} → ${target}`).toBe("https://upstream.example");
      }
    }
  });
});

describe("other credential carriers never reach the upstream", () => {
  it("a key in the query string is refused with 400 and never forwarded, on open and authenticated routes", async () => {
    const k = reader.key;
    const queries = [`key=${k}`, `api_key=${k}`, `token=Bearer%20${k}`, `x=1&${k}`, `q=${encodeURIComponent(k)}`, `a=b&auth=${k}&c=d`];
    for (const base of ["/gw/demo/public/hello", `/gw/demo/apps/${appId}/info`]) {
      for (const query of queries) {
        for (const key of [undefined, reader.key]) {
          const res = await gw("GET", `${base}?${query}`, { key });
          expect(res.status, res.dump).toBe(400);
          expect(res.json?.error?.code, res.dump).toBe("INVALID_REQUEST");
          expect(res.headers.get("x-demo-upstream"), res.dump).toBeNull();
          expect(res.text, res.dump).not.toContain(k.slice(4)); // the refusal does not repeat the key
        }
      }
    }
    // Other query strings pass, including ones that only look a little like a key.
    const fine = await upstreamSaw(`/gw/demo/apps/${appId}/info?key=kgw_short&page=2`, { key: reader.key });
    expect(fine.query, fine.dump).toBe("?key=kgw_short&page=2");
  });

  it("a key pasted into the path is refused with 400 too, and never forwarded", async () => {
    for (const [path, key] of [
      [`/gw/demo/public/${reader.key}`, undefined],
      [`/gw/demo/apps/${appId}/${reader.key}/info`, reader.key],
    ] as const) {
      const res = await gw("GET", path, { key });
      expect(res.status, res.dump).toBe(400);
      expect(res.json?.error?.details?.reason, res.dump).toBe("KEY_IN_URL");
      expect(res.headers.get("x-demo-upstream"), res.dump).toBeNull();
    }
  });

  it("Proxy-Authorization is removed before forwarding, on open and authenticated routes", async () => {
    for (const [path, key] of [
      ["/gw/demo/public/hello", undefined],
      [`/gw/demo/apps/${appId}/info`, reader.key],
    ] as const) {
      const saw = await upstreamSaw(path, { key, headers: { "proxy-authorization": `Bearer ${reader.key}` } });
      expect(saw.headers["proxy-authorization"], saw.dump).toBeUndefined();
      expect(saw.dump).not.toContain(reader.key);
    }
  });

  it("the upstream sees the address the client connected from, not one the client claims", async () => {
    const claimed = {
      "cf-connecting-ip": "203.0.113.7",
      "x-forwarded-for": "10.0.0.1, 127.0.0.1",
      "x-real-ip": "127.0.0.1",
      forwarded: "for=127.0.0.1;proto=https",
      "true-client-ip": "127.0.0.1",
      "x-client-ip": "127.0.0.1",
      "x-forwarded-host": "admin.internal",
    };
    for (const [path, key] of [
      ["/gw/demo/public/hello", undefined],
      [`/gw/demo/apps/${appId}/info`, reader.key],
    ] as const) {
      const saw = await upstreamSaw(path, { key, headers: claimed });
      expect(saw.headers["x-forwarded-for"], saw.dump).toBe("203.0.113.7");
      expect(saw.headers["x-real-ip"], saw.dump).toBe("203.0.113.7");
      expect(saw.headers.forwarded, saw.dump).toBeUndefined();
      expect(saw.headers["true-client-ip"], saw.dump).toBeUndefined();
      expect(saw.headers["x-client-ip"], saw.dump).toBeUndefined();
      expect(saw.headers["x-forwarded-host"], saw.dump).toBe("gateway.test");
      expect(saw.headers["x-forwarded-proto"], saw.dump).toBe("https");
    }
    // No connecting address known: no forwarding address at all, never the client's.
    const { "cf-connecting-ip": _, ...withoutIp } = claimed;
    const saw = await upstreamSaw("/gw/demo/public/hello", { headers: withoutIp });
    expect(saw.headers["x-forwarded-for"], saw.dump).toBeUndefined();
    expect(saw.headers["x-real-ip"], saw.dump).toBeUndefined();
  });
});

describe("a client cannot send the upstream x-keygate-* headers", () => {
  const spoofed = {
    "x-keygate-key-id": "spoofed",
    "x-keygate-org-id": "spoofed",
    "x-keygate-permissions": "org:admin@*",
    "x-keygate-admin": "true",
    "X-KeyGate-Role": "owner",
  };

  it("on an open route, no x-keygate-* header of any name reaches the upstream", async () => {
    const saw = await upstreamSaw("/gw/demo/public/hello", { headers: spoofed });
    expect(Object.keys(saw.headers).filter((n) => n.startsWith("x-keygate-")), saw.dump).toEqual([]);
  });

  it("on an authenticated route, a name the gateway never sets (x-keygate-admin) is dropped too", async () => {
    const saw = await upstreamSaw(`/gw/demo/apps/${appId}/info`, { key: reader.key, headers: spoofed });
    expect(saw.headers["x-keygate-admin"], saw.dump).toBeUndefined();
    expect(saw.headers["x-keygate-role"], saw.dump).toBeUndefined();
    expect(saw.headers["x-keygate-key-id"], saw.dump).toBe(reader.id);
    expect(saw.headers["x-keygate-org-id"], saw.dump).toBe(org.orgId);
    expect(saw.headers["x-keygate-permissions"], saw.dump).toBe(`app:read@${appId}`);
  });
});
