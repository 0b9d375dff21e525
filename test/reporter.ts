import { env } from "cloudflare:workers";

/**
 * The secret scanning reporter the tests play: reports signed as GitHub signs them (ECDSA P-256 /
 * SHA-256 over the raw body, base64 of the DER signature) with the key pair vitest.config.ts made for
 * this run, whose public half the worker trusts under the id `test-reporter-key`.
 */

export const REPORTER_KEY_ID = "test-reporter-key";

const pemBody = (pem: string) => Uint8Array.from(atob(pem.replace(/-----[A-Z ]+-----|\s+/g, "")), (c) => c.charCodeAt(0));

/** The trusted reporter's private key. */
export const trustedReporterKey = () =>
  crypto.subtle.importKey("pkcs8", pemBody(env.TEST_REPORTER_PRIVATE_KEY), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);

/** r ‖ s (Web Crypto's form) as the DER GitHub sends. */
function p1363ToDer(raw: Uint8Array): Uint8Array {
  const integer = (bytes: Uint8Array) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0 && !(bytes[i + 1]! & 0x80)) i++;
    const body = bytes[i]! & 0x80 ? [0, ...bytes.subarray(i)] : [...bytes.subarray(i)];
    return [0x02, body.length, ...body];
  };
  const seq = [...integer(raw.subarray(0, 32)), ...integer(raw.subarray(32))];
  return Uint8Array.from([0x30, seq.length, ...seq]);
}

/** The `Github-Public-Key-Signature` value of `body` signed with `key`. */
export async function signReport(body: string, key: CryptoKey): Promise<string> {
  const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, new TextEncoder().encode(body)));
  return btoa(String.fromCharCode(...p1363ToDer(raw)));
}
