import { env } from "cloudflare:workers";
import { verifyKey } from "../src/verification/verify-key";
import { createOrg } from "./helpers";
import { createKeyAs, seedApp } from "./key-fixtures";

/** Every kind of caller key the matrices run, created by an org admin in a fresh org. */
export const CALLERS = {
  admin: { kind: "rbac", orgRole: "admin" },
  member: { kind: "rbac", orgRole: "member" },
  "app admin on A": { kind: "rbac", orgRole: "none", appRoles: [{ appId: "A", role: "admin" }] },
  "app developer on A": { kind: "rbac", orgRole: "none", appRoles: [{ appId: "A", role: "developer" }] },
  "app uploader on A": { kind: "rbac", orgRole: "none", appRoles: [{ appId: "A", role: "uploader" }] },
  "app reader on A": { kind: "rbac", orgRole: "none", appRoles: [{ appId: "A", role: "reader" }] },
  "scope apiKeyManagement": { kind: "scoped", scopes: ["apiKeyManagement"] },
  "scope apiKeyManagement+app:read": { kind: "scoped", scopes: ["apiKeyManagement", "app:read"] },
  "scope app:publish": { kind: "scoped", scopes: ["app:publish"] },
  "scope project:read-rc": { kind: "scoped", scopes: ["project:read-rc"] },
  "scope project:deploy": { kind: "scoped", scopes: ["project:deploy"] },
  "scope org:read": { kind: "scoped", scopes: ["org:read"] },
  "scope keys:verify": { kind: "scoped", scopes: ["keys:verify"] },
  "legacy read": { kind: "legacy", mode: "read" },
  "legacy upload": { kind: "legacy", mode: "upload" },
  "legacy write": { kind: "legacy", mode: "write" },
  "legacy all": { kind: "legacy", mode: "all" },
} as const;
export type Caller = keyof typeof CALLERS;

/** An org with apps A and B and one key of every caller kind. */
export async function matrixOrg(name: string) {
  const org = await createOrg(name);
  const apps = { A: await seedApp(org.orgId, "A"), B: await seedApp(org.orgId, "B") };
  const keys = {} as Record<Caller, { id: string; key: string }>;
  for (const [caller, spec] of Object.entries(CALLERS) as [Caller, Record<string, unknown>][]) {
    const body = JSON.parse(JSON.stringify(spec).replaceAll('"appId":"A"', `"appId":"${apps.A}"`));
    keys[caller] = await createKeyAs(org.adminKey, org.orgId, { name: caller, ...body });
  }
  // Fill every caller's cache record now: a fill is not a change a refused request makes.
  for (const { key } of Object.values(keys)) await verifyKey(env, key);
  return { ...org, apps, keys };
}
