import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import { and, desc, eq, inArray, isNull, lt, sql } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import type { AppRole } from "../../domain/catalog";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor, type Db } from "../../storage/db";
import { toKeyObject } from "../../storage/keys";
import { apiKeys, keyAppRoles } from "../../storage/schema";
import { errorResponses, json, KEY_EXAMPLE, KeyObject, OrgIdParam } from "../schemas";
import { decodeCursor, pageOf, PageQuery } from "../pagination";


const KINDS = ["rbac", "scoped", "legacy"] as const;
type Kind = (typeof KINDS)[number];
const KIND_LIST = /^(rbac|scoped|legacy)(,(rbac|scoped|legacy))*$/;

const ListKeysQuery = z.object({
  kind: z
    .string()
    .regex(KIND_LIST, "must be a comma-separated list of rbac, scoped, legacy")
    .optional()
    .openapi({
      // On the wire a comma-separated list (`kind=rbac,scoped`): in OpenAPI terms an array of the kinds, form style, not exploded.
      param: { name: "kind", in: "query", style: "form", explode: false },
      type: "array",
      items: { type: "string", enum: [...KINDS] },
      pattern: undefined,
      description:
        "Only keys of these kinds, comma-separated: `rbac,scoped` for the role- and scope-based section, `legacy` for legacy keys. All kinds when absent.",
      example: ["rbac", "scoped"],
    }),
  ...PageQuery,
});

export const KeyList = z
  .object({
    keys: z.array(KeyObject).openapi({ description: "Keys, newest first. Revoked keys are never listed." }),
    nextCursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
  })
  .openapi("KeyList", { example: { keys: [KEY_EXAMPLE], nextCursor: "djE6MDFqZDh4N2EwYjFjMmQzZTRmNWc" } });

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/keys",
  operationId: "listKeys",
  tags: ["Keys"],
  summary: "List keys",
  description:
    "The organization's keys, newest first, with name, prefix (never the secret), kind, roles/scopes/mode, status " +
    "(`active` or `expired`), `lastUsedAt` and `expiresAt`. Cursor-paginated; each page costs the same however deep it is. " +
    "Needs `apiKeyManagement`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: OrgIdParam, query: ListKeysQuery },
  responses: {
    200: json(KeyList, "A page of keys."),
    ...errorResponses,
  },
});

/** Everything a listing shows; never the hash or the ciphertext. */
const LIST_COLUMNS = {
  id: apiKeys.id,
  orgId: apiKeys.orgId,
  name: apiKeys.name,
  kind: apiKeys.kind,
  secure: apiKeys.secure,
  keyPrefix: apiKeys.keyPrefix,
  orgRole: apiKeys.orgRole,
  mode: apiKeys.mode,
  scopes: apiKeys.scopes,
  expiresAt: apiKeys.expiresAt,
  createdAt: apiKeys.createdAt,
  updatedAt: apiKeys.updatedAt,
  lastUsedAt: apiKeys.lastUsedAt,
  revokedAt: apiKeys.revokedAt,
  createdBy: apiKeys.createdBy,
  disabledAt: apiKeys.disabledAt,
  notBefore: apiKeys.notBefore,
  allowedNetworks: apiKeys.allowedNetworks,
  metadata: apiKeys.metadata,
  rateLimits: apiKeys.rateLimits,
  credits: apiKeys.credits,
  creditsRefill: apiKeys.creditsRefill,
  creditsRefilledAt: apiKeys.creditsRefilledAt,
  creditsAsOf: apiKeys.creditsAsOf,
  previousKeyPrefix: apiKeys.previousKeyPrefix,
  previousExpiresAt: apiKeys.previousExpiresAt,
  previousLastUsedAt: apiKeys.previousLastUsedAt,
};

/**
 * One page of an org's live keys (of one kind, or of every kind), newest first, after `beforeId`.
 * Keyset pagination: `org_id = ? [AND kind = ?] AND revoked_at IS NULL AND id < ? ORDER BY id DESC`
 * walks `api_keys_org_id` / `api_keys_org_kind_id` from the cursor, so a deep page reads as few rows
 * as the first one and SQLite never sorts (test/keys-list.test.ts checks the query plan).
 */
export function listKeysQuery(database: Db, orgId: string, kind: Kind | null, beforeId: string | null, limit: number) {
  return database
    .select(LIST_COLUMNS)
    .from(apiKeys)
    .where(
      and(
        eq(apiKeys.orgId, orgId),
        kind ? eq(apiKeys.kind, kind) : undefined,
        isNull(apiKeys.revokedAt),
        beforeId ? lt(apiKeys.id, beforeId) : undefined,
      ),
    )
    .orderBy(desc(apiKeys.id))
    .limit(limit);
}

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const query = c.req.valid("query");
  const beforeId = query.cursor === undefined ? null : decodeCursor(query.cursor);
  const kinds = query.kind ? [...new Set(query.kind.split(",") as Kind[])] : [...KINDS];
  const database = databaseFor(c.env, orgId);

  // One more row than the page tells whether another page follows. Several kinds (but not all) are
  // one indexed query each, merged here: `kind IN (…)` would make SQLite sort the whole org.
  const fetch = query.limit + 1;
  const pages =
    kinds.length === KINDS.length
      ? [await listKeysQuery(database, orgId, null, beforeId, fetch).all()]
      : await Promise.all(kinds.map((kind) => listKeysQuery(database, orgId, kind, beforeId, fetch).all()));
  const rows = pages
    .flat()
    .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    .slice(0, fetch);
  const { page, nextCursor } = pageOf(rows, query.limit, (r) => r.id);

  // The page's app roles in one query, the ids as one JSON parameter (D1 binds at most 100).
  const withAppRoles = page.filter((r) => r.kind === "rbac" && r.orgRole !== "admin").map((r) => r.id);
  const roles = withAppRoles.length
    ? await database
        .select()
        .from(keyAppRoles)
        .where(inArray(keyAppRoles.keyId, sql`(select value from json_each(${JSON.stringify(withAppRoles)}))`))
        .all()
    : [];
  const rolesByKey = new Map<string, Record<string, AppRole>>();
  for (const r of roles) {
    const forKey = rolesByKey.get(r.keyId) ?? {};
    forKey[r.appId] = r.role;
    rolesByKey.set(r.keyId, forKey);
  }

  const now = Date.now();
  return c.json(
    {
      keys: page.map((row) => toKeyObject({ ...row, appRoles: rolesByKey.get(row.id) ?? {} }, now)),
      nextCursor,
    },
    200,
  );
};

export const registerListKeys = (app: App) => app.openapi(route, handler);
