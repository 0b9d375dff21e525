import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeMetadataHeader } from "../src/domain/metadata";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { authoritySettled, createKeyAs, setPolicy, storedRow, writeCounts } from "./key-fixtures";

/**
 * Issue 14: rotation with overlap, disable/enable, not-before, allowed networks and metadata, through
 * the API, the verifier in its three modes, `KeyVerifier` over RPC and the gateway. Every change that
 * reduces access (end of overlap, disable, narrower networks) holds when its call returns.
 */

type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;
beforeAll(async () => {
  org = await createOrg("Lifecycle");
});

const keysPath = (id = "") => `/v1/orgs/${org.orgId}/keys${id ? `/${id}` : ""}`;
const MODES = ["lease", "strict", "cached"] as const;
const verifier = () =>
  (exports as unknown as { KeyVerifier: { verify: (k: string, o?: object) => Promise<Record<string, any>> } }).KeyVerifier;

/** The code of `key` at the verify endpoint (with `body` extras), over RPC and in each mode of the verifier. */
async function codesEverywhere(key: string, extra: Record<string, unknown> = {}) {
  const codes = new Set<string>();
  // An `ip` is a verifier's assertion: sent with the org admin key as the verifier credential (issue 21).
  const credential = Object.keys(extra).length ? org.adminKey : undefined;
  codes.add((await call("POST", "/v1/keys/verify", { key: credential, body: { key, ...extra } })).body.code);
  codes.add((await verifier().verify(key, extra)).code);
  for (const mode of MODES) codes.add((await verifyKey(env, key, { ...extra, mode })).code);
  return [...codes];
}

/** A scoped key with `app:read` (the gateway's demo routes accept it), plus `extra` fields. */
const newKey = (extra: Record<string, unknown> = {}) =>
  createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: `k-${crypto.randomUUID().slice(0, 6)}`, scopes: ["app:read", "project:deploy"], ...extra });

const whoami = (key: string, ip?: string) => call("GET", "/gw/demo/whoami", { key, headers: ip ? { "cf-connecting-ip": ip } : {} });

