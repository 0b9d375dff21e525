import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleWorker, startLocalWorker } from "../scripts/local-worker";

/**
 * The example Worker (examples/protected-api) as a user deploys it beside keygate: both bundled as
 * `wrangler deploy` would, served by one workerd, the example calling the gateway's KeyVerifier
 * entrypoint over its KEYGATE service binding. Keys are made and revoked through the gateway's API.
 * Runs in Node (the `node` project): the workerd project serves one Worker under test, and the example
 * must be a second one that calls the first.
 */

const BOOTSTRAP_SECRET = "example-bootstrap-secret-0123456789";
const EXAMPLE = "keygate-example-protected-api";
/** The same example, its KEYGATE binding pointed at a Worker that is not the gateway. */
const EXAMPLE_WITHOUT_GATEWAY = "keygate-example-without-gateway";

let gateway: string;
let example: Awaited<ReturnType<Miniflare["getWorker"]>>;
let exampleWithoutGateway: typeof example;
let stop: () => Promise<void>;

/** `wrangler deploy --dry-run` of the example: what a user would upload. */
function bundleExample(outDir: string): string {
  const run = spawnSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outDir, "-c", "examples/protected-api/wrangler.toml"], {
    encoding: "utf8",
  });
  if (run.status !== 0) throw new Error(`bundling the example failed:\n${run.stdout}\n${run.stderr}`);
  return outDir;
}

function exampleWorker(name: string, dir: string, keygate: string | { name: string; entrypoint: string }) {
  return {
    name,
    modules: true,
    scriptPath: join(dir, "index.js"),
    modulesRoot: dir,
    compatibilityDate: "2026-10-01",
    compatibilityFlags: ["nodejs_compat"],
    serviceBindings: { KEYGATE: keygate },
  };
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "keygate-example-"));
  const exampleDir = bundleExample(join(dir, "example"));
  const worker = await startLocalWorker({
    bundle: bundleWorker(join(dir, "gateway")),
    bindings: {
      BOOTSTRAP_SECRET,
      KEY_ENCRYPTION_SECRET: "example-encryption-secret-0123456789abcdef",
      KEY_TAG_SECRET: "example-key-tag-secret-0123456789abcdef",
    },
    extraWorkers: [
      // examples/protected-api/wrangler.toml's [[services]]: the gateway's KeyVerifier entrypoint.
      exampleWorker(EXAMPLE, exampleDir, { name: "keygate", entrypoint: "KeyVerifier" }),
      exampleWorker(EXAMPLE_WITHOUT_GATEWAY, exampleDir, "keygate-demo-upstream"),
    ],
    handleStructuredLogs: () => undefined,
  });
  gateway = worker.url;
  example = await worker.mf.getWorker(EXAMPLE);
  exampleWithoutGateway = await worker.mf.getWorker(EXAMPLE_WITHOUT_GATEWAY);
  stop = () => worker.mf.dispose();
}, 120_000);

afterAll(async () => stop?.());

