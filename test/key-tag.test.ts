import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../src/index";
import { hasValidTag, KEY_LENGTH, KEY_PATTERN, mintKey, newId, parseKey } from "../src/domain/key-format";
import { verifyKey } from "../src/verification/verify-key";
import { createOrg } from "./helpers";
import { untouchableStorage } from "./fault-bindings";

/**
 * The keyed tag (issue 11, items 3 and 18): the last 8 characters of a key's secret are an HMAC under
 * the deployment's KEY_TAG_SECRET, so a key nobody here minted is refused before any storage access,
 * with no Durable Object created and no limiter call. The storage bindings given to these requests
 * throw on any use: a read would fail the test, not only a write.
 */

const OTHER_SECRET = "some-other-deployments-tag-secret-0123456789";
/** Well-formed, checksum correct, tagged under a secret that is not this deployment's. */
const forge = () => mintKey(newId(), OTHER_SECRET);
const typo = (key: string) => key.slice(0, 30) + (key[30] === "a" ? "b" : "a") + key.slice(31);

async function fetchWith(bindings: Partial<Env>, request: Request) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(request as Parameters<typeof worker.fetch>[0], { ...env, ...bindings }, ctx);
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  return { status: res.status, text: `${res.status} ${text}`, body: JSON.parse(text), headers: res.headers };
}

let org: Awaited<ReturnType<typeof createOrg>>;
let appId: string;
beforeAll(async () => {
  org = await createOrg("Tag Co");
  const res = await worker.fetch(
    new Request(`https://gateway.test/v1/orgs/${org.orgId}/apps`, {
      method: "POST",
      headers: { authorization: `Bearer ${org.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "tag-app" }),
    }),
    env,
    createExecutionContext(),
  );
  appId = ((await res.json()) as { id: string }).id;
});

describe("the key format stays as documented", () => {
  it("a minted key matches KEY_PATTERN and KEY_LENGTH, passes the public checksum and carries a valid tag", async () => {
    for (let i = 0; i < 20; i++) {
      const key = await mintKey(newId(), env.KEY_TAG_SECRET);
      expect(key).toMatch(KEY_PATTERN);
      expect(key).toHaveLength(KEY_LENGTH);
      expect(parseKey(key), key).not.toBeNull();
      expect(await hasValidTag(key, env.KEY_TAG_SECRET), key).toBe(true);
    }
    expect(org.adminKey).toMatch(KEY_PATTERN);
    expect(await hasValidTag(org.adminKey, env.KEY_TAG_SECRET)).toBe(true);
  });

  it("a key minted under another secret is well-formed (a scanner still finds it) but its tag is wrong", async () => {
    const forged = await forge();
    expect(forged).toMatch(KEY_PATTERN);
    expect(parseKey(forged)).not.toBeNull();
    expect(await hasValidTag(forged, env.KEY_TAG_SECRET)).toBe(false);
  });
});

describe("forged and malformed keys are refused without reading storage", () => {
  it("the verifier answers a forged key NOT_FOUND, like an unknown key, without touching D1, KV or any authority", async () => {
    const touched: string[] = [];
    const result = await verifyKey({ ...env, ...untouchableStorage(touched) }, await forge());
    expect(result).toEqual({ valid: false, code: "NOT_FOUND", message: "The key does not exist.", beforeStorage: true });
    expect(touched).toEqual([]);
  });

  it("the verifier answers a malformed key MALFORMED without touching D1, KV or any authority", async () => {
    const touched: string[] = [];
    for (const key of ["kgw_nope", typo(org.adminKey), org.adminKey.slice(0, -1), ""]) {
      const result = await verifyKey({ ...env, ...untouchableStorage(touched) }, key);
      expect(result, key).toMatchObject({ valid: false, code: "MALFORMED", beforeStorage: true });
    }
    expect(touched).toEqual([]);
  });

  it("(the harness works) a correctly tagged key does reach storage, so the bindings above would have caught a read", async () => {
    const touched: string[] = [];
    const unknown = await mintKey(newId(), env.KEY_TAG_SECRET);
    await expect(verifyKey({ ...env, ...untouchableStorage(touched) }, unknown)).rejects.toThrow();
    expect(touched.length).toBeGreaterThan(0);
  });

  it("the verify endpoint answers a forged or malformed key with no storage read, no authority and no limiter call", async () => {
    const touched: string[] = [];
    for (const [key, code] of [[await forge(), "NOT_FOUND"], [typo(org.adminKey), "MALFORMED"]] as const) {
      const res = await fetchWith(
        untouchableStorage(touched),
        new Request("https://gateway.test/v1/keys/verify", {
          method: "POST",
          headers: { "content-type": "application/json", "cf-connecting-ip": "192.0.2.180" },
          body: JSON.stringify({ key }),
        }),
      );
      expect(res.status, res.text).toBe(200);
      expect(res.body, res.text).toEqual({ valid: false, code, message: expect.any(String) });
    }
    expect(touched).toEqual([]);
  });

  it("the gateway and management calls refuse a forged key with 401 and no storage read, authority or limiter call", async () => {
    const touched: string[] = [];
    const forged = await forge();
    const headers = { authorization: `Bearer ${forged}`, "cf-connecting-ip": "192.0.2.181" };
    const gateway = await fetchWith(untouchableStorage(touched), new Request(`https://gateway.test/gw/demo/apps/${appId}/info`, { headers }));
    expect(gateway.status, gateway.text).toBe(401);
    expect(gateway.body.error.details.reason, gateway.text).toBe("NOT_FOUND");
    expect(gateway.headers.get("x-demo-upstream")).toBeNull();
    const management = await fetchWith(untouchableStorage(touched), new Request(`https://gateway.test/v1/orgs/${org.orgId}/keys`, { headers }));
    expect(management.status, management.text).toBe(401);
    expect(management.body.error.details.reason, management.text).toBe("NOT_FOUND");
    expect(touched).toEqual([]);
  });

  it("a key of this org's own id, tagged under another deployment's secret, is refused before storage too", async () => {
    const touched: string[] = [];
    const lookalike = await mintKey(org.adminKeyId, OTHER_SECRET);
    expect(await verifyKey({ ...env, ...untouchableStorage(touched) }, lookalike)).toMatchObject({ code: "NOT_FOUND" });
    expect(touched).toEqual([]);
  });
});
