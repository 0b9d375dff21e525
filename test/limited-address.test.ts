import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { mintKey, newId } from "../src/domain/key-format";
import { leaseMs } from "../src/domain/lease";
import { createOrg } from "./helpers";
import { fetchWithBindings } from "./with-bindings";
import { createKeyAs, seedApp } from "./key-fixtures";
import { untouchable, untouchableStorage } from "./fault-bindings";

/**
 * Issue 21, point 9: past its failure limit, an address costs nothing. Every entry point answers it
 * 429 before D1, KV, an authority or the limiter is touched: the bindings given to its requests throw
 * on any use and record it. The one exception is a secret whose live lease this isolate already holds
 * (answered from that lease), so a client behind a shared address keeps working.
 */

const LIMIT = 30;
const MALFORMED = "kgw_01m81rkhmrykrft34d2v_notAValidKeyAtAllXXXXXXXXXXXXXXXXXXXXXX";

const offline = (touched: string[]): Partial<Env> => ({
  ...untouchableStorage(touched),
  ORG_AUTHORITY: untouchable<Env["ORG_AUTHORITY"]>("ORG_AUTHORITY", touched),
});

const verifyRequest = (ip: string, body: unknown) =>
  new Request("https://gateway.test/v1/keys/verify", {
    method: "POST",
    headers: { "content-type": "application/json", "cf-connecting-ip": ip },
    body: JSON.stringify(body),
  });

/** Makes `ip` limited in this isolate, with failures that themselves read no storage (malformed keys). */
async function exhaust(ip: string) {
  const touched: string[] = [];
  for (let i = 0; i <= LIMIT; i++) await fetchWithBindings(offline(touched), verifyRequest(ip, { key: MALFORMED }));
  const last = await fetchWithBindings(offline(touched), verifyRequest(ip, { key: MALFORMED }));
  expect(last.status, last.text).toBe(429);
  expect(touched).toEqual([]);
}

let org: Awaited<ReturnType<typeof createOrg>>;
let appId: string;
let reader: { key: string };
beforeAll(async () => {
  org = await createOrg("Limited Co");
  appId = await seedApp(org.orgId, "limited-app");
  reader = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "ci", orgRole: "none", appRoles: [{ appId, role: "reader" }] });
});

describe("an address past its failure limit is answered 429 before any storage or authority is touched", () => {
  it("at the verify endpoint, for an unknown key, a valid key and a strict verification alike", async () => {
    const ip = "192.0.2.201";
    await exhaust(ip);
    const touched: string[] = [];
    const unknown = await mintKey(newId(), env.KEY_TAG_SECRET);
    for (const body of [{ key: unknown }, { key: reader.key }, { key: org.adminKey }]) {
      const res = await fetchWithBindings(offline(touched), verifyRequest(ip, body));
      expect(res.status, res.text).toBe(429);
      expect(res.body.error.code, res.text).toBe("RATE_LIMITED");
      expect(Number(res.headers.get("retry-after")), res.text).toBeGreaterThan(0);
    }
    expect(touched).toEqual([]);
  });

  it("at the gateway, for management calls and for console sign-in", async () => {
    // The gateway and management count failures apart (their own scopes): each is exhausted in its own.
    const ip = "192.0.2.202";
    const headers = (key: string) => ({ authorization: `Bearer ${key}`, "cf-connecting-ip": ip });
    const unknown = await mintKey(newId(), env.KEY_TAG_SECRET);
    for (let i = 0; i <= LIMIT; i++) {
      await fetchWithBindings({}, new Request(`https://gateway.test/gw/demo/apps/${appId}/info`, { headers: headers(MALFORMED) }));
      await fetchWithBindings({}, new Request(`https://gateway.test/v1/orgs/${org.orgId}/keys`, { headers: headers(MALFORMED) }));
    }
    const touched: string[] = [];
    for (const key of [unknown, reader.key]) {
      const gateway = await fetchWithBindings(offline(touched), new Request(`https://gateway.test/gw/demo/apps/${appId}/info`, { headers: headers(key) }));
      expect(gateway.status, gateway.text).toBe(429);
      expect(gateway.headers.get("x-demo-upstream")).toBeNull();
    }
    for (const key of [unknown, org.adminKey]) {
      const management = await fetchWithBindings(offline(touched), new Request(`https://gateway.test/v1/orgs/${org.orgId}/keys`, { headers: headers(key) }));
      expect(management.status, management.text).toBe(429);
      expect(management.body.error.code, management.text).toBe("RATE_LIMITED");
    }
    const signIn = await fetchWithBindings(
      offline(touched),
      new Request("https://gateway.test/console/sign-in", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://gateway.test", "cf-connecting-ip": ip },
        body: new URLSearchParams({ key: org.adminKey }).toString(),
      }),
    );
    expect(signIn.status, signIn.text).toBe(429);
    expect(touched).toEqual([]);
  });

  it("still answers a key whose live lease this isolate holds from that lease, VALID, and refuses the next guess 429", async () => {
    const ip = "192.0.2.203";
    await exhaust(ip);
    // A colleague behind another address verifies the key: this isolate now leases its secret. T is
    // 200 ms in tests, so on a busy machine the lease may end before the next request: such an attempt
    // proves nothing and is made again; a 429 well within the lease is a real fault.
    const T = leaseMs(env.LEASE_MS);
    let shared: Awaited<ReturnType<typeof fetchWithBindings>> | undefined;
    for (let attempt = 0; attempt < 5 && !shared; attempt++) {
      const leasedFrom = Date.now();
      const first = await fetchWithBindings({}, verifyRequest("192.0.2.204", { key: reader.key }));
      expect(first.body.code, first.text).toBe("VALID");
      const answer = await fetchWithBindings({}, verifyRequest(ip, { key: reader.key }));
      if (answer.status === 200 || Date.now() - leasedFrom < T / 2) shared = answer;
    }
    expect(shared?.status, shared?.text).toBe(200);
    expect(shared!.body.code, shared!.text).toBe("VALID");
    const touched: string[] = [];
    const guess = await fetchWithBindings(offline(touched), verifyRequest(ip, { key: await mintKey(newId(), env.KEY_TAG_SECRET) }));
    expect(guess.status, guess.text).toBe(429);
    expect(touched).toEqual([]);
  });
});
