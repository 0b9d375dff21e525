import { env } from "cloudflare:workers";
import { SerializedObject } from "../src/durable-objects/serialized-object";
import { Edge } from "../src/verification/edge";

/**
 * A MODEL of Cloudflare's documented behaviour across locations, for the tests. Miniflare runs one
 * location with one strongly consistent KV, so none of this is visible to the other tests. What it
 * models (Cloudflare's documentation, stated from memory: this machine has no web access):
 *
 * - **Workers KV** ("How KV works", KV limits): a write is visible at once at the location that made
 *   it; any other location answers from its cached copy of the name until that copy is older than the
 *   read's `cacheTtl` (min. 60 s; 30 s on newer pages), and only then reads the central store again.
 *   Negative lookups (a name that does not exist) are cached the same way. At most one write per second
 *   to the same name: more are refused with 429 Too Many Requests.
 * - **Durable Objects**: one instance per id worldwide, created near the first request that reaches it
 *   and never moved. The authorities' own KV writes are therefore made at *their* location (here the
 *   location `authority`), not at the caller's. Every location calls the same instance (the real
 *   namespaces); a location may add a modelled network delay to those calls.
 * - **D1**: one database, shared by every location (the real binding, unchanged).
 * - **Isolates**: each location has its own memory (`new Edge()`), so leases held at one location are
 *   not seen at another.
 *
 * Scaling: every `cacheTtl` a caller passes (the code passes 60 s) is replaced by the model's
 * `cacheTtlMs` (300 ms by default), so a test sees several cache generations in a second. The write
 * limit (1 write/s per name) is NOT scaled: the code's spacing (`KV_WRITE_SPACING_MS`, 1 s) must meet
 * the real limit. Lease durations come from `LEASE_MS` (200 ms in vitest.config.ts).
 */

/** The KV write limit per name (documented: 1 write per second to the same key). */
export const KV_WRITES_PER_NAME_MS = 1_000;

/** What all locations share: the central store (the real KV binding) and the per-name write limit. */
export class KvStore {
  /** name → when it was last written (any location): the 1 write/s limit is global per name. */
  private readonly lastWrite = new Map<string, number>();
  /** Writes refused with 429, and every write accepted, by name. */
  readonly refused: { name: string; at: number; location: string }[] = [];
  writes = 0;

  constructor(readonly backing: KVNamespace = env.KEYS_KV) {}

  /** Throws like KV when `name` was written less than a second ago; otherwise notes the write. */
  admitWrite(name: string, location: string): void {
    const now = Date.now();
    const last = this.lastWrite.get(name);
    if (last !== undefined && now - last < KV_WRITES_PER_NAME_MS) {
      this.refused.push({ name, at: now, location });
      throw new Error(`KV PUT failed: 429 Too Many Requests (${name} written ${now - last} ms ago)`);
    }
    this.lastWrite.set(name, now);
    this.writes++;
  }
}

type Cached = { text: string | null; fetchedAt: number };
type GetOptions = { type?: string; cacheTtl?: number } | string | undefined;

/**
 * The KV binding as seen from one location: `get` answers from this location's cached copy while it
 * is younger than `cacheTtlMs` (misses included), else reads the store and caches what it found;
 * `put` and `delete` write the store (refused with 429 past one write a second per name) and this
 * location's copy, so the writer sees its write at once and every other location keeps its copy.
 */
export function modelKv(location: string, store: KvStore, cacheTtlMs: number): KVNamespace & { cache: Map<string, Cached> } {
  const cache = new Map<string, Cached>();

  async function readText(name: string): Promise<string | null> {
    const now = Date.now();
    const copy = cache.get(name);
    if (copy && now - copy.fetchedAt < cacheTtlMs) return copy.text;
    const text = await store.backing.get(name, "text");
    // A local write made while this read was in flight is newer: keep it.
    const latest = cache.get(name);
    if (!latest || latest.fetchedAt <= now) cache.set(name, { text, fetchedAt: now });
    return text;
  }

  const decode = (text: string | null, type: string) => (text === null ? null : type === "json" ? JSON.parse(text) : text);

  async function get(names: string | string[], options?: GetOptions): Promise<unknown> {
    const type = (typeof options === "string" ? options : options?.type) ?? "text";
    if (type !== "json" && type !== "text") throw new Error(`the KV model does not read type ${type}`);
    if (!Array.isArray(names)) return decode(await readText(names), type);
    const texts = await Promise.all(names.map(readText));
    return new Map(names.map((name, i) => [name, decode(texts[i]!, type)]));
  }

  async function put(name: string, value: string, options?: KVNamespacePutOptions): Promise<void> {
    store.admitWrite(name, location);
    await store.backing.put(name, value, options);
    cache.set(name, { text: value, fetchedAt: Date.now() });
  }

  async function del(name: string): Promise<void> {
    store.admitWrite(name, location);
    await store.backing.delete(name);
    cache.set(name, { text: null, fetchedAt: Date.now() });
  }

  const unmodelled = () => {
    throw new Error("not part of the KV model");
  };
  return { get, put, delete: del, list: unmodelled, getWithMetadata: unmodelled, cache } as unknown as KVNamespace & { cache: Map<string, Cached> };
}

