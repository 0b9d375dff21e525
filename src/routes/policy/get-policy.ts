import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { NO_POLICY } from "../../domain/policy";
import { authenticate } from "../../middleware/authenticate";
import { databaseFor } from "../../storage/db";
import { loadPolicy } from "../../storage/key-record";
import { errorResponses, json, OrgIdParam } from "../schemas";
import { PolicyObject } from "./policy-object";

const route = createRoute({
  method: "get",
  path: "/v1/orgs/{orgId}/policy",
  operationId: "getPolicy",
  tags: ["Policy"],
  summary: "Get the key policy",
  description: "The organization's key policy. Needs `apiKeyManagement`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: OrgIdParam },
  responses: { 200: json(PolicyObject, "The policy."), ...errorResponses },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const policy = await loadPolicy(databaseFor(c.env, orgId), orgId);
  return c.json({ ...NO_POLICY, ...policy }, 200);
};

export const registerGetPolicy = (app: App) => app.openapi(route, handler);
