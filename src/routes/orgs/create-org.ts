import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { timingSafeEqual } from "../../domain/crypto";
import { requireBootstrapSecret } from "../../domain/secrets";
import { NO_POLICY } from "../../domain/policy";
import { unauthorized } from "../../middleware/authenticate";
import { chooseShard } from "../../storage/db";
import { policyRecordName } from "../../storage/key-record";
import { createOrgWithAdminKey, toKeyObject } from "../../storage/keys";
import { assertNotBlocked, clientIp, recordFailure } from "../../verification/abuse-limit";
import { errorResponses, Id, json, KeyWithSecret, Name, Timestamp } from "../schemas";

export const OrgObject = z
  .object({ id: Id, name: z.string(), createdAt: Timestamp })
  .openapi("Org", { example: { id: "01jd8x6w2m9k3v7q4r5t", name: "Acme Inc", createdAt: "2026-11-22T14:00:00.000Z" } });

const route = createRoute({
  method: "post",
  path: "/v1/orgs",
  operationId: "createOrg",
  tags: ["Organizations"],
  summary: "Create an organization and its first admin key",
  description:
    "Authenticated with the deployment's bootstrap secret (`Authorization: Bearer <BOOTSTRAP_SECRET>`), not an API key. " +
    "The response carries the organization's first admin key in full, shown only this once. Wrong secrets count toward " +
    "the per-address failure limit; past it, every call from the address is answered 429 until the window ends. A " +
    "`BOOTSTRAP_SECRET` that is missing, or shorter than 32 bytes outside local development (a request to a loopback host " +
    "such as `localhost`), opens nothing: 500 `MISCONFIGURED`.",
  security: [{ bootstrapSecret: [] }],
  request: {
    body: { content: { "application/json": { schema: z.strictObject({ name: Name.openapi({ example: "Acme Inc" }) }) } }, required: true },
  },
  responses: {
    201: json(z.object({ org: OrgObject, key: KeyWithSecret }).openapi("CreatedOrg"), "The organization and its first admin key."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const presented = /^Bearer[ ]+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
  if (!presented) throw unauthorized("The bootstrap secret is required: Authorization: Bearer <BOOTSTRAP_SECRET>.", "MISSING");
  // One secret opens every organization's creation: a limited address may not even try it (429).
  const ip = clientIp(c.req.raw.headers);
  assertNotBlocked(ip, "bootstrap");
  // A missing secret, or one too short to resist guessing outside local development, opens nothing.
  const secret = requireBootstrapSecret(c.env.BOOTSTRAP_SECRET, c.req.url);
  if (!timingSafeEqual(presented, secret)) {
    // Counted like every failed authentication (location-wide too); 429 past the limit.
    recordFailure(c.env, ip, "bootstrap", { code: "NOT_FOUND" }, (p) => c.executionCtx.waitUntil(p));
    throw unauthorized("The bootstrap secret is wrong.", "NOT_FOUND");
  }
  const { name } = c.req.valid("json");
  // One D1 batch, in the database the org will live in (one of those open to new orgs, at random;
  // src/storage/db.ts): the org, its policy row, its admin key and the audit entries, or nothing.
  const { org, row, key } = await createOrgWithAdminKey(c.env, chooseShard(c.env), name, c.get("requestId"));
  // After the commit nothing may fail the call, or the admin key would exist and never be shown.
  // The policy record only saves the verifier a D1 read (a missing record falls back to D1), so
  // seeding it is best-effort.
  await c.env.KEYS_KV.put(policyRecordName(org.id), JSON.stringify(NO_POLICY)).catch(() => undefined);
  c.header("Cache-Control", "no-store");
  return c.json(
    { org: { id: org.id, name: org.name, createdAt: new Date(org.createdAt).toISOString() }, key: { ...toKeyObject(row), key } },
    201,
  );
};

export const registerCreateOrg = (app: App) => app.openapi(route, handler);
