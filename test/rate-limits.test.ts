import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../src/domain/crypto";
import { Edge } from "../src/verification/edge";
import { verifyKey } from "../src/verification/verify-key";
import { keyAuthoritiesWith, unreachableAuthorities } from "./fault-bindings";
import { call, createOrg, expectStatus, prng, sleep } from "./helpers";
import { createKeyAs, setPolicy, writeCounts } from "./key-fixtures";
import { makeLocations } from "./location-model";

/**
 * Per-key rate limits (issue 16 point 2): enforced at the verify endpoint, over RPC and at the gateway;
 * across locations the admitted count of a window never exceeds the limit while the key's authority
 * answers; a lone isolate that cannot reach it admits its grace (1% of the limit) and no more.
 */

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Metered");
});
const limited = (limits: { limit: number; periodSeconds: number }[], name = "limited") =>
  createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name, scopes: ["app:read", "project:deploy"], rateLimits: limits });
const verifier = () => (exports as unknown as { KeyVerifier: { verify: (k: string, o?: object) => Promise<Record<string, any>> } }).KeyVerifier;

describe("one location", () => {
  it("admits the limit, then answers RATE_LIMITED with the window at verify, over RPC and at the gateway (429 with RateLimit headers)", async () => {
    const key = await limited([{ limit: 5, periodSeconds: 3600 }]);
    expect(key.rateLimits).toEqual([{ limit: 5, periodSeconds: 3600 }]);
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await call("POST", "/v1/keys/verify", { body: { key: key.key } })).body.code);
    codes.push((await verifier().verify(key.key)).code);
    expect(codes).toEqual(["VALID", "VALID", "VALID", "VALID", "VALID"]);

    const refused = await call("POST", "/v1/keys/verify", { body: { key: key.key } });
    expectStatus(refused, 200);
    expect(refused.body).toMatchObject({ valid: false, code: "RATE_LIMITED", rateLimit: { limit: 5, periodSeconds: 3600, remaining: 0 } });
    const resetAt = Date.parse(refused.body.rateLimit.resetAt);
    expect(resetAt % 3_600_000).toBe(0);
    expect(resetAt).toBeGreaterThan(Date.now());
    expect((await verifier().verify(key.key)).code).toBe("RATE_LIMITED");

    const gw = await call("GET", "/gw/demo/whoami", { key: key.key });
    expectStatus(gw, 429);
    expect(gw.body.error).toMatchObject({ code: "RATE_LIMITED", details: { reason: "RATE_LIMITED", limit: 5, periodSeconds: 3600 } });
    const retryAfter = Number(gw.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(gw.headers.get("ratelimit-policy")).toBe('"key";q=5;w=3600');
    expect(gw.headers.get("ratelimit")).toBe(`"key";r=0;t=${retryAfter}`);
  });

  it("leaves management calls and other keys alone, and takes the org's default when a key has none", async () => {
    const metered = await createOrg("Metered by policy");
    await setPolicy(metered.orgId, { requireExpiration: false, maxLifetimeDays: null, rateLimits: [{ limit: 2, periodSeconds: 3600 }] });
    // Management authentication is not metered: the admin key (under the org's default) keeps working.
    for (let i = 0; i < 4; i++) expectStatus(await call("GET", `/v1/orgs/${metered.orgId}/keys`, { key: metered.adminKey }), 200);
    const byDefault = await createKeyAs(metered.adminKey, metered.orgId, { kind: "scoped", name: "default", scopes: ["app:read"] });
    const own = await createKeyAs(metered.adminKey, metered.orgId, { kind: "scoped", name: "own", scopes: ["app:read"], rateLimits: [{ limit: 4, periodSeconds: 3600 }] });
    const run = async (key: string, n: number) => {
      const codes = [];
      for (let i = 0; i < n; i++) codes.push((await verifyKey(env, key)).code);
      return codes;
    };
    expect(await run(byDefault.key, 3)).toEqual(["VALID", "VALID", "RATE_LIMITED"]);
    expect(await run(own.key, 5)).toEqual(["VALID", "VALID", "VALID", "VALID", "RATE_LIMITED"]);
    // An edit raises the key's own limit: counted in the new windows from then on.
    expectStatus(await call("PATCH", `/v1/orgs/${metered.orgId}/keys/${own.id}`, { key: metered.adminKey, body: { rateLimits: [{ limit: 100, periodSeconds: 60 }] } }), 200);
    expect(await run(own.key, 3)).toEqual(["VALID", "VALID", "VALID"]);
  });

  it("refuses malformed limits with 400, changing nothing", async () => {
    const before = await writeCounts();
    for (const rateLimits of [
      [{ limit: 0, periodSeconds: 10 }],
      [{ limit: 10, periodSeconds: 0 }],
      [{ limit: 1.5, periodSeconds: 10 }],
      [{ limit: 10, periodSeconds: 10 }, { limit: 20, periodSeconds: 10 }],
      [1, 2, 3, 4].map((i) => ({ limit: 10, periodSeconds: i })),
      [{ limit: 10, periodSeconds: 10, burst: 3 }],
    ]) {
      const res = await call("POST", `/v1/orgs/${org.orgId}/keys`, { key: org.adminKey, body: { kind: "scoped", name: "x", scopes: ["app:read"], rateLimits } });
      expect(res.status, JSON.stringify(rateLimits)).toBe(400);
      expect(res.body.error.details.issues[0].field).toMatch(/^rateLimits/);
    }
    expect(await writeCounts()).toEqual(before);
  });
});

