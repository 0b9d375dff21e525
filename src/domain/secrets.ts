import { misconfigured } from "../errors";

/** The bytes a Worker secret must have at least: `KEY_TAG_SECRET` and `KEY_ENCRYPTION_SECRET` alike. */
export const MIN_SECRET_BYTES = 32;

const encoder = new TextEncoder();

/**
 * Refuses to go on without a Worker secret of at least {@link MIN_SECRET_BYTES} bytes: a missing or
 * short secret is a misconfigured deployment (500 `MISCONFIGURED`), never an empty key to fall back to.
 * @example requireSecret("KEY_ENCRYPTION_SECRET", env.KEY_ENCRYPTION_SECRET)
 */
export function requireSecret(name: "KEY_TAG_SECRET" | "KEY_ENCRYPTION_SECRET", value: string | undefined): string {
  if (typeof value !== "string" || encoder.encode(value).byteLength < MIN_SECRET_BYTES) throw misconfigured(name);
  return value;
}

/**
 * Whether a request reached a local development server (`npm run dev`, `wrangler dev`): its URL names a
 * loopback host. A deployed Worker is only ever reached under its own routes' host names (Cloudflare
 * routes a request by its host), so no client can make a deployment look local; and no setting exists
 * that a careless operator could leave on in production. `wrangler dev --ip 0.0.0.0` reached by a LAN
 * address is not local by this rule: it needs a full-length secret, which is the safe side.
 * @example isLocalDevelopment("http://localhost:8787/v1/orgs") // true
 */
export function isLocalDevelopment(requestUrl: string): boolean {
  const host = new URL(requestUrl).hostname.toLowerCase();
  return host === "localhost" || host.endsWith(".localhost") || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The bootstrap secret, which opens the creation of any organization: at least {@link MIN_SECRET_BYTES}
 * bytes, like the other Worker secrets, except in local development (`.dev.vars` ships a short,
 * memorable one). Missing, or short outside local development: 500 `MISCONFIGURED`, and nothing is
 * compared against it.
 * @example const secret = requireBootstrapSecret(env.BOOTSTRAP_SECRET, c.req.url);
 */
export function requireBootstrapSecret(value: string | undefined, requestUrl: string): string {
  if (typeof value !== "string" || value === "") throw misconfigured("BOOTSTRAP_SECRET");
  if (encoder.encode(value).byteLength < MIN_SECRET_BYTES && !isLocalDevelopment(requestUrl)) throw misconfigured("BOOTSTRAP_SECRET");
  return value;
}
