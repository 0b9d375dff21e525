import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { appDeletionTimeoutMs, askOrgAuthority } from "../../durable-objects/org-authority";
import { authenticate } from "../../middleware/authenticate";
import { errorResponses, Id, noContent, OrgIdParam } from "../schemas";

const route = createRoute({
  method: "delete",
  path: "/v1/orgs/{orgId}/apps/{appId}",
  operationId: "deleteApp",
  tags: ["Apps"],
  summary: "Delete an app",
  description:
    "Deletes the app. Every key holding a role on it loses that role through its key authority first, and the call " +
    "returns once no verification anywhere can still use that role or count the app as the organization's: the keys' " +
    "leases and the organization's are waited out together (at most the lease duration T). Every other answer waits " +
    "the same way: 404 for an app that does not exist or was already deleted (a deletion still in progress included) " +
    "comes only once that earlier deletion is in force everywhere, so a retry's 404 means the app is gone. " +
    "409 (`details.reason` APP_IN_USE) when keys kept being given roles on it while it was being deleted. Needs `org:admin`.",
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
  // Every answer comes from the org's authority, "not found" included: it describes the org's apps as
  // they are everywhere only once an earlier deletion's leases have ended, which the authority waits for.
  const actor = { actorKeyId: c.var.caller.keyId, requestId: c.var.requestId };
  await askOrgAuthority(c.env, orgId, (a) => a.deleteApp(orgId, appId, actor), appDeletionTimeoutMs(c.env));
  return c.body(null, 204);
};

export const registerDeleteApp = (app: App) => app.openapi(route, handler);
