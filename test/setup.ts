import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { everyDatabase, shardBinding } from "../src/storage/db";

// Give every database of the test file's runtime (`DB`, `DB_1`: an org lives in one of them) the real
// schema (nothing to do when an earlier file in the same runtime did).
for (const { shard } of everyDatabase(env)) {
  await applyD1Migrations(env[shardBinding(shard) as "DB"], env.TEST_MIGRATIONS);
}
