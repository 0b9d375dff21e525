import { env } from "cloudflare:workers";
import { getTableConfig, type SQLiteTable } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import * as schema from "../src/storage/schema";

/**
 * `src/storage/schema.ts` and `migrations/` agree: the database the migrations build has exactly the
 * tables, columns (type, not-null, primary key) and indexes (columns, uniqueness) the schema declares.
 * (`.ci/run` also checks that `drizzle-kit generate` would write no new migration.)
 */
const tables = (Object.values(schema) as unknown[]).filter((t): t is SQLiteTable => typeof t === "object" && t !== null && Symbol.for("drizzle:IsDrizzleTable") in t);

describe("schema and migrations", () => {
  it("declare the same tables", async () => {
    const rows = await env.DB.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like '_cf_%' and name != 'd1_migrations'").all<{ name: string }>();
    expect(rows.results.map((r) => r.name).sort()).toEqual(tables.map((t) => getTableConfig(t).name).sort());
  });

  for (const table of tables) {
    const config = getTableConfig(table);
    it(`agree on ${config.name}: columns and indexes`, async () => {
      const info = await env.DB.prepare(`pragma table_info(${config.name})`).all<{ name: string; type: string; notnull: number; pk: number }>();
      const actual = info.results.map((c) => ({ name: c.name, type: c.type.toLowerCase(), notNull: c.notnull === 1 || c.pk > 0, pk: c.pk > 0 })).sort((a, b) => a.name.localeCompare(b.name));
      const compositePk = config.primaryKeys.flatMap((pk) => pk.columns.map((c) => c.name));
      const declared = config.columns
        .map((c) => ({ name: c.name, type: c.getSQLType().toLowerCase(), notNull: c.notNull || c.primary || compositePk.includes(c.name), pk: c.primary || compositePk.includes(c.name) }))
        .sort((a, b) => a.name.localeCompare(b.name));
      expect(actual).toEqual(declared);

      const list = await env.DB.prepare(`pragma index_list(${config.name})`).all<{ name: string; unique: number; origin: string }>();
      const indexes = [];
      for (const index of list.results.filter((i) => i.origin === "c")) {
        const cols = await env.DB.prepare(`pragma index_info(${index.name})`).all<{ name: string; seqno: number }>();
        indexes.push({ name: index.name, unique: index.unique === 1, columns: cols.results.sort((a, b) => a.seqno - b.seqno).map((c) => c.name) });
      }
      const declaredIndexes = config.indexes.map((i) => ({
        name: i.config.name,
        unique: i.config.unique,
        columns: i.config.columns.map((c) => (c as { name: string }).name),
      }));
      expect(indexes.sort((a, b) => a.name.localeCompare(b.name))).toEqual(declaredIndexes.sort((a, b) => a.name.localeCompare(b.name)));
    });
  }
});
