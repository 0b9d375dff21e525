import { describe, expect, it } from "vitest";
import { SECURITY_HEADERS, withResponseHeaders } from "../src/app";
import { BOOTSTRAP, call } from "./helpers";

const expectSecurityHeaders = (headers: Headers) => {
  expect(headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
  expect(headers.get("x-content-type-options")).toBe("nosniff");
  expect(headers.get("x-frame-options")).toBe("DENY");
  expect(headers.get("strict-transport-security")).toContain("max-age=");
};

describe("every response carries a request id and the security headers", () => {
  it("on success, on errors of every kind, and on the OpenAPI document", async () => {
    const responses = [
      await call("GET", "/healthz"),
      await call("GET", "/openapi.json"),
      await call("POST", "/v1/keys/verify", { body: { key: "kgw_not_a_key" } }),
      await call("POST", "/v1/keys/verify", { body: { nope: 1 } }), // 400
      await call("GET", "/v1/orgs/01jd8x6w2m9k3v7q4r5t/keys"), // 401
      await call("POST", "/v1/orgs", { key: BOOTSTRAP, body: "{", headers: { "content-type": "application/json" } }), // 400 bad JSON
      await call("GET", "/no/such/route"), // 404
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 400, 401, 400, 404]);
    for (const res of responses) {
      expectSecurityHeaders(res.headers);
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("content-security-policy")).toBe(SECURITY_HEADERS["Content-Security-Policy"]);
    }
    // One id per request.
    expect(new Set(responses.map((r) => r.headers.get("x-request-id"))).size).toBe(responses.length);
  });

  it("keeps a header a route set itself (the console's own CSP)", async () => {
    const res = await call("GET", "/console/sign-in");
    expect(res.status).toBe(200);
    expectSecurityHeaders(res.headers);
    expect(res.headers.get("content-security-policy")).toContain("script-src https://gateway.test/console/app.js;");
  });

  it("adds them to a response whose headers cannot be changed, by copying it once", async () => {
    const immutable = Response.redirect("https://gateway.test/elsewhere", 302);
    expect(() => immutable.headers.set("x-probe", "1")).toThrow();
    const finished = withResponseHeaders(immutable, "req_00000000000000000000000000000000");
    expect(finished).not.toBe(immutable);
    expect(finished.status).toBe(302);
    expect(finished.headers.get("location")).toBe("https://gateway.test/elsewhere");
    expect(finished.headers.get("x-request-id")).toBe("req_00000000000000000000000000000000");
    expect(finished.headers.get("x-content-type-options")).toBe("nosniff");

    const mutable = new Response("ok", { headers: { "X-Frame-Options": "SAMEORIGIN" } });
    expect(withResponseHeaders(mutable, "req_1")).toBe(mutable);
    expect(mutable.headers.get("x-frame-options")).toBe("SAMEORIGIN");
  });
});
