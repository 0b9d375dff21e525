import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { shardOf } from "../src/domain/key-format";
import { fetchWithBindings } from "./with-bindings";

export const BOOTSTRAP = env.BOOTSTRAP_SECRET;

/**
 * The address this test file's requests come from (`cf-connecting-ip`), one per file in 198.18.0.0/15
 * (the benchmarking range): the files of a run share one runtime (vitest.config.ts), and the limit on
 * failed authentications counts per address, so each file is a client of its own, as it would be with a
 * runtime of its own. A request that names its address keeps it.
 */
export function fromThisFile(request: Request): Request {
  if (request.headers.has("cf-connecting-ip")) return request;
  let hash = 2166136261;
  for (const ch of expect.getState().testPath ?? "") hash = Math.imul(hash ^ ch.charCodeAt(0), 16777619);
  const copy = new Request(request);
  copy.headers.set("cf-connecting-ip", `198.${18 + ((hash >>> 16) & 1)}.${(hash >>> 8) & 0xff}.${hash & 0xff}`);
  return copy;
}

/** Sends a request to the worker from this file's address (see `fromThisFile`). */
export const gatewayFetch = (request: Request): Promise<Response> => exports.default.fetch(fromThisFile(request));

export interface CallOptions {
  key?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * Calls the worker as a client would. Returns the status, headers and parsed body, and a `text` of
 * the whole response for failure messages (so a red test explains itself).
 */
export async function call(method: string, path: string, options: CallOptions = {}) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await gatewayFetch(new Request(`https://gateway.test${path}`, { method, headers, body }));
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, body: json, text: `${res.status} ${text}` };
}

/** Asserts the status, showing the whole response when it differs. */
export function expectStatus(res: { status: number; text: string }, status: number) {
  expect(res.status, res.text).toBe(status);
}

/**
 * Creates an organization through the bootstrap endpoint; returns its id and admin key. It lands in
 * shard 0's database (`DB`, the tests' `NEW_ORG_SHARDS`), or in `shard`'s: the deployment's own
 * setting, given to this one request (the public API has no way to choose).
 */
export async function createOrg(name = "Acme", options: { shard?: number } = {}) {
  const request = () => new Request("https://gateway.test/v1/orgs", {
    method: "POST",
    headers: { authorization: `Bearer ${BOOTSTRAP}`, "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  const res =
    options.shard === undefined
      ? await call("POST", "/v1/orgs", { key: BOOTSTRAP, body: { name } })
      : await fetchWithBindings({ NEW_ORG_SHARDS: String(options.shard) } as Partial<Env>, fromThisFile(request()));
  expectStatus(res, 201);
  if (options.shard !== undefined) expect(shardOf(res.body.org.id), res.text).toBe(options.shard);
  return { orgId: res.body.org.id as string, adminKey: res.body.key.key as string, adminKeyId: res.body.key.id as string };
}

/** Resolves after `ms` (at once for 0 or less). */
export const sleep = (ms: number): Promise<void> => (ms <= 0 ? Promise.resolve() : new Promise((r) => setTimeout(r, ms)));

/**
 * How many trials a randomized test runs: `deep` in the deep profile (`npm run test:ci`, what CI runs:
 * `KEYGATE_TEST_DEPTH=deep`, passed to workerd as a binding by vitest.config.ts), `quick` in the default
 * one (`npm test`). Only the counts differ; every assertion is the same in both.
 */
export const DEEP = process.env.KEYGATE_TEST_DEPTH === "deep";
export const trials = (deep: number, quick: number): number => (DEEP ? deep : quick);
/** 1000 → "1,000", for test names that say how many trials ran. */
export const count = (n: number): string => n.toLocaleString("en-US");

/**
 * A small seeded PRNG (mulberry32), so a randomized test that fails can be replayed with its seed
 * (`STRESS_SEED`, passed to workerd as a binding by vitest.config.ts).
 */
export function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
