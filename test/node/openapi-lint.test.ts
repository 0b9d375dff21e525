import { createConfig, lintFromString } from "@redocly/openapi-core";
import { describe, expect, it } from "vitest";
import { newApp } from "../../src/app";
import { registerConsole } from "../../src/console";
import { registerRoutes } from "../../src/routes";

/**
 * The document the app serves at `GET /openapi.json`, under Redocly's `recommended` ruleset
 * (@redocly/openapi-core, the library behind `redocly lint`), errors and warnings alike. Redocly runs in
 * Node, so this file is in the `node` project: the app is built here exactly as the worker builds it
 * (`cloudflare:workers` is aliased to a stand-in in vitest.config.ts; no request reaches a binding).
 */

async function redoclyRecommended(source: string): Promise<string[]> {
  const config = await createConfig({ extends: ["recommended"] });
  const problems = await lintFromString({ source, absoluteRef: "/openapi.json", config });
  return problems.map((p) => `${p.severity} ${p.ruleId} ${p.location[0]?.pointer ?? ""}: ${p.message}`);
}

/**
 * Warnings accepted, each for a reason; every other problem, and any error, fails the test.
 * - The project is private and states no license: the document must not invent one.
 * - `GET /healthz` answers 200 whatever the request (no credential, no parameters, no storage): no 4XX to document.
 */
const ACCEPTED = [
  "warn info-license #/info: Info object should contain `license` field.",
  "warn operation-4xx-response #/paths/~1healthz/get/responses: Operation must have at least one `4XX` response.",
];

describe("GET /openapi.json under Redocly's recommended rules", () => {
  it("finds the problems it should in a broken document (the check is live)", async () => {
    const problems = (
      await redoclyRecommended(
        JSON.stringify({ openapi: "3.0.3", info: { title: "t", version: "1" }, paths: { "/x": { get: { responses: { 200: { description: "ok" } } } } } }),
      )
    ).join("\n");
    expect(problems).toMatch(/error no-empty-servers/);
    expect(problems).toMatch(/warn operation-operationId/);
    expect(problems).toMatch(/error security-defined/);
  });

  it("has no errors, and no warnings but the accepted ones", async () => {
    const app = registerConsole(registerRoutes(newApp()));
    const res = await app.request("/openapi.json");
    expect(res.status).toBe(200);
    const problems = await redoclyRecommended(await res.text());
    expect(problems.filter((p) => !ACCEPTED.includes(p))).toEqual([]);
    expect(problems.filter((p) => p.startsWith("error"))).toEqual([]);
  });
});
