import { StorageUnavailableError } from "../errors";
import { mapDatabases } from "./db";

/**
 * The storage seam: every D1 and KV call the worker and the key authority make goes through these
 * wrappers. A call that throws (other than a constraint violation, which is the caller's business)
 * or does not answer in time becomes a `StorageUnavailableError`, which the app answers with 503 and
 * `Retry-After` — never a 500, and never a key reported valid because storage broke.
 */

/** A D1 query normally takes milliseconds; past this the database is treated as down. */
export const D1_TIMEOUT_MS = 3_000;
/** KV reads are served from the location's cache in milliseconds; a cold read still well under this. */
export const KV_TIMEOUT_MS = 2_000;

const CONSTRAINT = /constraint failed/i;

/** `Infinity` as a timeout: wait for the call to settle, whatever it takes (see {@link settledEnv}). */
const NO_TIMEOUT = Number.POSITIVE_INFINITY;

async function guard<T>(store: "d1" | "kv", timeoutMs: number, call: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout =
    timeoutMs === NO_TIMEOUT
      ? null
      : new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${store} did not answer within ${timeoutMs} ms`)), timeoutMs);
        });
  try {
    return await (timeout ? Promise.race([call(), timeout]) : call());
  } catch (err) {
    if (err instanceof StorageUnavailableError) throw err;
    if (store === "d1" && err instanceof Error && CONSTRAINT.test(err.message)) throw err;
    throw new StorageUnavailableError(store, err);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

const STATEMENT_CALLS = new Set(["first", "run", "all", "raw"]);
const guardedD1 = new WeakMap<D1Database, D1Database>();
/** Guarded statement → the binding's own statement, which `batch()` must be given. */
const realStatement = new WeakMap<object, D1PreparedStatement>();

function guardStatement(statement: D1PreparedStatement, timeoutMs: number): D1PreparedStatement {
  const proxy = new Proxy(statement, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop === "bind") return (...args: unknown[]) => guardStatement(value.apply(target, args), timeoutMs);
      if (typeof prop === "string" && STATEMENT_CALLS.has(prop)) {
        return (...args: unknown[]) => guard("d1", timeoutMs, () => value.apply(target, args));
      }
      return value.bind(target);
    },
  });
  realStatement.set(proxy, statement);
  return proxy;
}

/**
 * `d1` with every query guarded (see the module comment). Memoized per binding.
 * @example drizzle(guardD1(env.DB))
 */
export function guardD1(d1: D1Database, timeoutMs = D1_TIMEOUT_MS): D1Database {
  const memo = timeoutMs === NO_TIMEOUT ? settledD1 : guardedD1;
  let guarded = memo.get(d1);
  if (!guarded) {
    guarded = new Proxy(d1, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        if (prop === "prepare") return (query: string) => guardStatement(value.call(target, query), timeoutMs);
        if (prop === "batch") {
          return (statements: D1PreparedStatement[]) =>
            guard("d1", timeoutMs, () => value.call(target, statements.map((s) => realStatement.get(s) ?? s)));
        }
        if (prop === "exec") return (query: string) => guard("d1", timeoutMs, () => value.call(target, query));
        return value.bind(target);
      },
    });
    memo.set(d1, guarded);
  }
  return guarded;
}
const settledD1 = new WeakMap<D1Database, D1Database>();

const guardedKV = new WeakMap<KVNamespace, KVNamespace>();
const settledKV = new WeakMap<KVNamespace, KVNamespace>();

/**
 * `kv` with every call guarded (see the module comment). Memoized per binding.
 * @example const kv = guardKV(env.KEYS_KV); await kv.get(name, "json");
 */
export function guardKV(kv: KVNamespace, timeoutMs = KV_TIMEOUT_MS): KVNamespace {
  const memo = timeoutMs === NO_TIMEOUT ? settledKV : guardedKV;
  let guarded = memo.get(kv);
  if (!guarded) {
    guarded = new Proxy(kv, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => guard("kv", timeoutMs, () => value.apply(target, args));
      },
    });
    memo.set(kv, guarded);
  }
  return guarded;
}

const guardedEnvs = new WeakMap<Env, Env>();

/**
 * The worker's bindings with D1 (every database: `DB`, `DB_1`, …) and KV behind the storage seam. The entry point and the key
 * authority call this once; everything below them sees only guarded storage.
 */
export function guardEnv(env: Env): Env {
  let guarded = guardedEnvs.get(env);
  if (!guarded) {
    guarded = { ...mapDatabases(env, (d1) => guardD1(d1)), KEYS_KV: guardKV(env.KEYS_KV) };
    guardedEnvs.set(env, guarded);
  }
  return guarded;
}

const settledEnvs = new WeakMap<Env, Env>();

/**
 * The bindings with faults turned into `StorageUnavailableError` but no timeout: every call is
 * awaited until it settles. For the key authority's writes: a write abandoned on a timeout can still
 * land later, after the next serialized operation wrote a newer state, and bring an old secret back.
 * The authority waits instead; its callers time out on their side (`askAuthority`).
 */
export function settledEnv(env: Env): Env {
  let settled = settledEnvs.get(env);
  if (!settled) {
    settled = { ...mapDatabases(env, (d1) => guardD1(d1, NO_TIMEOUT)), KEYS_KV: guardKV(env.KEYS_KV, NO_TIMEOUT) };
    settledEnvs.set(env, settled);
  }
  return settled;
}
