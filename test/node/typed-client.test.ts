import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleWorker, startLocalWorker } from "../../scripts/local-worker";
import { newApp } from "../../src/app";
import { registerConsole } from "../../src/console";
import { registerRoutes } from "../../src/routes";

/**
 * A TypeScript user's client, generated from the document with openapi-typescript's defaults and driven with
 * openapi-fetch through the README's first session (test/node/typed-client/walkthrough.ts.txt): it must
 * type-check under strict TypeScript with no casts, and the same program must then run against the deployable
 * bundle served by workerd (as the browser tests serve it, scripts/local-worker.ts) and see what the README says.
 */

const BOOTSTRAP_SECRET = "typed-client-bootstrap-secret-0123456789";
// Inside the repository, so that the program's `import "openapi-fetch"` resolves to node_modules.
const DIR = resolve("test-results/typed-client");
const PROGRAM = join(DIR, "walkthrough.ts");
const FIXTURE = new URL("./typed-client/walkthrough.ts.txt", import.meta.url);

/** The document as the app builds it: the same code the worker runs. */
async function documentOfApp(): Promise<unknown> {
  const app = registerConsole(registerRoutes(newApp()));
  return (await app.request("/openapi.json")).json();
}

/**
 * Diagnostics of the programs in `sources` (file name → text), written beside the generated `openapi.ts`
 * and checked together, as a strict project would check them.
 */
