/**
 * The one place that makes and reads API keys.
 *
 * A key looks like `kgw_01jd8x6w2m9k3v7q4r5t_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e`:
 *
 * - `kgw_` — a distinctive prefix so secret scanners can find leaked keys;
 * - the key id (20 chars of lowercase Crockford base32: 10 of creation time, 10 random), so the
 *   verifier can address the key's authority without any lookup; its first character names the D1
 *   database its org lives in ({@link shardOf});
 * - `_` and 32 base62 characters of secret: 24 random (≈143 bits from `crypto.getRandomValues`), then
 *   an 8-character keyed tag (≈47.6 bits of HMAC-SHA-256 under the `KEY_TAG_SECRET` Worker secret,
 *   over everything before it), so a key this deployment did not mint is refused before any storage
 *   read; nobody without the secret can make a tag;
 * - 6 base62 characters of CRC-32 over everything before them, so a mistyped or truncated key is
 *   refused before any storage read (a public checksum, for secret scanners).
 *
 * Regular expression for scanners: {@link KEY_PATTERN}.
 */

import { requireSecret } from "./secrets";

export const KEY_PREFIX = "kgw_";
const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lowercase
const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_TIME_CHARS = 10; // 50 bits of milliseconds, the top 5 of which carry the shard (see newId)
const ID_RANDOM_CHARS = 10; // 50 random bits: ids minted in the same millisecond do not collide
const SECRET_CHARS = 32; // the random part and the tag
const TAG_CHARS = 8; // 62^8 ≈ 2^47.6: the chance that a forged key passes the tag
const RANDOM_CHARS = SECRET_CHARS - TAG_CHARS; // 24 × log2(62) ≈ 143 bits
const CHECKSUM_CHARS = 6; // 62^6 > 2^32, so any CRC-32 fits

export const KEY_PATTERN = /^kgw_[0-9a-hjkmnp-tv-z]{20}_[0-9A-Za-z]{38}$/;
/** The same pattern without anchors, for scanners that search inside text. */
export const KEY_PATTERN_SOURCE = "kgw_[0-9a-hjkmnp-tv-z]{20}_[0-9A-Za-z]{38}";
export const KEY_LENGTH = KEY_PREFIX.length + 20 + 1 + SECRET_CHARS + CHECKSUM_CHARS;
export const ID_PATTERN = /^[0-9a-hjkmnp-tv-z]{20}$/;

/** Random characters from `alphabet`, unbiased (rejection sampling over random bytes). */
function randomChars(alphabet: string, count: number): string {
  const limit = 256 - (256 % alphabet.length);
  let out = "";
  while (out.length < count) {
    const bytes = crypto.getRandomValues(new Uint8Array(count * 2));
    for (const b of bytes) {
      if (b < limit && out.length < count) out += alphabet[b % alphabet.length];
    }
  }
  return out;
}

/**
 * How many D1 databases ids can name: one character of the id. The id's first character is the top 5
 * bits of its 50-bit millisecond time, which are zero until the year 3084: every id minted before
 * shards existed starts with `0`, which names shard 0, the `DB` binding, where all of them live.
 */
export const MAX_SHARDS = ID_ALPHABET.length;
/** Ids carry time in their last 9 time characters: 45 bits of milliseconds (until the year 3084). */
const TIME_LIMIT_MS = 32 ** (ID_TIME_CHARS - 1);

/**
 * A new time-ordered id (20 chars), used for keys, orgs, apps, webhooks and events alike. Every id of
 * an org's rows is minted with the org's shard (the D1 database it lives in, chosen when the org is
 * created), so any of them tells where the org's rows are without a lookup. Ids of one shard (one
 * database) keep their time order.
 * @example newId() // "01jd8x6w2m9k3v7q4r5t" (shard 0)
 * @example newId(Date.now(), shardOf(orgId)) // an id of the org's database
 */
