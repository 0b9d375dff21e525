/** Hashing, comparison and encryption of key material, on the runtime's own Web Crypto. */

import { createHash } from "node:crypto";
import { requireSecret } from "./secrets";

export { MIN_SECRET_BYTES, requireSecret } from "./secrets";

const encoder = new TextEncoder();

function toHex(buf: ArrayBuffer): string {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Hex SHA-256 of a full key: the only form in which a secure key is stored.
 * @example await hashKey("kgw_…") // "9f86d08…"
 */
export async function hashKey(key: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", encoder.encode(key)));
}

/** SHA-256 of `text`, synchronously (Node's crypto, which workerd provides under nodejs_compat). */
const digestOf = (text: string): Uint8Array => createHash("sha256").update(text, "utf8").digest();

/**
 * Constant-time equality of two strings (hashes, secrets): the time taken does not depend on where
 * they first differ, nor on their lengths. Both sides are hashed (SHA-256) first and the two 32-byte
 * digests compared, so there is no early return on length and nothing to learn about the secret's
 * length from how long a comparison takes.
 * @example timingSafeEqual(presented, env.BOOTSTRAP_SECRET)
 */
export function timingSafeEqual(a: string, b: string): boolean {
  return crypto.subtle.timingSafeEqual(digestOf(a), digestOf(b));
}

/**
 * Derived AES keys by secret. Besides KEY_ENCRYPTION_SECRET (one per deployment), the console seals each
 * one-time secret under its session's cookie, so there is one secret per session: past this many the
 * cache is cleared (a derivation costs one HKDF), never grown with the number of sessions.
 */
export const AES_KEY_CACHE_LIMIT = 8;
const aesKeys = new Map<string, Promise<CryptoKey>>();

/**
 * The AES-256-GCM key derived (HKDF-SHA-256) from the `KEY_ENCRYPTION_SECRET` Worker secret. Throws
 * `MISCONFIGURED` when the secret is missing or shorter than 32 bytes: nothing is encrypted or
 * decrypted under an empty or weak key.
 */
function encryptionKey(secret: string): Promise<CryptoKey> {
  let key = aesKeys.get(secret);
  if (!key) {
    key = crypto.subtle
      .importKey("raw", encoder.encode(requireSecret("KEY_ENCRYPTION_SECRET", secret)), "HKDF", false, ["deriveKey"])
      .then((base) =>
        crypto.subtle.deriveKey(
          { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: encoder.encode("keygate/secret-at-rest/v1") },
          base,
          { name: "AES-GCM", length: 256 },
          false,
          ["encrypt", "decrypt"],
        ),
      );
    if (aesKeys.size >= AES_KEY_CACHE_LIMIT) aesKeys.clear();
    aesKeys.set(secret, key);
  }
  return key;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/**
 * Encrypts a non-secure key for storage: `v1.<base64 iv>.<base64 ciphertext+tag>`. The key id is
 * bound as additional data, so a ciphertext copied onto another row does not decrypt.
 */
export async function encryptSecret(secret: string, plaintext: string, keyId: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: encoder.encode(keyId) },
    await encryptionKey(secret),
    encoder.encode(plaintext),
  );
  return `v1.${toBase64(iv)}.${toBase64(new Uint8Array(ct))}`;
}

/** Decrypts what {@link encryptSecret} produced; throws when it was tampered with. */
export async function decryptSecret(secret: string, stored: string, keyId: string): Promise<string> {
  const [version, iv, ct] = stored.split(".");
  if (version !== "v1" || !iv || !ct) throw new Error("unknown ciphertext format");
  const pt = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: fromBase64(iv), additionalData: encoder.encode(keyId) },
    await encryptionKey(secret),
    fromBase64(ct),
  );
  return new TextDecoder().decode(pt);
}
