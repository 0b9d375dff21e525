import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { newId, shardOf } from "../../domain/key-format";
import { auditEntry } from "../../storage/audit";
import { changeStatements, publishSoon } from "../../storage/events";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { appRecordName, type AppRecord } from "../../storage/key-record";
import { apps, auditLog } from "../../storage/schema";
import { ErrorSchema, errorResponses, json, Name, OrgIdParam } from "../schemas";
import { AppObject, toAppObject } from "./app-object";

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/apps",
  operationId: "createApp",
  tags: ["Apps"],
  summary: "Create an app",
  description: "An app of the organization, which per-app roles of RBAC keys point at. Names are unique per organization. Needs `org:admin`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: {
    params: OrgIdParam,
    body: { content: { "application/json": { schema: z.strictObject({ name: Name.openapi({ example: "mobile" }) }) } }, required: true },
  },
  responses: {
    201: json(AppObject, "The app."),
    409: json(ErrorSchema, "An app with this name already exists in the organization."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const { name } = c.req.valid("json");
  const database = databaseFor(c.env, orgId);
  const now = Date.now();
  const row = { id: newId(now, shardOf(orgId)), orgId, name, createdAt: now };
  try {
    await database.batch([
      database.insert(apps).values(row),
      ...changeStatements(database, auditEntry(orgId, { actorKeyId: c.var.caller.keyId, requestId: c.var.requestId }, "app.create", row.id, { name }, "app")),
    ]);
  } catch (err) {
    if (err instanceof Error && /UNIQUE constraint failed/i.test(err.message)) {
      throw new ApiError("CONFLICT", "An app with this name already exists in the organization.", {
        issues: [{ field: "name", message: "is already the name of an app of this organization" }],
      });
    }
    throw err;
  }
  // Lets the verifier tell this org's apps from others' in the same KV read as the key. Best effort:
  // without it the verifier reads the app's org from D1.
  await c.env.KEYS_KV.put(appRecordName(row.id), JSON.stringify({ orgId } satisfies AppRecord)).catch(() => undefined);
  publishSoon(c.env, orgId, (p) => c.executionCtx.waitUntil(p));
  return c.json(toAppObject(row), 201);
};

export const registerCreateApp = (app: App) => app.openapi(route, handler);
