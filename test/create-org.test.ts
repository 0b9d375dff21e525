import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { KEY_PATTERN } from "../src/domain/key-format";
import { policyRecordName } from "../src/storage/key-record";
import { BOOTSTRAP, call, expectStatus } from "./helpers";
import { faultyKV } from "./fault-bindings";

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

  it("counts wrong bootstrap secrets like every failed authentication: 429 past the limit, even for the right secret", async () => {
    const headers = { "cf-connecting-ip": "203.0.113.45" };
    const statuses: number[] = [];
    for (let i = 0; i < 45; i++) statuses.push((await call("POST", "/v1/orgs", { key: `wrong-${i}`, body: { name: "Guess" }, headers })).status);
    expect(statuses.slice(0, 30).every((s) => s === 401), statuses.join(",")).toBe(true);
    expect(statuses.slice(30).every((s) => s === 429), statuses.join(",")).toBe(true);
    const limited = await call("POST", "/v1/orgs", { key: BOOTSTRAP, body: { name: "Too late" }, headers });
    expectStatus(limited, 429);
    expect(limited.body.error.code, limited.text).toBe("RATE_LIMITED");
    expect(Number(limited.headers.get("retry-after")), limited.text).toBeGreaterThan(0);
    // Another address is not limited.
    expectStatus(await call("POST", "/v1/orgs", { key: BOOTSTRAP, body: { name: "Elsewhere" }, headers: { "cf-connecting-ip": "203.0.113.46" } }), 201);
  });

  it("succeeds and shows the admin key when KV is failing: the org is never left in D1 with its key unseen", async () => {
    for (const fault of ["throw", "stall"] as const) {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request("https://gateway.test/v1/orgs", {
          method: "POST",
          headers: { authorization: `Bearer ${BOOTSTRAP}`, "content-type": "application/json", "cf-connecting-ip": "203.0.113.47" },
          body: JSON.stringify({ name: `KV ${fault}` }),
        }),
        { ...env, KEYS_KV: faultyKV(fault) },
        ctx,
      );
      await waitOnExecutionContext(ctx);
      const text = await res.text();
      expect(res.status, text).toBe(201);
      const created = JSON.parse(text) as { org: { id: string }; key: { key: string } };
      expect(created.key.key, text).toMatch(KEY_PATTERN);
      // The policy record was not seeded; the verifier falls back to D1, and the key works.
      expect(await env.KEYS_KV.get(policyRecordName(created.org.id))).toBeNull();
      for (let i = 0; i < 2; i++) {
        const verdict = await call("POST", "/v1/keys/verify", { body: { key: created.key.key } });
        expect(verdict.body.code, verdict.text).toBe("VALID");
      }
      expectStatus(await call("GET", `/v1/orgs/${created.org.id}/keys`, { key: created.key.key }), 200);
    }
  }, 15_000);
});
