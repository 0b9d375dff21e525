import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { db } from "../src/storage/db";
import { addUsage, DAY_MS } from "../src/storage/usage";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { createKeyAs, revoke } from "./key-fixtures";

/**
 * A page of keys' daily totals in one call (issue 16, point 1: the key list's 7-day sparklines):
 * `GET /v1/orgs/{orgId}/usage/daily?keyIds=…&days=…`.
 */

type Org = Awaited<ReturnType<typeof createOrg>>;
type Day = { start: string; total: number; valid: number; refused: number };
type KeyDays = { keyId: string; total: number; days: Day[] };
let org: Org;
let other: Org;
let busy: { id: string; key: string };
let quiet: { id: string; key: string };
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const HOUR = 3_600_000;

const daily = (query: string, key = org.adminKey, orgId = org.orgId) => call("GET", `/v1/orgs/${orgId}/usage/daily?${query}`, { key });
const verify = async (key: string, permission?: string) =>
  (await call("POST", "/v1/keys/verify", { body: permission ? { key, permission } : { key } })).body.code as string;

beforeAll(async () => {
  org = await createOrg("Daily Co");
  other = await createOrg("Other Daily Co");
  busy = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "busy", scopes: ["app:read"] });
  quiet = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "quiet", scopes: ["app:read"] });
  // Earlier days, as isolates would have flushed them: 3 days ago (two hours), 6 days ago, and 7 days ago
  // (outside a 7-day range).
  await addUsage(db(env.DB), [
    { keyId: busy.id, orgId: org.orgId, hour: today - 3 * DAY_MS + 2 * HOUR, outcome: "VALID", count: 10 },
    { keyId: busy.id, orgId: org.orgId, hour: today - 3 * DAY_MS + 9 * HOUR, outcome: "RATE_LIMITED", count: 4 },
    { keyId: busy.id, orgId: org.orgId, hour: today - 6 * DAY_MS, outcome: "VALID", count: 1 },
    { keyId: busy.id, orgId: org.orgId, hour: today - 7 * DAY_MS, outcome: "VALID", count: 100 },
  ]);
  // Today, through real verifications (flushed 50 ms later in tests).
  for (let i = 0; i < 2; i++) expect(await verify(busy.key)).toBe("VALID");
  expect(await verify(busy.key, "project:deploy")).toBe("INSUFFICIENT_PERMISSIONS");
});

/** The answer once today's 3 verifications of `busy` have been flushed. */
async function settled(query: string) {
  let res = await daily(query);
  for (let i = 0; i < 100 && res.status === 200 && (res.body.keys as KeyDays[]).find((k) => k.keyId === busy.id)?.days.at(-1)?.total !== 3; i++) {
    await sleep(20);
    res = await daily(query);
  }
  expectStatus(res, 200);
  return res.body as { from: string; to: string; keys: KeyDays[] };
}

