import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import { appRecordName } from "../src/storage/key-record";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg, expectStatus } from "./helpers";
import { createKeyAs, seedApp } from "./key-fixtures";

/**
 * An app permission holds only on apps of the key's own organization. Grants that cover "every app"
 * (org admin, a scope, a legacy mode) used to answer VALID for another organization's app id.
 */

type Org = Awaited<ReturnType<typeof createOrg>>;
let a: Org;
let b: Org;
let apps: { own: string; ownWithoutRecord: string; otherOrgs: string; unknown: string };
const keys: Record<string, string> = {};

/** What each kind of key may do with app:upload on each app. */
const KINDS = {
  "org admin": { body: { kind: "rbac", orgRole: "admin" }, ownApps: true },
  "app uploader on the own app": { body: { kind: "rbac", orgRole: "none", appRoles: [{ appId: "OWN", role: "uploader" }] }, ownApps: "own-only" },
  "scope app:upload": { body: { kind: "scoped", scopes: ["app:upload", "app:read"] }, ownApps: true },
  "legacy all": { body: { kind: "legacy", mode: "all" }, ownApps: true },
  "legacy upload": { body: { kind: "legacy", mode: "upload" }, ownApps: true },
} as const;

beforeAll(async () => {
  a = await createOrg("Org A");
  b = await createOrg("Org B");
  const created = async (org: Org, name: string) => {
    const res = await call("POST", `/v1/orgs/${org.orgId}/apps`, { key: org.adminKey, body: { name } });
    expectStatus(res, 201);
    return res.body.id as string;
  };
  apps = {
    own: await created(a, "mobile"),
    // Inserted straight into D1, as apps made before `app:` records existed: the verifier reads D1.
    ownWithoutRecord: await seedApp(a.orgId, "legacy-app"),
    otherOrgs: await created(b, "their-app"),
    unknown: newId(),
  };
  for (const [kind, { body }] of Object.entries(KINDS)) {
    const spec = JSON.parse(JSON.stringify(body).replace('"OWN"', `"${apps.own}"`));
    keys[kind] = (await createKeyAs(a.adminKey, a.orgId, { name: kind, ...spec })).key;
  }
});

const verifier = () => (exports as unknown as { KeyVerifier: { verify: (k: string, o?: object) => Promise<{ code: string }> } }).KeyVerifier;

function expected(kind: keyof typeof KINDS, app: keyof typeof apps): "VALID" | "INSUFFICIENT_PERMISSIONS" {
  if (app === "otherOrgs" || app === "unknown") return "INSUFFICIENT_PERMISSIONS";
  const { ownApps } = KINDS[kind];
  if (ownApps === "own-only") return app === "own" ? "VALID" : "INSUFFICIENT_PERMISSIONS";
  return "VALID";
}

describe("an app permission holds only on apps of the key's own organization", () => {
  for (const kind of Object.keys(KINDS) as (keyof typeof KINDS)[]) {
    for (const app of ["own", "ownWithoutRecord", "otherOrgs", "unknown"] as const) {
      const want = expected(kind, app);
      it(`${kind} on ${app} app: ${want} at the verify endpoint, over RPC and in the verifier, twice (cold and warm)`, async () => {
        for (let round = 0; round < 2; round++) {
          const body = { key: keys[kind], permission: "app:upload", app: apps[app] };
          const res = await call("POST", "/v1/keys/verify", { body });
          expectStatus(res, 200);
          expect(res.body.code, res.text).toBe(want);
          expect((await verifier().verify(keys[kind]!, { permission: "app:upload", app: apps[app] })).code).toBe(want);
          expect((await verifyKey(env, keys[kind]!, { permission: "app:upload", app: apps[app], strict: round === 1 })).code).toBe(want);
        }
      });

      it(`${kind} on ${app} app through the gateway: ${want === "VALID" ? "forwarded" : "403, never forwarded"}`, async () => {
        const read = await call("GET", `/gw/demo/apps/${apps[app]}/info`, { key: keys[kind] });
        const upload = await call("POST", `/gw/demo/apps/${apps[app]}/bundles`, { key: keys[kind], body: { version: "1.0.0" } });
        for (const res of [read, upload]) {
          if (want === "VALID") expect(res.status, res.text).toBeLessThan(400);
          else {
            expectStatus(res, 403);
            expect(res.body.error.details.reason).toBe("INSUFFICIENT_PERMISSIONS");
          }
        }
      });
    }
  }

  it("a permission that needs no app is unaffected by the app check", async () => {
    const res = await call("POST", "/v1/keys/verify", { body: { key: keys["org admin"], permission: "org:read" } });
    expect(res.body.code, res.text).toBe("VALID");
  });

  it("a deleted app stops being covered by org-wide grants", async () => {
    const doomed = await call("POST", `/v1/orgs/${a.orgId}/apps`, { key: a.adminKey, body: { name: "doomed" } });
    expectStatus(doomed, 201);
    const appId = doomed.body.id as string;
    expect(await env.KEYS_KV.get(appRecordName(appId), "json")).toEqual({ orgId: a.orgId });
    expectStatus(await call("DELETE", `/v1/orgs/${a.orgId}/apps/${appId}`, { key: a.adminKey }), 204);
    expect(await env.KEYS_KV.get(appRecordName(appId))).toBeNull();
  });
});
