/**
 * Secret scanning partner reports (GitHub's program): the reporter signs the raw request body with
 * ECDSA P-256 / SHA-256 and sends the signature (base64 of ASN.1 DER) with the id of its public key.
 * The public keys come in GitHub's published format:
 * `{ "public_keys": [{ "key_identifier", "key": "-----BEGIN PUBLIC KEY-----…", "is_current" }] }`.
 *
 * Web Crypto verifies ECDSA signatures in the IEEE P1363 form (r ‖ s, 32 bytes each for P-256), not
 * DER: {@link derToP1363} converts, refusing anything that is not exactly one well-formed DER pair.
 */

export interface ReporterKey {
  keyIdentifier: string;
  /** PEM of an SPKI public key. */
  pem: string;
}

/** The keys of a published key list (GitHub's format), or null when it is not one. */
export function parsePublicKeys(json: unknown): ReporterKey[] | null {
  if (typeof json !== "object" || json === null || !Array.isArray((json as { public_keys?: unknown }).public_keys)) return null;
  const keys: ReporterKey[] = [];
  for (const entry of (json as { public_keys: unknown[] }).public_keys) {
    const { key_identifier: keyIdentifier, key: pem } = (entry ?? {}) as { key_identifier?: unknown; key?: unknown };
    if (typeof keyIdentifier !== "string" || typeof pem !== "string") return null;
    keys.push({ keyIdentifier, pem });
  }
  return keys;
}

const base64Bytes = (text: string): Uint8Array | null => {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
};

/** The DER bytes of a PEM public key, or null. */
export function pemBytes(pem: string): Uint8Array | null {
  const match = /^-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----\s*$/.exec(pem.trim());
  return match ? base64Bytes(match[1]!.replace(/\s+/g, "")) : null;
}

/**
 * An ECDSA signature in DER (`SEQUENCE { INTEGER r, INTEGER s }`) as P1363 `r ‖ s` of `size` bytes
 * each, or null when it is anything else (trailing bytes, long-form lengths, oversize integers).
 * @example derToP1363(der) // 64 bytes for P-256
 */
export function derToP1363(der: Uint8Array, size = 32): Uint8Array | null {
  // DER lengths below 128 are one byte; a P-256 signature is at most 72 bytes, so nothing longer is valid.
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2 || der[1]! >= 0x80) return null;
  const out = new Uint8Array(size * 2);
  let at = 2;
  for (let part = 0; part < 2; part++) {
    if (der[at] !== 0x02) return null;
    const length = der[at + 1]!;
    if (length === 0 || length >= 0x80 || at + 2 + length > der.length) return null;
    let value = der.subarray(at + 2, at + 2 + length);
    // A leading zero only when the next byte's high bit is set (DER's minimal form); negative never.
    if (value[0]! & 0x80) return null;
    if (value[0] === 0 && value.length > 1 && !(value[1]! & 0x80)) return null;
    if (value[0] === 0 && value.length > 1) value = value.subarray(1);
    if (value.length > size) return null;
    out.set(value, part * size + (size - value.length));
    at += 2 + length;
  }
  return at === der.length ? out : null;
}

/**
 * Whether `signature` (base64 DER, as the `Github-Public-Key-Signature` header carries it) is a valid
 * ECDSA P-256 / SHA-256 signature of `body` under the PEM key. Any malformed input is simply invalid.
 */
export async function verifyReportSignature(body: ArrayBuffer | Uint8Array, signature: string, pem: string): Promise<boolean> {
  const der = base64Bytes(signature.trim());
  const raw = der && derToP1363(der);
  const spki = pemBytes(pem);
  if (!raw || !spki) return false;
  try {
    const key = await crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, raw, body);
  } catch {
    return false;
  }
}
