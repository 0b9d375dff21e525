import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../src/index";
import { decryptSecret, encryptSecret } from "../src/domain/crypto";
import { mintKey, newId } from "../src/domain/key-format";
import { BOOTSTRAP, createOrg } from "./helpers";
import { createKeyAs, writeCounts } from "./key-fixtures";

/**
 * Worker secrets fail closed (issue 11, items 3 and 12): without KEY_TAG_SECRET no key verifies and
 * none is minted; without KEY_ENCRYPTION_SECRET no non-secure key is created or revealed. "Without"
 * means missing, empty or shorter than 32 bytes; the answer is 500 MISCONFIGURED naming the secret.
 */

const MISSING = [undefined, "", "x".repeat(31)] as const;

async function callWith(bindings: Record<string, unknown>, method: string, path: string, key?: string, body?: unknown) {
  const ctx = createExecutionContext();
  const headers: Record<string, string> = { "cf-connecting-ip": "192.0.2.200" };
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await worker.fetch(
    new Request(`https://gateway.test${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }),
    { ...env, ...bindings } as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, body: json, text: `${res.status} ${text}` };
}

function expectMisconfigured(res: { status: number; body: any; text: string }, secret: string) {
  expect(res.status, res.text).toBe(500);
  expect(res.body?.error, res.text).toMatchObject({ code: "MISCONFIGURED", details: { secret } });
  expect(res.body.error.message, res.text).toContain(secret);
}

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Secrets Co");
});

describe("without KEY_TAG_SECRET the worker fails closed", () => {
  it("no key verifies: the verify endpoint, the gateway and management calls answer 500 MISCONFIGURED, never VALID", async () => {
    for (const secret of MISSING) {
      const bindings = { KEY_TAG_SECRET: secret };
      expectMisconfigured(await callWith(bindings, "POST", "/v1/keys/verify", undefined, { key: org.adminKey }), "KEY_TAG_SECRET");
      expectMisconfigured(await callWith(bindings, "GET", `/v1/orgs/${org.orgId}/keys`, org.adminKey), "KEY_TAG_SECRET");
      const gateway = await callWith(bindings, "GET", "/gw/demo/whoami", org.adminKey);
      expectMisconfigured(gateway, "KEY_TAG_SECRET");
    }
  });

  it("no key is minted: creating an organization answers 500 MISCONFIGURED and writes nothing", async () => {
    for (const secret of MISSING) {
      const before = await writeCounts();
      const orgsBefore = await env.DB.prepare("select count(*) as n from orgs").first<{ n: number }>();
      expectMisconfigured(await callWith({ KEY_TAG_SECRET: secret }, "POST", "/v1/orgs", BOOTSTRAP, { name: "Never" }), "KEY_TAG_SECRET");
      expect(await writeCounts()).toEqual(before);
      expect(await env.DB.prepare("select count(*) as n from orgs").first<{ n: number }>()).toEqual(orgsBefore);
    }
  });

  it("mintKey refuses a missing or short secret instead of tagging with it", async () => {
    for (const secret of MISSING) {
      await expect(mintKey(newId(), secret as string)).rejects.toMatchObject({ code: "MISCONFIGURED" });
    }
  });
});

describe("without KEY_ENCRYPTION_SECRET non-secure keys are neither created nor revealed", () => {
  it("creating a non-secure key answers 500 MISCONFIGURED and writes nothing; a secure key is still created", async () => {
    for (const secret of MISSING) {
      const bindings = { KEY_ENCRYPTION_SECRET: secret };
      const before = await writeCounts();
      const body = { kind: "scoped", name: "plain", secure: false, scopes: ["app:read"] };
      expectMisconfigured(await callWith(bindings, "POST", `/v1/orgs/${org.orgId}/keys`, org.adminKey, body), "KEY_ENCRYPTION_SECRET");
      expect(await writeCounts()).toEqual(before);
      const secure = await callWith(bindings, "POST", `/v1/orgs/${org.orgId}/keys`, org.adminKey, { ...body, secure: true });
      expect(secure.status, secure.text).toBe(201);
    }
  });

  it("revealing a non-secure key answers 500 MISCONFIGURED, shows no key and writes no audit entry", async () => {
    const plain = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "revealable", secure: false, scopes: ["app:read"] });
    for (const secret of MISSING) {
      const before = await writeCounts();
      const res = await callWith({ KEY_ENCRYPTION_SECRET: secret }, "POST", `/v1/orgs/${org.orgId}/keys/${plain.id}/reveal`, org.adminKey);
      expectMisconfigured(res, "KEY_ENCRYPTION_SECRET");
      expect(res.text).not.toContain(plain.key);
      expect(await writeCounts()).toEqual(before);
    }
    // With the secret set, the same reveal works.
    const ok = await callWith({}, "POST", `/v1/orgs/${org.orgId}/keys/${plain.id}/reveal`, org.adminKey);
    expect(ok.body?.key, ok.text).toBe(plain.key);
  });

  it("encryptSecret and decryptSecret refuse a missing or short secret: nothing is sealed under an empty key", async () => {
    const sealed = await encryptSecret(env.KEY_ENCRYPTION_SECRET, "kgw_plaintext", "01jd8x7a0b1c2d3e4f5g");
    for (const secret of MISSING) {
      await expect(encryptSecret(secret as string, "kgw_plaintext", "01jd8x7a0b1c2d3e4f5g")).rejects.toMatchObject({ code: "MISCONFIGURED" });
      await expect(decryptSecret(secret as string, sealed, "01jd8x7a0b1c2d3e4f5g")).rejects.toMatchObject({ code: "MISCONFIGURED" });
    }
  });
});
