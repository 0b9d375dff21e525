import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { toKeyObject } from "../../storage/keys";
import { ErrorSchema, errorResponses, json, KeyIdParams, KeyObject } from "../schemas";
import { actorOf, ForceQuery } from "./access-input";
import { askKeyOfOrg } from "./key-directory";

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys/{keyId}/disable",
  operationId: "disableKey",
  tags: ["Keys"],
  summary: "Disable (pause) a key",
  description:
    "Pauses the key, reversibly: when this call returns, every verification of it answers DISABLED, at every location " +
    "(the same guarantee as a revoke), until it is enabled again. Disabling a disabled key changes nothing, and answers " +
    "once no lease on the key's earlier state is live, as every answer of this call does (refusals included). Needs " +
    "`apiKeyManagement` and at least the key's own access. The organization's last live admin key is refused with 409 " +
    "(`details.reason` LAST_ADMIN_KEY) unless `force=true`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams, query: ForceQuery },
  responses: {
    200: json(KeyObject, "The key, now disabled."),
    ...errorResponses,
    409: json(ErrorSchema, "The key is the organization's last live admin key; repeat with `force=true` to disable it anyway."),
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const { force } = c.req.valid("query");
  const row = await askKeyOfOrg(c.env, orgId, keyId, (a) =>
    a.setDisabled(keyId, orgId, actorOf(c.var.caller, c.var.requestId), true, { force: force === "true" }),
  );
  return c.json(toKeyObject(row), 200);
};

export const registerDisableKey = (app: App) => app.openapi(route, handler);
