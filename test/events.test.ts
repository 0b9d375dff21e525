import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { db } from "../src/storage/db";
import { publishPending } from "../src/storage/events";
import { insertKeyStatements, prepareKey } from "../src/storage/keys";
import { apps } from "../src/storage/schema";
import { newId } from "../src/domain/key-format";
import { call, createOrg, expectStatus, sleep } from "./helpers";
import { createKeyAs } from "./key-fixtures";

/**
 * Every lifecycle change is an event, written in the same D1 batch as the change and its audit entry
 * (the outbox): one event per committed change, none for a change that did not commit, never key
 * material, and every event is published.
 */

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Eventful");
});
const keysPath = (id = "") => `/v1/orgs/${org.orgId}/keys${id ? `/${id}` : ""}`;

async function outbox() {
  const { results } = await env.DB.prepare("select id, type, subject_id, data, published_at from events where org_id = ? order by rowid").bind(org.orgId).all<{
    id: string;
    type: string;
    subject_id: string;
    data: string;
    published_at: number | null;
  }>();
  return results;
}
const auditCount = async () => (await env.DB.prepare("select count(*) as n from audit_log where org_id = ?").bind(org.orgId).first<{ n: number }>())!.n;

describe("the outbox", () => {
  it("records one event per change, in order, with the audit entry's facts and no secret", async () => {
    const before = (await outbox()).length;
    const app = await call("POST", `/v1/orgs/${org.orgId}/apps`, { key: org.adminKey, body: { name: "evented" } });
    expectStatus(app, 201);
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "evented", orgRole: "none", appRoles: [{ appId: app.body.id, role: "reader" }] });
    const as = { key: org.adminKey };
    expectStatus(await call("PATCH", keysPath(key.id), { ...as, body: { name: "renamed" } }), 200);
    const regen = await call("POST", `${keysPath(key.id)}/regenerate`, { ...as, body: { overlapSeconds: 60 } });
    expectStatus(regen, 200);
    expectStatus(await call("POST", `${keysPath(key.id)}/end-overlap`, as), 200);
    expectStatus(await call("POST", `${keysPath(key.id)}/disable`, as), 200);
    expectStatus(await call("POST", `${keysPath(key.id)}/enable`, as), 200);
    expectStatus(await call("POST", `${keysPath(key.id)}/reveal`, as), 409); // secure: nothing revealed, no event
    expectStatus(await call("DELETE", keysPath(key.id), as), 204);
    expectStatus(await call("PUT", `/v1/orgs/${org.orgId}/policy`, { ...as, body: { requireExpiration: false, maxLifetimeDays: null } }), 200);
    expectStatus(await call("DELETE", `/v1/orgs/${org.orgId}/apps/${app.body.id}`, as), 204);

    const events = (await outbox()).slice(before);
    expect(events.map((e) => e.type)).toEqual([
      "app.created",
      "key.created",
      "key.updated",
      "key.regenerated",
      "key.rotation_ended",
      "key.disabled",
      "key.enabled",
      "key.revoked",
      "policy.updated",
      "app.deleted",
    ]);
    expect(JSON.parse(events[2]!.data)).toMatchObject({ name: "renamed", changes: { name: { before: "evented", after: "renamed" } }, actorKeyId: org.adminKeyId });
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    const all = JSON.stringify(events);
    for (const secret of [key.key, regen.body.key]) expect(all).not.toContain(secret);
  });

  it("records nothing for a change that did not commit", async () => {
    const [events, audit] = [(await outbox()).length, await auditCount()];
    const database = db(env.DB);
    const { row } = await prepareKey(env, {
      orgId: org.orgId,
      name: "never",
      secure: true,
      expiresAt: null,
      access: { kind: "scoped", scopes: ["app:read"] },
      createdBy: null,
    });
    // A key's creation (row, audit entry, event) with one more statement that fails after them: D1
    // runs a batch as one transaction, so the event goes with the change it describes.
    const [first, ...rest] = insertKeyStatements(database, row, { actorKeyId: null, requestId: "rolled-back" });
    const failing = database.insert(apps).values({ id: newId(), orgId: "no-such-org-00000000", name: "x", createdAt: 0 });
    await expect(database.batch([first, ...rest, failing])).rejects.toThrow(/FOREIGN KEY/);
    expect([(await outbox()).length, await auditCount()]).toEqual([events, audit]);
    expect(await env.DB.prepare("select id from api_keys where id = ?").bind(row.id).first()).toBeNull();
  });

  it("publishes every event: at once after the change, or by the next publisher when the queue was down", async () => {
    const key = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "published", scopes: ["app:read"] });
    for (let i = 0; i < 50 && (await outbox()).some((e) => e.subject_id === key.id && e.published_at === null); i++) await sleep(20);
    expect((await outbox()).filter((e) => e.subject_id === key.id).map((e) => e.published_at !== null)).toEqual([true]);

    // The queue refuses: the claim is released, nothing is marked published, nothing is lost.
    await env.DB.prepare("update events set published_at = null, claimed_at = null where subject_id = ?").bind(key.id).run();
    const down = { sendBatch: () => Promise.reject(new Error("queue unavailable")) } as unknown as Queue;
    await expect(publishPending(db(env.DB), down)).rejects.toThrow("queue unavailable");
    expect((await outbox()).find((e) => e.subject_id === key.id)!.published_at).toBeNull();
    const sent: unknown[] = [];
    const up = { sendBatch: async (messages: { body: unknown }[]) => void sent.push(...messages.map((m) => m.body)) } as unknown as Queue;
    expect(await publishPending(db(env.DB), up)).toBeGreaterThanOrEqual(1);
    const event = (await outbox()).find((e) => e.subject_id === key.id)!;
    expect(event.published_at).not.toBeNull();
    expect(sent).toContainEqual({ kind: "event", eventId: event.id });
    expect(await publishPending(db(env.DB), up)).toBe(0); // published once
  });
});
