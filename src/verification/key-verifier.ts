import { WorkerEntrypoint } from "cloudflare:workers";
import { VerifyOptionsSchema, verdictBody, type VerifyRequestOptions } from "../routes/verify/verify-key";
import { guardEnv } from "../storage/guarded-bindings";
import { verifyKey } from "./verify-key";

/** The start of the message of every refusal of bad options: the same code the HTTP endpoint answers 400 with. */
export const INVALID_OPTIONS_CODE = "INVALID_REQUEST";

/**
 * Verification for other Workers over a service binding, without HTTP:
 *
 * ```toml
 * # the other Worker's wrangler.toml
 * [[services]]
 * binding = "KEYGATE"
 * service = "keygate"
 * entrypoint = "KeyVerifier"
 * ```
 *
 * The binding is the credential: only a Worker the deployment's operator configured can hold one, so a
 * caller here is an authenticated verifier, for every organization of the deployment. It may assert
 * `ip`, `cost` and `mode` as a verifier does at `POST /v1/keys/verify`, and a refusal names the key
 * (`keyId`, `orgId`) for its logs; only VALID describes the key.
 *
 * @example const verdict = await env.KEYGATE.verify(key, { permission: "app:upload", app: appId });
 */
export class KeyVerifier extends WorkerEntrypoint<Env> {
  /**
   * The same verdict as `POST /v1/keys/verify` with a verifier credential. Pass `ip`, your own caller's
   * address, for keys limited to allowed networks: without it such a key answers IP_NOT_ALLOWED.
   *
   * Options are judged by the endpoint's own schema: `permission`, `app`, `mode`, `strict`, `ip` and a
   * whole `cost` from 1 to 1000, nothing else. Anything else (a clock, a switch, a cost of 0, -50 or
   * NaN) throws a `TypeError` whose message starts with `INVALID_REQUEST:` and names each bad field, and
   * nothing is verified, spent or counted: bad options are the calling Worker's bug, not a verdict on
   * the key, as the endpoint answers them 400 and not 200.
   */
  async verify(key: string, options: VerifyRequestOptions = {}) {
    if (typeof key !== "string") throw new TypeError(`${INVALID_OPTIONS_CODE}: key: must be a string`);
    const parsed = VerifyOptionsSchema.safeParse(options);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "options"}: ${i.message}`);
      throw new TypeError(`${INVALID_OPTIONS_CODE}: ${issues.join("; ")}`);
    }
    const result = await verifyKey(guardEnv(this.env), key, { ...parsed.data, waitUntil: (p) => this.ctx.waitUntil(p) });
    return verdictBody(result, { identifyRefusals: true });
  }
}
