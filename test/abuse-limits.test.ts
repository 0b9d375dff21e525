import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrg, expectStatus } from "./helpers";
import { assertNotBlocked, AUTH_FAILURE_WINDOW_SECONDS, recordFailure } from "../src/verification/abuse-limit";

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Abuse Co");
});

const WRONG_KEY = "kgw_01m81rkhmrykrft34d2v_HzPl9CRT6larfJlZacsDK6dY760PvJeK3VMAWc";
const from = (ip: string, key: string) => call("GET", `/v1/orgs/${org.orgId}/keys`, { key, headers: { "cf-connecting-ip": ip } });

describe("failed management authentications are limited per client IP", () => {
  it("answers 429 with Retry-After past the limit, and then refuses even a valid key from that IP", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 35; i++) statuses.push((await from("203.0.113.7", WRONG_KEY)).status);
    expect(statuses.slice(0, 30).every((s) => s === 401), statuses.join(",")).toBe(true);
    expect(statuses.at(-1)).toBe(429);
    const limited = await from("203.0.113.7", WRONG_KEY);
    expectStatus(limited, 429);
    expect(limited.body.error.code).toBe("RATE_LIMITED");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    // A limited client learns nothing more: its valid key is refused too, before verification.
    expectStatus(await from("203.0.113.7", org.adminKey), 429);
  });

  it("does not limit other addresses, or successful calls", async () => {
    expectStatus(await from("198.51.100.1", org.adminKey), 200);
    for (let i = 0; i < 40; i++) expectStatus(await from("198.51.100.2", org.adminKey), 200);
  });
});

describe("malformed keys are limited by the isolate, at the same limit, with no limiter call", () => {
  const limiterCalls: string[] = [];
  const fakeEnv = {
    AUTH_FAILURE_LIMIT: "30",
    AUTH_FAILURES: { limit: async ({ key }: { key: string }) => (limiterCalls.push(key), { success: true }) },
  } as unknown as Env;
  const pending: Promise<unknown>[] = [];

  it("blocks an address past 30 malformed keys in a window, and only that address and scope", async () => {
    const now = Date.now();
    for (let i = 0; i < 30; i++) recordFailure(fakeEnv, "192.0.2.40", "verify", "MALFORMED", (p) => pending.push(p), now);
    expect(() => assertNotBlocked("192.0.2.40", "verify", now)).not.toThrow();
    recordFailure(fakeEnv, "192.0.2.40", "verify", "MALFORMED", (p) => pending.push(p), now);
    expect(() => assertNotBlocked("192.0.2.40", "verify", now)).toThrow(expect.objectContaining({ code: "RATE_LIMITED" }));
    expect(() => assertNotBlocked("192.0.2.41", "verify", now)).not.toThrow();
    expect(() => assertNotBlocked("192.0.2.40", "gateway", now)).not.toThrow();
    // The block ends with the window.
    expect(() => assertNotBlocked("192.0.2.40", "verify", now + AUTH_FAILURE_WINDOW_SECONDS * 1000 + 1)).not.toThrow();
    expect(limiterCalls).toEqual([]);
    expect(pending).toEqual([]);
  });

  it("starts a fresh count in a new window", () => {
    const start = Date.now();
    for (let i = 0; i < 30; i++) recordFailure(fakeEnv, "192.0.2.42", "verify", "MALFORMED", () => {}, start);
    const later = start + AUTH_FAILURE_WINDOW_SECONDS * 1000;
    for (let i = 0; i < 30; i++) recordFailure(fakeEnv, "192.0.2.42", "verify", "MALFORMED", () => {}, later);
    expect(() => assertNotBlocked("192.0.2.42", "verify", later)).not.toThrow();
  });

  it("sends every other failure to the location's limiter", async () => {
    recordFailure(fakeEnv, "192.0.2.43", "verify", "NOT_FOUND", (p) => pending.push(p));
    await Promise.all(pending);
    expect(limiterCalls).toEqual(["verify:192.0.2.43"]);
  });

  it("end to end: the 31st malformed key from one address is answered 429", async () => {
    const ip = { "cf-connecting-ip": "192.0.2.44" };
    const statuses: number[] = [];
    for (let i = 0; i < 31; i++) {
      const res = await call("POST", "/v1/keys/verify", { body: { key: "kgw_01m81rkhmrykrft34d2v_notAValidKeyAtAllXXXXXXXXXXXXXXXXXXXXXX" }, headers: ip });
      statuses.push(res.status);
    }
    expect(statuses.slice(0, 30).every((s) => s === 200), statuses.join(",")).toBe(true);
    const limited = await call("POST", "/v1/keys/verify", { body: { key: "x" }, headers: ip });
    expectStatus(limited, 429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});
