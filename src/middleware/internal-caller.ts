import type { VerifiedKey } from "../verification/verify-key";

/**
 * How the console calls the API in-process as its signed-in key without holding the key: it passes
 * a copy of the bindings registered here, and `authenticate()` takes the caller from it. Only code
 * in this worker can make such a copy; a request from outside always arrives with the worker's own
 * bindings, which are never registered.
 */
const callers = new WeakMap<Env, VerifiedKey>();

/** Bindings through which every API route sees `caller` as the authenticated key. */
export function envActingAs(env: Env, caller: VerifiedKey): Env {
  const acting = { ...env };
  callers.set(acting, caller);
  return acting;
}

export function internalCaller(env: Env): VerifiedKey | undefined {
  return callers.get(env);
}
