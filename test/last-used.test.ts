import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../src/index";
import { LAST_USED_WRITE_INTERVAL_MS } from "../src/verification/last-used";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg } from "./helpers";
import { createKeyAs } from "./key-fixtures";

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Last used Co");
});

const lastUsed = async (keyId: string) =>
  (await env.DB.prepare("select last_used_at as t from api_keys where id = ?").bind(keyId).first<{ t: number | null }>())!.t;

describe("lastUsedAt", () => {
  it("is written off the response path (waitUntil) and shows in the key list", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "used", scopes: ["app:read"] });
    expect(await lastUsed(key.id)).toBeNull();
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request("https://gateway.test/v1/keys/verify", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: key.key }) }),
      env,
      ctx,
    );
    expect(res.status).toBe(200);
    await waitOnExecutionContext(ctx);
    const written = await lastUsed(key.id);
    expect(written).toBeGreaterThan(Date.now() - 60_000);
    const list = await call("GET", `/v1/orgs/${org.orgId}/keys?kind=scoped`, { key: org.adminKey });
    const listed = list.body.keys.find((k: { id: string }) => k.id === key.id);
    expect(Date.parse(listed.lastUsedAt)).toBe(written);
  });

  it("writes at most once per key per interval in an isolate, then again after it", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "busy", scopes: ["app:read"] });
    const writes: Promise<unknown>[] = [];
    const waitUntil = (p: Promise<unknown>) => void writes.push(p);
    const t0 = Date.now();
    for (let i = 0; i < 50; i++) await verifyKey(env, key.key, { waitUntil, now: t0 + i * 1000 }); // 49 s of traffic
    expect(writes).toHaveLength(1);
    await Promise.all(writes);
    expect(await lastUsed(key.id)).toBe(t0);
    await verifyKey(env, key.key, { waitUntil, now: t0 + LAST_USED_WRITE_INTERVAL_MS });
    expect(writes).toHaveLength(2);
    await Promise.all(writes);
    expect(await lastUsed(key.id)).toBe(t0 + LAST_USED_WRITE_INTERVAL_MS);
  });

  it("is not written for refused verifications", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "refused", scopes: ["app:read"] });
    const writes: Promise<unknown>[] = [];
    await verifyKey(env, key.key, { permission: "app:admin", waitUntil: (p) => void writes.push(p) });
    expect(writes).toHaveLength(0);
    expect(await lastUsed(key.id)).toBeNull();
  });
});
