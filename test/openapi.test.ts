import { Validator } from "@cfworker/json-schema";
import { describe, expect, it } from "vitest";
import schema from "../node_modules/@seriousme/openapi-schema-validator/schemas/v3.0/schema.json";
import { call } from "./helpers";

type Json = Record<string, any>;

/** Every endpoint the worker serves, as "METHOD /path". */
const ROUTES = [
  "get /healthz",
  "post /v1/keys/verify",
  "post /v1/orgs",
  "get /v1/orgs/{orgId}/keys",
  "post /v1/orgs/{orgId}/keys",
  "get /v1/orgs/{orgId}/keys/{keyId}",
  "patch /v1/orgs/{orgId}/keys/{keyId}",
  "delete /v1/orgs/{orgId}/keys/{keyId}",
  "post /v1/orgs/{orgId}/keys/{keyId}/regenerate",
  "post /v1/orgs/{orgId}/keys/{keyId}/reveal",
  "get /v1/orgs/{orgId}/apps",
  "post /v1/orgs/{orgId}/apps",
  "delete /v1/orgs/{orgId}/apps/{appId}",
  "get /v1/orgs/{orgId}/policy",
  "put /v1/orgs/{orgId}/policy",
  "get /v1/orgs/{orgId}/audit-log",
];

async function document(): Promise<Json> {
  const res = await call("GET", "/openapi.json");
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** A schema with its `$ref` followed. */
const resolve = (doc: Json, s: Json): Json => (s?.$ref ? doc.components.schemas[s.$ref.split("/").pop()] : s);

/** Whether a schema documents an example: on itself, or on every property, or through its variants. */
function hasExample(doc: Json, s: Json): boolean {
  const r = resolve(doc, s);
  if (!r) return false;
  if (r.example !== undefined) return true;
  for (const key of ["oneOf", "anyOf"]) if (r[key]) return r[key].every((v: Json) => hasExample(doc, v));
  if (r.properties) return Object.values(r.properties as Json).every((p) => hasExample(doc, p as Json) || (p as Json).type === "boolean" || (p as Json).enum);
  return false;
}

describe("GET /openapi.json", () => {
  it("is a valid OpenAPI 3.0 document under the official JSON schema", async () => {
    const result = new Validator(schema as never, "4", false).validate(await document());
    expect(result.errors.slice(0, 5), JSON.stringify(result.errors.slice(0, 5))).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("lists every route the worker serves, and nothing else", async () => {
    const doc = await document();
    const listed = Object.entries(doc.paths as Json).flatMap(([path, ops]) => Object.keys(ops as Json).map((m) => `${m} ${path}`));
    expect(listed.sort()).toEqual([...ROUTES].sort());
  });

  it("documents an example for every request body and every JSON success response", async () => {
    const doc = await document();
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(ops as Json)) {
        const body = op.requestBody?.content?.["application/json"]?.schema;
        if (body && !hasExample(doc, body)) missing.push(`${method} ${path} request`);
        for (const [status, response] of Object.entries(op.responses as Json)) {
          const s = (response as Json).content?.["application/json"]?.schema;
          if (status.startsWith("2") && s && !hasExample(doc, s)) missing.push(`${method} ${path} ${status}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("documents the 429 of the failure limit on every operation that takes a credential", async () => {
    const doc = await document();
    const missing = ROUTES.filter((r) => r !== "get /healthz").filter((r) => {
      const [method, path] = r.split(" ");
      return !doc.paths[path!]?.[method!]?.responses?.["429"];
    });
    expect(missing).toEqual([]);
  });

  it("documents the error envelope and bearer authentication", async () => {
    const doc = await document();
    expect(doc.components.schemas.Error.properties.error.required).toEqual(expect.arrayContaining(["code", "message", "requestId"]));
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
  });
});
