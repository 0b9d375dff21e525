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

/** Every schema object in `node`, at its JSON pointer. */
function* schemasIn(node: unknown, pointer = "#"): Generator<[string, Record<string, unknown>]> {
  if (Array.isArray(node)) {
    for (const [i, child] of node.entries()) yield* schemasIn(child, `${pointer}/${i}`);
    return;
  }
  if (typeof node !== "object" || node === null) return;
  const object = node as Record<string, unknown>;
  yield [pointer, object];
  for (const [key, child] of Object.entries(object)) yield* schemasIn(child, `${pointer}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`);
}

/** Where `document` has a oneOf or anyOf of objects without a discriminator: a client cannot tell which member it holds. */
function undiscriminatedUnions(document: unknown): string[] {
  const isObjectUnion = (members: unknown) =>
    Array.isArray(members) && members.some((m: { $ref?: string; type?: string }) => m.$ref !== undefined || m.type === "object");
  return [...schemasIn(document)]
    .filter(([, s]) => (isObjectUnion(s.oneOf) || isObjectUnion(s.anyOf)) && s.discriminator === undefined)
    .map(([pointer]) => pointer);
}

describe("rules the code enforces, stated in the schema", () => {
  const documentOf = async () => {
    const app = registerConsole(registerRoutes(newApp()));
    return (await (await app.request("/openapi.json")).json()) as {
      components: { schemas: Record<string, Record<string, unknown> & { properties?: Record<string, Record<string, unknown>>; required?: string[] }> };
    };
  };

  it("the create-key body is a oneOf discriminated by `kind`, each mapping naming the schema of that kind", async () => {
    const { schemas } = (await documentOf()).components;
    const mapping = {
      rbac: "#/components/schemas/CreateRbacKey",
      scoped: "#/components/schemas/CreateScopedKey",
      legacy: "#/components/schemas/CreateLegacyKey",
    };
    expect(schemas.CreateKey).toMatchObject({
      oneOf: Object.values(mapping).map(($ref) => ({ $ref })),
      discriminator: { propertyName: "kind", mapping },
    });
    for (const [kind, ref] of Object.entries(mapping)) {
      const body = schemas[ref.split("/").at(-1)!]!;
      expect(body.properties?.kind).toMatchObject({ enum: [kind] });
      expect(body.required).toContain("kind");
    }
  });

  it("a union of objects anywhere in the document says how to tell its members apart", async () => {
    expect(undiscriminatedUnions({ a: { oneOf: [{ $ref: "#/x" }, { type: "object" }] } })).toEqual(["#/a"]);
    expect(undiscriminatedUnions(await documentOf())).toEqual([]);
  });

  it("an edit must change at least one field (PATCH body: minProperties 1)", async () => {
    expect((await documentOf()).components.schemas.UpdateKey).toMatchObject({ type: "object", minProperties: 1 });
  });

  it("every response declares the request id header, as required", async () => {
    const { paths } = (await documentOf()) as unknown as { paths: Record<string, Record<string, { responses: Record<string, { headers?: Record<string, { required?: boolean }> }> }>> };
    const without = Object.entries(paths).flatMap(([path, operations]) =>
      Object.entries(operations).flatMap(([method, { responses }]) =>
        Object.entries(responses)
          .filter(([, response]) => response.headers?.["x-request-id"]?.required !== true)
          .map(([status]) => `${method} ${path} ${status}`),
      ),
    );
    expect(without).toEqual([]);
  });

  it("a new key's defaulted fields are optional, with their defaults", async () => {
    const { schemas } = (await documentOf()).components;
    for (const name of ["CreateRbacKey", "CreateScopedKey", "CreateLegacyKey"]) expect(schemas[name]!.required).not.toContain("secure");
    expect(schemas.CreateRbacKey!.required).not.toContain("orgRole");
    expect(schemas.SecureFlag).toMatchObject({ type: "boolean", default: true });
    expect(schemas.NewKeyOrgRole).toMatchObject({ default: "none" });
  });
});
