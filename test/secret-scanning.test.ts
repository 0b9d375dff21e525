import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../src/domain/crypto";
import { mintKey, newId } from "../src/domain/key-format";
import { derToP1363, verifyReportSignature } from "../src/domain/secret-scanning";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus, gatewayFetch } from "./helpers";
import { createKeyAs, setPolicy, writeCounts } from "./key-fixtures";
import { REPORTER_KEY_ID, signReport, trustedReporterKey } from "./reporter";

/**
 * `POST /v1/secret-scanning/reports`, GitHub's partner program format: reports signed (ECDSA P-256 /
 * SHA-256, DER, base64) with the key pair vitest.config.ts made for this run; a second key pair the
 * worker does not trust stands for anyone else.
 */

const PATH = "/v1/secret-scanning/reports";
const KEY_ID = REPORTER_KEY_ID;

let trusted: CryptoKey;
let stranger: CryptoKey;
beforeAll(async () => {
  trusted = await trustedReporterKey();
  stranger = ((await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"])) as CryptoKeyPair).privateKey;
});

const sign = (body: string, key = trusted) => signReport(body, key);

async function report(body: string, options: { signature?: string | null; keyId?: string | null } = {}) {
  const headers: Record<string, string> = {};
  const signature = options.signature === undefined ? await sign(body) : options.signature;
  const keyId = options.keyId === undefined ? KEY_ID : options.keyId;
  if (signature !== null) headers["github-public-key-signature"] = signature;
  if (keyId !== null) headers["github-public-key-identifier"] = keyId;
  return call("POST", PATH, { body, headers });
}

const found = (token: string, n = 0) => ({ token, type: "keygate_api_key", url: `https://github.com/octo/leaky/blob/main/.env#L${n}`, source: "content" });

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Leaky");
});
const newKey = (name: string) => createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name, scopes: ["app:read"] });

describe("signature", () => {
  it("converts DER signatures exactly and refuses malformed ones", async () => {
    const body = "[]";
    const der = Uint8Array.from(atob(await sign(body)), (c) => c.charCodeAt(0));
    expect(derToP1363(der)?.length).toBe(64);
    expect(derToP1363(Uint8Array.from([...der, 0]))).toBeNull(); // trailing byte
    expect(derToP1363(der.subarray(0, der.length - 1))).toBeNull(); // cut short
    expect(derToP1363(Uint8Array.from([0x31, ...der.subarray(1)]))).toBeNull(); // not a SEQUENCE
    const pem = JSON.parse(env.SECRET_SCANNING_PUBLIC_KEYS).public_keys[0].key as string;
    expect(await verifyReportSignature(new TextEncoder().encode(body), await sign(body), pem)).toBe(true);
    expect(await verifyReportSignature(new TextEncoder().encode(body + " "), await sign(body), pem)).toBe(false);
    expect(await verifyReportSignature(new TextEncoder().encode(body), "not base64!", pem)).toBe(false);
  });

  it("refuses unsigned, badly signed, tampered and unknown-key reports with 401, before looking at any token", async () => {
    const victim = await newKey("victim");
    const body = JSON.stringify([found(victim.key)]);
    const before = await writeCounts();
    const cases: [string, Awaited<ReturnType<typeof report>>][] = [
      ["no signature", await report(body, { signature: null })],
      ["no key id", await report(body, { keyId: null })],
      ["signed by a stranger", await report(body, { signature: await sign(body, stranger) })],
      ["tampered body", await report(body.replace("content", "commit"), { signature: await sign(body) })],
      ["unknown key id", await report(body, { keyId: "someone-else" })],
      ["garbage signature", await report(body, { signature: "MEUCIQ==" })],
    ];
    for (const [label, res] of cases) {
      expect(res.status, `${label}: ${res.text}`).toBe(401);
      expect(res.body.error.code).toBe("UNAUTHORIZED");
      expect(res.text, label).not.toContain(victim.id); // nothing about the token
    }
    expect(await writeCounts()).toEqual(before);
    expect((await verifyKey(env, victim.key, { mode: "strict" })).code).toBe("VALID");
  });

  it("refuses a replayed report (409), and accepts the same tokens in a new report", async () => {
    const victim = await newKey("replayed");
    const body = JSON.stringify([found(victim.key, 1)]);
    const signature = await sign(body);
    expectStatus(await report(body, { signature }), 200);
    const again = await report(body, { signature });
    expectStatus(again, 409);
    expect(again.body.error.details.reason).toBe("REPLAYED");
    const fresh = await report(JSON.stringify([found(victim.key, 2)]));
    expectStatus(fresh, 200);
    expect(fresh.body[0].label).toBe("true_positive");
  });

  it("refuses a signed body that is not a report with 400", async () => {
    for (const body of ["{}", "[]", '[{"token":1}]', "not json"]) {
      const res = await report(body);
      expect(res.status, `${body}: ${res.text}`).toBe(400);
    }
  });
});

