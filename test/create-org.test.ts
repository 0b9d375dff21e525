import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { KEY_PATTERN } from "../src/domain/key-format";
import { BOOTSTRAP, call, expectStatus } from "./helpers";

describe("POST /v1/orgs", () => {
  it("creates an organization and returns its first admin key once", async () => {
    const res = await call("POST", "/v1/orgs", { key: BOOTSTRAP, body: { name: "  Acme Inc  " } });
    expectStatus(res, 201);
    expect(res.body.org.name).toBe("Acme Inc");
    expect(res.body.key.key).toMatch(KEY_PATTERN);
    expect(res.body.key).toMatchObject({ kind: "rbac", orgRole: "admin", secure: true, status: "active", expiresAt: null });
    expect(res.headers.get("cache-control")).toBe("no-store");
  });

  it("refuses a wrong bootstrap secret with 401 and a challenge", async () => {
    const before = await env.DB.prepare("select count(*) as n from orgs").first<{ n: number }>();
    const res = await call("POST", "/v1/orgs", { key: "nope", body: { name: "Acme" } });
    expectStatus(res, 401);
    expect(res.body.error.code).toBe("UNAUTHORIZED");
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
    const count = await env.DB.prepare("select count(*) as n from orgs").first<{ n: number }>();
    expect(count?.n).toBe(before?.n);
  });

  it("rejects an empty name, naming the field", async () => {
    const res = await call("POST", "/v1/orgs", { key: BOOTSTRAP, body: { name: "   " } });
    expectStatus(res, 400);
    expect(res.body.error.details.issues[0].field).toBe("name");
  });
});