describe("across locations", () => {
  it("a burst from three locations admits exactly the limit while the authority answers", async () => {
    const LIMIT = 60;
    const key = await limited([{ limit: LIMIT, periodSeconds: 3600 }], "burst");
    const random = prng(7);
    const model = makeLocations(3, { authorityDelay: () => random() * 15, reportUses: false });
    // Every location keeps asking, 8 at a time, until it is refused twice in a row.
    const admitted = await Promise.all(
      model.locations.map(async (at) => {
        let valid = 0;
        let refusedInARow = 0;
        while (refusedInARow < 2) {
          const codes = await Promise.all(Array.from({ length: 8 }, () => verifyKey(at.env, key.key, { edge: at.edge }).then((v) => v.code)));
          valid += codes.filter((c) => c === "VALID").length;
          refusedInARow = codes.every((c) => c === "RATE_LIMITED") ? refusedInARow + 1 : 0;
        }
        return valid;
      }),
    );
    const total = admitted.reduce((a, b) => a + b, 0);
    expect(total, `admitted per location: ${admitted.join(", ")}`).toBe(LIMIT);
    expect(admitted.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2); // shared out, not all at one place
  });

  it("a parallel burst of 30 on a fresh isolate shares what the authority grants and admits all 30 of a limit of 100", async () => {
    const key = await limited([{ limit: 100, periodSeconds: 3600 }], "burst of 30");
    const edge = new Edge(); // a fresh isolate: no lease, no slice
    const codes = await Promise.all(Array.from({ length: 30 }, () => verifyKey(env, key.key, { edge }).then((v) => v.code)));
    expect(codes.filter((c) => c !== "VALID"), codes.join(", ")).toEqual([]);
  });

  it("a parallel burst through the gateway on a key no request has used admits all 30 of a limit of 100", async () => {
    const key = await limited([{ limit: 100, periodSeconds: 3600 }], "gateway burst");
    const answers = await Promise.all(Array.from({ length: 30 }, () => call("GET", "/gw/demo/whoami", { key: key.key })));
    expect(answers.filter((a) => a.status !== 200).map((a) => a.text)).toEqual([]);
  });

  it("parallel bursts of 130 at three fresh locations on a limit of 100 admit exactly 100 in all", async () => {
    const key = await limited([{ limit: 100, periodSeconds: 3600 }], "burst of 130");
    const random = prng(21);
    const model = makeLocations(3, { authorityDelay: () => random() * 10, reportUses: false });
    const perLocation = await Promise.all(
      model.locations.map(async (at) => {
        const codes = await Promise.all(Array.from({ length: 130 }, () => verifyKey(at.env, key.key, { edge: at.edge }).then((v) => v.code)));
        expect(codes.filter((c) => c !== "VALID" && c !== "RATE_LIMITED"), codes.join(", ")).toEqual([]);
        return codes.filter((c) => c === "VALID").length;
      }),
    );
    expect(perLocation.reduce((a, b) => a + b, 0), `admitted per location: ${perLocation.join(", ")}`).toBe(100);
    // The waiting requests of a location share each call, which asks for all of them: a few calls, not one per request.
    const calls = model.locations.map((at) => at.calls.key.takeRate ?? 0);
    expect(Math.max(...calls), `authority calls per location: ${calls.join(", ")}`).toBeLessThanOrEqual(4);
    // And a lone fresh isolate's burst of 130 admits exactly 100 too.
    const alone = await limited([{ limit: 100, periodSeconds: 3600 }], "lone burst of 130");
    const edge = new Edge();
    const codes = await Promise.all(Array.from({ length: 130 }, () => verifyKey(env, alone.key, { edge }).then((v) => v.code)));
    expect(codes.filter((c) => c === "VALID").length, codes.join(", ")).toBe(100);
    expect(codes.filter((c) => c === "RATE_LIMITED").length).toBe(30);
  });

  it("a slice left unspent when its window ends is not carried into the next: the next window admits exactly its limit", async () => {
    const limits = [{ limit: 100, periodSeconds: 2 }];
    /** Spends 1 of a 10-use slice in one window, leaving 9; then a burst of 130 in the next. Null: the burst overran its window (retry). */
    const trial = async () => {
      const key = await limited(limits, "window carry");
      const edge = new Edge();
      expect((await verifyKey(env, key.key, { edge })).code).toBe("VALID");
      const slice = edge.rateSlices.get(key.id)!;
      expect(slice).toMatchObject({ left: 9, granted: 10 });
      const next = slice.until; // the window the slice was granted in ends here
      await sleep(next - Date.now() + 5);
      const codes = await Promise.all(Array.from({ length: 130 }, () => verifyKey(env, key.key, { edge }).then((v) => v.code)));
      return Date.now() < next + 2000 ? codes.filter((c) => c === "VALID").length : null;
    };
    let admitted = await trial();
    for (let retry = 0; admitted === null && retry < 2; retry++) admitted = await trial();
    expect(admitted, "the burst never fit inside one 2 s window").not.toBeNull();
    expect(admitted).toBe(100);
  });

  it("a slice asked for at the end of one window and granted in the next replaces what was left, never adds to it", async () => {
    const limits = [{ limit: 100, periodSeconds: 2 }];
    // takeRate calls wait for `gate` before they reach the authority: the one the isolate starts in the
    // last moments of a window is answered in the next.
    let gate: Promise<void> = Promise.resolve();
    const held = {
      ...env,
      KEY_AUTHORITY: keyAuthoritiesWith("takeRate", (stub) => async (...args: unknown[]) => {
        await gate;
        return stub.takeRate(...args);
      }),
    } as Env;
    /** Null: the machine was too slow to start the refill within the window (retry). */
    const trial = async () => {
      const key = await limited(limits, "refill across windows");
      const edge = new Edge();
      const pending: Promise<unknown>[] = [];
      const waitUntil = (p: Promise<unknown>) => void pending.push(p);
      expect((await verifyKey(held, key.key, { edge, waitUntil })).code).toBe("VALID");
      const slice = edge.rateSlices.get(key.id)!;
      const end = slice.until;
      await sleep(end - Date.now() - 250);
      let open!: () => void;
      gate = new Promise((r) => (open = r));
      // 7 more leave 2 of the slice of 10: the 8th use asks for the next slice off the response path.
      for (let i = 0; i < 7; i++) expect((await verifyKey(held, key.key, { edge, waitUntil })).code).toBe("VALID");
      const inTime = Date.now() < end && slice.left === 2;
      await sleep(end - Date.now() + 5);
      open();
      await Promise.allSettled(pending);
      if (!inTime || slice.until !== end + 2000) return null;
      const codes = await Promise.all(Array.from({ length: 130 }, () => verifyKey(held, key.key, { edge }).then((v) => v.code)));
      return Date.now() < end + 2000 ? codes.filter((c) => c === "VALID").length : null;
    };
    let admitted = await trial();
    for (let retry = 0; admitted === null && retry < 2; retry++) admitted = await trial();
    expect(admitted, "the machine never ran the trial inside its windows").not.toBeNull();
    expect(admitted).toBe(100);
  });

  it("a lone isolate that cannot reach the authority admits its grace (1% of the limit) and refuses the rest", async () => {
    const key = await limited([{ limit: 500, periodSeconds: 3600 }], "cut off");
    const edge = new Edge();
    expect((await verifyKey(env, key.key, { edge })).code).toBe("VALID"); // the key's lease is held; a slice too
    // Held for the whole test: with T = 200 ms a busy machine would let it end, and a renewal cannot reach the authority.
    edge.keyLeases.get(await hashKey(key.key))!.until = Date.now() + 60_000;
    const slice = edge.rateSlices.get(key.id)!;
    slice.left = 0; // spent: the next admission must ask the authority
    const cutOff = { ...env, KEY_AUTHORITY: unreachableAuthorities() };
    const codes = [];
    for (let i = 0; i < 8; i++) codes.push((await verifyKey(cutOff, key.key, { edge })).code);
    expect(codes).toEqual(["VALID", "VALID", "VALID", "VALID", "VALID", "RATE_LIMITED", "RATE_LIMITED", "RATE_LIMITED"]);
  });
});
