import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { newId } from "../src/domain/key-format";
import { listKeysQuery } from "../src/routes/keys/list-keys";
import { encodeCursor } from "../src/routes/pagination";
import { db } from "../src/storage/db";
import { verifyKey } from "../src/verification/verify-key";
import { createKeyAs, expireBeforeFirstUse, revoke, seedApp } from "./key-fixtures";
import { call, createOrg, expectStatus, sleep } from "./helpers";

type Org = Awaited<ReturnType<typeof createOrg>>;
const listPath = (orgId: string, query = "") => `/v1/orgs/${orgId}/keys${query ? `?${query}` : ""}`;

/** Every page of a listing, following `nextCursor` until it is null. */
async function listAll(org: Org, query: string, key = org.adminKey) {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await call("GET", listPath(org.orgId, [query, cursor ? `cursor=${cursor}` : ""].filter(Boolean).join("&")), { key });
    expectStatus(res, 200);
    ids.push(...res.body.keys.map((k: { id: string }) => k.id));
    cursor = res.body.nextCursor;
    pages++;
  } while (cursor !== null && pages < 1000);
  return { ids, pages };
}

describe("GET /v1/orgs/{orgId}/keys — happy paths", () => {
  let org: Org;
  let appX: string;
  let appY: string;
  const made: Record<string, { id: string; key: string }> = {};

  beforeAll(async () => {
    org = await createOrg("List Co");
    appX = await seedApp(org.orgId, "app-x");
    appY = await seedApp(org.orgId, "app-y");
    const bodies: Record<string, Record<string, unknown>> = {
      member: { kind: "rbac", name: "Member with apps", orgRole: "member", appRoles: [{ appId: appX, role: "reader" }, { appId: appY, role: "developer" }] },
      scoped: { kind: "scoped", name: "CI pipeline", scopes: ["app:publish", "project:deploy"], expiresInDays: 30 },
      legacyRead: { kind: "legacy", name: "Legacy read", mode: "read" },
      admin: { kind: "rbac", name: "Another admin", orgRole: "admin" },
      legacyAll: { kind: "legacy", name: "Legacy all", mode: "all", secure: false },
      expired: { kind: "scoped", name: "Expired", scopes: ["app:read"] },
      revoked: { kind: "rbac", name: "Revoked", orgRole: "member" },
    };
    for (const [label, body] of Object.entries(bodies)) made[label] = await createKeyAs(org.adminKey, org.orgId, body);
    await expireBeforeFirstUse(made.expired!.id);
    await revoke(made.revoked!.id, org.orgId);
  });

  it("lists every live key newest first, without revoked keys and without any secret", async () => {
    const res = await call("GET", listPath(org.orgId), { key: org.adminKey });
    expectStatus(res, 200);
    const ids = res.body.keys.map((k: { id: string }) => k.id);
    const expected = [made.expired, made.legacyAll, made.admin, made.legacyRead, made.scoped, made.member].map((k) => k!.id);
    expect(ids).toEqual([...expected, org.adminKeyId]);
    expect(res.body.nextCursor).toBeNull();
    expect(res.text).not.toContain(made.legacyAll!.key);
    for (const key of res.body.keys) {
      expect(Object.keys(key).sort()).toEqual(
        [
          "allowedNetworks", "appRoles", "createdAt", "credits", "disabledAt", "expiresAt", "id", "kind", "lastUsedAt", "metadata", "mode", "name",
          "notBefore", "orgId", "orgRole", "prefix", "rateLimits", "rotation", "scopes", "secure", "status", "updatedAt",
        ],
      );
      expect(key.prefix).toMatch(/^kgw_[0-9a-z]{20}_[0-9A-Za-z]{4}$/);
    }
  });

  it("shows each key's roles, scopes or mode, expiry and status", async () => {
    const res = await call("GET", listPath(org.orgId), { key: org.adminKey });
    expectStatus(res, 200);
    const byId = new Map(res.body.keys.map((k: { id: string }) => [k.id, k]));
    expect(byId.get(made.member!.id)).toMatchObject({
      kind: "rbac",
      orgRole: "member",
      appRoles: expect.arrayContaining([{ appId: appX, role: "reader" }, { appId: appY, role: "developer" }]),
      expiresAt: null,
      status: "active",
    });
    expect((byId.get(made.member!.id) as { appRoles: unknown[] }).appRoles).toHaveLength(2);
    expect(byId.get(made.admin!.id)).toMatchObject({ orgRole: "admin", appRoles: [] });
    expect(byId.get(made.scoped!.id)).toMatchObject({ kind: "scoped", scopes: ["app:publish", "project:deploy"], status: "active" });
    expect(Date.parse((byId.get(made.scoped!.id) as { expiresAt: string }).expiresAt)).toBeGreaterThan(Date.now());
    expect(byId.get(made.legacyRead!.id)).toMatchObject({ kind: "legacy", mode: "read", secure: true });
    expect(byId.get(made.legacyAll!.id)).toMatchObject({ kind: "legacy", mode: "all", secure: false });
    expect(byId.get(made.expired!.id)).toMatchObject({ status: "expired" });
  });

  it("separates RBAC and scoped keys from legacy keys with the kind filter", async () => {
    const modern = await call("GET", listPath(org.orgId, "kind=rbac,scoped"), { key: org.adminKey });
    expectStatus(modern, 200);
    expect(modern.body.keys.map((k: { id: string }) => k.id)).toEqual(
      [made.expired, made.admin, made.scoped, made.member].map((k) => k!.id).concat(org.adminKeyId),
    );
    const legacy = await call("GET", listPath(org.orgId, "kind=legacy"), { key: org.adminKey });
    expectStatus(legacy, 200);
    expect(legacy.body.keys.map((k: { id: string }) => k.id)).toEqual([made.legacyAll!.id, made.legacyRead!.id]);
    const all = await call("GET", listPath(org.orgId, "kind=legacy,scoped,rbac"), { key: org.adminKey });
    expect(all.body.keys).toHaveLength(7);
  });

  it("pages through every key exactly once with the cursor, with and without a kind filter", async () => {
    const full = await listAll(org, "limit=100");
    expect(full.ids).toHaveLength(7);
    const paged = await listAll(org, "limit=2");
    expect(paged.ids).toEqual(full.ids);
    expect(paged.pages).toBe(4);
    const modern = await listAll(org, "kind=scoped,rbac&limit=2");
    expect(modern.ids).toEqual(full.ids.filter((id) => id !== made.legacyAll!.id && id !== made.legacyRead!.id));
    const one = await listAll(org, "kind=legacy&limit=1");
    expect(one.ids).toEqual([made.legacyAll!.id, made.legacyRead!.id]);
  });

  it("defaults to pages of 50", async () => {
    const bulk = await createOrg("Bulk Co");
    for (let i = 0; i < 51; i++) await createKeyAs(bulk.adminKey, bulk.orgId, { kind: "legacy", name: `k${i}`, mode: "read" });
    const res = await call("GET", listPath(bulk.orgId), { key: bulk.adminKey });
    expectStatus(res, 200);
    expect(res.body.keys).toHaveLength(50);
    expect(res.body.nextCursor).toEqual(expect.any(String));
  }, 20_000); // creates 51 keys one after another: slow on a busy machine, never wrong

  it("shows when a key was last used", async () => {
    const before = await call("GET", listPath(org.orgId, "kind=scoped"), { key: org.adminKey });
    expect(before.body.keys.find((k: { id: string }) => k.id === made.scoped!.id).lastUsedAt).toBeNull();
    const writes: Promise<unknown>[] = [];
    const used = await verifyKey(env, made.scoped!.key, { permission: "app:publish", waitUntil: (p) => writes.push(p) });
    expect(used.code).toBe("VALID");
    await Promise.all(writes);
    // The use travels with the isolate's next usage report, within USAGE_FLUSH_MS (50 ms here; issue 22).
    let lastUsedAt = null;
    for (let i = 0; i < 100 && lastUsedAt === null; i++) {
      if (i > 0) await sleep(20);
      const after = await call("GET", listPath(org.orgId, "kind=scoped"), { key: org.adminKey });
      lastUsedAt = after.body.keys.find((k: { id: string }) => k.id === made.scoped!.id).lastUsedAt;
    }
    expect(Date.now() - Date.parse(lastUsedAt)).toBeLessThan(60_000);
  });

  it("shows a full page of 100 keys, each with its own app roles", async () => {
    const many = await createOrg("Many roles");
    const appA = await seedApp(many.orgId, "a");
    const appB = await seedApp(many.orgId, "b");
    const now = Date.now();
    const ids = Array.from({ length: 100 }, (_, i) => newId(now + i));
    const keys = ids.map((id, i) => [id, i % 4 === 0 ? "admin" : "reader"]);
    await env.DB.prepare(
      `insert into api_keys (id, org_id, name, kind, secure, key_hash, key_prefix, org_role, created_at, updated_at)
       select json_extract(value, '$[0]'), ?1, 'Seed', 'rbac', 1, 'seed-' || json_extract(value, '$[0]'), 'kgw_' || json_extract(value, '$[0]') || '_seed', 'none', ?2, ?2
       from json_each(?3)`,
    ).bind(many.orgId, now, JSON.stringify(keys)).run();
    await env.DB.prepare(
      `insert into key_app_roles (key_id, app_id, role)
       select json_extract(value, '$[0]'), ?1, json_extract(value, '$[1]') from json_each(?3)
       union all select json_extract(value, '$[0]'), ?2, 'uploader' from json_each(?3) where json_extract(value, '$[1]') = 'admin'`,
    ).bind(appA, appB, JSON.stringify(keys)).run();

    const res = await call("GET", listPath(many.orgId, "limit=100&kind=rbac"), { key: many.adminKey });
    expectStatus(res, 200);
    expect(res.body.keys).toHaveLength(100);
    for (const key of res.body.keys.filter((k: { id: string }) => k.id !== many.adminKeyId)) {
      const role = keys.find(([id]) => id === key.id)![1];
      const expected = role === "admin" ? [{ appId: appA, role }, { appId: appB, role: "uploader" }] : [{ appId: appA, role }];
      expect(key.appRoles, key.id).toEqual(expect.arrayContaining(expected));
      expect(key.appRoles, key.id).toHaveLength(expected.length);
    }
  });
});

