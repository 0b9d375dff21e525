import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { toKeyObject } from "../../storage/keys";
import { errorResponses, json, KeyIdParams, KeyObject } from "../schemas";
import { actorOf } from "./access-input";
import { askKeyOfOrg } from "./key-directory";

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys/{keyId}/enable",
  operationId: "enableKey",
  tags: ["Keys"],
  summary: "Enable a disabled key",
  description:
    "Ends a pause: the key verifies again as before it was disabled (its expiry, start, networks and the organization's " +
    "policy still apply). A rotation overlap does not survive a pause: enabling ends it, so the key's previous secret " +
    "(for instance one a leak report found) never verifies again; only the current secret does. " +
    "Enabling an enabled key changes nothing. Needs `apiKeyManagement` and at least the key's own access.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams },
  responses: {
    200: json(KeyObject, "The key, now enabled."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const row = await askKeyOfOrg(c.env, orgId, keyId, (a) => a.setDisabled(keyId, orgId, actorOf(c.var.caller, c.var.requestId), false));
  return c.json(toKeyObject(row), 200);
};

export const registerEnableKey = (app: App) => app.openapi(route, handler);
