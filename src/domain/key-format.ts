/**
 * The one place that makes and reads API keys.
 *
 * A key looks like `kgw_01jd8x6w2m9k3v7q4r5t_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e`:
 *
 * - `kgw_` — a distinctive prefix so secret scanners can find leaked keys;
 * - the key id (20 chars of lowercase Crockford base32: 10 of creation time, 10 random), so the
 *   verifier can address the key's authority without any lookup;
 * - `_` and 32 base62 characters of secret (190 bits from `crypto.getRandomValues`);
 * - 6 base62 characters of CRC-32 over everything before them, so a mistyped or truncated key is
 *   refused before any storage read.
 *
 * Regular expression for scanners: {@link KEY_PATTERN}.
 */

export const KEY_PREFIX = "kgw_";
const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lowercase
const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_TIME_CHARS = 10; // 50 bits of milliseconds: good until the year 37655
const ID_RANDOM_CHARS = 10; // 50 random bits: ids minted in the same millisecond do not collide
const SECRET_CHARS = 32; // 32 × log2(62) ≈ 190 bits
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
 * A new time-ordered id (20 chars), used for keys, orgs and apps alike.
 * @example newId() // "01jd8x6w2m9k3v7q4r5t"
 */
export function newId(now = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < ID_TIME_CHARS; i++) {
    time = ID_ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return time + randomChars(ID_ALPHABET, ID_RANDOM_CHARS);
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

/**
 * Mints a full key for `keyId` with a fresh secret.
 * @example const key = mintKey(newId()); // "kgw_…"
 */
export function mintKey(keyId: string): string {
  const body = `${KEY_PREFIX}${keyId}_${randomChars(B62, SECRET_CHARS)}`;
  return body + checksum(body);
}

/**
 * Reads a presented key without touching storage: `null` when the shape or checksum is wrong.
 * @example parseKey(key)?.keyId
 */
export function parseKey(key: string): { keyId: string } | null {
  if (key.length !== KEY_LENGTH || !KEY_PATTERN.test(key)) return null;
  const body = key.slice(0, KEY_LENGTH - CHECKSUM_CHARS);
  if (checksum(body) !== key.slice(KEY_LENGTH - CHECKSUM_CHARS)) return null;
  return { keyId: key.slice(KEY_PREFIX.length, KEY_PREFIX.length + 20) };
}

/**
 * The non-secret start shown in lists: the prefix, the id and 4 characters of the secret, so an
 * admin can tell a regenerated secret from the previous one.
 */
export function displayPrefix(key: string): string {
  return key.slice(0, KEY_PREFIX.length + 20 + 1 + 4);
}
