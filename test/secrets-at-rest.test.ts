import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { BOOTSTRAP, call, createOrg, gatewayFetch } from "./helpers";
import { createKeyAs, seedApp } from "./key-fixtures";

/**
 * A realistic session (create, verify, gateway, edit, reveal, regenerate, revoke, errors), then a scan
 * of everything at rest and everything emitted for key material: KV values, D1 rows, audit entries,
 * error bodies and log lines.
 */
const secrets: string[] = [];
const errorBodies: string[] = [];
const logged: string[] = [];
let spies: ReturnType<typeof vi.spyOn>[] = [];

/** What identifies a secret: the full key and its secret part (after the id). */
const needles = () => [BOOTSTRAP, ...secrets.flatMap((k) => [k, k.slice(26, 58)])];

beforeAll(async () => {
  spies = (["log", "error", "warn", "info"] as const).map((level) =>
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void logged.push(args.map(String).join(" "))),
  );
  const org = await createOrg("Secrets Co");
  secrets.push(org.adminKey);
  const appId = await seedApp(org.orgId, "s-app");
  const as = { key: org.adminKey };
  const plain = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "plain", orgRole: "none", appRoles: [{ appId, role: "reader" }], secure: false });
  const secure = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "secure", scopes: ["app:read"] });
  const legacy = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "legacy", mode: "write", secure: false });
  secrets.push(plain.key, secure.key, legacy.key);
  for (const k of [plain.key, secure.key, legacy.key]) await call("POST", "/v1/keys/verify", { body: { key: k } });
  await gatewayFetch(new Request(`https://gateway.test/gw/demo/apps/${appId}/x`, { headers: { authorization: `Bearer ${plain.key}` } }));
  await call("PATCH", `/v1/orgs/${org.orgId}/keys/${plain.id}`, { ...as, body: { name: "plain 2" } });
  await call("POST", `/v1/orgs/${org.orgId}/keys/${plain.id}/reveal`, as);
  const regenerated = await call("POST", `/v1/orgs/${org.orgId}/keys/${secure.id}/regenerate`, as);
  secrets.push(regenerated.body.key);
  await call("DELETE", `/v1/orgs/${org.orgId}/keys/${legacy.id}`, as);
  // Failures that carry a key in the request: they must not echo it back or log it.
  for (const res of [
    await call("GET", `/v1/orgs/${org.orgId}/keys`, { key: legacy.key }),
    await call("GET", `/v1/orgs/${org.orgId}/keys`, { key: secure.key }),
    await call("POST", "/v1/keys/verify", { body: { key: legacy.key, extra: 1 } }),
    await call("POST", `/v1/orgs/${org.orgId}/keys`, { ...as, body: { kind: "scoped", name: secure.key, scopes: ["nope"] } }),
    await call("POST", "/v1/orgs", { key: BOOTSTRAP.slice(0, -1), body: { name: "x" } }),
  ]) {
    expect(res.status).toBeGreaterThanOrEqual(400);
    errorBodies.push(res.text);
  }
});

afterAll(() => spies.forEach((s) => s.mockRestore()));

describe("no key material at rest or in anything emitted", () => {
  it("no KV value holds a secret (the KV key names are hashes)", async () => {
    const list = await env.KEYS_KV.list();
    expect(list.keys.length).toBeGreaterThan(3);
    for (const { name } of list.keys) {
      const value = (await env.KEYS_KV.get(name)) ?? "";
      expect(value).not.toContain("kgw_");
      for (const needle of needles()) {
        expect(value).not.toContain(needle);
        expect(name).not.toContain(needle);
      }
    }
  });

  it("D1 holds no secret in plain text: only hashes and ciphertexts", async () => {
    // Every database: an org lives in one of them.
    for (const d1 of [env.DB, env.DB_1]) {
      for (const table of ["orgs", "apps", "api_keys", "key_app_roles", "org_policies", "audit_log"]) {
        const rows = JSON.stringify((await d1.prepare(`select * from ${table}`).all()).results);
        for (const needle of needles()) expect(rows, table).not.toContain(needle);
      }
    }
  });

  it("error bodies do not echo a presented key or the bootstrap secret", () => {
    // The name field of the create request was a key: the validation error names the field, not its value.
    for (const body of errorBodies) for (const needle of needles()) expect(body).not.toContain(needle);
  });

  it("logs hold no key material, and there is one structured line per request", () => {
    const text = logged.join("\n");
    expect(text).not.toContain("kgw_");
    for (const needle of needles()) expect(text).not.toContain(needle);
    const lines = logged.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = lines.filter((l) => "route" in l);
    expect(requests.length).toBeGreaterThanOrEqual(15);
    for (const line of requests) {
      expect(Object.keys(line).sort()).toEqual(["latencyMs", "method", "outcome", "requestId", "route", "status"]);
      expect(line.requestId).toMatch(/^req_/);
    }
    expect(requests.some((l) => String(l.route).startsWith("gateway:"))).toBe(true);
    expect(new Set(requests.map((l) => l.requestId)).size).toBe(requests.length);
  });
});
