import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { meteringBound, meteringShortfall, stricterOrEqual, type Metering } from "../src/domain/metering";
import { windowOf, type RateLimit } from "../src/domain/rate-limit";

/** The escalation rule for credits and rate limits (issue 21 point 5), as a pure function. */

const unmetered: Metering = { credits: null, creditsRefill: null, rateLimits: null };
const perMinute = (limit: number): RateLimit[] => [{ limit, periodSeconds: 60 }];

describe("stricterOrEqual", () => {
  it("accepts nesting windows that admit no more, and refuses windows that do not nest", () => {
    const minute = { limit: 60, periodSeconds: 60 };
    expect(stricterOrEqual({ limit: 60, periodSeconds: 60 }, minute)).toBe(true);
    expect(stricterOrEqual({ limit: 60, periodSeconds: 3600 }, minute)).toBe(true);
    expect(stricterOrEqual({ limit: 61, periodSeconds: 3600 }, minute)).toBe(false);
    expect(stricterOrEqual({ limit: 10, periodSeconds: 10 }, minute)).toBe(true);
    expect(stricterOrEqual({ limit: 11, periodSeconds: 10 }, minute)).toBe(false);
    expect(stricterOrEqual({ limit: 1, periodSeconds: 90 }, minute)).toBe(false);
  });

  it("a limit judged stricter never admits more than the bound in any of the bound's windows (aligned to the epoch)", () => {
    const limit = fc.record({ limit: fc.integer({ min: 1, max: 50 }), periodSeconds: fc.integer({ min: 1, max: 120 }) });
    fc.assert(
      fc.property(limit, limit, fc.integer({ min: 0, max: 10_000 }), (l, bound, startSecond) => {
        fc.pre(stricterOrEqual(l, bound));
        // The most `l` admits within one window of `bound`: its limit in each of its windows that window touches.
        const start = windowOf(bound, startSecond * 1000).start;
        const end = start + bound.periodSeconds * 1000;
        let admitted = 0;
        for (let t = windowOf(l, start).start; t < end; t += l.periodSeconds * 1000) admitted += l.limit;
        return admitted <= bound.limit;
      }),
    );
  });
});

describe("meteringShortfall", () => {
  it("lets an unmetered caller give anything, a metered one only as much metering or more", () => {
    const free = meteringBound(unmetered, null, false);
    expect(meteringShortfall(free, unmetered)).toEqual([]);
    const caller = meteringBound({ credits: 10, creditsRefill: { amount: 10, interval: "month" }, rateLimits: perMinute(5) }, null, false);
    expect(meteringShortfall(caller, { credits: 10, creditsRefill: { amount: 10, interval: "month" }, rateLimits: perMinute(5) })).toEqual([]);
    expect(meteringShortfall(caller, unmetered).map((i) => i.field)).toEqual(["credits", "rateLimits"]);
    expect(meteringShortfall(caller, { credits: 11, creditsRefill: null, rateLimits: perMinute(5) }).map((i) => i.field)).toEqual(["credits"]);
    expect(meteringShortfall(caller, { credits: 1, creditsRefill: { amount: 1, interval: "day" }, rateLimits: perMinute(5) }).map((i) => i.field)).toEqual(["creditsRefill"]);
  });

  it("binds a caller by the policy's default unless it may change the policy", () => {
    const policy = perMinute(10);
    const looser: Metering = { credits: null, creditsRefill: null, rateLimits: perMinute(1000) };
    expect(meteringShortfall(meteringBound(unmetered, policy, false), looser).map((i) => i.field)).toEqual(["rateLimits"]);
    expect(meteringShortfall(meteringBound(unmetered, policy, false), unmetered)).toEqual([]); // the key gets the default too
    expect(meteringShortfall(meteringBound(unmetered, policy, true), looser)).toEqual([]);
    // Its own limits bind even an org admin.
    expect(meteringShortfall(meteringBound({ ...unmetered, rateLimits: perMinute(5) }, policy, true), unmetered).map((i) => i.field)).toEqual(["rateLimits"]);
  });
});
