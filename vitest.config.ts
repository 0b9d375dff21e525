import { generateKeyPairSync } from "node:crypto";
import { fileURLToPath } from "node:url";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** The example Worker beside the gateway, two Workers served from Node (see the node project). */
const EXAMPLE_WORKER_FILE = "test/example-worker.test.ts";
/** Files whose assertions measure time: run alone (see the workerd-timing project). */
const TIMING_FILES = ["test/leases.test.ts", "test/answers-wait.test.ts", "test/location-model.test.ts", "test/slow-storage.test.ts", "test/authority-race.test.ts"];
/**
 * Files that need storage of their own (see the workerd-own-storage project): those that run the
 * gateway's database-wide jobs (the daily check, the outbox publisher, the webhook sweep, usage pruning)
 * and count what the jobs did, which in a shared database would also act on other files' orgs; and the
 * generated-input and cross-org tests, which prove a refused request changed nothing anywhere by comparing
 * all of storage before and after, where an earlier file's leftovers (a KV entry expiring, a flush
 * landing) would differ, and make every comparison slower.
 */
const OWN_STORAGE_FILES = [
  "test/events.test.ts",
  "test/events-outbox.test.ts",
  "test/lifecycle-daily.test.ts",
  "test/usage.test.ts",
  "test/webhooks-delivery.test.ts",
  "test/fuzz-console.test.ts",
  "test/fuzz-edge.test.ts",
  "test/fuzz-management.test.ts",
  "test/cross-org-matrix.test.ts",
  "test/escalation-matrix.test.ts",
  // Runs the daily check and the outbox over both databases, across every org of its runtime.
  "test/shards.test.ts",
];