describe("acting on a report", () => {
  it("revokes our keys everywhere before answering, labels every token, and audits key.leaked with the URL", async () => {
    const leaked = await newKey("leaked");
    const untouched = await newKey("untouched");
    // Leases held on the leaked key before the report.
    for (const mode of ["lease", "strict", "cached"] as const) expect((await verifyKey(env, leaked.key, { mode })).code).toBe("VALID");
    const notOurs = [
      "kgw_not_a_real_key",
      await mintKey(newId(), "another-deployments-tag-secret-0123456789"), // well formed, not our tag
      await mintKey(newId(), env.KEY_TAG_SECRET), // our tag, no such key
    ];
    const tokens = [leaked.key, ...notOurs];
    const res = await report(JSON.stringify(tokens.map((t, i) => found(t, i))));
    expectStatus(res, 200);
    expect(res.body.map((l: { label: string }) => l.label)).toEqual(["true_positive", "false_positive", "false_positive", "false_positive"]);
    expect(res.body[0]).toEqual({ token_hash: await hashKey(leaked.key), token_type: "keygate_api_key", label: "true_positive" });
    expect(res.text).not.toContain(leaked.key);

    for (const mode of ["lease", "strict"] as const) expect((await verifyKey(env, leaked.key, { mode })).code).toBe("REVOKED");
    expect((await verifyKey(env, untouched.key, { mode: "lease" })).code).toBe("VALID");
    const [entry] = (await call("GET", `/v1/orgs/${org.orgId}/audit-log?action=key.leaked&limit=1`, { key: org.adminKey })).body.entries;
    expect(entry).toMatchObject({ action: "key.leaked", targetId: leaked.id, details: { url: found(leaked.key, 0).url, source: "content", outcome: "revoked" } });
    expect(JSON.stringify(entry)).not.toContain(leaked.key);

    // Reported again (a new report): still ours, nothing more to do, recorded.
    const again = await report(JSON.stringify([found(leaked.key, 9)]));
    expect(again.body[0].label).toBe("true_positive");
  });

  it("disables instead when the org's policy says so, even the org's last admin key", async () => {
    const careful = await createOrg("Careful");
    await setPolicy(careful.orgId, { requireExpiration: false, maxLifetimeDays: null, leakedKeyAction: "disable" });
    const res = await report(JSON.stringify([found(careful.adminKey)]));
    expectStatus(res, 200);
    expect(res.body[0].label).toBe("true_positive");
    expect((await verifyKey(env, careful.adminKey, { mode: "lease" })).code).toBe("DISABLED");
    const row = await env.DB.prepare("select disabled_at, revoked_at from api_keys where id = ?").bind(careful.adminKeyId).first<Record<string, unknown>>();
    expect(row).toMatchObject({ revoked_at: null });
    expect(row!.disabled_at).not.toBeNull();
  });

  it("a rotation's previous secret, found leaked, takes the whole key down", async () => {
    const rotated = await newKey("rotated");
    const regen = await call("POST", `/v1/orgs/${org.orgId}/keys/${rotated.id}/regenerate`, { key: org.adminKey, body: { overlapSeconds: 3600 } });
    expectStatus(regen, 200);
    const res = await report(JSON.stringify([found(rotated.key)]));
    expect(res.body[0].label).toBe("true_positive");
    for (const key of [rotated.key, regen.body.key]) expect((await verifyKey(env, key, { mode: "lease" })).valid).toBe(false);
  });

  describe("a leaked secret never verifies again (issue 21 point 4)", () => {
    let careful: Awaited<ReturnType<typeof createOrg>>;
    beforeAll(async () => {
      careful = await createOrg("Careful rotations");
      await setPolicy(careful.orgId, { requireExpiration: false, maxLifetimeDays: null, leakedKeyAction: "disable" });
    });
    const keyOf = (name: string) => createKeyAs(careful.adminKey, careful.orgId, { kind: "scoped", name, scopes: ["app:read"] });
    const manage = (keyId: string, action: string, body?: unknown) =>
      call("POST", `/v1/orgs/${careful.orgId}/keys/${keyId}/${action}`, { key: careful.adminKey, ...(body === undefined ? {} : { body }) });
    /** What `secret` gets now: from a lease of this isolate, and at the gateway (200 or 401). */
    const verdicts = async (secret: string) => ({
      verify: (await verifyKey(env, secret, { mode: "lease" })).code,
      gateway: (await call("GET", "/gw/demo/whoami", { key: secret })).status,
    });
    const DEAD = { verify: expect.not.stringMatching(/^VALID$/), gateway: 401 };
    const LIVE = { verify: "VALID", gateway: 200 };

    it("a disabled key is not regenerated with an overlap (409 KEY_DISABLED), and after regenerate and enable only the new secret verifies", async () => {
      const leaked = await keyOf("leaked, then rotated");
      expect(await verdicts(leaked.key)).toEqual(LIVE); // a lease on the leaked secret is held here
      expectStatus(await report(JSON.stringify([found(leaked.key, 41)])), 200);
      expect((await verifyKey(env, leaked.key, { mode: "lease" })).code).toBe("DISABLED");

      const week = await manage(leaked.id, "regenerate", { overlapSeconds: 7 * 86_400 });
      expect(week.status, week.text).toBe(409);
      expect(week.body.error).toMatchObject({ code: "CONFLICT", details: { reason: "KEY_DISABLED" } });
      expect(week.text).not.toContain(leaked.key);
      const rotated = await manage(leaked.id, "regenerate", {});
      expectStatus(rotated, 200);
      expect(rotated.body.rotation ?? null).toBeNull();
      expectStatus(await manage(leaked.id, "enable"), 200);

      expect(await verdicts(leaked.key)).toEqual(DEAD);
      expect(await verdicts(rotated.body.key)).toEqual(LIVE);
    });

    it("a rotation's previous secret, found leaked while its overlap runs, does not come back when the key is enabled", async () => {
      const key = await keyOf("previous secret leaked");
      const regen = await manage(key.id, "regenerate", { overlapSeconds: 7 * 86_400 });
      expectStatus(regen, 200);
      expect(await verdicts(key.key)).toEqual(LIVE); // the previous secret, rotating
      expectStatus(await report(JSON.stringify([found(key.key, 42)])), 200);
      expect((await verifyKey(env, key.key, { mode: "lease" })).code).toBe("DISABLED");

      const enabled = await manage(key.id, "enable");
      expectStatus(enabled, 200);
      expect(enabled.body.rotation ?? null).toBeNull();
      expect(await verdicts(key.key)).toEqual(DEAD);
      expect(await verdicts(regen.body.key)).toEqual(LIVE); // the current secret was not the leaked one
      const [entry] = (await call("GET", `/v1/orgs/${careful.orgId}/audit-log?action=key.enable&limit=1`, { key: careful.adminKey })).body.entries;
      expect(entry).toMatchObject({ targetId: key.id, details: { overlapEnded: true } });
    });

    it("a rotation's current secret, found leaked while its overlap runs: after regenerate and enable neither old secret verifies", async () => {
      const key = await keyOf("current secret leaked");
      const regen = await manage(key.id, "regenerate", { overlapSeconds: 7 * 86_400 });
      expectStatus(regen, 200);
      for (const secret of [key.key, regen.body.key]) expect(await verdicts(secret)).toEqual(LIVE);
      expectStatus(await report(JSON.stringify([found(regen.body.key, 43)])), 200);

      expect((await manage(key.id, "regenerate", { overlapSeconds: 3600 })).status).toBe(409);
      const fresh = await manage(key.id, "regenerate", {});
      expectStatus(fresh, 200);
      expectStatus(await manage(key.id, "enable"), 200);
      for (const secret of [key.key, regen.body.key]) expect(await verdicts(secret)).toEqual(DEAD);
      expect(await verdicts(fresh.body.key)).toEqual(LIVE);
    });
  });

  it("is documented, with its signature scheme, in the OpenAPI document", async () => {
    const doc = (await (await gatewayFetch(new Request("https://gateway.test/openapi.json"))).json()) as Record<string, any>;
    expect(doc.paths[PATH].post.operationId).toBe("reportLeakedKeys");
    expect(doc.paths[PATH].post.security).toEqual([{ reporterSignature: [] }]);
    expect(doc.components.securitySchemes.reporterSignature).toMatchObject({ type: "apiKey", in: "header", name: "Github-Public-Key-Signature" });
  });
});
