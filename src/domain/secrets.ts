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
