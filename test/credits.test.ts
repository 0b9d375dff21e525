import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { MAX_CREDIT_SLICE } from "../src/domain/credits";
import { askAuthority, authorityFor, type KeyAuthority } from "../src/durable-objects/key-authority";
import { Edge, isolateEdge } from "../src/verification/edge";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus, prng } from "./helpers";
import { createKeyAs, writeCounts } from "./key-fixtures";
import { keyAuthoritiesWith, recordingD1 } from "./fault-bindings";
import { makeLocations } from "./location-model";

/**
 * Usage credits (issue 16 point 3): each allowed use spends one (or its cost); at zero the key answers
 * USAGE_EXCEEDED; concurrent spending from many locations never spends more than the balance nor shows
 * a negative one; refills at the start of a day or month, on a fixed clock.
 */

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Prepaid");
});
const metered = (credits: number, extra: Record<string, unknown> = {}) =>
  createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: `credits ${credits}`, scopes: ["app:read", "project:deploy"], credits, ...extra });
/**
 * The balance the key's authority holds in its own storage (issue 22: D1's `api_keys.credits` is now a
 * copy for lists, written at most once a minute, so the tests read the balance where it lives).
 */
const storedCredits = async (keyId: string) => (await askAuthority(env, keyId, (a) => a.balance(keyId, org.orgId))).credits;
const DAY = 86_400_000;

describe("spending", () => {
  it("spends one per allowed use, answers USAGE_EXCEEDED at zero (verify, gateway 429), and shows the balance", async () => {
    const key = await metered(4);
    expect(key.credits).toEqual({ remaining: 4, asOf: key.createdAt, refill: null, nextRefillAt: null });
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await call("POST", "/v1/keys/verify", { body: { key: key.key } })).body.code);
    expect(codes).toEqual(["VALID", "VALID", "VALID", "VALID"]);
    const refused = await call("POST", "/v1/keys/verify", { body: { key: key.key } });
    // A refusal names no key to an anonymous caller (issue 21); a verifier is told which key it was.
    expect(refused.body).toEqual({ valid: false, code: "USAGE_EXCEEDED", message: expect.any(String) });
    const told = await call("POST", "/v1/keys/verify", { key: org.adminKey, body: { key: key.key } });
    expect(told.body).toMatchObject({ valid: false, code: "USAGE_EXCEEDED", keyId: key.id, orgId: org.orgId });
    const gw = await call("GET", "/gw/demo/whoami", { key: key.key });
    expectStatus(gw, 429);
    expect(gw.body.error.details.reason).toBe("USAGE_EXCEEDED");
    expect((await call("GET", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey })).body.credits.remaining).toBe(0);
    expect(await storedCredits(key.id)).toBe(0);
    // A refused use (wrong permission) spends nothing.
    const other = await metered(1);
    expect((await verifyKey(env, other.key, { permission: "org:admin" })).code).toBe("INSUFFICIENT_PERMISSIONS");
    expect((await verifyKey(env, other.key)).code).toBe("VALID");
  });

  it("spends a use's cost, and refuses one the balance cannot pay without spending any of it", async () => {
    const key = await metered(5);
    // A cost is a verifier's assertion: the org admin key is the verifier credential (issue 21).
    const spend = (cost: number) => call("POST", "/v1/keys/verify", { key: org.adminKey, body: { key: key.key, cost } });
    expect((await spend(3)).body.code).toBe("VALID");
    expect((await spend(3)).body.code).toBe("USAGE_EXCEEDED");
    expect((await spend(2)).body.code).toBe("VALID");
    expect((await call("POST", "/v1/keys/verify", { body: { key: key.key } })).body.code).toBe("USAGE_EXCEEDED");
    expect(await storedCredits(key.id)).toBe(0);
  });

  it("never spends more than the balance, nor shows a negative one, under concurrent use from three locations", async () => {
    const CREDITS = 45;
    const key = await metered(CREDITS);
    const random = prng(11);
    const model = makeLocations(3, { authorityDelay: () => random() * 10, reportUses: false });
    const admitted = await Promise.all(
      model.locations.map(async (at) => {
        let valid = 0;
        for (let round = 0; round < 6; round++) {
          const codes = await Promise.all(Array.from({ length: 10 }, () => verifyKey(at.env, key.key, { edge: at.edge }).then((v) => v.code)));
          valid += codes.filter((c) => c === "VALID").length;
          expect(codes.every((c) => c === "VALID" || c === "USAGE_EXCEEDED"), codes.join()).toBe(true);
        }
        return valid;
      }),
    );
    const total = admitted.reduce((a, b) => a + b, 0);
    expect(total, `per location: ${admitted.join(", ")}`).toBeLessThanOrEqual(CREDITS);
    // Every slice handed out was spent (each location kept asking): nothing stranded, nothing overspent.
    expect(total).toBe(CREDITS);
    expect(await storedCredits(key.id)).toBe(0);
    expect((await call("GET", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey })).body.credits.remaining).toBe(0);
  });
});

