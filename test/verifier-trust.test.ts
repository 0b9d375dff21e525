import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ConsoleClient } from "./console-helpers";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { createKeyAs, expireBeforeFirstUse } from "./key-fixtures";

/**
 * Issue 21, points 2, 3 and 7: only an authenticated verifier may assert facts about a request (the
 * caller's address, a use's cost, the strict mode); `KeyVerifier` takes only what the endpoint takes;
 * a refusal tells nothing of the key.
 */

type Verdict = Record<string, any>;
const keyVerifier = () => (exports as unknown as { KeyVerifier: { verify: (k: string, o?: unknown) => Promise<Verdict> } }).KeyVerifier;

let org: Awaited<ReturnType<typeof createOrg>>;
let other: Awaited<ReturnType<typeof createOrg>>;
/** A dedicated verifier key: the keys:verify scope and nothing else. */
let verifierKey: string;
beforeAll(async () => {
  org = await createOrg("Verifier trust");
  other = await createOrg("Verifier trust, another org");
  verifierKey = (await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Backend verifier", scopes: ["keys:verify"] })).key;
});

const newKey = (extra: Record<string, unknown> = {}, owner = org) =>
  createKeyAs(owner.adminKey, owner.orgId, { kind: "scoped", name: "Billing export", scopes: ["app:read"], metadata: { customer: "cus_secret" }, ...extra });

/** The verify endpoint from this file's address, with no credential. */
const anonymous = (body: Record<string, unknown>, from?: string) =>
  call("POST", "/v1/keys/verify", { body, headers: from ? { "cf-connecting-ip": from } : {} });
/** The verify endpoint with a verifier credential. */
const asVerifier = (body: Record<string, unknown>, credential = verifierKey, from?: string) =>
  call("POST", "/v1/keys/verify", { key: credential, body, headers: from ? { "cf-connecting-ip": from } : {} });

describe("POST /v1/keys/verify without a credential asserts nothing about the request", () => {
  it("a stolen key limited to 10.0.0.0/8 does not verify from elsewhere by claiming an address inside", async () => {
    const office = await newKey({ allowedNetworks: ["10.0.0.0/8"] });
    const claimed = await anonymous({ key: office.key, ip: "10.1.2.3" }, "203.0.113.9");
    expectStatus(claimed, 401);
    expect(claimed.body.error, claimed.text).toMatchObject({ code: "UNAUTHORIZED", details: { reason: "VERIFIER_REQUIRED", fields: ["ip"] } });
    expect(claimed.headers.get("www-authenticate")).toBe('Bearer realm="keygate"');
    // Without the claim, the connecting address is judged: outside, refused; inside, valid.
    expect((await anonymous({ key: office.key }, "203.0.113.9")).body.code).toBe("IP_NOT_ALLOWED");
    expect((await anonymous({ key: office.key }, "10.9.9.9")).body.code).toBe("VALID");
  });

  it("spends exactly one credit a use: a cost is refused, and nothing is spent by the refusal", async () => {
    const metered = await newKey({ credits: 2 });
    for (const cost of [1000, 2, 1]) {
      const res = await anonymous({ key: metered.key, cost });
      expectStatus(res, 401);
      expect(res.body.error.details, res.text).toEqual({ reason: "VERIFIER_REQUIRED", fields: ["cost"] });
    }
    // Both credits are still there: one use each.
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await anonymous({ key: metered.key })).body.code);
    expect(codes).toEqual(["VALID", "VALID", "USAGE_EXCEEDED"]);
  });

  it("refuses the strict mode, however it is asked for, even for a revoked key", async () => {
    const doomed = await newKey();
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${doomed.id}`, { key: org.adminKey }), 204);
    for (const extra of [{ mode: "strict" }, { strict: true }, { mode: "strict", ip: "10.1.2.3", cost: 5 }]) {
      const res = await anonymous({ key: doomed.key, ...extra });
      expectStatus(res, 401);
      expect(res.body.error.details.reason, res.text).toBe("VERIFIER_REQUIRED");
    }
    // The cheap modes stay open to anyone.
    for (const extra of [{}, { mode: "lease" }, { mode: "cached" }, { strict: false }]) {
      const res = await anonymous({ key: doomed.key, ...extra });
      expectStatus(res, 200);
      expect(res.body.code, res.text).toBe("REVOKED");
    }
  });
});

describe("POST /v1/keys/verify with a verifier credential (a key holding keys:verify)", () => {
  it("honours ip, cost and the strict mode for the keys of its org", async () => {
    const office = await newKey({ allowedNetworks: ["10.0.0.0/8"], credits: 5 });
    const inside = await asVerifier({ key: office.key, ip: "10.1.2.3", cost: 3 }, verifierKey, "203.0.113.9");
    expect(inside.body, inside.text).toMatchObject({ valid: true, code: "VALID", keyId: office.id, name: "Billing export" });
    expect((await asVerifier({ key: office.key, ip: "192.0.2.1" })).body.code).toBe("IP_NOT_ALLOWED");
    expect((await asVerifier({ key: office.key, ip: "10.1.2.3", cost: 3 })).body.code).toBe("USAGE_EXCEEDED"); // 2 left
    expect((await asVerifier({ key: office.key, ip: "10.1.2.3", cost: 2, mode: "strict" })).body.code).toBe("VALID");
    expect((await asVerifier({ key: office.key, ip: "10.1.2.3", strict: true })).body.code).toBe("USAGE_EXCEEDED");
  });

  it("an org admin key and a legacy all key are verifiers too", async () => {
    const legacyAll = await createKeyAs(org.adminKey, org.orgId, { kind: "legacy", name: "old admin", mode: "all" });
    const office = await newKey({ allowedNetworks: ["10.0.0.0/8"] });
    for (const credential of [org.adminKey, legacyAll.key]) {
      const res = await asVerifier({ key: office.key, ip: "10.1.2.3", mode: "strict" }, credential);
      expect(res.body.code, res.text).toBe("VALID");
    }
  });

  it("answers a key of another org like an unknown key, spending and counting nothing on it", async () => {
    const theirs = await newKey({ credits: 1 }, other);
    for (let i = 0; i < 3; i++) {
      const res = await asVerifier({ key: theirs.key, ip: "198.51.100.1", cost: 1, mode: "strict" });
      expect(res.body, res.text).toEqual({ valid: false, code: "NOT_FOUND", message: "The key does not exist." });
    }
    // Its one credit is intact for its own org's use.
    expect((await anonymous({ key: theirs.key })).body.code).toBe("VALID");
    expect((await anonymous({ key: theirs.key })).body.code).toBe("USAGE_EXCEEDED");
    // And its usage shows those two uses only (counts reach D1 50 ms after a verification in tests).
    const usage = async () => {
      const res = await call("GET", `/v1/orgs/${other.orgId}/keys/${theirs.id}/usage`, { key: other.adminKey });
      expectStatus(res, 200);
      return res.body.buckets.at(-1) as { total: number; counts: Record<string, number> };
    };
    for (let i = 0; i < 100 && (await usage()).total < 2; i++) await sleep(20);
    await sleep(200);
    expect(await usage()).toMatchObject({ total: 2, counts: { VALID: 1, USAGE_EXCEEDED: 1 } });
  });

  it("refuses a credential without keys:verify with 403, and a bad one with 401, in the error envelope", async () => {
    const reader = await newKey();
    const member = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "member", orgRole: "member" });
    const target = await newKey();
    for (const credential of [reader.key, member.key]) {
      const res = await asVerifier({ key: target.key }, credential);
      expectStatus(res, 403);
      expect(res.body.error, res.text).toMatchObject({ code: "FORBIDDEN", details: { required: "keys:verify" }, requestId: expect.any(String) });
    }
    // A verifier credential in use (its lease held here) stops the moment its revoke returns.
    const revoked = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "old verifier", scopes: ["keys:verify"] });
    expect((await asVerifier({ key: target.key, ip: "10.1.2.3" }, revoked.key)).body.code).toBe("VALID");
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/keys/${revoked.id}`, { key: org.adminKey }), 204);
    for (const [credential, reason] of [["kgw_not-a-key", "MALFORMED"], [revoked.key, "REVOKED"]] as const) {
      const res = await asVerifier({ key: target.key, ip: "10.1.2.3" }, credential);
      expectStatus(res, 401);
      expect(res.body.error, res.text).toMatchObject({ code: "UNAUTHORIZED", details: { reason } });
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    }
  });

  it("counts a refused credential as a failed authentication: 429 past the limit", async () => {
    const from = "192.0.2.77";
    const target = await newKey();
    const statuses = [];
    for (let i = 0; i < 32; i++) statuses.push((await asVerifier({ key: target.key }, `kgw_wrong-${i}`, from)).status);
    expect(statuses.slice(0, 30).every((s) => s === 401), statuses.join(",")).toBe(true);
    expect(statuses.at(-1), statuses.join(",")).toBe(429);
  });
});