describe("rotation with overlap", () => {
  it("keeps the old secret verifying, reported as rotating, until end-overlap, which ends it everywhere at once", async () => {
    const made = await newKey();
    // Held leases and cached records of the old secret, before the rotation.
    for (const mode of MODES) expect((await verifyKey(env, made.key, { mode })).code).toBe("VALID");
    await authoritySettled(made.id);
    const regen = await call("POST", `${keysPath(made.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 3600 } });
    expectStatus(regen, 200);
    expect(regen.body.rotation).toMatchObject({ previousPrefix: made.prefix, previousLastUsedAt: null });
    expect(Date.parse(regen.body.rotation.endsAt) - Date.now()).toBeGreaterThan(3590_000);
    await authoritySettled(made.id);

    const old = await call("POST", "/v1/keys/verify", { body: { key: made.key } });
    expect(old.body).toMatchObject({ valid: true, code: "VALID", rotating: true, rotationEndsAt: regen.body.rotation.endsAt });
    const fresh = await call("POST", "/v1/keys/verify", { body: { key: regen.body.key } });
    expect(fresh.body).toMatchObject({ valid: true, rotating: false });
    expect(fresh.body.rotationEndsAt).toBeUndefined();
    expect(await codesEverywhere(made.key)).toEqual(["VALID"]);
    expect((await verifier().verify(made.key)).rotating).toBe(true);

    // Upstream is told which clients still use the old secret.
    const viaOld = await whoami(made.key);
    expectStatus(viaOld, 200);
    expect(viaOld.body.headers["x-keygate-key-rotating"]).toBe("true");
    expect((await whoami(regen.body.key)).body.headers["x-keygate-key-rotating"]).toBeUndefined();

    // The old secret's use is tracked apart: the list shows when it was last used.
    await sleep(50);
    const listed = (await call("GET", keysPath(made.id), { key: org.adminKey })).body;
    expect(listed.rotation.previousLastUsedAt).not.toBeNull();

    const end = await call("POST", `${keysPath(made.id)}/end-overlap`, { key: org.adminKey });
    expectStatus(end, 200);
    expect(end.body.rotation).toBeNull();
    // In force when the call returned: no lease, no strict check and (its record rewritten) no cache accepts it.
    for (const mode of ["lease", "strict"] as const) expect((await verifyKey(env, made.key, { mode })).valid).toBe(false);
    await authoritySettled(made.id);
    expect((await verifyKey(env, made.key, { mode: "cached" })).valid).toBe(false);
    expect((await whoami(made.key)).status).toBe(401);
    expect(await codesEverywhere(regen.body.key)).toEqual(["VALID"]);

    const again = await call("POST", `${keysPath(made.id)}/end-overlap`, { key: org.adminKey });
    expectStatus(again, 409);
    expect(again.body.error.details.reason).toBe("NO_OVERLAP");

    const audit = (await call("GET", `/v1/orgs/${org.orgId}/audit-log?limit=5`, { key: org.adminKey })).body.entries;
    expect(audit.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(["key.end_overlap", "key.regenerate"]));
    expect(JSON.stringify(audit)).not.toContain(made.key);
  });

  it("ends the overlap by itself when its time is up, and never lets it outlive the key", async () => {
    const made = await newKey({ expiresAt: new Date(Date.now() + 60_000).toISOString() });
    const regen = await call("POST", `${keysPath(made.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 1 } });
    expectStatus(regen, 200);
    expect(await codesEverywhere(made.key)).toEqual(["VALID"]);
    await sleep(1100);
    expect(await codesEverywhere(made.key)).toEqual(["REVOKED"]);
    expect(await codesEverywhere(regen.body.key)).toEqual(["VALID"]);

    const capped = await call("POST", `${keysPath(made.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 7 * 86400 } });
    expectStatus(capped, 200);
    expect(capped.body.rotation.endsAt).toBe(capped.body.expiresAt);
  });

  it("accepts the previous secret until the millisecond before its overlap ends and refuses it at that very instant, in every mode", async () => {
    const made = await newKey();
    const regen = await call("POST", `${keysPath(made.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 3600 } });
    expectStatus(regen, 200);
    await authoritySettled(made.id);
    const endsAt = Date.parse(regen.body.rotation.endsAt);
    for (const mode of MODES) {
      const before = await verifyKey(env, made.key, { mode, now: endsAt - 1 });
      expect(before.code, `${mode}: ${JSON.stringify(before)}`).toBe("VALID");
      const at = await verifyKey(env, made.key, { mode, now: endsAt });
      expect(at.code, `${mode}: ${JSON.stringify(at)}`).toBe("REVOKED");
    }
    // The new secret is not bound by the overlap's end.
    expect((await verifyKey(env, regen.body.key, { now: endsAt })).code).toBe("VALID");
  });

  it("refuses overlaps beyond 7 days or malformed, changing nothing", async () => {
    const made = await newKey();
    const before = await writeCounts();
    for (const overlapSeconds of [7 * 86400 + 1, -1, 1.5, "60"]) {
      const res = await call("POST", `${keysPath(made.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds } });
      expectStatus(res, 400);
      expect(res.body.error.details.issues[0].field).toBe("overlapSeconds");
    }
    expect(await writeCounts()).toEqual(before);
    expect(await codesEverywhere(made.key)).toEqual(["VALID"]);
  });

  it("keeps one previous secret: a second regeneration ends the first overlap", async () => {
    const made = await newKey();
    const first = await call("POST", `${keysPath(made.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 600 } });
    const second = await call("POST", `${keysPath(made.id)}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 600 } });
    expectStatus(second, 200);
    expect(second.body.rotation.previousPrefix).toBe(first.body.prefix);
    expect((await verifyKey(env, made.key, { mode: "lease" })).valid).toBe(false);
    expect(await codesEverywhere(first.body.key)).toEqual(["VALID"]);
    // Revoking the key ends every secret it has.
    expectStatus(await call("DELETE", keysPath(made.id), { key: org.adminKey }), 204);
    for (const key of [first.body.key, second.body.key]) expect((await verifyKey(env, key, { mode: "lease" })).code).not.toBe("VALID");
  });
});

describe("disable and enable", () => {
  it("answers DISABLED everywhere once disable returns, and VALID again after enable", async () => {
    const made = await newKey();
    for (const mode of MODES) expect((await verifyKey(env, made.key, { mode })).code).toBe("VALID"); // leases held
    await authoritySettled(made.id);
    const disabled = await call("POST", `${keysPath(made.id)}/disable`, { key: org.adminKey });
    expectStatus(disabled, 200);
    expect(disabled.body).toMatchObject({ status: "disabled" });
    expect(disabled.body.disabledAt).not.toBeNull();
    await authoritySettled(made.id);
    expect(await codesEverywhere(made.key)).toEqual(["DISABLED"]);
    const gw = await whoami(made.key);
    expectStatus(gw, 401);
    expect(gw.body.error.details.reason).toBe("DISABLED");
    const listed = (await call("GET", keysPath(), { key: org.adminKey })).body.keys.find((k: { id: string }) => k.id === made.id);
    expect(listed.status).toBe("disabled");

    // Disabling again changes nothing (no second audit entry).
    const before = await writeCounts();
    expectStatus(await call("POST", `${keysPath(made.id)}/disable`, { key: org.adminKey }), 200);
    expect(await writeCounts()).toEqual(before);

    const enabled = await call("POST", `${keysPath(made.id)}/enable`, { key: org.adminKey });
    expectStatus(enabled, 200);
    expect(enabled.body).toMatchObject({ status: "active", disabledAt: null });
    await authoritySettled(made.id);
    expect(await codesEverywhere(made.key)).toEqual(["VALID"]);
    const actions = (await call("GET", `/v1/orgs/${org.orgId}/audit-log?limit=3`, { key: org.adminKey })).body.entries.map((e: { action: string }) => e.action);
    expect(actions.slice(0, 2)).toEqual(["key.enable", "key.disable"]);
  });

  it("a disabled management key cannot manage, and the org's last live admin key is not disabled without force", async () => {
    const solo = await createOrg("Solo");
    const res = await call("POST", `/v1/orgs/${solo.orgId}/keys/${solo.adminKeyId}/disable`, { key: solo.adminKey });
    expectStatus(res, 409);
    expect(res.body.error.details.reason).toBe("LAST_ADMIN_KEY");
    expect((await verifyKey(env, solo.adminKey)).code).toBe("VALID");

    const second = await createKeyAs(solo.adminKey, solo.orgId, { kind: "rbac", name: "second admin", orgRole: "admin" });
    expectStatus(await call("POST", `/v1/orgs/${solo.orgId}/keys/${second.id}/disable`, { key: solo.adminKey }), 200);
    const refused = await call("GET", `/v1/orgs/${solo.orgId}/keys`, { key: second.key });
    expectStatus(refused, 401);
    expect(refused.body.error.details.reason).toBe("DISABLED");
    // With the second admin disabled, the first is the last live one again.
    expectStatus(await call("POST", `/v1/orgs/${solo.orgId}/keys/${solo.adminKeyId}/disable`, { key: solo.adminKey }), 409);
    const forced = await call("POST", `/v1/orgs/${solo.orgId}/keys/${second.id}/enable`, { key: solo.adminKey });
    expectStatus(forced, 200);
    expectStatus(await call("POST", `/v1/orgs/${solo.orgId}/keys/${solo.adminKeyId}/disable?force=true`, { key: second.key }), 200);
    expect((await verifyKey(env, solo.adminKey, { mode: "lease" })).code).toBe("DISABLED");
  });

  it("answers 404 for revoked and unknown keys", async () => {
    const made = await newKey();
    expectStatus(await call("DELETE", keysPath(made.id), { key: org.adminKey }), 204);
    for (const action of ["disable", "enable", "end-overlap"]) {
      expectStatus(await call("POST", `${keysPath(made.id)}/${action}`, { key: org.adminKey }), 404);
    }
  });
});

describe("not before", () => {
  it("answers NOT_YET_VALID until the start, then VALID; the list says pending", async () => {
    const start = new Date(Date.now() + 1500).toISOString();
    const made = await newKey({ notBefore: start });
    expect(made).toMatchObject({ status: "pending", notBefore: start });
    expect(await codesEverywhere(made.key)).toEqual(["NOT_YET_VALID"]);
    const gw = await whoami(made.key);
    expectStatus(gw, 401);
    expect(gw.body.error.details.reason).toBe("NOT_YET_VALID");
    await sleep(Date.parse(start) - Date.now() + 50);
    expect(await codesEverywhere(made.key)).toEqual(["VALID"]);
  });

  it("refuses a start in the past or not before the expiry, and can be moved by an edit", async () => {
    const at = (ms: number) => new Date(Date.now() + ms).toISOString();
    for (const body of [{ notBefore: at(-1000) }, { notBefore: at(2 * 86_400_000), expiresAt: at(86_400_000) }, { notBefore: "tomorrow" }]) {
      const res = await call("POST", keysPath(), { key: org.adminKey, body: { kind: "scoped", name: "x", scopes: ["app:read"], ...body } });
      expectStatus(res, 400);
      expect(res.body.error.details.issues.map((i: { field: string }) => i.field)).toContain("notBefore");
    }
    const made = await newKey();
    const later = at(3_600_000);
    const edited = await call("PATCH", keysPath(made.id), { key: org.adminKey, body: { notBefore: later } });
    expectStatus(edited, 200);
    expect(edited.body).toMatchObject({ status: "pending", notBefore: later });
    await authoritySettled(made.id); // the cached mode reads the record the authority rewrote
    expect(await codesEverywhere(made.key)).toEqual(["NOT_YET_VALID"]);
    expectStatus(await call("PATCH", keysPath(made.id), { key: org.adminKey, body: { notBefore: null } }), 200);
    await authoritySettled(made.id);
    expect(await codesEverywhere(made.key)).toEqual(["VALID"]);
  });
});

describe("allowed networks", () => {
  it("verifies only from inside the ranges: verify's ip, the caller's address, RPC and the gateway", async () => {
    const made = await newKey({ allowedNetworks: ["203.0.113.0/24", "2001:DB8::/32"] });
    expect(made.allowedNetworks).toEqual(["203.0.113.0/24", "2001:db8::/32"]);
    for (const ip of ["203.0.113.7", "203.0.113.255", "2001:db8::1", "::ffff:203.0.113.9"]) {
      expect(await codesEverywhere(made.key, { ip }), ip).toEqual(["VALID"]);
    }
    for (const ip of ["203.0.114.0", "198.51.100.1", "2001:db9::1", "::1"]) {
      expect(await codesEverywhere(made.key, { ip }), ip).toEqual(["IP_NOT_ALLOWED"]);
    }
    // No address at all: refused, never allowed by accident.
    expect(await codesEverywhere(made.key)).toEqual(["IP_NOT_ALLOWED"]);
    // Without `ip`, the verify endpoint judges the address of its own caller.
    const own = await call("POST", "/v1/keys/verify", { body: { key: made.key }, headers: { "cf-connecting-ip": "203.0.113.8" } });
    expect(own.body.code).toBe("VALID");
    const inside = await whoami(made.key, "203.0.113.8");
    expectStatus(inside, 200);
    const outside = await whoami(made.key, "198.51.100.1");
    expectStatus(outside, 403);
    expect(outside.body.error.details.reason).toBe("IP_NOT_ALLOWED");
  });

  it("narrowing the ranges holds when the edit returns", async () => {
    const made = await newKey({ allowedNetworks: ["10.0.0.0/8"] });
    for (const mode of ["lease", "strict"] as const) expect((await verifyKey(env, made.key, { mode, ip: "10.1.2.3" })).code).toBe("VALID");
    expectStatus(await call("PATCH", keysPath(made.id), { key: org.adminKey, body: { allowedNetworks: ["10.0.0.0/16"] } }), 200);
    for (const mode of ["lease", "strict"] as const) expect((await verifyKey(env, made.key, { mode, ip: "10.1.2.3" })).code).toBe("IP_NOT_ALLOWED");
    expectStatus(await call("PATCH", keysPath(made.id), { key: org.adminKey, body: { allowedNetworks: [] } }), 200);
    await authoritySettled(made.id);
    expect(await codesEverywhere(made.key)).toEqual(["VALID"]);
  });

  it("refuses bad ranges, too many ranges and a bad verify ip with 400, changing nothing", async () => {
    const before = await writeCounts();
    for (const [allowedNetworks, field] of [
      [["10.0.0.1/8"], "allowedNetworks.0"],
      [["10.0.0.0/8", "not-a-network"], "allowedNetworks.1"],
      [["10.0.0.0/33"], "allowedNetworks.0"],
      [["fe80::1%eth0"], "allowedNetworks.0"],
      [Array.from({ length: 51 }, (_, i) => `10.0.${i}.0/24`), "allowedNetworks"],
    ] as const) {
      const res = await call("POST", keysPath(), { key: org.adminKey, body: { kind: "scoped", name: "x", scopes: ["app:read"], allowedNetworks } });
      expectStatus(res, 400);
      expect(res.body.error.details.issues.map((i: { field: string }) => i.field)).toContain(field);
    }
    expect(await writeCounts()).toEqual(before);
    const made = await newKey();
    const res = await call("POST", "/v1/keys/verify", { body: { key: made.key, ip: "300.1.1.1" } });
    expectStatus(res, 400);
    expect(res.body.error.code).toBe("INVALID_REQUEST");
  });

  it("a key limited to networks manages only from inside them, and never gives a key wider networks than its own", async () => {
    const limited = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "limited admin", orgRole: "admin", allowedNetworks: ["192.0.2.0/24"] });
    const from = (ip: string) => ({ key: limited.key, headers: { "cf-connecting-ip": ip } });
    const outside = await call("GET", keysPath(), from("198.51.100.1"));
    expectStatus(outside, 403);
    expect(outside.body.error.details.reason).toBe("IP_NOT_ALLOWED");
    expectStatus(await call("GET", keysPath(), from("192.0.2.10")), 200);

    const base = { kind: "scoped", name: "child", scopes: ["app:read"] };
    const wider = await call("POST", keysPath(), { ...from("192.0.2.10"), body: base });
    expectStatus(wider, 403);
    expect(wider.body.error.details.reason).toBe("NETWORKS_BEYOND_CALLER");
    expectStatus(await call("POST", keysPath(), { ...from("192.0.2.10"), body: { ...base, allowedNetworks: ["192.0.0.0/16"] } }), 403);
    // One bit wider than its own /24 is beyond it too; its own /24 and narrower are not.
    const oneBitWider = await call("POST", keysPath(), { ...from("192.0.2.10"), body: { ...base, allowedNetworks: ["192.0.2.0/23"] } });
    expectStatus(oneBitWider, 403);
    expect(oneBitWider.body.error.details.reason).toBe("NETWORKS_BEYOND_CALLER");
    expectStatus(await call("POST", keysPath(), { ...from("192.0.2.10"), body: { ...base, allowedNetworks: ["192.0.2.0/24"] } }), 201);
    expectStatus(await call("POST", keysPath(), { ...from("192.0.2.10"), body: { ...base, allowedNetworks: ["192.0.2.128/25"] } }), 201);
    // Nor does it hand out the secret of a key usable elsewhere.
    const unlimited = await newKey();
    const regen = await call("POST", `${keysPath(unlimited.id)}/regenerate`, from("192.0.2.10"));
    expectStatus(regen, 403);
    expect(regen.body.error.details.reason).toBe("NETWORKS_BEYOND_CALLER");

    // The same boundary in IPv6: a caller limited to a /48 hands out its /48, never the /47 around it.
    const limited6 = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "limited v6 admin", orgRole: "admin", allowedNetworks: ["2001:db8:4::/48"] });
    const from6 = { key: limited6.key, headers: { "cf-connecting-ip": "2001:db8:4::10" } };
    const wider6 = await call("POST", keysPath(), { ...from6, body: { ...base, allowedNetworks: ["2001:db8:4::/47"] } });
    expectStatus(wider6, 403);
    expect(wider6.body.error.details.reason).toBe("NETWORKS_BEYOND_CALLER");
    expectStatus(await call("POST", keysPath(), { ...from6, body: { ...base, allowedNetworks: ["2001:db8:4::/48"] } }), 201);
  });

  it("the policy can require networks on administering keys: at create, at edit and at use", async () => {
    const policed = await createOrg("Networks policy");
    const admin = { key: policed.adminKey };
    // The key making the change would break it: refused, with the way out in the message.
    const self = await call("PUT", `/v1/orgs/${policed.orgId}/policy`, { ...admin, body: { requireExpiration: false, maxLifetimeDays: null, requireNetworksForAdmin: true } });
    expectStatus(self, 409);
    expect(self.body.error.details.code).toBe("NETWORKS_REQUIRED");

    const compliant = await createKeyAs(policed.adminKey, policed.orgId, { kind: "rbac", name: "office admin", orgRole: "admin", allowedNetworks: ["192.0.2.0/24"] });
    const office = { key: compliant.key, headers: { "cf-connecting-ip": "192.0.2.1" } };
    const set = await call("PUT", `/v1/orgs/${policed.orgId}/policy`, { ...office, body: { requireExpiration: false, maxLifetimeDays: null, requireNetworksForAdmin: true } });
    expectStatus(set, 200);
    expect((await call("GET", `/v1/orgs/${policed.orgId}/policy`, office)).body.requireNetworksForAdmin).toBe(true);

    // The first admin key, without networks, now violates it at use; a plain key is unaffected.
    expect((await verifyKey(env, policed.adminKey, { mode: "lease" })).code).toBe("POLICY_VIOLATION");
    // From an unknown address, the office key itself is refused.
    expectStatus(await call("GET", `/v1/orgs/${policed.orgId}/keys`, { key: compliant.key }), 403);
    const reader = await call("POST", `/v1/orgs/${policed.orgId}/keys`, { ...office, body: { kind: "scoped", name: "reader", scopes: ["app:read"], allowedNetworks: ["192.0.2.0/24"] } });
    expectStatus(reader, 201);
    const manager = { kind: "scoped", name: "manager", scopes: ["apiKeyManagement"] };
    const unlimited = await call("POST", `/v1/orgs/${policed.orgId}/keys`, { ...office, body: manager });
    expectStatus(unlimited, 400);
    expect(unlimited.body.error.details).toMatchObject({ code: "NETWORKS_REQUIRED", issues: [{ field: "allowedNetworks" }] });
    expectStatus(await call("POST", `/v1/orgs/${policed.orgId}/keys`, { ...office, body: { ...manager, allowedNetworks: ["192.0.2.0/25"] } }), 201);
    // Nor does an edit widen a key beyond the editing key's own networks.
    const raised = await call("PATCH", `/v1/orgs/${policed.orgId}/keys/${reader.body.id}`, { ...office, body: { allowedNetworks: [] } });
    expectStatus(raised, 403); // and never wider than the editing key's own
    await setPolicy(policed.orgId, { requireExpiration: false, maxLifetimeDays: null, requireNetworksForAdmin: true });
    const unlimitedManager = await call("POST", `/v1/orgs/${policed.orgId}/keys`, {
      key: policed.adminKey,
      body: { kind: "scoped", name: "manager", scopes: ["apiKeyManagement"] },
    });
    expectStatus(unlimitedManager, 401); // the unlimited admin key itself now fails the policy
    expect(unlimitedManager.body.error.details.reason).toBe("POLICY_VIOLATION");
  });
});

describe("metadata", () => {
  const metadata = { customerId: "cus_123", plan: "pro", limits: { seats: 5 }, tags: ["ci", "ünïcode"] };

  it("is returned by verify and KeyVerifier and forwarded upstream as base64url JSON", async () => {
    const made = await newKey({ metadata });
    expect(made.metadata).toEqual(metadata);
    const verdict = await call("POST", "/v1/keys/verify", { body: { key: made.key } });
    expect(verdict.body.metadata).toEqual(metadata);
    expect((await verifier().verify(made.key)).metadata).toEqual(metadata);
    const gw = await whoami(made.key);
    expectStatus(gw, 200);
    const header = gw.body.headers["x-keygate-key-metadata"];
    expect(header).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeMetadataHeader(header)).toEqual(metadata);
    // A client cannot forge it: an incoming header of that name is dropped.
    const forged = await call("GET", "/gw/demo/whoami", { key: (await newKey()).key, headers: { "x-keygate-key-metadata": header } });
    expect(forged.body.headers["x-keygate-key-metadata"]).toBeUndefined();
  });

  it("is replaced or removed by an edit, in force when it returns", async () => {
    const made = await newKey({ metadata });
    expect((await verifyKey(env, made.key, { mode: "lease" })).key?.metadata).toEqual(metadata);
    expectStatus(await call("PATCH", keysPath(made.id), { key: org.adminKey, body: { metadata: { plan: "free" } } }), 200);
    expect((await verifyKey(env, made.key, { mode: "lease" })).key?.metadata).toEqual({ plan: "free" });
    const cleared = await call("PATCH", keysPath(made.id), { key: org.adminKey, body: { metadata: null } });
    expectStatus(cleared, 200);
    expect(cleared.body.metadata).toBeNull();
    expect((await call("POST", "/v1/keys/verify", { body: { key: made.key } })).body.metadata).toBeNull();
    expect((await storedRow(made.id))!.metadata).toBeNull();
  });

  it("refuses what is not small plain data, with 400, changing nothing", async () => {
    const before = await writeCounts();
    const bodies = [
      '{"kind":"scoped","name":"x","scopes":["app:read"],"metadata":{"__proto__":{"admin":true}}}',
      '{"kind":"scoped","name":"x","scopes":["app:read"],"metadata":{"a":{"constructor":{"prototype":1}}}}',
      JSON.stringify({ kind: "scoped", name: "x", scopes: ["app:read"], metadata: ["not", "an", "object"] }),
      JSON.stringify({ kind: "scoped", name: "x", scopes: ["app:read"], metadata: "text" }),
      JSON.stringify({ kind: "scoped", name: "x", scopes: ["app:read"], metadata: { big: "x".repeat(1100) } }),
      JSON.stringify({ kind: "scoped", name: "x", scopes: ["app:read"], metadata: { a: { b: { c: { d: { e: { f: 1 } } } } } } }),
    ];
    for (const body of bodies) {
      const res = await call("POST", keysPath(), { key: org.adminKey, body });
      expectStatus(res, 400);
      expect(res.body.error.details.issues[0].field, body).toBe("metadata");
    }
    expect(await writeCounts()).toEqual(before);
    expect(Object.prototype).not.toHaveProperty("admin");
  });

  it("never appears in D1 as anything but the JSON it was given, and the secret never appears beside it", async () => {
    const made = await newKey({ metadata });
    const row = (await storedRow(made.id))!;
    expect(JSON.parse(row.metadata as string)).toEqual(metadata);
    expect(JSON.stringify(row)).not.toContain(made.key);
  });
});

describe("the new codes are listed in the OpenAPI document", () => {
  it("VerifyResult.code names every code", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    const codes = doc.components.schemas.VerifyResult.properties.code.enum;
    for (const code of ["DISABLED", "NOT_YET_VALID", "IP_NOT_ALLOWED"]) expect(codes).toContain(code);
    for (const op of ["disableKey", "enableKey", "endKeyOverlap"]) expect(JSON.stringify(doc.paths)).toContain(`"operationId":"${op}"`);
  });
});