async function api(method: string, path: string, key: string, body?: unknown) {
  const res = await fetch(gateway + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** A call to the example Worker, as its own clients make it. */
async function call(method: string, path: string, key?: string, worker = example, from = "198.51.100.7") {
  const headers: Record<string, string> = { "cf-connecting-ip": from, ...(key ? { authorization: `Bearer ${key}` } : {}) };
  const res = await worker.fetch(`https://api.example.com${path}`, { method, headers });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

describe("a Worker protected by keygate over a service binding", () => {
  let org: string;
  let admin: string;
  let app: string;
  let otherApp: string;
  let reader: { id: string; key: string };

  beforeAll(async () => {
    const created = await api("POST", "/v1/orgs", BOOTSTRAP_SECRET, { name: "Acme" });
    expect(created.status).toBe(201);
    org = created.body.org.id;
    admin = created.body.key.key;
    app = (await api("POST", `/v1/orgs/${org}/apps`, admin, { name: "mobile" })).body.id;
    otherApp = (await api("POST", `/v1/orgs/${org}/apps`, admin, { name: "web" })).body.id;
    const key = await api("POST", `/v1/orgs/${org}/keys`, admin, {
      kind: "rbac",
      name: "Reader",
      orgRole: "none",
      appRoles: [{ appId: app, role: "reader" }],
    });
    expect(key.status).toBe(201);
    reader = { id: key.body.id, key: key.body.key };
  });

  it("lets a key with the route's permission through, with its identity on the context", async () => {
    const read = await call("GET", `/apps/${app}/builds`, reader.key);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({ appId: app, builds: [], readBy: { keyId: reader.id, orgId: org, name: "Reader" } });

    const deploy = await call("POST", "/deploy", admin);
    expect(deploy.status).toBe(200);
    expect(deploy.body).toMatchObject({
      deployed: true,
      by: { orgId: org, name: "Admin key", kind: "rbac", permissions: expect.arrayContaining([{ permission: "project:deploy", app: null }]) },
    });
  });

  it("refuses a request without a key: 401 MISSING with a Bearer challenge", async () => {
    const res = await call("GET", `/apps/${app}/builds`);
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: { code: "MISSING" } });
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
  });

  it("refuses a wrong key with 401 and the verdict's code", async () => {
    const garbage = await call("POST", "/deploy", "kgw_not-a-key");
    expect(garbage).toMatchObject({ status: 401, body: { error: { code: "MALFORMED" } } });

    // A key's previous secret, after a regenerate: well-formed, minted here, and no longer anyone's.
    const ci = await api("POST", `/v1/orgs/${org}/keys`, admin, { kind: "scoped", name: "CI", scopes: ["project:deploy"] });
    expect((await call("POST", "/deploy", ci.body.key)).status).toBe(200);
    expect((await api("POST", `/v1/orgs/${org}/keys/${ci.body.id}/regenerate`, admin)).status).toBe(200);
    const old = await call("POST", "/deploy", ci.body.key);
    expect(old.status).toBe(401);
    expect(old.body).toMatchObject({ error: { code: "NOT_FOUND" } });
  });

  it("refuses a valid key without the route's permission with 403, on another app too", async () => {
    const upload = await call("POST", `/apps/${app}/builds`, reader.key);
    expect(upload).toMatchObject({ status: 403, body: { error: { code: "INSUFFICIENT_PERMISSIONS" } } });
    const elsewhere = await call("GET", `/apps/${otherApp}/builds`, reader.key);
    expect(elsewhere).toMatchObject({ status: 403, body: { error: { code: "INSUFFICIENT_PERMISSIONS" } } });
    const deploy = await call("POST", "/deploy", reader.key);
    expect(deploy).toMatchObject({ status: 403, body: { error: { code: "INSUFFICIENT_PERMISSIONS" } } });
  });

  it("checks a key limited to allowed networks against the caller's address: 403 from elsewhere", async () => {
    const made = await api("POST", `/v1/orgs/${org}/keys`, admin, {
      kind: "scoped",
      name: "Office deploys",
      scopes: ["project:deploy"],
      allowedNetworks: ["10.0.0.0/8"],
    });
    expect(made.status).toBe(201);
    expect((await call("POST", "/deploy", made.body.key, example, "10.1.2.3")).status).toBe(200);
    const outside = await call("POST", "/deploy", made.body.key, example, "203.0.113.9");
    expect(outside).toMatchObject({ status: 403, body: { error: { code: "IP_NOT_ALLOWED" } } });
  });

  it("refuses a key revoked through the API on its very next call", async () => {
    // Verified a moment ago, so the verdict is leased where the example runs: the revoke must end that lease.
    expect((await call("GET", `/apps/${app}/builds`, reader.key)).status).toBe(200);
    expect((await api("DELETE", `/v1/orgs/${org}/keys/${reader.id}`, admin)).status).toBe(204);
    const res = await call("GET", `/apps/${app}/builds`, reader.key);
    expect(res).toMatchObject({ status: 401, body: { error: { code: "REVOKED" } } });
  });

  it("fails closed when the gateway cannot answer: 503, and the route never runs", async () => {
    const res = await call("POST", "/deploy", admin, exampleWithoutGateway);
    expect(res).toMatchObject({ status: 503, body: { error: { code: "UNAVAILABLE" } } });
    expect(res.headers.get("retry-after")).toBe("1");
  });
});
