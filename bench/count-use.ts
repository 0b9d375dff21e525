/**
 * What usage counting adds to a verification, printed in ns per call (run by bench/run.ts in a process
 * of its own; type-checked with the worker's code, whose modules it runs). `countUse`
 * (src/verification/usage.ts) is the only work a lease hit does for usage analytics: a map update; the
 * counts ride the key's lease renewals (or one authority call per key within `USAGE_FLUSH_MS`), off the
 * response path. Timed on V8, as in
 * workerd, over 100 keys like the `lease-hit` row's pool: the median of 5 rounds of a million calls.
 */
import { Edge } from "../src/verification/edge";
import { countUse } from "../src/verification/usage";

const edge = new Edge();
const env = { KEY_AUTHORITY: {} as Env["KEY_AUTHORITY"], USAGE_FLUSH_MS: "10000" as const };
const keys = Array.from({ length: 100 }, (_, i) => `bench${String(i).padStart(15, "0")}`);
const orgId = "bench000000000000000";
const start = Date.now();
const rounds: number[] = [];
for (let round = 0; round < 5; round++) {
  const calls = 1_000_000;
  const t0 = performance.now();
  // One flush is scheduled (into this no-op waitUntil) and never runs: the counters only grow, as between flushes.
  for (let i = 0; i < calls; i++) countUse(env, edge, keys[i % 100]!, orgId, "VALID", start + i, () => {});
  rounds.push(((performance.now() - t0) * 1e6) / calls);
}
console.log(rounds.sort((a, b) => a - b)[2]!.toFixed(1));