/** The uses this isolate holds of `keyId`'s credits in live slices (reserved at the authority). */
function heldHere(keyId: string, edge = isolateEdge): number {
  const slice = edge.creditSlices.get(keyId);
  return (slice?.grants ?? []).reduce((sum, g) => sum + (Date.now() < g.until ? g.left : 0), 0);
}
const shownRemaining = async (keyId: string) => {
  const res = await call("GET", `/v1/orgs/${org.orgId}/keys/${keyId}`, { key: org.adminKey });
  expectStatus(res, 200);
  return res.body.credits.remaining as number;
};

describe("what the API shows (issue 21 point 6)", () => {
  it("a 100-credit key used once shows 99 remaining", async () => {
    const key = await metered(100);
    expect((await verifyKey(env, key.key)).code).toBe("VALID");
    expect(await shownRemaining(key.id)).toBe(99);
  });

  it("after a burst, remaining is what was neither spent nor reserved by an isolate, and the reserved part is at most one slice", async () => {
    const key = await metered(100);
    let used = 0;
    for (let round = 0; round < 4; round++) {
      const codes = await Promise.all(Array.from({ length: 8 }, () => verifyKey(env, key.key).then((v) => v.code)));
      used += codes.filter((c) => c === "VALID").length;
    }
    expect(used).toBe(32);
    const held = heldHere(key.id);
    expect(held).toBeLessThanOrEqual(MAX_CREDIT_SLICE);
    expect(await shownRemaining(key.id)).toBe(100 - used - held);
  });

  it("a refused use whose cost exceeds the balance leaves the balance as it was, read at once (issue 21 point 13)", async () => {
    const key = await metered(10);
    for (let i = 0; i < 3; i++) expect((await verifyKey(env, key.key)).code).toBe("VALID");
    expect(await shownRemaining(key.id)).toBe(10 - 3 - heldHere(key.id));
    const refused = await verifyKey(env, key.key, { cost: 8 });
    expect(refused.code).toBe("USAGE_EXCEEDED");
    // Nothing moved into this isolate's slice: what it held went back, and the balance shows every unspent use.
    expect(heldHere(key.id)).toBe(0);
    expect(await shownRemaining(key.id)).toBe(7);
    expect(await storedCredits(key.id)).toBe(7);
    expect((await verifyKey(env, key.key, { cost: 7 })).code).toBe("VALID");
    expect(await shownRemaining(key.id)).toBe(0);
  });
});

