import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { authenticate } from "../../middleware/authenticate";
import { toKeyObject } from "../../storage/keys";
import { ErrorSchema, errorResponses, json, KeyIdParams, KeyObject } from "../schemas";
import { actorOf } from "./access-input";
import { askKeyOfOrg } from "./key-directory";

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys/{keyId}/end-overlap",
  operationId: "endKeyOverlap",
  tags: ["Keys"],
  summary: "End a rotation's overlap now",
  description:
    "After a regeneration with `overlapSeconds`, the previous secret keeps verifying (as rotating) until the overlap " +
    "ends. This ends it now: when the call returns, the previous secret no longer verifies, at any location (the " +
    "revocation guarantee). Needs `apiKeyManagement` and at least the key's own access. 409 `NO_OVERLAP` when no " +
    "overlap is running, answered only once no lease on the key's earlier state is live: an overlap that just ended, " +
    "or that another call just ended, no longer verifies anywhere when the 409 comes.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams },
  responses: {
    200: json(KeyObject, "The key, with `rotation` null."),
    ...errorResponses,
    409: json(ErrorSchema, "No overlap is running (`details.reason` NO_OVERLAP)."),
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const row = await askKeyOfOrg(c.env, orgId, keyId, (a) => a.endOverlap(keyId, orgId, actorOf(c.var.caller, c.var.requestId)));
  return c.json(toKeyObject(row), 200);
};

export const registerEndKeyOverlap = (app: App) => app.openapi(route, handler);