export function newId(now = Date.now(), shard = 0): string {
  if (!Number.isInteger(shard) || shard < 0 || shard >= MAX_SHARDS) throw new RangeError(`no shard ${shard}`);
  let time = "";
  let t = now % TIME_LIMIT_MS;
  for (let i = 1; i < ID_TIME_CHARS; i++) {
    time = ID_ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return ID_ALPHABET[shard] + time + randomChars(ID_ALPHABET, ID_RANDOM_CHARS);
}

/**
 * The shard (D1 database number) an id was minted for: its first character, after a type prefix
 * such as `evt_` or `msg_` when it has one. -1 when that character is not of the id alphabet.
 * @example shardOf("11jd8x6w2m9k3v7q4r5t") // 1
 * @example shardOf("evt_01jd8x6w2m9k3v7q4r5t") // 0
 */
export function shardOf(id: string): number {
  const first = id.charAt(id.lastIndexOf("_") + 1);
  return first ? ID_ALPHABET.indexOf(first) : -1;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(text: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) {
    crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function checksum(body: string): string {
  let n = crc32(body);
  let out = "";
  for (let i = 0; i < CHECKSUM_CHARS; i++) {
    out = B62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

const encoder = new TextEncoder();

const tagKeys = new Map<string, Promise<CryptoKey>>();

/** The HMAC-SHA-256 key of `KEY_TAG_SECRET`, checked and imported once per secret and isolate. */
function tagKey(secret: string): Promise<CryptoKey> {
  let key = tagKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(requireSecret("KEY_TAG_SECRET", secret)), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    if (tagKeys.size >= 4) tagKeys.clear(); // one secret in practice; a rotation adds a second
    tagKeys.set(secret, key);
  }
  return key;
}

const TAG_SPACE = 62n ** BigInt(TAG_CHARS);

/** The keyed tag of `body` (prefix, id, `_` and the random part): 64 bits of HMAC, in 8 base62 characters. */
async function tagOf(body: string, secret: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await tagKey(secret), encoder.encode(body));
  let n = new DataView(mac).getBigUint64(0) % TAG_SPACE; // bias ≤ 62^8 / 2^64 ≈ 2^-16.4 of one value's share
  let out = "";
  for (let i = 0; i < TAG_CHARS; i++) {
    out = B62[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}

/**
 * Mints a full key for `keyId` with a fresh secret, tagged under `tagSecret` (`env.KEY_TAG_SECRET`).
 * Throws `MISCONFIGURED` when that secret is missing or short: no key is minted.
 * @example const key = await mintKey(newId(), env.KEY_TAG_SECRET); // "kgw_…"
 */
export async function mintKey(keyId: string, tagSecret: string): Promise<string> {
  const random = `${KEY_PREFIX}${keyId}_${randomChars(B62, RANDOM_CHARS)}`;
  const body = random + (await tagOf(random, tagSecret));
  return body + checksum(body);
}

/**
 * Reads a presented key without touching storage: `null` when the shape or checksum is wrong. The
 * keyed tag is checked separately ({@link hasValidTag}): it needs the secret and an HMAC.
 * @example parseKey(key)?.keyId
 */
export function parseKey(key: string): { keyId: string } | null {
  if (key.length !== KEY_LENGTH || !KEY_PATTERN.test(key)) return null;
  const body = key.slice(0, KEY_LENGTH - CHECKSUM_CHARS);
  if (checksum(body) !== key.slice(KEY_LENGTH - CHECKSUM_CHARS)) return null;
  return { keyId: key.slice(KEY_PREFIX.length, KEY_PREFIX.length + 20) };
}

/**
 * Whether a key that {@link parseKey} accepted carries the tag this deployment would have given it:
 * false for a key minted without `KEY_TAG_SECRET` (a forgery), found without any storage access.
 * Throws `MISCONFIGURED` when the secret is missing or short: no key verifies.
 */
export async function hasValidTag(key: string, tagSecret: string): Promise<boolean> {
  const tagStart = KEY_PREFIX.length + 20 + 1 + RANDOM_CHARS;
  const expected = await tagOf(key.slice(0, tagStart), tagSecret);
  // Constant time over the fixed 8 characters: how long this takes does not say where a guess went wrong.
  const presented = key.slice(tagStart, tagStart + TAG_CHARS);
  let diff = 0;
  for (let i = 0; i < TAG_CHARS; i++) diff |= expected.charCodeAt(i) ^ presented.charCodeAt(i);
  return diff === 0;
}

/**
 * The non-secret start shown in lists: the prefix, the id and 4 characters of the secret, so an
 * admin can tell a regenerated secret from the previous one.
 */
export function displayPrefix(key: string): string {
  return key.slice(0, KEY_PREFIX.length + 20 + 1 + 4);
}