describe("daily totals of a page of keys", () => {
  it("answers the last 7 UTC days of each key, today included, valid and refused, in the order named", async () => {
    const body = await settled(`keyIds=${quiet.id},${busy.id}`);
    expect(body.from).toBe(new Date(today - 6 * DAY_MS).toISOString());
    expect(body.to).toBe(new Date(today + DAY_MS).toISOString());
    expect(body.keys.map((k) => k.keyId)).toEqual([quiet.id, busy.id]);
    const [q, b] = body.keys;
    expect(q!.total).toBe(0);
    expect(q!.days.map((d) => d.total)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(b!.days.map((d) => d.start)).toEqual(Array.from({ length: 7 }, (_, i) => new Date(today - (6 - i) * DAY_MS).toISOString()));
    expect(b!.days.map((d) => d.total)).toEqual([1, 0, 0, 14, 0, 0, 3]);
    expect(b!.days[3]).toMatchObject({ valid: 10, refused: 4 });
    expect(b!.days[6]).toMatchObject({ valid: 2, refused: 1 });
    // 7 days ago is outside the range.
    expect(b!.total).toBe(18);
  });

  it("answers as many days as asked, up to the 90 kept", async () => {
    const body = await settled(`keyIds=${busy.id}&days=30`);
    expect(body.keys[0]!.days).toHaveLength(30);
    expect(body.keys[0]!.total).toBe(118);
    expect((await settled(`keyIds=${busy.id}&days=1`)).keys[0]!.days.map((d) => d.total)).toEqual([3]);
  });

  it("names each key once, however often it is asked for", async () => {
    const body = await settled(`keyIds=${busy.id},${busy.id},${quiet.id},${busy.id}`);
    expect(body.keys.map((k) => k.keyId)).toEqual([busy.id, quiet.id]);
  });

  it("leaves out revoked keys, keys that do not exist and keys of other orgs, and tells nothing of them", async () => {
    const gone = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "gone", scopes: ["app:read"] });
    expect(await verify(gone.key)).toBe("VALID");
    await revoke(gone.id, org.orgId);
    const theirs = await createKeyAs(other.adminKey, other.orgId, { kind: "scoped", name: "theirs", scopes: ["app:read"] });
    await addUsage(db(env.DB), [{ keyId: theirs.id, orgId: other.orgId, hour: today, outcome: "VALID", count: 7 }]);
    const body = await settled(`keyIds=${gone.id},${busy.id},aaaaaaaaaaaaaaaaaaaa,${theirs.id}`);
    expect(body.keys.map((k) => k.keyId)).toEqual([busy.id]);
    expect(JSON.stringify(body)).not.toContain(theirs.id);
    // Their own admin sees their key's count.
    const mine = await daily(`keyIds=${theirs.id}`, other.adminKey, other.orgId);
    expectStatus(mine, 200);
    expect(mine.body.keys[0].days.at(-1).total).toBe(7);
  });

  it("answers 100 keys in one call", async () => {
    const ids = [busy.id, ...Array.from({ length: 99 }, (_, i) => `zzzzzzzzzzzzzzzz${String(i).padStart(4, "0")}`.replace(/\d/g, (d) => "abcdefghjk"[+d]!))];
    const res = await daily(`keyIds=${ids.join(",")}`);
    expectStatus(res, 200);
    expect(res.body.keys.map((k: KeyDays) => k.keyId)).toEqual([busy.id]);
  });
});

describe("bad requests", () => {
  it.each([
    ["no keyIds", "", "keyIds"],
    ["an empty keyIds", "keyIds=", "keyIds"],
    ["a malformed id", "keyIds=not-an-id", "keyIds"],
    ["a trailing comma", "keyIds=aaaaaaaaaaaaaaaaaaaa,", "keyIds"],
    ["101 keys", `keyIds=${Array.from({ length: 101 }, (_, i) => "a".repeat(17) + "bcdefghjkm"[i % 10] + "bcdefghjkm"[Math.floor(i / 10) % 10] + "bcdefghjkm"[Math.floor(i / 100)]).join(",")}`, "keyIds"],
    ["days 0", "keyIds=aaaaaaaaaaaaaaaaaaaa&days=0", "days"],
    ["days 91", "keyIds=aaaaaaaaaaaaaaaaaaaa&days=91", "days"],
    ["days 1.5", "keyIds=aaaaaaaaaaaaaaaaaaaa&days=1.5", "days"],
    ["days abc", "keyIds=aaaaaaaaaaaaaaaaaaaa&days=abc", "days"],
  ])("refuses %s with 400 naming the field", async (_, query, field) => {
    const res = await daily(query);
    expectStatus(res, 400);
    expect(res.body.error.code).toBe("INVALID_REQUEST");
    expect(JSON.stringify(res.body.error)).toContain(field);
  });

  it("answers 405 with Allow to another method", async () => {
    const res = await call("POST", `/v1/orgs/${org.orgId}/usage/daily?keyIds=${busy.id}`, { key: org.adminKey, body: {} });
    expectStatus(res, 405);
    expect(res.headers.get("allow")).toContain("GET");
  });
});

describe("security", () => {
  it("needs a key", async () => {
    const res = await call("GET", `/v1/orgs/${org.orgId}/usage/daily?keyIds=${busy.id}`);
    expectStatus(res, 401);
  });

  it("needs apiKeyManagement: the key being asked about cannot read its own org's usage", async () => {
    const res = await daily(`keyIds=${busy.id}`, busy.key);
    expectStatus(res, 403);
    expect(JSON.stringify(res.body)).not.toMatch(/"total"/);
  });

  it("refuses another org's admin under this org's path", async () => {
    const res = await daily(`keyIds=${busy.id}`, other.adminKey);
    expect([403, 404]).toContain(res.status);
    expect(JSON.stringify(res.body)).not.toMatch(/"total"/);
  });
});
