import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import { count, eq } from "drizzle-orm";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { encryptSecret } from "../../domain/crypto";
import { newId, shardOf } from "../../domain/key-format";
import { ApiError, invalidFields } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { auditEntry } from "../../storage/audit";
import { databaseFor } from "../../storage/db";
import { changeStatements } from "../../storage/events";
import { webhookEndpoints } from "../../storage/schema";
import { allowsInsecureUrls, endpointUrlIssue, WEBHOOK_URL_MAX_LENGTH } from "../../webhooks/endpoint-url";
import { newSigningSecret } from "../../webhooks/signing";
import { ErrorSchema, errorResponses, json, OrgIdParam } from "../schemas";
import { EventTypesSchema, toWebhookObject, WebhookWithSecret } from "./webhook-object";

/** Endpoints per organization: each event is one delivery per endpoint, so this bounds an event's fan-out. */
export const MAX_WEBHOOKS_PER_ORG = 20;
const DESCRIPTION_MAX_LENGTH = 200;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

const CreateWebhook = z
  .strictObject({
    url: z
      .string()
      .max(WEBHOOK_URL_MAX_LENGTH, `must be at most ${WEBHOOK_URL_MAX_LENGTH} characters`)
      .openapi({
        description:
          "Where events are POSTed: an `https` URL of a public host (not a private, loopback, link-local or internal address or name), " +
          "on port 443 or 8443. Local development (`WEBHOOKS_ALLOW_INSECURE_URLS`) also admits loopback receivers (`localhost`, " +
          "127.0.0.0/8, `::1`), over `http` too and on any port, and nothing else. Link-local and cloud metadata addresses and names " +
          "(169.254.0.0/16, fe80::/10, fd00:ec2::254, metadata.google.internal…) are refused in every mode. A refused URL answers 400 " +
          "with `details.issues[0]` `{ field: \"url\", reason, message }`; `reason` is one of TOO_LONG, NOT_A_URL, INSECURE_SCHEME, " +
          "CREDENTIALS_IN_URL, FRAGMENT, LINK_LOCAL_OR_METADATA, INTERNAL_ADDRESS, INTERNAL_NAME, PORT_NOT_ALLOWED.",
        example: "https://hooks.example.com/keygate",
      }),
    eventTypes: EventTypesSchema,
    description: z
      .string()
      .trim()
      .max(DESCRIPTION_MAX_LENGTH, `must be at most ${DESCRIPTION_MAX_LENGTH} characters`)
      .refine((s) => !CONTROL_CHARS.test(s), "must not contain control characters")
      .nullable()
      .optional()
      .openapi({ description: "What the endpoint is for, for people.", example: "Security alerts" }),
  })
  .openapi("CreateWebhook", {
    example: { url: "https://hooks.example.com/keygate", eventTypes: ["key.revoked", "key.leaked"], description: "Security alerts" },
  });

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/webhooks",
  operationId: "createWebhook",
  tags: ["Webhooks"],
  summary: "Register a webhook endpoint",
  description:
    "Registers a URL that receives the organization's events (`eventTypes`, or `[\"*\"]`), each POSTed as JSON and signed the " +
    "Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The signing secret is in this response " +
    `only. At most ${MAX_WEBHOOKS_PER_ORG} endpoints per organization. Audited (\`webhook.create\`). Needs \`org:admin\`.`,
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "org:admin" })] as const,
  request: {
    params: OrgIdParam,
    body: { content: { "application/json": { schema: CreateWebhook } }, required: true },
  },
  responses: {
    201: json(WebhookWithSecret, "The endpoint, with its signing secret (shown only here)."),
    409: json(ErrorSchema, `The organization already has ${MAX_WEBHOOKS_PER_ORG} endpoints.`),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId } = c.req.valid("param");
  const { url, eventTypes, description } = c.req.valid("json");
  const issue = endpointUrlIssue(url, allowsInsecureUrls(c.env));
  if (issue) throw invalidFields([{ field: "url", ...issue }]);
  const database = databaseFor(c.env, orgId);
  const existing = await database.select({ n: count() }).from(webhookEndpoints).where(eq(webhookEndpoints.orgId, orgId)).get();
  if ((existing?.n ?? 0) >= MAX_WEBHOOKS_PER_ORG) {
    throw new ApiError("CONFLICT", `An organization has at most ${MAX_WEBHOOKS_PER_ORG} webhook endpoints: delete one first.`);
  }
  const now = Date.now();
  const id = newId(now, shardOf(orgId));
  const secret = newSigningSecret();
  const row = {
    id,
    orgId,
    // As the URL parser reads it: what the list shows is exactly what is called.
    url: new URL(url).href,
    eventTypes,
    description: description || null,
    secretCiphertext: await encryptSecret(c.env.KEY_ENCRYPTION_SECRET, secret, id),
    createdAt: now,
    disabledAt: null,
  };
  // The audit entry names the endpoint's origin only: a receiver's path or query may hold its own token.
  const details = { origin: new URL(url).origin, eventTypes, description: row.description };
  await database.batch([
    database.insert(webhookEndpoints).values(row),
    ...changeStatements(database, auditEntry(orgId, { actorKeyId: c.var.caller.keyId, requestId: c.var.requestId }, "webhook.create", id, details, "webhook")),
  ]);
  return c.json({ ...toWebhookObject(row), secret }, 201);
};

export const registerCreateWebhook = (app: App) => app.openapi(route, handler);
