import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { askAuthority } from "../../durable-objects/key-authority";
import { askOrgAuthority } from "../../durable-objects/org-authority";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { db } from "../../storage/db";
import { apps, keyAppRoles } from "../../storage/schema";
import { errorResponses, Id, noContent, OrgIdParam } from "../schemas";

/** Keys are re-read after each pass: a key given a role on the app meanwhile gets another pass. */
const DELETE_PASSES = 3;

const route = createRoute({
  method: "delete",
  path: "/v1/orgs/{orgId}/apps/{appId}",
  operationId: "deleteApp",
  tags: ["Apps"],
  summary: "Delete an app",
  description:
    "Deletes the app. Every key holding a role on it loses that role through its key authority first, so the change " +
    "of access is in force for those keys before this call returns. Needs `org:admin`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: { params: OrgIdParam.extend({ appId: Id.openapi({ param: { name: "appId", in: "path" }, example: "01jd8x9b2c3d4e5f6g7h" }) }) },
  responses: {
    204: noContent("Deleted."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, appId } = c.req.valid("param");
  const database = db(c.env.DB);
  const app = await database.select().from(apps).where(and(eq(apps.id, appId), eq(apps.orgId, orgId))).get();
  if (!app) throw new ApiError("NOT_FOUND", "No such app.");
  for (let pass = 0; pass < DELETE_PASSES; pass++) {
    const holders = await database.select({ keyId: keyAppRoles.keyId }).from(keyAppRoles).where(eq(keyAppRoles.appId, appId)).all();
    await Promise.all(holders.map(({ keyId }) => askAuthority(c.env, keyId, (a) => a.dropApp(keyId, appId))));
    try {
      // The org's authority deletes the app and answers once no location can still count it as the org's.
      await askOrgAuthority(c.env, orgId, (a) =>
        a.deleteApp(orgId, appId, { actorKeyId: c.var.caller.keyId, requestId: c.var.requestId }, { name: app.name, keysChanged: holders.length }),
      );
      return c.body(null, 204);
    } catch (err) {
      // A key was given a role on the app after we read the holders: another pass drops it.
      if (!(err instanceof ApiError && err.code === "CONFLICT")) throw err;
    }
  }
  throw new ApiError("CONFLICT", "Keys kept being given roles on this app while it was being deleted; retry.", { reason: "APP_IN_USE" });
};

export const registerDeleteApp = (app: App) => app.openapi(route, handler);