describe("lowering a balance takes effect when the call returns (issue 21 point 6)", () => {
  it("a key set to 0 credits is refused at once, here, at the gateway and at another location, whatever slices were handed out", async () => {
    const key = await metered(100);
    const model = makeLocations(1, { reportUses: false });
    const [elsewhere] = model.locations;
    // Uses here and elsewhere, in bursts, so that both hold slices when the balance is lowered.
    for (let round = 0; round < 3; round++) {
      const codes = await Promise.all([
        ...Array.from({ length: 6 }, () => verifyKey(env, key.key).then((v) => v.code)),
        ...Array.from({ length: 6 }, () => verifyKey(elsewhere!.env, key.key, { edge: elsewhere!.edge }).then((v) => v.code)),
      ]);
      expect(codes.every((c) => c === "VALID"), codes.join()).toBe(true);
    }
    expectStatus(await call("GET", "/gw/demo/whoami", { key: key.key }), 200);
    const heldBefore = heldHere(key.id) + heldHere(key.id, elsewhere!.edge);
    const lowered = await call("PATCH", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey, body: { credits: 0 } });
    expectStatus(lowered, 200);
    expect(lowered.body.credits.remaining).toBe(0);
    const after = [
      ...(await Promise.all(Array.from({ length: 4 }, () => verifyKey(env, key.key).then((v) => v.code)))),
      ...(await Promise.all(Array.from({ length: 4 }, () => verifyKey(elsewhere!.env, key.key, { edge: elsewhere!.edge }).then((v) => v.code)))),
    ];
    expect(after, after.join()).toEqual(Array(8).fill("USAGE_EXCEEDED"));
    const gw = await call("GET", "/gw/demo/whoami", { key: key.key });
    expectStatus(gw, 429);
    expect(await storedCredits(key.id)).toBe(0);
    // The case the test is about: slices were out, with uses left in them, when the balance was lowered.
    expect(heldBefore).toBeGreaterThan(0);
  });

  it("a balance lowered to 2 admits exactly 2 more, however many slices were out", async () => {
    const key = await metered(100);
    for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 8 }, () => verifyKey(env, key.key)));
    const heldBefore = heldHere(key.id);
    expectStatus(await call("PATCH", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey, body: { credits: 2 } }), 200);
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await verifyKey(env, key.key)).code);
    expect(codes).toEqual(["VALID", "VALID", "USAGE_EXCEEDED", "USAGE_EXCEEDED", "USAGE_EXCEEDED"]);
    expect(heldBefore).toBeGreaterThan(0);
  });
});

describe("refills and edits", () => {
  it("refills to the amount when a new day begins (fixed clock), and not before", async () => {
    const key = await metered(2, { creditsRefill: { amount: 10, interval: "day" } });
    const now = Date.now();
    const tomorrow = Math.floor(now / DAY) * DAY + DAY + 60_000;
    expect(key.credits.nextRefillAt).toBe(new Date(tomorrow - 60_000).toISOString());
    const at = (t: number) => verifyKey(env, key.key, { now: t }).then((v) => v.code);
    expect([await at(now), await at(now), await at(now)]).toEqual(["VALID", "VALID", "USAGE_EXCEEDED"]);
    expect(await at(tomorrow)).toBe("VALID");
    const left = await storedCredits(key.id);
    expect(left).toBeGreaterThanOrEqual(0);
    expect(left).toBeLessThan(10); // the refill happened, then a slice was taken from it
  });

  it("an admin sets the balance or makes the key unmetered; a refill needs credits", async () => {
    const key = await metered(1);
    expect((await verifyKey(env, key.key)).code).toBe("VALID");
    expect((await verifyKey(env, key.key)).code).toBe("USAGE_EXCEEDED");
    const topped = await call("PATCH", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey, body: { credits: 3 } });
    expectStatus(topped, 200);
    expect(topped.body.credits.remaining).toBe(3);
    expect((await verifyKey(env, key.key)).code).toBe("VALID");
    expectStatus(await call("PATCH", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey, body: { credits: null } }), 200);
    for (let i = 0; i < 10; i++) expect((await verifyKey(env, key.key)).code).toBe("VALID");

    const before = await writeCounts();
    for (const body of [{ credits: -1 }, { credits: 1.5 }, { creditsRefill: { amount: 5, interval: "day" } }, { credits: 5, creditsRefill: { amount: 5, interval: "week" } }]) {
      const res = await call("POST", `/v1/orgs/${org.orgId}/keys`, { key: org.adminKey, body: { kind: "scoped", name: "x", scopes: ["app:read"], ...body } });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect(await writeCounts()).toEqual(before);
  });
});

const copiesBalance = (sql: string) => /^update "api_keys" set "credits" = /.test(sql);

