import { createRoute, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { auditEntry } from "../../storage/audit";
import { policyViolation } from "../../domain/policy";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { db } from "../../storage/db";
import { loadPolicy, policyRecordName } from "../../storage/key-record";
import { auditLog, orgPolicies } from "../../storage/schema";
import { ErrorSchema, errorResponses, json, OrgIdParam } from "../schemas";
import { PolicyObject } from "./policy-object";

const route = createRoute({
  method: "put",
  path: "/v1/orgs/{orgId}/policy",
  tags: ["Policy"],
  summary: "Set the key policy",
  description:
    "Replaces the organization's key policy. It is in force for every existing key before this call returns: " +
    "the verifier evaluates policy on every request from the policy record this call writes. A policy the calling " +
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
  const database = db(c.env.DB);
  const before = await loadPolicy(database, orgId);
  const now = Date.now();
  // The KV record is what the verifier enforces, so it is written first; if the D1 commit then
  // fails, the previous record is put back and the call answers 503 with nothing changed.
  const kv = c.env.KEYS_KV;
  await kv.put(policyRecordName(orgId), JSON.stringify(policy));
  try {
    await database.batch([
      database
        .insert(orgPolicies)
        .values({ orgId, ...policy, updatedAt: now })
        .onConflictDoUpdate({ target: orgPolicies.orgId, set: { ...policy, updatedAt: now } }),
      database
        .insert(auditLog)
        .values(auditEntry(orgId, { actorKeyId: c.var.caller.keyId, requestId: c.var.requestId }, "policy.update", orgId, { before, after: policy }, "org")),
    ]);
  } catch (err) {
    await kv.put(policyRecordName(orgId), JSON.stringify(before)).catch(() => undefined);
    throw err;
  }
  return c.json(policy, 200);
};

export const registerPutPolicy = (app: App) => app.openapi(route, handler);
