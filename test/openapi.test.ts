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
  "post /v1/orgs/{orgId}/keys/{keyId}/disable",
  "post /v1/orgs/{orgId}/keys/{keyId}/enable",
  "post /v1/orgs/{orgId}/keys/{keyId}/end-overlap",
  "get /v1/orgs/{orgId}/apps",
  "post /v1/orgs/{orgId}/apps",
  "delete /v1/orgs/{orgId}/apps/{appId}",
  "get /v1/orgs/{orgId}/policy",
  "put /v1/orgs/{orgId}/policy",
  "get /v1/orgs/{orgId}/audit-log",
  "post /v1/secret-scanning/reports",
  "get /v1/orgs/{orgId}/keys/{keyId}/usage",
  "get /v1/orgs/{orgId}/usage",
  "get /v1/orgs/{orgId}/usage/daily",
  "get /v1/orgs/{orgId}/webhooks",
  "post /v1/orgs/{orgId}/webhooks",
  "get /v1/orgs/{orgId}/webhooks/{webhookId}",
  "delete /v1/orgs/{orgId}/webhooks/{webhookId}",
  "get /v1/orgs/{orgId}/webhooks/{webhookId}/deliveries",
  "post /v1/orgs/{orgId}/webhooks/{webhookId}/deliveries/{deliveryId}/resend",
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

  it("names every operation as a client method would, and declares every tag with a description", async () => {
    const doc = await document();
    const ids = Object.fromEntries(
      Object.entries(doc.paths as Json).flatMap(([path, ops]) => Object.entries(ops as Json).map(([m, op]) => [`${m} ${path}`, op.operationId])),
    );
    expect(ids).toEqual({
      "get /healthz": "health",
      "post /v1/keys/verify": "verifyKey",
      "post /v1/orgs": "createOrg",
      "get /v1/orgs/{orgId}/keys": "listKeys",
      "post /v1/orgs/{orgId}/keys": "createKey",
      "get /v1/orgs/{orgId}/keys/{keyId}": "getKey",
      "patch /v1/orgs/{orgId}/keys/{keyId}": "updateKey",
      "delete /v1/orgs/{orgId}/keys/{keyId}": "revokeKey",
      "post /v1/orgs/{orgId}/keys/{keyId}/regenerate": "regenerateKey",
      "post /v1/orgs/{orgId}/keys/{keyId}/reveal": "revealKey",
      "post /v1/orgs/{orgId}/keys/{keyId}/disable": "disableKey",
      "post /v1/orgs/{orgId}/keys/{keyId}/enable": "enableKey",
      "post /v1/orgs/{orgId}/keys/{keyId}/end-overlap": "endKeyOverlap",
      "get /v1/orgs/{orgId}/apps": "listApps",
      "post /v1/orgs/{orgId}/apps": "createApp",
      "delete /v1/orgs/{orgId}/apps/{appId}": "deleteApp",
      "get /v1/orgs/{orgId}/policy": "getPolicy",
      "put /v1/orgs/{orgId}/policy": "putPolicy",
      "get /v1/orgs/{orgId}/audit-log": "listAuditLog",
      "post /v1/secret-scanning/reports": "reportLeakedKeys",
      "get /v1/orgs/{orgId}/keys/{keyId}/usage": "getKeyUsage",
      "get /v1/orgs/{orgId}/usage": "getOrgUsage",
      "get /v1/orgs/{orgId}/usage/daily": "getDailyUsage",
      "get /v1/orgs/{orgId}/webhooks": "listWebhooks",
      "post /v1/orgs/{orgId}/webhooks": "createWebhook",
      "get /v1/orgs/{orgId}/webhooks/{webhookId}": "getWebhook",
      "delete /v1/orgs/{orgId}/webhooks/{webhookId}": "deleteWebhook",
      "get /v1/orgs/{orgId}/webhooks/{webhookId}/deliveries": "listWebhookDeliveries",
      "post /v1/orgs/{orgId}/webhooks/{webhookId}/deliveries/{deliveryId}/resend": "resendWebhookDelivery",
    });
    const declared = new Map((doc.tags as Json[]).map((t) => [t.name, t.description]));
    for (const [name, description] of declared) expect(description, name).toMatch(/\w/);
    const used = Object.values(doc.paths as Json).flatMap((ops) => Object.values(ops as Json).flatMap((op) => op.tags as string[]));
    expect([...new Set(used)].filter((t) => !declared.has(t))).toEqual([]);
  });

  it("says how each operation authenticates: public, an API key, or the bootstrap secret", async () => {
    const doc = await document();
    expect(doc.servers?.length).toBeGreaterThan(0);
    expect(doc.paths["/healthz"].get.security).toEqual([]);
    // Anonymous, or with a verifier credential (a key holding keys:verify) for `ip`, `cost` and the strict mode.
    expect(doc.paths["/v1/keys/verify"].post.security).toEqual([{}, { apiKey: [] }]);
    expect(doc.paths["/v1/orgs"].post.security).toEqual([{ bootstrapSecret: [] }]);
    expect(doc.components.securitySchemes.bootstrapSecret).toMatchObject({ type: "http", scheme: "bearer" });
    for (const route of ROUTES.filter((r) => r.includes("{orgId}"))) {
      const [method, path] = route.split(" ");
      expect(doc.paths[path!][method!].security, route).toEqual([{ apiKey: [] }]);
    }
  });

  it("documents every status an operation can answer, with the headers each always carries", async () => {
    const doc = await document();
    const problems: string[] = [];
    for (const route of ROUTES) {
      const [method, path] = route.split(" ");
      const op = doc.paths[path!][method!];
      const responses = op.responses as Json;
      const needs = (status: string, why: string) => responses[status] || problems.push(`${route}: no ${status} (${why})`);
      const authenticated = op.security.length > 0;
      // Storage: every operation but the liveness probe reads or writes it.
      if (route !== "get /healthz") needs("503", "storage unavailable");
      if (authenticated) {
        needs("401", "credential refused");
        needs("429", "failed-authentication limit");
      }
      if (path!.includes("{orgId}")) needs("403", "permission");
      if (op.requestBody || op.parameters?.length) needs("400", "invalid request");
      for (const [status, response] of Object.entries(responses)) {
        const headers = Object.keys((response as Json).headers ?? {}).map((h) => h.toLowerCase());
        const has = (name: string) => headers.includes(name.toLowerCase()) || problems.push(`${route} ${status}: no ${name} header`);
        has("x-request-id");
        if (status === "401") has("WWW-Authenticate");
        if (status === "429" || status === "503") has("Retry-After");
      }
    }
    expect(problems).toEqual([]);
  });

  it("puts rules that fit a schema into the schema: the kind filter's values, expiresInDays xor expiresAt", async () => {
    const doc = await document();
    const kind = (doc.paths["/v1/orgs/{orgId}/keys"].get.parameters as Json[]).find((p) => p.name === "kind");
    // `kind=rbac,scoped`: an array of the kinds, comma-separated on the wire.
    expect(kind).toMatchObject({ in: "query", style: "form", explode: false, schema: { type: "array", items: { enum: ["rbac", "scoped", "legacy"] } } });
    const withExpiration = Object.entries(doc.components.schemas as Json).filter(([, s]) => s.properties?.expiresInDays && s.properties?.expiresAt);
    expect(withExpiration.map(([name]) => name).sort()).toEqual(["CreateLegacyKey", "CreateRbacKey", "CreateScopedKey", "RegenerateKey", "UpdateKey"]);
    for (const [name, s] of withExpiration) expect(s.not?.required, name).toEqual(["expiresInDays", "expiresAt"]);
  });

  it("documents the error envelope and bearer authentication", async () => {
    const doc = await document();
    expect(doc.components.schemas.Error.properties.error.required).toEqual(expect.arrayContaining(["code", "message", "requestId"]));
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
  });
});
