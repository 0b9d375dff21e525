import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Give the test file's database the real schema (nothing to do when an earlier file in the same runtime did).
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
