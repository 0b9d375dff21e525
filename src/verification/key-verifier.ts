import { WorkerEntrypoint } from "cloudflare:workers";
import type { Permission } from "../domain/catalog";
import type { VerifyMode } from "../domain/lease";
import { verdictBody } from "../routes/verify/verify-key";
import { guardEnv } from "../storage/guarded-bindings";
import { verifyKey } from "./verify-key";

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
 * @example const verdict = await env.KEYGATE.verify(key, { permission: "app:upload", app: appId });
 */
export class KeyVerifier extends WorkerEntrypoint<Env> {
  /**
   * The same verdict as `POST /v1/keys/verify`. Pass `ip`, your own caller's address, for keys limited
   * to allowed networks: without it such a key answers IP_NOT_ALLOWED.
   */
  async verify(key: string, options: { permission?: Permission; app?: string; mode?: VerifyMode; strict?: boolean; ip?: string; cost?: number } = {}) {
    const result = await verifyKey(guardEnv(this.env), key, { ...options, waitUntil: (p) => this.ctx.waitUntil(p) });
    return verdictBody(result);
  }
}
