import { createExecutionContext, runDurableObjectAlarm, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { authorityFor, LAST_USED_WRITE_INTERVAL_MS } from "../src/durable-objects/key-authority";
import worker from "../src/index";
import { Edge } from "../src/verification/edge";
import { verifyKey } from "../src/verification/verify-key";
import { call, createOrg } from "./helpers";
import { createKeyAs } from "./key-fixtures";
import { keyAuthoritiesWith } from "./fault-bindings";

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Last used Co");
});

/**
 * The bindings with the key authorities' `touch` (a use reported) counted: what reaches the authority,
 * whatever else the verifier runs off the response path (lease renewals, usage counts).
 */
function countingTouches() {
  const touches: number[] = [];
  const KEY_AUTHORITY = keyAuthoritiesWith(
    "touch",
    (stub) => (keyId: string, usedAt: number, previous?: string) => (touches.push(usedAt), stub.touch(keyId, usedAt, previous)),
  );
  return { env: { ...env, KEY_AUTHORITY }, touches };
}

const lastUsed = async (keyId: string) =>
  (await env.DB.prepare("select last_used_at as t from api_keys where id = ?").bind(keyId).first<{ t: number | null }>())!.t;

describe("lastUsedAt", () => {
  it("is reported off the response path (waitUntil) and shows in the key list", async () => {
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

  it("an isolate reports a key's use at most once a minute, whatever its traffic", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "busy", scopes: ["app:read"] });
    const edge = new Edge();
    const background: Promise<unknown>[] = [];
    const waitUntil = (p: Promise<unknown>) => void background.push(p);
    const { env: counted, touches } = countingTouches();
    const t0 = Date.now();
    for (let i = 0; i < 50; i++) await verifyKey(counted, key.key, { edge, waitUntil, now: t0 + i * 1000 }); // 49 s of traffic
    expect(touches).toEqual([t0]);
    await verifyKey(counted, key.key, { edge, waitUntil, now: t0 + LAST_USED_WRITE_INTERVAL_MS });
    expect(touches).toEqual([t0, t0 + LAST_USED_WRITE_INTERVAL_MS]);
    await Promise.all(background);
  });

  it("reaches D1 at most once a minute from all isolates together: later uses arrive with the authority's alarm", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "many isolates", scopes: ["app:read"] });
    const t0 = Date.now();
    const background: Promise<unknown>[] = [];
    const { env: counted, touches } = countingTouches();
    // Three isolates (locations), each reporting its first use of the key.
    for (let i = 0; i < 3; i++) await verifyKey(counted, key.key, { edge: new Edge(), waitUntil: (p) => void background.push(p), now: t0 + i });
    await Promise.all(background);
    expect(touches).toEqual([t0, t0 + 1, t0 + 2]);
    expect(await lastUsed(key.id)).toBe(t0); // the first report was written at once, the others wait
    expect(await runDurableObjectAlarm(authorityFor(env, key.id))).toBe(true);
    expect(await lastUsed(key.id)).toBe(t0 + 2);
  });

  it("is not reported for refused verifications", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "refused", scopes: ["app:read"] });
    const background: Promise<unknown>[] = [];
    const { env: counted, touches } = countingTouches();
    await verifyKey(counted, key.key, { permission: "app:admin", waitUntil: (p) => void background.push(p) });
    await Promise.all(background);
    expect(touches).toEqual([]);
    expect(await lastUsed(key.id)).toBeNull();
  });
});
