import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { newId } from "../src/domain/key-format";
import type { OrgPolicy } from "../src/domain/policy";
import { authorityFor, type KeyAuthority } from "../src/durable-objects/key-authority";
import { askOrgAuthority } from "../src/durable-objects/org-authority";
import { db } from "../src/storage/db";
import { apps } from "../src/storage/schema";
import { call, expectStatus } from "./helpers";

/**
 * Fixtures for the key route tests. Apps are written straight to D1 and the policy through the org's
 * authority, so these tests depend only on the key routes they test.
 */

/** An app of `orgId`, inserted into D1 directly. */
export async function seedApp(orgId: string, name = `app-${crypto.randomUUID().slice(0, 8)}`): Promise<string> {
  const id = newId();
  await db(env.DB).insert(apps).values({ id, orgId, name, createdAt: Date.now() });
  return id;
}

/** Creates a key through the API as `callerKey`, asserting 201; returns the response body. */
export async function createKeyAs(callerKey: string, orgId: string, body: Record<string, unknown>) {
  const res = await call("POST", `/v1/orgs/${orgId}/keys`, { key: callerKey, body });
  expectStatus(res, 201);
  return res.body as Record<string, any> & { id: string; key: string };
}

/** The raw D1 row of a key, every column, exactly as stored. */
export async function storedRow(keyId: string) {
  return env.DB.prepare("select * from api_keys where id = ?").bind(keyId).first<Record<string, unknown>>();
}

/** What a key change writes, to prove a refused request wrote nothing. */
export async function writeCounts() {
  const row = await env.DB.prepare(
    `select (select count(*) from api_keys) as keys,
            (select coalesce(max(updated_at), 0) from api_keys) as keysUpdatedAt,
            (select count(*) from key_app_roles) as roles,
            (select count(*) from audit_log) as audit`,
  ).first<{ keys: number; keysUpdatedAt: number; roles: number; audit: number }>();
  return row!;
}

/** Sets the org's key policy through its authority, as the policy endpoint does. */
export async function setPolicy(orgId: string, policy: OrgPolicy) {
  await askOrgAuthority(env, orgId, (a) => a.setPolicy(orgId, policy, { actorKeyId: null, requestId: "test" }));
}

/** Waits until the KV writes the key's authority started have landed (the cached mode reads them). */
export async function authoritySettled(keyId: string) {
  await runInDurableObject(authorityFor(env, keyId), (instance: KeyAuthority) => instance.kvSettled());
}

/** The authority's caller for changes the tests make directly: not limited by a key's access. */
export const SYSTEM_ACTOR = { actorKeyId: null, requestId: "test", grants: null, expiresAt: null };

/** Revokes a key through its authority, as the revoke endpoint does. */
export async function revoke(keyId: string, orgId: string) {
  const done = await authorityFor(env, keyId).revoke(keyId, orgId, SYSTEM_ACTOR, { force: true });
  if (!done.ok) throw new Error(`could not revoke ${keyId}: ${JSON.stringify(done)}`);
}

/** Makes a key that has never been used already expired: its first verification reads this row. */
export async function expireBeforeFirstUse(keyId: string) {
  await env.DB.prepare("update api_keys set expires_at = ? where id = ?").bind(Date.now() - 1000, keyId).run();
}
