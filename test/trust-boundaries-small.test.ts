import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { decryptSecret, encryptSecret } from "../src/domain/crypto";
import { fetchWithBindings } from "./with-bindings";

/**
 * Issue 21, point 11: the smaller trust-boundary items. The bootstrap secret's minimum length, a
 * comparison of secrets whose time does not depend on their lengths, a reporter key list whose failed
 * fetches unsigned requests cannot repeat, and a bounded cache of derived AES keys.
 */

const bootstrap = (origin: string, secret: string, ip: string) =>
  new Request(`${origin}/v1/orgs`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json", "cf-connecting-ip": ip },
    body: JSON.stringify({ name: "Bootstrapped" }),
  });

afterEach(() => {
  vi.restoreAllMocks();
});

describe("the bootstrap secret has a minimum length outside local development", () => {
  it("a missing or short BOOTSTRAP_SECRET opens nothing on a deployment: 500 MISCONFIGURED, even to the right secret", async () => {
    const orgsBefore = await env.DB.prepare("select count(*) as n from orgs").first<{ n: number }>();
    for (const secret of ["", "short-bootstrap", "x".repeat(31)]) {
      const res = await fetchWithBindings({ BOOTSTRAP_SECRET: secret }, bootstrap("https://keygate.example.com", secret || "anything", "192.0.2.210"));
      expect(res.status, res.text).toBe(500);
      expect(res.body.error, res.text).toMatchObject({ code: "MISCONFIGURED", details: { secret: "BOOTSTRAP_SECRET" } });
    }
    expect(await env.DB.prepare("select count(*) as n from orgs").first<{ n: number }>()).toEqual(orgsBefore);
  });

  it("local development (a request to a loopback host) still takes the short secret .dev.vars ships", async () => {
    for (const origin of ["http://localhost:8787", "http://127.0.0.1:8787"]) {
      const res = await fetchWithBindings({ BOOTSTRAP_SECRET: "local-bootstrap-secret" }, bootstrap(origin, "local-bootstrap-secret", "192.0.2.211"));
      expect(res.status, res.text).toBe(201);
    }
    const wrong = await fetchWithBindings({ BOOTSTRAP_SECRET: "local-bootstrap-secret" }, bootstrap("http://localhost:8787", "local-bootstrap-secreT", "192.0.2.211"));
    expect(wrong.status, wrong.text).toBe(401);
  });

  it("a full-length secret works on a deployment", async () => {
    const secret = "a-deployment-bootstrap-secret-of-40-bytes";
    const res = await fetchWithBindings({ BOOTSTRAP_SECRET: secret }, bootstrap("https://keygate.example.com", secret, "192.0.2.212"));
    expect(res.status, res.text).toBe(201);
  });
});

describe("secrets are compared as fixed-length digests", () => {
  it("every comparison of a presented bootstrap secret is of two 32-byte digests, whatever its length", async () => {
    const compared: [number, number][] = [];
    const original = crypto.subtle.timingSafeEqual.bind(crypto.subtle);
    vi.spyOn(crypto.subtle, "timingSafeEqual").mockImplementation((a, b) => {
      compared.push([(a as ArrayBufferView).byteLength ?? (a as ArrayBuffer).byteLength, (b as ArrayBufferView).byteLength ?? (b as ArrayBuffer).byteLength]);
      return original(a, b);
    });
    const answers: number[] = [];
    for (const presented of ["x", "test-bootstrap-secret-012345678", env.BOOTSTRAP_SECRET + "9", "y".repeat(200), env.BOOTSTRAP_SECRET]) {
      answers.push((await fetchWithBindings({}, bootstrap("https://gateway.test", presented, "192.0.2.213"))).status);
    }
    expect(answers).toEqual([401, 401, 401, 401, 201]);
    expect(compared.length).toBeGreaterThanOrEqual(5);
    expect(compared.every(([a, b]) => a === 32 && b === 32), JSON.stringify(compared)).toBe(true);
  });
});

describe("the secret scanning reporter's key list: failed fetches are remembered, not repeated", () => {
  const report = (ip: string, keyId: string) =>
    new Request("https://gateway.test/v1/secret-scanning/reports", {
      method: "POST",
      headers: { "content-type": "application/json", "github-public-key-identifier": keyId, "github-public-key-signature": "bm90IGEgc2lnbmF0dXJl", "cf-connecting-ip": ip },
      body: "[]",
    });

  it("twenty unsigned reports while the list cannot be fetched cost one fetch, concurrent or one after another; each is 503", async () => {
    const url = `https://keys.example.test/secret_scanning/${crypto.randomUUID()}`;
    const fetched: string[] = [];
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const target = input instanceof Request ? input.url : String(input);
      if (target !== url) return realFetch(input, init);
      fetched.push(target);
      return new Response("upstream down", { status: 502 });
    });
    const bindings = { SECRET_SCANNING_PUBLIC_KEYS: "", SECRET_SCANNING_KEYS_URL: url } as Partial<Env>;
    const concurrent = await Promise.all(Array.from({ length: 10 }, (_, i) => fetchWithBindings(bindings, report(`192.0.2.${220 + i}`, `made-up-${i}`))));
    const sequential = [];
    for (let i = 0; i < 10; i++) sequential.push(await fetchWithBindings(bindings, report(`192.0.2.${230 + i}`, `made-up-${i}`)));
    for (const res of [...concurrent, ...sequential]) {
      expect(res.status, res.text).toBe(503);
      expect(Number(res.headers.get("retry-after")), res.text).toBeGreaterThan(0);
    }
    expect(fetched.length, fetched.join("\n")).toBe(1);
  });

  it("unknown key ids against a fetched list refetch at most once a minute", async () => {
    const url = `https://keys.example.test/secret_scanning/${crypto.randomUUID()}`;
    const list = JSON.parse(env.SECRET_SCANNING_PUBLIC_KEYS);
    let fetches = 0;
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const target = input instanceof Request ? input.url : String(input);
      if (target !== url) return realFetch(input, init);
      fetches++;
      return Response.json(list);
    });
    const bindings = { SECRET_SCANNING_PUBLIC_KEYS: "", SECRET_SCANNING_KEYS_URL: url } as Partial<Env>;
    for (let i = 0; i < 10; i++) {
      const res = await fetchWithBindings(bindings, report(`192.0.2.${240 + i}`, `rotated-away-${i}`));
      expect(res.status, res.text).toBe(401);
    }
    expect(fetches).toBe(1);
  });
});

describe("derived AES keys are cached within a bound", () => {
  it("derives a session's key again after 64 other sessions' secrets: the cache does not grow with the number of sessions", async () => {
    let imports = 0;
    const original = crypto.subtle.importKey.bind(crypto.subtle);
    vi.spyOn(crypto.subtle, "importKey").mockImplementation(((...args: Parameters<SubtleCrypto["importKey"]>) => {
      imports++;
      return original(...args);
    }) as SubtleCrypto["importKey"]);
    const sessions = Array.from({ length: 65 }, () => `session-cookie-${crypto.randomUUID()}`);
    const sealed = [];
    for (const secret of sessions) sealed.push(await encryptSecret(secret, "one-time secret", "id"));
    expect(imports).toBe(sessions.length);
    // The first session's key was dropped long ago: opening its secret derives the key again.
    expect(await decryptSecret(sessions[0]!, sealed[0]!, "id")).toBe("one-time secret");
    expect(imports).toBe(sessions.length + 1);
  });
});