describe("a refusal discloses nothing of the key", () => {
  it("IP_NOT_ALLOWED, DISABLED, NOT_YET_VALID and EXPIRED carry their code and message only", async () => {
    const office = await newKey({ allowedNetworks: ["10.0.0.0/8"] });
    const disabled = await newKey();
    expectStatus(await call("POST", `/v1/orgs/${org.orgId}/keys/${disabled.id}/disable`, { key: org.adminKey }), 200);
    const pending = await newKey({ notBefore: new Date(Date.now() + 86_400_000).toISOString() });
    const expired = await newKey();
    await expireBeforeFirstUse(expired.id);
    for (const [key, code] of [[office.key, "IP_NOT_ALLOWED"], [disabled.key, "DISABLED"], [pending.key, "NOT_YET_VALID"], [expired.key, "EXPIRED"]]) {
      const res = await anonymous({ key }, "203.0.113.9");
      expect(res.body, res.text).toEqual({ valid: false, code, message: expect.any(String) });
      expect(res.text).not.toMatch(/Billing export|cus_secret|app:read/);
    }
  });

  it("an authenticated verifier is told which key it refused, and nothing more", async () => {
    const office = await newKey({ allowedNetworks: ["10.0.0.0/8"] });
    const res = await asVerifier({ key: office.key, ip: "192.0.2.1" });
    expect(res.body, res.text).toEqual({ valid: false, code: "IP_NOT_ALLOWED", message: expect.any(String), keyId: office.id, orgId: org.orgId });
  });

  it("the gateway refuses a disabled key or one from outside its networks without naming it", async () => {
    const office = await newKey({ allowedNetworks: ["10.0.0.0/8"], scopes: ["org:read"] });
    const disabled = await newKey({ scopes: ["org:read"] });
    expectStatus(await call("POST", `/v1/orgs/${org.orgId}/keys/${disabled.id}/disable`, { key: org.adminKey }), 200);
    for (const key of [office.key, disabled.key]) {
      const res = await call("GET", "/gw/demo/whoami", { key, headers: { "cf-connecting-ip": "203.0.113.9" } });
      expect([401, 403], res.text).toContain(res.status);
      expect(res.text).not.toMatch(/Billing export|cus_secret/);
    }
  });

  it("console sign-in refuses a disabled key, or one from outside its networks, without naming it", async () => {
    const office = await newKey({ allowedNetworks: ["10.0.0.0/8"], scopes: ["org:read"] });
    const disabled = await newKey({ scopes: ["org:read"] });
    expectStatus(await call("POST", `/v1/orgs/${org.orgId}/keys/${disabled.id}/disable`, { key: org.adminKey }), 200);
    for (const key of [office.key, disabled.key]) {
      const res = await new ConsoleClient().request("POST", "/console/sign-in", { form: { key }, headers: { "cf-connecting-ip": "203.0.113.9" } });
      expect(res.status, res.html.slice(0, 300)).toBe(401);
      expect(res.html).not.toMatch(/Billing export|cus_secret/);
    }
  });
});