export default defineConfig(async () => {
  // The plugin reads wrangler.toml once per test file, and wrangler logs "Using secrets defined in .dev.vars"
  // each time (the tests' bindings override those secrets anyway): keep wrangler's warnings and errors only.
  process.env.WRANGLER_LOG ??= "warn";
  // The tests run against the real migrations, applied by test/setup.ts to every database (`DB`, `DB_1`)
  // before every test file (applyD1Migrations skips what a database already has).
  const migrations = await readD1Migrations("migrations");
  // The secret scanning reporter: a key pair made for this run. The worker trusts its public half (in
  // GitHub's published-list format); the tests sign reports with the private half, as GitHub would.
  const reporter = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const reporterKeys = JSON.stringify({
    public_keys: [{ key_identifier: "test-reporter-key", key: reporter.publicKey.export({ type: "spki", format: "pem" }), is_current: true }],
  });
  const workerdProject = () => ({
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            BOOTSTRAP_SECRET: "test-bootstrap-secret-0123456789",
            // New orgs go to shard 0 (`DB`) unless a test asks for another (`createOrg(name, { shard })` in
            // test/helpers.ts): the tests that replace `DB` with failing storage act on their orgs' database.
            // Both databases exist (wrangler.toml); test/shards.test.ts puts orgs on each.
            NEW_ORG_SHARDS: "0",
            // T: short, so that changes made while leases are held wait little.
            LEASE_MS: "200",
            // Usage counts reach D1 50 ms after a verification, not 10 s (src/verification/usage.ts).
            USAGE_FLUSH_MS: "50",
            // The authorities' usage roll-ups reach D1 at most every 100 ms per key, not every hour (src/durable-objects/key-usage.ts).
            USAGE_ROLLUP_MS: "100",
            KEY_ENCRYPTION_SECRET: "test-encryption-secret-0123456789abcdef",
            KEY_TAG_SECRET: "test-key-tag-secret-0123456789abcdef",
            SECRET_SCANNING_PUBLIC_KEYS: reporterKeys,
            WEBHOOKS_ALLOW_INSECURE_URLS: "true",
            TEST_REPORTER_PRIVATE_KEY: reporter.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
            // Replays a randomized stress test: `STRESS_SEED=123 npx vitest run ...` (workerd sees
            // only bindings, so the shell's variable is passed on as one; tests read process.env).
            ...(process.env.STRESS_SEED ? { STRESS_SEED: process.env.STRESS_SEED } : {}),
            // The deep profile (`npm run test:ci`): today's full trial counts in the randomized tests.
            ...(process.env.KEYGATE_TEST_DEPTH ? { KEYGATE_TEST_DEPTH: process.env.KEYGATE_TEST_DEPTH } : {}),
          },
          // The gateway's local upstream: the same echo worker `npm run dev` starts.
          workers: [
            { name: "keygate-demo-upstream", modules: true, scriptPath: "./demo/upstream.js", compatibilityDate: "2026-10-01" },
          ],
        },
      }),
    ],
  });
  return {
    test: {
      // Every request logs one JSON line; show them only for failing tests.
      silent: "passed-only" as const,
      // 2 files at a time (vitest's default on 2 cores is 1): measured on 2 cores, the quick workerd run takes
      // 2m35s instead of 3m40s; 3 at a time breaks the timing tests.
      maxWorkers: 2,
      projects: [
        {
          // Inside workerd, 2 files at a time. Files run one after another in the same runtime, with one
          // database, one KV namespace and the same Durable Objects, as many orgs share a deployment: each
          // file makes its own orgs and keys, and sends from an address of its own (`fromThisFile` in
          // test/helpers.ts). Starting a runtime and loading the worker for each file cost about 2.5 s a file
          // on 2 cores (more than half of the whole run).
          ...workerdProject(),
          test: {
            name: "workerd",
            isolate: false,
            setupFiles: ["./test/setup.ts"],
            include: ["test/*.test.ts"],
            exclude: [...TIMING_FILES, ...OWN_STORAGE_FILES, EXAMPLE_WORKER_FILE],
          },
        },
        {
          // A runtime and storage of their own for each of these files (the default: isolated).
          ...workerdProject(),
          test: {
            name: "workerd-own-storage",
            setupFiles: ["./test/setup.ts"],
            include: OWN_STORAGE_FILES,
          },
        },
        {
          // The tests that measure waits (leases of T = LEASE_MS, slow storage, races against the clock):
          // alone, one file at a time, after everything else, so that no other file steals their time.
          ...workerdProject(),
          test: {
            name: "workerd-timing",
            // A runtime of its own for each file (about 2.5 s each): no other file's background work
            // (lease renewals, usage reports, coalesced calls of requests that have ended) shares the
            // isolate whose waits these files measure. Sharing one made CI hang twice in one day.
            setupFiles: ["./test/setup.ts"],
            include: TIMING_FILES,
            fileParallelism: false,
            // slow-storage's twelve concurrent cases mostly wait out injected delays: all at once, not 5 (the default).
            maxConcurrency: 12,
            sequence: { groupOrder: 1 },
          },
        },
        {
          // Node-only tooling on the app itself (the OpenAPI linter): `cloudflare:workers` is a stand-in.
          resolve: { alias: { "cloudflare:workers": fileURLToPath(new URL("./test/node/cloudflare-workers.ts", import.meta.url)) } },
          test: {
            name: "node",
            sequence: { groupOrder: 0 },
            environment: "node",
            include: ["test/node/*.test.ts", EXAMPLE_WORKER_FILE],
          },
        },
        {
          // The console in Chromium, against the deployable bundle served by workerd (see test/browser/).
          // The quick profile runs the console's main flows; the deep one (CI) every screen at two widths
          // with axe-core, and every page's own file.
          test: {
            name: "browser",
            sequence: { groupOrder: 0 },
            environment: "node",
            include: process.env.KEYGATE_TEST_DEPTH === "deep" ? ["test/browser/*.test.ts"] : ["test/browser/console.test.ts"],
            testTimeout: 30_000,
            hookTimeout: 120_000,
          },
        },
      ],
    },
  };
});
