/// <reference types="vite/client" />
import { describe, expect, it } from "vitest";
import { Config } from "../node_modules/@redocly/openapi-core/lib/config/config.js";
import recommended from "../node_modules/@redocly/openapi-core/lib/config/recommended.js";
import { lintDocument } from "../node_modules/@redocly/openapi-core/lib/lint.js";
import { BaseResolver, makeDocumentFromString } from "../node_modules/@redocly/openapi-core/lib/resolve.js";
import { call } from "./helpers";

/**
 * The served document under Redocly's `recommended` ruleset (@redocly/openapi-core, the library behind
 * `redocly lint`), errors and warnings alike.
 *
 * Redocly's entry module cannot load in workerd: its `browser` field maps `colorette` (terminal colors,
 * imported by its logger) to nothing, and the pool resolves dependencies with browser conditions. So the
 * OAS 3 rules are loaded here module by module, named as Redocly's own OAS 3 rule index names them, with
 * the severities of its `recommended` config. Only `assertions` (configurable rules, none of which
 * `recommended` declares) is left out, and the test fails if any rule `recommended` turns on is missing.
 */

const RULES = "../node_modules/@redocly/openapi-core/lib/rules";
const ruleModules = import.meta.glob<Record<string, unknown>>(
  ["../node_modules/@redocly/openapi-core/lib/rules/common/*.js", "../node_modules/@redocly/openapi-core/lib/rules/oas3/*.js", "!**/index.js"],
  { eager: true },
);
const oas3Index = import.meta.glob<string>("../node_modules/@redocly/openapi-core/lib/rules/oas3/index.js", {
  eager: true,
  query: "?raw",
  import: "default",
})[`${RULES}/oas3/index.js`]!;

type Rule = (settings: unknown) => unknown;

/** Redocly's OAS 3 rules by id, as its rule index maps them, without `assertions`. */
function oas3Rules(): Record<string, Rule> {
  const exported = new Map<string, Rule>();
  for (const mod of Object.values(ruleModules)) {
    for (const [name, value] of Object.entries(mod)) if (typeof value === "function") exported.set(name, value as Rule);
  }
  const table = oas3Index.slice(oas3Index.indexOf("export const rules"));
  const rules: Record<string, Rule> = {};
  for (const [, quoted, bare, name] of table.matchAll(/^\s+(?:'([^']+)'|(\w+)): (\w+),$/gm)) {
    const id = (quoted ?? bare)!;
    if (id === "assertions") continue;
    const rule = exported.get(name!);
    if (!rule) throw new Error(`Redocly rule ${id} (${name}) was not loaded`);
    rules[id] = rule;
  }
  return rules;
}

const on = (settings: Record<string, unknown>) => Object.keys(settings).filter((id) => settings[id] !== "off");

type Json = Record<string, any>;

/** Every problem Redocly's recommended rules find in `doc`, as "severity rule pointer: message". */
export async function redoclyRecommended(doc: Json): Promise<string[]> {
  const rules = oas3Rules();
  const config = new Config(
    { rules: recommended.rules, oas3_0Rules: recommended.oas3_0Rules } as never,
    { plugins: [{ id: "", rules: { oas3: rules } }] as never },
  );
  const document = makeDocumentFromString(JSON.stringify(doc), "/openapi.json");
  const problems = await lintDocument({ document, config, externalRefResolver: new BaseResolver() });
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
  it("loads every rule the recommended ruleset turns on for OpenAPI 3.0", () => {
    const loaded = Object.keys(oas3Rules());
    const wanted = [...on(recommended.rules as Json), ...on(recommended.oas3_0Rules as Json)];
    expect(wanted.filter((id) => !loaded.includes(id))).toEqual([]);
    expect(wanted.length).toBeGreaterThan(30);
  });

  it("finds the problems it should in a broken document (the check is live)", async () => {
    const problems = await redoclyRecommended({
      openapi: "3.0.3",
      info: { title: "t", version: "1" },
      paths: { "/x": { get: { responses: { 200: { description: "ok" } } } } },
    });
    expect(problems.join("\n")).toMatch(/error no-empty-servers/);
    expect(problems.join("\n")).toMatch(/warn operation-operationId/);
    expect(problems.join("\n")).toMatch(/error security-defined/);
  });

  it("has no errors, and no warnings but the accepted ones", async () => {
    const res = await call("GET", "/openapi.json");
    expect(res.status, res.text).toBe(200);
    const problems = await redoclyRecommended(res.body);
    expect(problems.filter((p) => !ACCEPTED.includes(p))).toEqual([]);
    expect(problems.filter((p) => p.startsWith("error"))).toEqual([]);
  });
});
