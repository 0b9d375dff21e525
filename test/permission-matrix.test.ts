import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { verifyKey } from "../src/verification/verify-key";
import { call } from "./helpers";
import { createKeyAs } from "./key-fixtures";
import { CALLERS, matrixOrg, type Caller } from "./matrix-fixtures";

/**
 * Each caller kind × each management action and each permission, the expected answer written out by
 * hand from the product's rules (not computed with the evaluator under test).
 */
let org: Awaited<ReturnType<typeof matrixOrg>>;
/** The key the disable and enable columns act on: app:read, so managing it needs app:read too. */
let target: { id: string };
beforeAll(async () => {
  org = await matrixOrg("Permission matrix");
  target = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "target", scopes: ["app:read"] });
});

const ACTIONS = ["list keys", "get key", "create key", "get policy", "put policy", "list apps", "create app", "audit log", "disable key", "enable key", "verify as verifier"] as const;
// prettier-ignore
const MANAGEMENT: Record<Caller, number[]> = {
  //                                 list get  create pol  put  apps +app audit dis  ena  verifier
  admin:                            [200, 200, 201, 200, 200, 200, 201, 200, 200, 200, 200],
  member:                           [403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403],
  "app admin on A":                 [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403],
  "app developer on A":             [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403],
  "app uploader on A":              [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403],
  "app reader on A":                [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403],
  "scope apiKeyManagement":         [200, 200, 403, 200, 403, 403, 403, 200, 403, 403, 403],
  "scope apiKeyManagement+app:read":[200, 200, 201, 200, 403, 403, 403, 200, 200, 200, 403],
  "scope app:publish":              [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403],
  "scope project:read-rc":          [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403],
  "scope project:deploy":           [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403],
  "scope org:read":                 [403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403],
  "scope keys:verify":              [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200],
  "legacy read":                    [403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403],
  "legacy upload":                  [403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403],
  "legacy write":                   [403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403],
  "legacy all":                     [200, 200, 201, 200, 200, 200, 201, 200, 200, 200, 200],
};

function act(action: (typeof ACTIONS)[number], key: string, i: number) {
  const base = `/v1/orgs/${org.orgId}`;
  switch (action) {
    case "list keys": return call("GET", `${base}/keys`, { key });
    case "get key": return call("GET", `${base}/keys/${org.keys["scope app:publish"].id}`, { key });
    case "create key": return call("POST", `${base}/keys`, { key, body: { kind: "scoped", name: `made ${i}`, scopes: ["app:read"] } });
    case "get policy": return call("GET", `${base}/policy`, { key });
    case "put policy": return call("PUT", `${base}/policy`, { key, body: { requireExpiration: false, maxLifetimeDays: null } });
    case "list apps": return call("GET", `${base}/apps`, { key });
    case "create app": return call("POST", `${base}/apps`, { key, body: { name: `app ${i}` } });
    case "audit log": return call("GET", `${base}/audit-log`, { key });
    case "disable key": return call("POST", `${base}/keys/${target.id}/disable`, { key });
    case "enable key": return call("POST", `${base}/keys/${target.id}/enable`, { key });
    // The verifier credential: asserting the caller's address needs keys:verify.
    case "verify as verifier": return call("POST", "/v1/keys/verify", { key, body: { key: org.keys["scope app:publish"].key, ip: "192.0.2.1" } });
  }
}

describe("permission matrix: management actions", () => {
  let n = 0;
  for (const caller of Object.keys(CALLERS) as Caller[]) {
    it(`${caller}: ${ACTIONS.map((a, i) => `${a} ${MANAGEMENT[caller][i]}`).join(", ")}`, async () => {
      const got = [];
      for (const [i, action] of ACTIONS.entries()) got.push((await act(action, org.keys[caller].key, n++ * ACTIONS.length + i)).status);
      expect(got).toEqual(MANAGEMENT[caller]);
    });
  }
});

const CHECKS = [
  ["org:read", null], ["org:admin", null], ["apiKeyManagement", null], ["app:read", "A"], ["app:read", "B"],
  ["app:upload", "A"], ["app:publish", "A"], ["app:manage", "A"], ["app:admin", "A"], ["project:read-rc", null], ["project:deploy", null],
  ["project:deploy", "A"], ["keys:verify", null],
] as const;
// prettier-ignore
const VERIFY: Record<Caller, string> = {
  //                                 org  adm  akm  rdA  rdB  upA  pbA  mgA  adA  rc   dep  depA  vfy
  admin:                            "1    1    1    1    1    1    1    1    1    1    1    1    1",
  member:                           "1    0    0    0    0    0    0    0    0    0    0    0    0",
  "app admin on A":                 "0    0    0    1    0    1    1    1    1    0    0    1    0",
  "app developer on A":             "0    0    0    1    0    1    1    1    0    0    0    1    0",
  "app uploader on A":              "0    0    0    1    0    1    0    0    0    0    0    0    0",
  "app reader on A":                "0    0    0    1    0    0    0    0    0    0    0    0    0",
  "scope apiKeyManagement":         "0    0    1    0    0    0    0    0    0    0    0    0    0",
  "scope apiKeyManagement+app:read":"0    0    1    1    1    0    0    0    0    0    0    0    0",
  "scope app:publish":              "0    0    0    0    0    0    1    0    0    0    0    0    0",
  "scope project:read-rc":          "0    0    0    0    0    0    0    0    0    1    0    0    0",
  "scope project:deploy":           "0    0    0    0    0    0    0    0    0    0    1    1    0",
  "scope org:read":                 "1    0    0    0    0    0    0    0    0    0    0    0    0",
  "scope keys:verify":              "0    0    0    0    0    0    0    0    0    0    0    0    1",
  "legacy read":                    "1    0    0    1    1    0    0    0    0    0    0    0    0",
  "legacy upload":                  "1    0    0    1    1    1    0    0    0    0    0    0    0",
  "legacy write":                   "1    0    0    1    1    1    1    1    0    1    1    1    0",
  "legacy all":                     "1    1    1    1    1    1    1    1    1    1    1    1    1",
};

describe("permission matrix: verification of each permission", () => {
  for (const caller of Object.keys(CALLERS) as Caller[]) {
    it(`${caller}`, async () => {
      const got = [];
      for (const [permission, app] of CHECKS) {
        const result = await verifyKey(env, org.keys[caller].key, { permission, app: app ? org.apps[app] : undefined });
        expect(["VALID", "INSUFFICIENT_PERMISSIONS"]).toContain(result.code);
        got.push(result.valid ? "1" : "0");
      }
      expect(got.join(" ")).toBe(VERIFY[caller].split(/\s+/).join(" "));
    });
  }
});
