// One load run, in its own process so the load generator never shares a core's event loop with the
// server. Input: a JSON spec as argv[2]; output: one JSON line of results on stdout.
import autocannon from "autocannon";
import { readFileSync } from "node:fs";

const spec = JSON.parse(process.argv[2]);
const bodies = spec.bodiesFile ? JSON.parse(readFileSync(spec.bodiesFile, "utf8")) : null;
let next = 0;

const started = performance.now();
let lastResponse = started;
const run = autocannon({
  url: spec.url,
  connections: spec.connections,
  pipelining: 1,
  ...(spec.amount ? { amount: spec.amount } : { duration: spec.duration }),
  requests: [
    {
      method: spec.method,
      path: spec.path,
      headers: spec.headers,
      body: spec.body,
      // Each request takes the next body of the pool (distinct keys for the cache-miss rows).
      ...(bodies ? { setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }) } : {}),
    },
  ],
});
// autocannon ends a fixed-count run only at its next one-second sample, so its duration is rounded
// up to whole seconds; the time of the last response is the run's real length.
run.on("response", () => void (lastResponse = performance.now()));
const result = await run;

const statuses = {};
for (const [code, n] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = n.count;
process.stdout.write(
  JSON.stringify({
    rps: result.requests.average,
    total: result.requests.total,
    durationS: spec.amount ? (lastResponse - started) / 1000 : result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    statuses,
  }) + "\n",
);
