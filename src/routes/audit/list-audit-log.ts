import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import { and, desc, eq, lt, or } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { auditLog } from "../../storage/schema";
import { decodeCursor, pageOf, PageQuery } from "../pagination";
import { errorResponses, Id, json, OrgIdParam, Timestamp } from "../schemas";

/** Every action the audit log records, as the `action` filter accepts it. */
export const AUDIT_ACTIONS = [
  "org.create",
  "key.create",
  "key.update",
  "key.regenerate",
  "key.reveal",
  "key.revoke",
  "key.disable",
  "key.enable",
  "key.end_overlap",
  "key.leaked",
  "key.expiring",
  "key.expired",
  "key.unused",
  "app.create",
  "app.delete",
  "policy.update",
  "webhook.create",
  "webhook.delete",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

const AuditQuery = z.object({
  action: z
    .enum(AUDIT_ACTIONS)
    .optional()
    .openapi({ param: { name: "action", in: "query" }, description: "Only entries of this action.", example: "key.revoke" }),
  keyId: Id.optional().openapi({
    param: { name: "keyId", in: "query" },
    description: "Only entries about this key: the changes it made, and the changes made to it (its creation, edits, reveals, regenerations, revocation).",
    example: "01jd8x7a0b1c2d3e4f5g",
  }),
  ...PageQuery,
});

const AuditEntry = z
  .object({
    id: z.number().int(),
    actorKeyId: z.string().nullable().openapi({ description: "The key that made the change; null for the bootstrap secret." }),
    action: z.enum(AUDIT_ACTIONS).openapi({ example: "key.revoke" }),
    targetType: z.enum(["key", "app", "org", "webhook"]),
    targetId: z.string(),
    requestId: z.string().openapi({ description: "The `x-request-id` of the request that made the change." }),
    createdAt: Timestamp,
    details: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ type: "object", additionalProperties: {}, description: "Non-secret facts about the change." }),
  })
  .openapi("AuditEntry");

const AuditPage = z
  .object({ entries: z.array(AuditEntry), nextCursor: z.string().nullable() })
  .openapi("AuditLog", {
    example: {
      entries: [
        {
          id: 42,
          actorKeyId: "01jd8x7a0b1c2d3e4f5g",
          action: "key.revoke",
          targetType: "key",
          targetId: "01jd8xa1b2c3d4e5f6g7",
          requestId: "req_3f2c9a0d7b8e4f6a9c1d2e3f4a5b6c7d",
          createdAt: "2026-11-22T14:00:00.000Z",
          details: { name: "CI/CD Deploy" },
        },
      ],
      nextCursor: null,
    },
  });

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/audit-log",
  operationId: "listAuditLog",
  tags: ["Audit log"],
  summary: "Read the audit log",
  description:
    "Every change to the organization's keys, apps and policy, and every reveal, newest first: who (acting key id), " +
    "what (action, target), when and in which request. Never any key material. Filter by `action` and by `keyId`; " +
    "a cursor continues the listing it came from, so pass the same filters with it. Needs `apiKeyManagement`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: OrgIdParam, query: AuditQuery },
  responses: { 200: json(AuditPage, "A page of audit entries."), ...errorResponses },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const { limit, cursor, action, keyId } = c.req.valid("query");
  const before = cursor === undefined ? undefined : Number(decodeCursor(cursor, /^\d{1,15}$/));
  // Walks the `audit_log_org_id` index from the cursor: a deep page costs what the first one does. A filter
  // is checked on the rows that walk reads, so a rare one reads further; an org's log is the bound.
  const rows = await databaseFor(c.env, orgId)
    .select()
    .from(auditLog)
    .where(
      and(
        eq(auditLog.orgId, orgId),
        before !== undefined ? lt(auditLog.id, before) : undefined,
        action !== undefined ? eq(auditLog.action, action) : undefined,
        keyId !== undefined ? or(eq(auditLog.actorKeyId, keyId), and(eq(auditLog.targetType, "key"), eq(auditLog.targetId, keyId))) : undefined,
      ),
    )
    .orderBy(desc(auditLog.id))
    .limit(limit + 1)
    .all();
  const { page, nextCursor } = pageOf(rows, limit, (r) => r.id);
  return c.json(
    {
      entries: page.map((r) => ({
        id: r.id,
        actorKeyId: r.actorKeyId,
        action: r.action as AuditAction,
        targetType: r.targetType as "key" | "app" | "org" | "webhook",
        targetId: r.targetId,
        requestId: r.requestId,
        createdAt: new Date(r.createdAt).toISOString(),
        details: r.details ?? null,
      })),
      nextCursor,
    },
    200,
  );
};

export const registerListAuditLog = (app: App) => app.openapi(route, handler);
