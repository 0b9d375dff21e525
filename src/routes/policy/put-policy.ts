import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { policyViolation } from "../../domain/policy";
import { askOrgAuthority } from "../../durable-objects/org-authority";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { ErrorSchema, errorResponses, json, OrgIdParam } from "../schemas";
import { PolicyObject } from "./policy-object";

const route = createRoute({
  method: "put",
  path: "/v1/orgs/{orgId}/policy",
  operationId: "putPolicy",
  tags: ["Policy"],
  summary: "Set the key policy",
  description:
    "Replaces the organization's key policy. It is in force for every existing key, at every location, before this " +
    "call returns: the organization's authority waits out the leases it granted on the old policy (at most T). A policy the calling " +
    "key would itself break is refused (409), so an admin cannot lock itself out. Needs `org:admin`.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: { params: OrgIdParam, body: { content: { "application/json": { schema: PolicyObject } }, required: true } },
  responses: {
    200: json(PolicyObject, "The policy now in force."),
    409: json(ErrorSchema, "The calling key itself would break the policy; set it with a key that complies."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const policy = c.req.valid("json");
  // A policy its own author breaks would lock the caller out on its next call, possibly the org's last admin.
  const selfViolation = policyViolation(policy, c.var.caller);
  if (selfViolation) {
    throw new ApiError("CONFLICT", `This policy would refuse the key making the change (${selfViolation.message}) Set it with a key that complies.`, {
      code: selfViolation.code,
    });
  }
  // The org's authority commits D1 and answers once no location can still hold the old policy.
  await askOrgAuthority(c.env, orgId, (a) => a.setPolicy(orgId, policy, { actorKeyId: c.var.caller.keyId, requestId: c.var.requestId }));
  return c.json(policy, 200);
};

export const registerPutPolicy = (app: App) => app.openapi(route, handler);
