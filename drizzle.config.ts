import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes flat migrations/NNNN_name.sql files that wrangler and the tests apply.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/storage/schema.ts",
  out: "./migrations",
  migrations: { prefix: "index" },
});
