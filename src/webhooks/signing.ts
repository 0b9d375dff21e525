/**
 * Webhook signatures, the Standard Webhooks way (https://www.standardwebhooks.com): every request
 * carries `webhook-id` (the delivery's id, the same on every retry, so receivers deduplicate by it),
 * `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`: `v1,` and the base64
 * HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of the endpoint's
 * `whsec_…` secret. Any Standard Webhooks library verifies what this signs.
 */

export const SECRET_PREFIX = "whsec_";
/** Random bytes of a signing secret: as long as HMAC-SHA256's block needs to be unguessable. */
export const SECRET_BYTES = 32;
/** How far a receiver accepts a timestamp from its own clock, either way: limits replays of a captured request. */
export const SIGNATURE_TOLERANCE_SECONDS = 5 * 60;

const encoder = new TextEncoder();

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/**
 * A new endpoint signing secret: `whsec_` and the base64 of 32 random bytes. Shown once, stored encrypted.
 * @example newSigningSecret() // "whsec_3q2+7w…="
 */
export function newSigningSecret(): string {
  return SECRET_PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

/** The HMAC key of a `whsec_…` secret (the prefix is optional, as Standard Webhooks libraries accept); null if it is not base64. */
async function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey | null> {
  const raw = fromBase64(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret);
  if (!raw || raw.byteLength === 0) return null;
  return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

const signedContent = (id: string, timestamp: number, body: string) => encoder.encode(`${id}.${timestamp}.${body}`);

/**
 * The `webhook-signature` value of one request: `v1,<base64 HMAC-SHA256>`.
 * @example await signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')
 * // "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
 */
export async function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): Promise<string> {
  const key = await hmacKey(secret, "sign");
  if (!key) throw new Error("the signing secret is not base64");
  return `v1,${toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, signedContent(id, timestampSeconds, body))))}`;
}

/**
 * The three Standard Webhooks headers of a request sent at `now` (ms).
 * @example await webhookHeaders(secret, delivery.id, body, Date.now())
 */
export async function webhookHeaders(secret: string, id: string, body: string, now: number): Promise<Record<string, string>> {
  const timestamp = Math.floor(now / 1000);
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": await signWebhook(secret, id, timestamp, body) };
}

export type WebhookVerdict =
  | { valid: true; id: string; timestamp: number }
  | { valid: false; reason: "missing_headers" | "bad_timestamp" | "timestamp_too_old" | "timestamp_too_new" | "bad_secret" | "no_matching_signature" };

/**
 * What a receiver checks (and the tests, and the demo receiver): the headers are there, the timestamp
 * is within {@link SIGNATURE_TOLERANCE_SECONDS} of `now` (ms), and one of the space-separated `v1,`
 * signatures is the HMAC of this exact body (compared in constant time by Web Crypto's verify).
 * `body` must be the raw text received, before any JSON parsing.
 * @example
 * const verdict = await verifyWebhook(secret, request.headers, await request.text(), Date.now());
 * if (!verdict.valid) return new Response(verdict.reason, { status: 401 });
 */
export async function verifyWebhook(
  secret: string,
  headers: Headers | Record<string, string | undefined>,
  body: string,
  now: number,
): Promise<WebhookVerdict> {
  const header = (name: string) =>
    headers instanceof Headers ? headers.get(name) : (Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1] ?? null);
  const id = header("webhook-id");
  const timestampText = header("webhook-timestamp");
  const signatures = header("webhook-signature");
  if (!id || !timestampText || !signatures) return { valid: false, reason: "missing_headers" };
  if (!/^\d{1,12}$/.test(timestampText)) return { valid: false, reason: "bad_timestamp" };
  const timestamp = Number(timestampText);
  const nowSeconds = Math.floor(now / 1000);
  if (nowSeconds - timestamp > SIGNATURE_TOLERANCE_SECONDS) return { valid: false, reason: "timestamp_too_old" };
  if (timestamp - nowSeconds > SIGNATURE_TOLERANCE_SECONDS) return { valid: false, reason: "timestamp_too_new" };
  const key = await hmacKey(secret, "verify");
  if (!key) return { valid: false, reason: "bad_secret" };
  const content = signedContent(id, timestamp, body);
  for (const versioned of signatures.split(" ")) {
    const [version, signature] = versioned.split(",", 2);
    if (version !== "v1" || !signature) continue;
    const mac = fromBase64(signature);
    if (mac && (await crypto.subtle.verify("HMAC", key, mac, content))) return { valid: true, id, timestamp };
  }
  return { valid: false, reason: "no_matching_signature" };
}
