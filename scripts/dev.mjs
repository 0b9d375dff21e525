#!/usr/bin/env node
// `npm run dev`: everything a newcomer needs for a working local gateway, in one command.
// 1. creates .dev.vars from .dev.vars.example when absent (local secrets only), or adds the secrets it lacks;
// 2. applies the D1 migrations to every local database (`DB`, `DB_1`, …: each wrangler.toml [[d1_databases]]);
// 3. starts `wrangler dev` on http://localhost:8787 with local D1, KV and Durable Objects, together
//    with the demo upstream (demo/) that the gateway's /gw/demo/… routes forward to;
// 4. starts the example Worker (examples/protected-api) on the next port: it calls the gateway's KeyVerifier
//    over a service binding. `wrangler dev -c a -c b` serves only its first Worker on a port, so the example
//    runs in a second `wrangler dev`, which reaches the gateway through wrangler's local dev registry.
import { spawnSync, spawn } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, readFileSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";

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

// Organizations live in one of several databases (src/storage/db.ts): every one gets the schema.
const databases = [...readFileSync("wrangler.toml", "utf8").matchAll(/^\[\[d1_databases\]\][^[]*?^binding\s*=\s*"([^"]+)"/gm)].map((m) => m[1]);
for (const binding of databases) {
  const migrate = spawnSync("npx", ["wrangler", "d1", "migrations", "apply", binding, "--local"], { stdio: "inherit" });
  if (migrate.status !== 0) process.exit(migrate.status ?? 1);
}

const port = process.env.PORT ?? "8787";
const examplePort = process.env.EXAMPLE_PORT ?? String(Number(port) + 1);
console.log(`
  keygate is starting on http://localhost:${port}
  Create an organization and its first admin key:

    curl -s -X POST http://localhost:${port}/v1/orgs \\
      -H 'authorization: Bearer ${bootstrap}' -H 'content-type: application/json' \\
      -d '{"name":"Acme"}'

  Then call the demo upstream through the gateway with that key (README: "Use it"):

    curl -s http://localhost:${port}/gw/demo/whoami -H 'authorization: Bearer <key>'

  Or sign in to the admin console with that key: http://localhost:${port}/console

  Your own Worker, protected by the gateway over a service binding (examples/protected-api, README:
  "Protect your own Worker") runs on http://localhost:${examplePort}; it needs project:deploy here:

    curl -s -X POST http://localhost:${examplePort}/deploy -H 'authorization: Bearer <key>'
`);
// wrangler's own launcher, not npx: it passes a SIGTERM on to wrangler, where npx exits and leaves
// wrangler and its runtime running. With node_modules/.bin first on PATH, as npx would: the project's Node 22.
const bin = resolve("node_modules/.bin");
const wrangler = (args, options) =>
  spawn(join(bin, "wrangler"), args, { ...options, env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` } });
const extra = process.argv.slice(2);
const dev = wrangler(["dev", "-c", "wrangler.toml", "-c", "demo/wrangler.toml", "--port", port, "--test-scheduled", ...extra], {
  stdio: "inherit",
});
let example;
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => (dev.kill(signal), example?.kill(signal)));
dev.on("exit", (code) => (example?.kill("SIGTERM"), process.exit(code ?? 0)));

// Started once the gateway answers: two `wrangler dev` starting at the same moment can pick the same free
// port for their runtimes and one of them fails with "Address already in use".
while (!(await fetch(`http://localhost:${port}/healthz`).then((r) => r.ok, () => false))) {
  await new Promise((resolve) => setTimeout(resolve, 500));
}
// Not interactive: the gateway's session owns the keyboard shortcuts.
example = wrangler(
  ["dev", "-c", "examples/protected-api/wrangler.toml", "--port", examplePort, "--show-interactive-dev-session=false"],
  { stdio: ["ignore", "inherit", "inherit"] },
);
// The gateway keeps running without it (a port in use, say: set EXAMPLE_PORT).
example.on("exit", (code) => {
  if (code) console.error(`\n  The example Worker (examples/protected-api) stopped (exit code ${code}); the gateway keeps running.\n`);
});
