import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  // The tests run against the real migrations, applied by test/setup.ts in every isolated test file.
  const migrations = await readD1Migrations("migrations");
  return {
    test: {
      // Every request logs one JSON line; show them only for failing tests.
      silent: "passed-only" as const,
      projects: [
        {
          // Inside workerd, one isolated storage per test file.
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: {
                  TEST_MIGRATIONS: migrations,
                  BOOTSTRAP_SECRET: "test-bootstrap-secret-0123456789",
                  // T: short, so that changes made while leases are held wait little.
                  LEASE_MS: "200",
                  KEY_ENCRYPTION_SECRET: "test-encryption-secret-0123456789abcdef",
                  KEY_TAG_SECRET: "test-key-tag-secret-0123456789abcdef",
                  // Replays a randomized stress test: `STRESS_SEED=123 npx vitest run ...` (workerd sees
                  // only bindings, so the shell's variable is passed on as one; tests read process.env).
                  ...(process.env.STRESS_SEED ? { STRESS_SEED: process.env.STRESS_SEED } : {}),
                },
                // The gateway's local upstream: the same echo worker `npm run dev` starts.
                workers: [
                  { name: "keygate-demo-upstream", modules: true, scriptPath: "./demo/upstream.js", compatibilityDate: "2026-10-01" },
                ],
              },
            }),
          ],
          test: {
            name: "workerd",
            setupFiles: ["./test/setup.ts"],
            include: ["test/*.test.ts"],
          },
        },
        {
          // The console in Chromium, against the deployable bundle served by workerd (see test/browser/).
          test: {
            name: "browser",
            environment: "node",
            include: ["test/browser/*.test.ts"],
            testTimeout: 30_000,
            hookTimeout: 120_000,
          },
        },
      ],
    },
  };
});
