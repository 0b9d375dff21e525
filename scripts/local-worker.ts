/**
 * The deployable worker on local workerd, without `wrangler dev`: bundled exactly as `wrangler deploy`
 * would (a dry run, which also reports the gzip size), then served by Miniflare's API with the
 * bindings of wrangler.toml and the real migrations. Used by the benchmark and the browser tests.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";

export interface Bundle {
  dir: string;
  kib: number;
  gzipKiB: number;
}

/** `wrangler deploy --dry-run` into `outDir`. */
export function bundleWorker(outDir: string): Bundle {
  const run = spawnSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outDir], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`wrangler deploy --dry-run failed:\n${run.stdout}\n${run.stderr}`);
  const sizes = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(run.stdout + run.stderr);
  return { dir: outDir, kib: Number(sizes?.[1] ?? NaN), gzipKiB: Number(sizes?.[2] ?? NaN) };
}

export interface LocalWorkerOptions {
  bundle: Bundle;
  bindings: Record<string, string>;
  /** Failed authentications allowed per minute and address (wrangler.toml: 30). */
  authFailureLimit?: number;
  /** Other workers beside the gateway (the demo upstream is always there). */
  extraWorkers?: Record<string, unknown>[];
  handleStructuredLogs?: () => void;
}

export async function startLocalWorker(options: LocalWorkerOptions) {
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port: 0,
      ...(options.handleStructuredLogs ? { handleStructuredLogs: options.handleStructuredLogs } : {}),
      workers: [
        {
          name: "keygate",
          modules: true,
          scriptPath: join(options.bundle.dir, "index.js"),
          modulesRoot: options.bundle.dir,
          compatibilityDate: "2026-10-01",
          compatibilityFlags: ["nodejs_compat"],
          // Two databases, as wrangler.toml has; new orgs go to `DB` unless the caller says otherwise, since the
          // benchmark and the browser tests read and write an org's rows through `d1` (`DB`) directly.
          bindings: { LEASE_MS: "2000", NEW_ORG_SHARDS: "0", ...options.bindings, AUTH_FAILURE_LIMIT: String(options.authFailureLimit ?? 30) },
          d1Databases: { DB: "keygate-local", DB_1: "keygate-local-1" },
          kvNamespaces: { KEYS_KV: "keygate-local-kv" },
          // SQLite-backed, as wrangler.toml's migrations declare them: the key's authority keeps its credits and usage in SQL.
          durableObjects: { KEY_AUTHORITY: { className: "KeyAuthority", useSQLite: true }, ORG_AUTHORITY: { className: "OrgAuthority", useSQLite: true } },
          serviceBindings: { DEMO_UPSTREAM: "keygate-demo-upstream" },
          ratelimits: { AUTH_FAILURES: { namespace_id: "1001", simple: { limit: options.authFailureLimit ?? 30, period: 60 } } },
        },
        { name: "keygate-demo-upstream", modules: true, scriptPath: "demo/upstream.js", compatibilityDate: "2026-10-01" },
        ...(options.extraWorkers ?? []),
      ],
    } as never),
  );
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const d1 = await mf.getD1Database("DB");
  for (const database of [d1, await mf.getD1Database("DB_1")]) {
    for (const file of readdirSync("migrations").filter((f) => f.endsWith(".sql")).sort()) {
      for (const statement of readFileSync(join("migrations", file), "utf8").split("--> statement-breakpoint")) {
        if (statement.trim()) await database.prepare(statement).run();
      }
    }
  }
  return { mf, url, d1 };
}
