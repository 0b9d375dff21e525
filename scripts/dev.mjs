#!/usr/bin/env node
// `npm run dev`: everything a newcomer needs for a working local gateway, in one command.
// 1. creates .dev.vars from .dev.vars.example when absent (local secrets only), or adds the secrets it lacks;
// 2. applies the D1 migrations to the local database;
// 3. starts `wrangler dev` on http://localhost:8787 with local D1, KV and Durable Objects, together
//    with the demo upstream (demo/) that the gateway's /gw/demo/… routes forward to.
import { spawnSync, spawn } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, readFileSync } from "node:fs";

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("Created .dev.vars from .dev.vars.example (local secrets).");
} else {
  // A .dev.vars from before a secret was added (KEY_TAG_SECRET, say) would make the worker refuse
  // everything with 500 MISCONFIGURED: add the example's value of each missing secret.
  const current = readFileSync(".dev.vars", "utf8");
  const missing = readFileSync(".dev.vars.example", "utf8")
    .split("\n")
    .filter((line) => /^[A-Z_]+=/.test(line) && !new RegExp(`^${line.split("=")[0]}=`, "m").test(current));
  if (missing.length) {
    appendFileSync(".dev.vars", (current.endsWith("\n") ? "" : "\n") + missing.join("\n") + "\n");
    console.log(`Added to .dev.vars from .dev.vars.example: ${missing.map((l) => l.split("=")[0]).join(", ")}.`);
  }
}
const bootstrap = /BOOTSTRAP_SECRET="?([^"\n]+)"?/.exec(readFileSync(".dev.vars", "utf8"))?.[1] ?? "<BOOTSTRAP_SECRET>";

const migrate = spawnSync("npx", ["wrangler", "d1", "migrations", "apply", "DB", "--local"], { stdio: "inherit" });
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const port = process.env.PORT ?? "8787";
console.log(`
  keygate is starting on http://localhost:${port}
  Create an organization and its first admin key:

    curl -s -X POST http://localhost:${port}/v1/orgs \\
      -H 'authorization: Bearer ${bootstrap}' -H 'content-type: application/json' \\
      -d '{"name":"Acme"}'

  Then call the demo upstream through the gateway with that key (README: "Use it"):

    curl -s http://localhost:${port}/gw/demo/whoami -H 'authorization: Bearer <key>'

  Or sign in to the admin console with that key: http://localhost:${port}/console
`);
const extra = process.argv.slice(2);
const dev = spawn("npx", ["wrangler", "dev", "-c", "wrangler.toml", "-c", "demo/wrangler.toml", "--port", port, ...extra], {
  stdio: "inherit",
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
dev.on("exit", (code) => process.exit(code ?? 0));