describe("KeyVerifier takes only what the endpoint takes", () => {
  /** The message `verify(key, options)` is refused with, or a failure if it was answered. */
  async function refusal(key: string, options: unknown): Promise<string> {
    try {
      const verdict = await keyVerifier().verify(key, options);
      return `answered ${JSON.stringify(verdict)}`;
    } catch (err) {
      return String((err as Error).message);
    }
  }

  it("refuses a cost of -50, 0, NaN, 1.5 or 1001 with INVALID_REQUEST: a 2-credit key still gives exactly 2 valid answers", async () => {
    const metered = await newKey({ credits: 2 });
    for (const cost of [-50, 0, Number.NaN, 1.5, 1001, Number.POSITIVE_INFINITY, "1"]) {
      expect(await refusal(metered.key, { cost }), String(cost)).toMatch(/^INVALID_REQUEST: cost: /);
    }
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await keyVerifier().verify(metered.key)).code);
    expect(codes).toEqual(["VALID", "VALID", "USAGE_EXCEEDED"]);
  });

  it("refuses unmetered and a clock: a not-yet-valid key stays not valid, a spent key stays spent", async () => {
    const pending = await newKey({ notBefore: new Date(Date.now() + 86_400_000).toISOString() });
    expect(await refusal(pending.key, { now: Date.now() + 2 * 86_400_000 })).toMatch(/^INVALID_REQUEST: .*now/);
    expect((await keyVerifier().verify(pending.key)).code).toBe("NOT_YET_VALID");
    const metered = await newKey({ credits: 1 });
    expect((await keyVerifier().verify(metered.key)).code).toBe("VALID");
    expect(await refusal(metered.key, { unmetered: true })).toMatch(/^INVALID_REQUEST: .*unmetered/);
    expect((await keyVerifier().verify(metered.key)).code).toBe("USAGE_EXCEEDED");
    for (const options of [{ edge: {} }, { waitUntil: 1 }, { permission: "root" }, { ip: "300.1.1.1" }, { mode: "fresh" }, null]) {
      expect(await refusal(metered.key, options), JSON.stringify(options)).toMatch(/^INVALID_REQUEST: /);
    }
  });

  it("is an authenticated verifier: ip, cost and strict are honoured, and a refusal names the key but nothing of it", async () => {
    const office = await newKey({ allowedNetworks: ["10.0.0.0/8"], credits: 4 });
    expect(await keyVerifier().verify(office.key, { ip: "10.1.2.3", cost: 3, mode: "strict" })).toMatchObject({ code: "VALID", name: "Billing export" });
    expect((await keyVerifier().verify(office.key, { ip: "10.1.2.3", cost: 2 })).code).toBe("USAGE_EXCEEDED");
    const outside = await keyVerifier().verify(office.key, { ip: "192.0.2.1" });
    expect(outside).toEqual({ valid: false, code: "IP_NOT_ALLOWED", message: expect.any(String), keyId: office.id, orgId: org.orgId });
  });
});
