import { listDurableObjectIds } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import { call, createOrg } from "./helpers";
import { createKeyAs } from "./key-fixtures";

/**
 * Issue 21, point 9: a management route never creates a key authority for an id that is not a key of
 * the org. The directory (D1) is asked first; a made-up id answers 404 and no Durable Object exists
 * for it afterwards. A key that exists, revoked included, still goes to its authority.
 */

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Directory Co");
});

const ROUTES: [string, (keyId: string) => string, unknown?][] = [
  ["DELETE", (id) => `/v1/orgs/${org.orgId}/keys/${id}`],
  ["POST", (id) => `/v1/orgs/${org.orgId}/keys/${id}/regenerate`],
  ["POST", (id) => `/v1/orgs/${org.orgId}/keys/${id}/regenerate`, { overlapSeconds: 60 }],
  ["POST", (id) => `/v1/orgs/${org.orgId}/keys/${id}/disable`],
  ["POST", (id) => `/v1/orgs/${org.orgId}/keys/${id}/enable`],
  ["POST", (id) => `/v1/orgs/${org.orgId}/keys/${id}/end-overlap`],
  ["POST", (id) => `/v1/orgs/${org.orgId}/keys/${id}/reveal`],
  ["PATCH", (id) => `/v1/orgs/${org.orgId}/keys/${id}`, { name: "renamed" }],
  ["GET", (id) => `/v1/orgs/${org.orgId}/keys/${id}`],
];

const authorityExists = async (keyId: string) => {
  const id = env.KEY_AUTHORITY.idFromName(keyId).toString();
  return (await listDurableObjectIds(env.KEY_AUTHORITY)).some((existing) => existing.toString() === id);
};

describe("management routes check the directory before they create a key's authority", () => {
  it("answer a made-up key id 404 on every key route, and no Durable Object is created for it", async () => {
    for (const [method, path, body] of ROUTES) {
      const madeUp = newId();
      const res = await call(method, path(madeUp), { key: org.adminKey, body });
      expect(res.status, `${method} ${path(madeUp)}: ${res.text}`).toBe(404);
      expect(res.body.error.code, res.text).toBe("NOT_FOUND");
      expect(await authorityExists(madeUp), `${method} ${path(madeUp)} created an authority`).toBe(false);
    }
  });

  it("answer 404 for another org's key and leave that key as it was", async () => {
    const other = await createOrg("Other Directory Co");
    const theirs = await createKeyAs(other.adminKey, other.orgId, { kind: "rbac", name: "theirs", orgRole: "member" });
    const res = await call("DELETE", `/v1/orgs/${org.orgId}/keys/${theirs.id}`, { key: org.adminKey });
    expect(res.status, res.text).toBe(404);
    expect((await call("GET", `/v1/orgs/${other.orgId}/keys/${theirs.id}`, { key: other.adminKey })).body.status).not.toBe("revoked");
  });

  it("still sends a key that exists, revoked included, to its authority", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "doomed", orgRole: "member" });
    const revoked = await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey });
    expect(revoked.status, revoked.text).toBe(204);
    expect(await authorityExists(key.id)).toBe(true);
    // Revoking again is the authority's answer (404, after it invalidated the records again).
    const again = await call("DELETE", `/v1/orgs/${org.orgId}/keys/${key.id}`, { key: org.adminKey });
    expect(again.status, again.text).toBe(404);
  });
});