describe("GET /v1/orgs/{orgId}/keys — errors", () => {
  let org: Org;
  beforeAll(async () => {
    org = await createOrg("List errors");
  });

  const cases: [string, string, string][] = [
    ["an unknown kind", "kind=superuser", "kind"],
    ["an empty kind", "kind=", "kind"],
    ["a trailing comma in kind", "kind=rbac,", "kind"],
    ["a limit of 0", "limit=0", "limit"],
    ["a limit over 100", "limit=101", "limit"],
    ["a fractional limit", "limit=1.5", "limit"],
    ["a limit that is not a number", "limit=ten", "limit"],
    ["a cursor that is not base64", "cursor=%25%25%25", "cursor"],
    ["a cursor that is not ours", `cursor=${btoa("v1:../../etc")}`, "cursor"],
    ["a cursor of another version", `cursor=${btoa(`v9:${newId()}`)}`, "cursor"],
  ];
  for (const [what, query, field] of cases) {
    it(`refuses ${what} with 400 naming ${field}`, async () => {
      const res = await call("GET", listPath(org.orgId, query), { key: org.adminKey });
      expectStatus(res, 400);
      expect(res.body.error.details.issues.map((i: { field: string }) => i.field), res.text).toContain(field);
    });
  }
});

describe("GET /v1/orgs/{orgId}/keys — security", () => {
  let org: Org;
  let other: Org;
  beforeAll(async () => {
    org = await createOrg("List sec");
    other = await createOrg("List sec other");
  });

  it("answers 401 without a key and with a malformed one", async () => {
    expectStatus(await call("GET", listPath(org.orgId)), 401);
    expectStatus(await call("GET", listPath(org.orgId), { key: "kgw_nope" }), 401);
  });

  it("answers 401 to an expired caller and to a revoked caller", async () => {
    const expired = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Expiring", orgRole: "admin" });
    await expireBeforeFirstUse(expired.id);
    const revoked = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Revoked", orgRole: "admin" });
    expectStatus(await call("GET", listPath(org.orgId), { key: revoked.key }), 200);
    await revoke(revoked.id, org.orgId);
    expectStatus(await call("GET", listPath(org.orgId), { key: expired.key }), 401);
    expectStatus(await call("GET", listPath(org.orgId), { key: revoked.key }), 401);
  });

  it("answers 403 to a key without apiKeyManagement", async () => {
    const member = await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Member", orgRole: "member" });
    const res = await call("GET", listPath(org.orgId), { key: member.key });
    expectStatus(res, 403);
  });

  it("answers 404 for another organization's keys, never 403, and leaks none of them", async () => {
    const res = await call("GET", listPath(other.orgId), { key: org.adminKey });
    expectStatus(res, 404);
    expect(res.text).not.toContain(other.adminKeyId);
  });

  it("lets a scoped key with apiKeyManagement list keys, even ones more powerful than itself", async () => {
    const viewer = await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Viewer", scopes: ["apiKeyManagement"] });
    const res = await call("GET", listPath(org.orgId), { key: viewer.key });
    expectStatus(res, 200);
    expect(res.body.keys.map((k: { id: string }) => k.id)).toContain(org.adminKeyId);
  });
});

