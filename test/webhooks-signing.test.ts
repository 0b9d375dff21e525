import { describe, expect, it } from "vitest";
import { newSigningSecret, signWebhook, SIGNATURE_TOLERANCE_SECONDS, verifyWebhook, webhookHeaders } from "../src/webhooks/signing";

/**
 * Webhook signatures (issue 15, point 3): the Standard Webhooks scheme, checked against the
 * specification's own published example, and the verifier a receiver relies on.
 */

// The example of the Standard Webhooks reference library's tests (standard-webhooks/standard-webhooks,
// libraries/javascript/src/webhook.test.ts, "sign function works").
const SPEC = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};
const SPEC_NOW = SPEC.timestamp * 1000;
const specHeaders = { "webhook-id": SPEC.id, "webhook-timestamp": String(SPEC.timestamp), "webhook-signature": SPEC.signature };

describe("signing", () => {
  it("signs the specification's example exactly as the specification does", async () => {
    expect(await signWebhook(SPEC.secret, SPEC.id, SPEC.timestamp, SPEC.body)).toBe(SPEC.signature);
    expect(await verifyWebhook(SPEC.secret, specHeaders, SPEC.body, SPEC_NOW)).toEqual({ valid: true, id: SPEC.id, timestamp: SPEC.timestamp });
  });

  it("makes secrets of 32 random bytes behind whsec_, never the same twice", () => {
    const a = newSigningSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(atob(a.slice(6)).length).toBe(32);
    expect(newSigningSecret()).not.toBe(a);
  });

  it("a request signed with webhookHeaders verifies with the same secret, with headers in any case", async () => {
    const secret = newSigningSecret();
    const now = Date.UTC(2026, 10, 23, 12, 0, 0);
    const body = JSON.stringify({ id: "evt_1", type: "key.revoked" });
    const headers = await webhookHeaders(secret, "msg_abc", body, now);
    expect(headers["webhook-timestamp"]).toBe(String(now / 1000));
    expect((await verifyWebhook(secret, new Headers(headers), body, now)).valid).toBe(true);
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect((await verifyWebhook(secret, upper, body, now)).valid).toBe(true);
  });
});

describe("verifyWebhook refuses", () => {
  it("a tampered body, id or timestamp", async () => {
    expect(await verifyWebhook(SPEC.secret, specHeaders, '{"test": 2432232315}', SPEC_NOW)).toEqual({ valid: false, reason: "no_matching_signature" });
    expect(await verifyWebhook(SPEC.secret, specHeaders, SPEC.body + " ", SPEC_NOW)).toMatchObject({ valid: false });
    expect(await verifyWebhook(SPEC.secret, { ...specHeaders, "webhook-id": "msg_other" }, SPEC.body, SPEC_NOW)).toMatchObject({ valid: false });
    const shifted = { ...specHeaders, "webhook-timestamp": String(SPEC.timestamp + 1) };
    expect(await verifyWebhook(SPEC.secret, shifted, SPEC.body, SPEC_NOW)).toEqual({ valid: false, reason: "no_matching_signature" });
  });

  it("the wrong secret", async () => {
    expect(await verifyWebhook(newSigningSecret(), specHeaders, SPEC.body, SPEC_NOW)).toEqual({ valid: false, reason: "no_matching_signature" });
    expect(await verifyWebhook("whsec_not base64!", specHeaders, SPEC.body, SPEC_NOW)).toEqual({ valid: false, reason: "bad_secret" });
  });

  it("a timestamp more than 5 minutes old or ahead (a replayed or forged request)", async () => {
    const tolerance = SIGNATURE_TOLERANCE_SECONDS * 1000;
    expect((await verifyWebhook(SPEC.secret, specHeaders, SPEC.body, SPEC_NOW + tolerance)).valid).toBe(true);
    expect(await verifyWebhook(SPEC.secret, specHeaders, SPEC.body, SPEC_NOW + tolerance + 1000)).toEqual({ valid: false, reason: "timestamp_too_old" });
    expect(await verifyWebhook(SPEC.secret, specHeaders, SPEC.body, SPEC_NOW - tolerance - 1000)).toEqual({ valid: false, reason: "timestamp_too_new" });
    expect(await verifyWebhook(SPEC.secret, { ...specHeaders, "webhook-timestamp": "1614265330.5" }, SPEC.body, SPEC_NOW)).toEqual({ valid: false, reason: "bad_timestamp" });
  });

  it("missing headers, other versions, truncated or garbled signatures; accepts a valid one among several", async () => {
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"] as const) {
      const { [name]: _gone, ...rest } = specHeaders;
      expect(await verifyWebhook(SPEC.secret, rest, SPEC.body, SPEC_NOW)).toEqual({ valid: false, reason: "missing_headers" });
    }
    const mac = SPEC.signature.slice(3);
    for (const signature of [`v2,${mac}`, `v1,${mac.slice(0, 8)}`, "v1,", "v1,!!!not-base64", mac, `v1a,${mac}`]) {
      expect((await verifyWebhook(SPEC.secret, { ...specHeaders, "webhook-signature": signature }, SPEC.body, SPEC_NOW)).valid, signature).toBe(false);
    }
    const several = `v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,${mac} ${SPEC.signature}`;
    expect((await verifyWebhook(SPEC.secret, { ...specHeaders, "webhook-signature": several }, SPEC.body, SPEC_NOW)).valid).toBe(true);
  });
});