/** Calls a location made to one authority namespace, by method (`lease`, `check`, `fill`, `report`, ...). */
export type CallCounts = Record<string, number>;

/**
 * `namespace` as seen from a location: the same objects, every call counted in `counts` and its
 * answer delayed by `delay()` ms (the modelled trip to where the object lives).
 */
function remoteNamespace<N extends DurableObjectNamespace<any>>(namespace: N, counts: CallCounts, delay: () => number, reportUses: boolean): N {
  const stubOf = (stub: any) =>
    new Proxy(stub, {
      get(target, prop) {
        const value = target[prop];
        if (typeof prop !== "string" || typeof value !== "function" || prop === "then") return value;
        return async (...args: unknown[]) => {
          counts[prop] = (counts[prop] ?? 0) + 1;
          if (prop === "report" && !reportUses) return { ok: true, value: true };
          const answer = await target[prop](...args);
          const ms = delay();
          if (ms > 0) await new Promise((r) => setTimeout(r, ms));
          return answer;
        };
      },
    });
  return new Proxy(namespace, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "get") return (...args: unknown[]) => stubOf((value as (...a: unknown[]) => unknown).apply(target, args));
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export interface Location {
  name: string;
  /** This location's isolate memory: pass it as `edge` to `verifyKey`. */
  edge: Edge;
  /** The bindings code at this location sees: the modelled KV, the counted authority namespaces. */
  env: Env;
  kv: ReturnType<typeof modelKv>;
  /** Authority calls made from this location, by method. */
  calls: { key: CallCounts; org: CallCounts };
}

export interface LocationModel {
  locations: Location[];
  /** Where the authorities live: their KV writes are made here. */
  authority: Location;
  store: KvStore;
  cacheTtlMs: number;
  /** Makes the authorities write KV at their own location (installs `SerializedObject.storage`). */
  install(): void;
  uninstall(): void;
}

export interface ModelOptions {
  /** The scaled KV `cacheTtl` (see the header). */
  cacheTtlMs?: number;
  /** Extra delay (ms) on each authority answer, per call: the trip back from the object's location. */
  authorityDelay?: (location: string) => number;
  /**
   * Whether the isolates' usage reports (`report`: counts and `lastUsedAt`) reach the key's authority
   * (default true). A test that looks at neither may count them without delivering them: fewer calls to run.
   */
  reportUses?: boolean;
}

/**
 * `n` locations over the same authority namespaces and D1, each with its own isolate memory and its
 * own view of KV, plus the authorities' location.
 * @example const model = makeLocations(3, { cacheTtlMs: 300 }); model.install();
 */
export function makeLocations(n: number, options: ModelOptions = {}): LocationModel {
  const cacheTtlMs = options.cacheTtlMs ?? 300;
  const store = new KvStore();
  const location = (name: string): Location => {
    const kv = modelKv(name, store, cacheTtlMs);
    const calls = { key: {} as CallCounts, org: {} as CallCounts };
    const delay = () => options.authorityDelay?.(name) ?? 0;
    return {
      name,
      edge: new Edge(),
      kv,
      calls,
      env: {
        ...env,
        KEYS_KV: kv,
        KEY_AUTHORITY: remoteNamespace(env.KEY_AUTHORITY, calls.key, delay, options.reportUses ?? true),
        ORG_AUTHORITY: remoteNamespace(env.ORG_AUTHORITY, calls.org, delay, options.reportUses ?? true),
      } as Env,
    };
  };
  const locations = Array.from({ length: n }, (_, i) => location(`loc${i}`));
  const authority = location("authority");
  const mapped = new WeakMap<Env, Env>();
  return {
    locations,
    authority,
    store,
    cacheTtlMs,
    install() {
      SerializedObject.storage = (own) => {
        let bindings = mapped.get(own);
        if (!bindings) mapped.set(own, (bindings = { ...own, KEYS_KV: authority.kv }));
        return bindings;
      };
    },
    uninstall() {
      SerializedObject.storage = null;
    },
  };
}