describe("GET /v1/orgs/{orgId}/keys — at 100,000 keys in one org", () => {
  const KEY_COUNT = 100_000;
  const BATCH = 10_000;
  let org: Org;
  /** The seeded keys' ids with their kind, oldest first. */
  const seeded: { id: string; kind: string; revoked: boolean }[] = [];
  /** The live keys, newest first: what the listing must show. */
  let live: { id: string; kind: string }[] = [];

  beforeAll(async () => {
    org = await createOrg("Huge Co");
    const start = Date.now() - KEY_COUNT * 1000; // one key a second, all older than the admin key
    for (let i = 0; i < KEY_COUNT; i++) {
      const kind = i % 10 === 0 ? "legacy" : i % 10 <= 3 ? "scoped" : "rbac";
      seeded.push({ id: newId(start + i * 1000), kind, revoked: i % 7 === 0 });
    }
    // Straight into D1, in batches: one statement per 10,000 keys, rows built by SQLite from JSON.
    for (let from = 0; from < KEY_COUNT; from += BATCH) {
      const rows = seeded.slice(from, from + BATCH).map((k) => [k.id, k.kind, k.revoked ? 1 : 0]);
      await env.DB.prepare(
        `insert into api_keys (id, org_id, name, kind, secure, key_hash, key_prefix, org_role, mode, scopes, created_at, updated_at, revoked_at)
         select k.id, ?1, 'Seeded ' || k.id, k.kind, 1, 'seed-' || k.id, 'kgw_' || k.id || '_seed',
                case k.kind when 'rbac' then 'member' end,
                case k.kind when 'legacy' then 'read' end,
                case k.kind when 'scoped' then '["app:read"]' end,
                ?2, ?2, case k.revoked when 1 then ?2 end
         from (select json_extract(value, '$[0]') as id, json_extract(value, '$[1]') as kind, json_extract(value, '$[2]') as revoked
               from json_each(?3)) as k`,
      ).bind(org.orgId, start, JSON.stringify(rows)).run();
    }
    live = seeded.filter((k) => !k.revoked).reverse();
    const count = await env.DB.prepare("select count(*) as n from api_keys where org_id = ?").bind(org.orgId).first<{ n: number }>();
    expect(count!.n).toBe(KEY_COUNT + 1);
  }, 120_000);

  const idsOf = (res: { body: { keys: { id: string }[] } }) => res.body.keys.map((k) => k.id);

  it("returns the newest 100 keys on the first page", async () => {
    const res = await call("GET", listPath(org.orgId, "limit=100"), { key: org.adminKey });
    expectStatus(res, 200);
    expect(idsOf(res)).toEqual([org.adminKeyId, ...live.slice(0, 99).map((k) => k.id)]);
    // The cursor of the first page leads straight on to the second.
    const next = await call("GET", listPath(org.orgId, `limit=100&cursor=${res.body.nextCursor}`), { key: org.adminKey });
    expect(idsOf(next)).toEqual(live.slice(99, 199).map((k) => k.id));
  });

  it("returns a page 80,000 keys deep, and the true last page", async () => {
    const depth = 80_000;
    const deep = await call("GET", listPath(org.orgId, `limit=100&cursor=${encodeCursor(live[depth - 1]!.id)}`), { key: org.adminKey });
    expectStatus(deep, 200);
    expect(idsOf(deep)).toEqual(live.slice(depth, depth + 100).map((k) => k.id));
    expect(deep.body.nextCursor).toBe(encodeCursor(live[depth + 99]!.id));

    const last = await call("GET", listPath(org.orgId, `limit=100&cursor=${encodeCursor(live.at(-3)!.id)}`), { key: org.adminKey });
    expect(idsOf(last)).toEqual(live.slice(-2).map((k) => k.id));
    expect(last.body.nextCursor).toBeNull();
  });

  it("returns deep pages of a kind filter", async () => {
    const modern = live.filter((k) => k.kind !== "legacy");
    const res = await call("GET", listPath(org.orgId, `kind=rbac,scoped&limit=100&cursor=${encodeCursor(modern[60_000]!.id)}`), { key: org.adminKey });
    expectStatus(res, 200);
    expect(idsOf(res)).toEqual(modern.slice(60_001, 60_101).map((k) => k.id));

    const legacy = live.filter((k) => k.kind === "legacy");
    const old = await call("GET", listPath(org.orgId, `kind=legacy&limit=50&cursor=${encodeCursor(legacy[8_000]!.id)}`), { key: org.adminKey });
    expectStatus(old, 200);
    expect(idsOf(old)).toEqual(legacy.slice(8_001, 8_051).map((k) => k.id));
  });

  for (const kind of [null, "rbac", "scoped", "legacy"] as const) {
    it(`walks an index from the cursor, never sorting or scanning (kind ${kind ?? "any"})`, async () => {
      const cursor = live[70_000]!.id;
      const query = listKeysQuery(db(env.DB), org.orgId, kind, cursor, 101).toSQL();
      const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${query.sql}`).bind(...query.params).all<{ detail: string }>();
      const details = plan.results.map((r) => r.detail);
      const index = kind ? "api_keys_org_kind_id" : "api_keys_org_id";
      expect(details, JSON.stringify(details)).toEqual([expect.stringMatching(new RegExp(`^SEARCH api_keys USING INDEX ${index} \\(.*id<\\?\\)$`))]);
      expect(details.join("\n")).not.toMatch(/TEMP B-TREE|SCAN/);

      // And it reads one page's worth of rows, not the 70,000 before the cursor.
      const run = await env.DB.prepare(query.sql).bind(...query.params).all();
      expect(run.results).toHaveLength(101);
      expect(run.meta.rows_read).toBeLessThanOrEqual(101 * 2);
    });
  }
});