function typeCheck(sources: Record<string, string>): string[] {
  const files = Object.entries(sources).map(([name, text]) => {
    writeFileSync(join(DIR, name), text);
    return join(DIR, name);
  });
  const program = ts.createProgram(files, {
    strict: true,
    noUncheckedIndexedAccess: true,
    noEmit: true,
    // The libraries' declarations are taken as they are (checking lib.dom alone takes seconds); the generated
    // types are an ordinary `.ts` file, checked with the program.
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2024.d.ts", "lib.dom.d.ts"],
    types: [],
  });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const at = d.file ? `${d.file.fileName.replace(`${DIR}/`, "")}:${(where?.line ?? 0) + 1}` : "(program)";
    return `${at} TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
  });
}

/** Every way the program could overrule the types instead of satisfying them. */
function castsIn(source: string): string[] {
  const found: string[] = [];
  const file = ts.createSourceFile("walkthrough.ts", source, ts.ScriptTarget.ES2022, true);
  const visit = (node: ts.Node) => {
    const line = file.getLineAndCharacterOfPosition(node.getStart()).line + 1;
    if (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node)) found.push(`line ${line}: ${node.getText()}`);
    if (ts.isNonNullExpression(node)) found.push(`line ${line}: non-null assertion ${node.getText()}`);
    if (node.kind === ts.SyntaxKind.AnyKeyword) found.push(`line ${line}: any`);
    ts.forEachChild(node, visit);
  };
  visit(file);
  for (const m of source.matchAll(/@ts-(ignore|expect-error|nocheck)/g)) found.push(`directive @ts-${m[1]}`);
  return found;
}

const program = readFileSync(FIXTURE, "utf8");

/**
 * Calls that must type-check (the defaults: `secure` and `orgRole` of a new key, `limit` of a list) and calls
 * that must not (a scoped key without scopes, a field of another kind, an unknown kind, a preset the API does
 * not offer, an unknown kind in the list filter): the check is live, and says what the document promises.
 */
const ACCEPTED_CALLS = {
  defaults: `POST("/v1/orgs/{orgId}/keys", { params: { path: { orgId: "o" } }, body: { kind: "rbac", name: "n" } })`,
  limit: `GET("/v1/orgs/{orgId}/keys", { params: { path: { orgId: "o" } } })`,
};
const REFUSED_CALLS = {
  noScopes: `POST("/v1/orgs/{orgId}/keys", { params: { path: { orgId: "o" } }, body: { kind: "scoped", name: "n" } })`,
  mixed: `POST("/v1/orgs/{orgId}/keys", { params: { path: { orgId: "o" } }, body: { kind: "legacy", name: "n", mode: "read", scopes: ["app:read"] } })`,
  kind: `POST("/v1/orgs/{orgId}/keys", { params: { path: { orgId: "o" } }, body: { kind: "admin", name: "n" } })`,
  days: `PATCH("/v1/orgs/{orgId}/keys/{keyId}", { params: { path: { orgId: "o", keyId: "k" } }, body: { expiresInDays: 45 } })`,
  listKind: `GET("/v1/orgs/{orgId}/keys", { params: { path: { orgId: "o" }, query: { kind: ["old"] } } })`,
};
const CALLS: Record<string, string> = { ...ACCEPTED_CALLS, ...REFUSED_CALLS };

/** Diagnostics of the walkthrough and of every call, checked as one program (a check takes seconds). */
let diagnostics: string[] = [];
const callFile = (name: string) => `call-${name}.ts`;

beforeAll(async () => {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  // openapi-typescript as a user runs it: default options.
  const ast = await openapiTS(JSON.stringify(await documentOfApp()));
  writeFileSync(join(DIR, "openapi.ts"), astToString(ast));
  const calls = Object.entries(CALLS).map(([name, call]) => [
    callFile(name),
    `import createClient from "openapi-fetch";\nimport type { paths } from "./openapi";\n` +
      `const api = createClient<paths>({ baseUrl: "http://x" });\nexport const call = () => api.${call};\n`,
  ]);
  diagnostics = typeCheck({ "walkthrough.ts": program, ...Object.fromEntries(calls) });
}, 120_000);

describe("a client generated from /openapi.json (openapi-typescript + openapi-fetch)", () => {
  it("type-checks the README walkthrough under strict TypeScript, with no casts", () => {
    expect(castsIn(program)).toEqual([]);
    // Nothing but the refused calls has a diagnostic: not the walkthrough, not the generated types.
    expect(diagnostics.filter((d) => !Object.keys(REFUSED_CALLS).some((name) => d.startsWith(`${callFile(name)}:`)))).toEqual([]);
  });

  it("lets defaulted request fields be left out, and refuses what the API refuses (the check is live)", () => {
    for (const name of Object.keys(REFUSED_CALLS)) {
      expect(diagnostics.some((d) => d.startsWith(`${callFile(name)}:`)), `${name} is refused`).toBe(true);
    }
    expect(castsIn(`const a = b as string; const c = d!; let e: any; // @ts-ignore`)).toHaveLength(4);
  });

  describe("running against the deployable worker", () => {
    let url = "";
    let stop = async () => {};
    beforeAll(async () => {
      const bundle = bundleWorker(join(mkdtempSync(join(tmpdir(), "keygate-typed-client-")), "dist"));
      const worker = await startLocalWorker({
        bundle,
        bindings: {
          BOOTSTRAP_SECRET,
          KEY_ENCRYPTION_SECRET: "typed-client-encryption-secret-0123456789abcdef",
          KEY_TAG_SECRET: "typed-client-key-tag-secret-0123456789abcdef",
        },
        handleStructuredLogs: () => undefined,
      });
      url = worker.url;
      stop = () => worker.mf.dispose();
    }, 180_000);
    afterAll(() => stop());

    it("serves the document the types were generated from", async () => {
      const res = await fetch(`${url}/openapi.json`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(await documentOfApp());
    });

    it("drives the README walkthrough, and every answer is what the README says", { timeout: 60_000 }, async () => {
      writeFileSync(PROGRAM, program);
      const { walkthrough } = await import(/* @vite-ignore */ pathToFileURL(PROGRAM).href);
      const session = await walkthrough(url, BOOTSTRAP_SECRET);
      expect(session.health).toBe(true);
      // The defaults the client left out were applied: secure, and org role `none` beside the app role.
      expect(session.created).toEqual([
        { kind: "rbac", secure: true, orgRole: "none", expires: false },
        { kind: "scoped", secure: true, orgRole: null, expires: true },
        { kind: "legacy", secure: false, orgRole: null, expires: false },
      ]);
      // `kind=rbac,scoped` as the document describes it (form, not exploded): both kinds, and the admin key.
      expect([...session.modernKinds].sort()).toEqual(["rbac", "rbac", "scoped"]);
      expect(session.legacyNames).toEqual(["Old CLI"]);
      expect(session.gotName).toBe("CI");
      expect(session.edited).toEqual({ name: "CI (publish)", scopes: ["app:publish", "project:deploy"] });
      expect(session.verdicts).toEqual({
        oldSecret: "NOT_FOUND",
        newSecret: "VALID",
        deployOnApp: "VALID",
        revoked: "REVOKED",
        adminAsOrgAdmin: "VALID",
      });
      expect(session.revealedMatches).toBe(true);
      expect(session.revokeStatus).toBe(204);
      expect(session.afterRevoke).toEqual({ status: 404, code: "NOT_FOUND" });
      expect(session.apps).toEqual(["mobile"]);
      expect(session.policy).toMatchObject({ requireExpiration: false, maxLifetimeDays: null });
      expect([...session.auditActions].sort()).toEqual(
        // The org's first admin key, then the walkthrough's three.
        ["org.create", "key.create", "app.create", "key.create", "key.create", "key.create", "key.regenerate", "key.reveal", "key.revoke", "key.update"].sort(),
      );
    });
  });
});
