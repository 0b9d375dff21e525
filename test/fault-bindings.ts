import { env } from "cloudflare:workers";

/**
 * D1 and KV bindings that fail the way an outage looks to the worker: every call throws, or never
 * answers (a stall the storage seam must time out). Pass them in place of the real bindings.
 */
export type Fault = "throw" | "stall";

/** `binding`: the database that fails (`DB`, shard 0's, unless another is given). */
export function faultyD1(fault: Fault, on: (sql: string) => boolean = () => true, binding: D1Database = env.DB): D1Database {
  const fail = () => (fault === "throw" ? Promise.reject(new Error("D1_ERROR: Network connection lost.")) : new Promise<never>(() => {}));
  const wrap = (statement: D1PreparedStatement, sql: string): D1PreparedStatement =>
    new Proxy(statement, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop === "bind") return (...args: unknown[]) => wrap(value.apply(target, args), sql);
        if (["first", "run", "all", "raw"].includes(prop as string)) return on(sql) ? fail : value.bind(target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return new Proxy(binding, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "prepare") return (sql: string) => wrap(value.call(target, sql), sql);
      if (prop === "batch") return fail;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export function faultyKV(fault: Fault, methods = ["get", "put", "delete", "list", "getWithMetadata"]): KVNamespace {
  return new Proxy(env.KEYS_KV, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (methods.includes(prop as string)) {
        return () => (fault === "throw" ? Promise.reject(new Error("KV GET failed: 500 Internal Server Error")) : new Promise(() => {}));
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * A binding that must not be used at all: any property read (a call, a `get`, an `idFromName`) is
 * recorded in `touched` and throws. Proves that a path reads no storage, creates no Durable Object
 * and makes no limiter call, rather than only that it wrote nothing.
 */
export function untouchable<T>(name: string, touched: string[]): T {
  return new Proxy({} as object, {
    get(_, prop) {
      touched.push(`${name}.${String(prop)}`);
      throw new Error(`${name} was touched (${String(prop)})`);
    },
  }) as T;
}

/** D1 (every database), KV, the key authority and the failure limiter, all {@link untouchable}. */
export function untouchableStorage(touched: string[]): Pick<Env, "DB" | "DB_1" | "KEYS_KV" | "KEY_AUTHORITY" | "AUTH_FAILURES"> {
  return {
    DB: untouchable("DB", touched),
    DB_1: untouchable("DB_1", touched),
    KEYS_KV: untouchable("KEYS_KV", touched),
    KEY_AUTHORITY: untouchable("KEY_AUTHORITY", touched),
    AUTH_FAILURES: untouchable("AUTH_FAILURES", touched),
  };
}

/** A Durable Object namespace whose objects cannot be reached: every call fails, as in an outage. */
export function unreachableAuthorities(): Env["KEY_AUTHORITY"] {
  return new Proxy(env.KEY_AUTHORITY, {
    get(target, prop) {
      if (prop === "get") {
        return () =>
          new Proxy({}, { get: () => () => Promise.reject(new Error("Durable Object is overloaded or unreachable")) });
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * The key authorities with one RPC method of each stub replaced by `replace(stub)` (to count, delay or
 * refuse its calls); every other member is the stub's own.
 * @example const KEY_AUTHORITY = keyAuthoritiesWith("report", (stub) => (...args) => (count++, stub.report(...args)));
 */
export function keyAuthoritiesWith(method: string, replace: (stub: any) => (...args: any[]) => unknown): Env["KEY_AUTHORITY"] {
  return new Proxy(env.KEY_AUTHORITY, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop !== "get") return typeof value === "function" ? value.bind(target) : value;
      return (id: DurableObjectId) => {
        const stub = target.get(id);
        const replaced = replace(stub);
        // An RPC stub answers every property with a remote method: hand its members on as they are.
        return new Proxy(stub, { get: (s, name) => (name === method ? replaced : Reflect.get(s, name)) });
      };
    },
  });
}

/** A D1 binding that records the SQL of every statement prepared on it (reads and writes, batches too). */
export function recordingD1(statements: string[]): D1Database {
  return new Proxy(env.DB, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "prepare") return (sql: string) => (statements.push(sql), value.call(target, sql));
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
