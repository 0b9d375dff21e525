#!/usr/bin/env node
// Sends a secret scanning report to the local gateway, signed as GitHub signs them (ECDSA P-256 /
// SHA-256 over the raw body, base64 DER in Github-Public-Key-Signature), with the local development key
// whose public half is SECRET_SCANNING_PUBLIC_KEYS in .dev.vars.example. Local development only.
//
//   npm run report-leak -- <key> [url]      (PORT as for npm run dev)
import { createSign } from "node:crypto";

// The private half of the local development reporter key. It signs nothing but local reports: a
// production deployment trusts GitHub's published keys (SECRET_SCANNING_KEYS_URL), never this one.
const LOCAL_REPORTER_PRIVATE_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgTy4drqKU5K7ceSy9
1YXwvwj75dGbwmcxa2mDuBR3M5OhRANCAAQYbEHzHrXYjzFAqjoNyoZsJ9I1+5g4
bJLZQXhqIUjJUKaP2NEwO5H0jUmExCvFCZk2IJ6AIUXS7hPdP3d2IrbX
-----END PRIVATE KEY-----`;

const [token, url = "https://github.com/octo/leaky/blob/main/.env"] = process.argv.slice(2);
if (!token) {
  console.error("usage: npm run report-leak -- <key> [url where it was found]");
  process.exit(2);
}
const body = JSON.stringify([{ token, type: "keygate_api_key", url, source: "content" }]);
const signature = createSign("SHA256").update(body).sign(LOCAL_REPORTER_PRIVATE_KEY, "base64"); // DER, as GitHub sends
const port = process.env.PORT ?? "8787";
const res = await fetch(`http://localhost:${port}/v1/secret-scanning/reports`, {
  method: "POST",
  headers: { "content-type": "application/json", "github-public-key-identifier": "keygate-local-dev", "github-public-key-signature": signature },
  body,
});
console.log(res.status, await res.text());
process.exit(res.ok ? 0 : 1);
