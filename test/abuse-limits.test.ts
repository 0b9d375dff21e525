import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrg, expectStatus } from "./helpers";

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
