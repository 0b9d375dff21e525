import { drizzle } from "drizzle-orm/d1";
import { MAX_SHARDS, shardOf } from "../domain/key-format";
import { ApiError } from "../errors";
import * as schema from "./schema";

/** A drizzle client over one D1 binding. Cheap to make: it holds no connection. */
export function db(d1: D1Database) {
  return drizzle(d1, { schema });
}
export type Db = ReturnType<typeof db>;
export { schema };

/*
 * Organizations are spread over several D1 databases ("shards"): one database holds about 10 GB and
 * runs about 1,000 short queries a second, a ceiling; several are Cloudflare's way past it. An org
 * lives in one database, chosen when it is created ({@link chooseShard}) and never moved, and every
 * id of its rows (the org's, its keys', apps', webhooks', events') starts with the shard's character
 * (`newId(now, shard)`, `shardOf(id)` in src/domain/key-format.ts): a key's verification, its
 * authority and the queue's consumer find the database from the id alone, with no lookup.
 *
 * Shard n is the binding `DB` for n = 0 (where every org made before shards existed lives: their ids
 * start with `0`) and `DB_<n>` otherwise. Adding a database is appending a binding (docs/storage.md).
 */

/**
 * An id of shard 0, for rows that are the deployment's rather than an org's (received secret-scanning
 * reports): they live in `DB`, which every deployment has.
 */
export const HOME_SHARD_ID = "0";

/** The D1 bindings an env carries, by name: `DB`, then `DB_1`, … `DB_31` (read by name, see {@link shardBinding}). */
export type Shards = Pick<Env, "DB">;

/** The binding name of shard `n`. */
export const shardBinding = (n: number): "DB" | `DB_${number}` => (n === 0 ? "DB" : `DB_${n}`);

function bindingOf(env: Shards, shard: number): D1Database | undefined {
  return shard >= 0 && shard < MAX_SHARDS ? (env as Record<string, D1Database | undefined>)[shardBinding(shard)] : undefined;
}

/** The shards this deployment has a database for, in order (0 first). */
export function shardNumbers(env: Shards): number[] {
  const out: number[] = [];
  for (let n = 0; n < MAX_SHARDS; n++) if (bindingOf(env, n)) out.push(n);
  return out;
}

/** Whether `id` (an org's id, or any id minted for an org) names a database this deployment has. */
export function hasDatabaseFor(env: Shards, id: string): boolean {
  return bindingOf(env, shardOf(id)) !== undefined;
}

/**
 * The one way to an org's database: every query about an org's rows goes through it. `id` is the
 * org's id or any id minted for the org (a key's, an app's, an event's `evt_…`). An id naming a
 * database this deployment does not have names nothing stored here: 404.
 * @example const rows = await databaseFor(c.env, caller.orgId).select().from(apps).all();
 */
export function databaseFor(env: Shards, id: string): Db {
  const binding = bindingOf(env, shardOf(id));
  if (!binding) throw new ApiError("NOT_FOUND", "Nothing is stored under this id.");
  return db(binding);
}

/**
 * Every database, for the jobs that act across orgs (the crons, the outbox, usage pruning): each one
 * runs per database, one after another.
 * @example for (const { database } of everyDatabase(env)) await publishPending(database, env.EVENTS);
 */
export function everyDatabase(env: Shards): { shard: number; database: Db }[] {
  return shardNumbers(env).map((shard) => ({ shard, database: db(bindingOf(env, shard)!) }));
}

/**
 * `env` with each D1 binding replaced by `wrap(binding)`: how the storage seam puts every database,
 * not only `DB`, behind its timeouts and fault handling.
 */
export function mapDatabases<E extends Shards>(env: E, wrap: (d1: D1Database) => D1Database): E {
  const out: Record<string, unknown> = { ...env };
  for (const n of shardNumbers(env)) out[shardBinding(n)] = wrap(bindingOf(env, n)!);
  return out as E;
}

/**
 * The database a new org is put in: one of the shards `NEW_ORG_SHARDS` lists (comma-separated
 * numbers; every database when unset or empty) that this deployment has, at random, so new orgs
 * spread evenly over the open databases. An operator takes a database nearing its ceiling out of the
 * list; its orgs stay where they are (an org never moves).
 * @example createOrgWithAdminKey(env, chooseShard(env), name, requestId)
 */
export function chooseShard(env: Shards & { NEW_ORG_SHARDS?: string }): number {
  const present = shardNumbers(env);
  const listed = (env.NEW_ORG_SHARDS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map(Number)
    .filter((n) => present.includes(n));
  const open = listed.length ? listed : present;
  return open[crypto.getRandomValues(new Uint32Array(1))[0]! % open.length]!;
}
