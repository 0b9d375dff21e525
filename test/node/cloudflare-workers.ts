/**
 * A stand-in for the `cloudflare:workers` runtime module, so that the app's route modules load in Node
 * (the `node` test project) and the app can serve its OpenAPI document there. Only the names the
 * modules import at load time; nothing here runs a request.
 */
export class DurableObject<E = unknown> {
  constructor(
    readonly ctx: unknown,
    readonly env: E,
  ) {}
}
export class WorkerEntrypoint<E = unknown> {
  constructor(
    readonly ctx: unknown,
    readonly env: E,
  ) {}
}
export const env = {};
export const exports = {};