describe("the balance lives in the key's authority (issue 22 points 1 and 5)", () => {
  it("a restart of the authority between slices and their return loses nothing and overspends nothing", async () => {
    const CREDITS = 100;
    const key = await metered(CREDITS);
    const edge = new Edge();
    let valid = 0;
    let evictions = 0;
    let heldAtEviction = 0;
    for (let round = 0; round < 40; round++) {
      const codes = await Promise.all(Array.from({ length: 8 }, () => verifyKey(env, key.key, { edge }).then((v) => v.code)));
      expect(codes.every((c) => c === "VALID" || c === "USAGE_EXCEEDED"), codes.join()).toBe(true);
      valid += codes.filter((c) => c === "VALID").length;
      if (codes.every((c) => c === "USAGE_EXCEEDED")) break;
      // Every other round the authority restarts while this isolate holds slices with uses left.
      if (round % 2 === 0) {
        heldAtEviction += heldHere(key.id, edge);
        await evictDurableObject(authorityFor(env, key.id));
        evictions++;
      }
    }
    expect(evictions).toBeGreaterThan(3);
    // The case the test is about: slices with uses left were out when the authority restarted.
    expect(heldAtEviction).toBeGreaterThan(0);
    // Their unspent parts came back to the restarted authority (recorded in its storage), so every credit
    // was spent exactly once: none lost to a restart, none spent twice, and the balance is zero, not less.
    expect(valid).toBe(CREDITS);
    expect(await storedCredits(key.id)).toBe(0);
    expect(await shownRemaining(key.id)).toBe(0);
  });

  it("a metered key's steady traffic copies its balance to D1 at most once a minute, the first copy at once", async () => {
    const key = await metered(100_000);
    const stub = authorityFor(env, key.id);
    const statements: string[] = [];
    await runInDurableObject(stub, (instance: KeyAuthority) => {
      instance.bindings = { ...env, DB: recordingD1(statements) };
    });
    let slices = 0;
    const counted = { ...env, KEY_AUTHORITY: keyAuthoritiesWith("takeCredits", (s) => (...args: unknown[]) => (slices++, s.takeCredits(...args))) };
    const edge = new Edge();
    const background: Promise<unknown>[] = [];
    const waitUntil = (p: Promise<unknown>) => void background.push(p);
    const started = Date.now();
    let valid = 0;
    while (Date.now() - started < 1_500) {
      const codes = await Promise.all(Array.from({ length: 10 }, () => verifyKey(counted, key.key, { edge, waitUntil }).then((v) => v.code)));
      valid += codes.filter((c) => c === "VALID").length;
    }
    await Promise.all(background);
    const copies = statements.filter(copiesBalance);
    expect(slices, `${valid} uses`).toBeGreaterThan(10);
    expect(copies.length, statements.join("\n")).toBe(1);
    // No other statement wrote to D1 for the credits either (a slice is a transaction in the authority's
    // storage); the only other write is the minute's lastUsedAt (one batch of its two columns).
    // (The key's usage roll-ups, which go to D1 from the same authority, are counted in test/usage-authority.test.ts.)
    const writes = statements.filter((s) => !/^select/i.test(s) && !/insert into "key_usage"/.test(s));
    expect(writes.filter((s) => !copiesBalance(s) && !/last_used_at" = \?/.test(s)), statements.join("\n")).toEqual([]);
    expect(writes.length, statements.join("\n")).toBeLessThanOrEqual(3);
    await runInDurableObject(stub, async (instance: KeyAuthority) => {
      // The alarm, run early: the next copy is not due yet, so it copies nothing.
      await instance.alarm();
    });
    expect(statements.filter(copiesBalance)).toHaveLength(1);
    // What D1 holds is the balance as it was at that copy, and a list says so.
    const list = await call("GET", `/v1/orgs/${org.orgId}/keys?kind=scoped&limit=100`, { key: org.adminKey });
    const listed = list.body.keys.find((k: { id: string }) => k.id === key.id);
    expect(listed.credits.remaining, list.text).toBeGreaterThanOrEqual(await shownRemaining(key.id));
    expect(Date.parse(listed.credits.asOf)).toBeGreaterThanOrEqual(started);
    expect(Date.parse(listed.credits.asOf)).toBeLessThan(Date.now());
  });
});
