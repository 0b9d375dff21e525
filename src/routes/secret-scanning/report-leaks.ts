import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { hashKey } from "../../domain/crypto";
import { hasValidTag, KEY_PATTERN_SOURCE, parseKey } from "../../domain/key-format";
import { verifyReportSignature } from "../../domain/secret-scanning";
import { askAuthority, type Actor } from "../../durable-objects/key-authority";
import { ApiError } from "../../errors";
import { auditEntry } from "../../storage/audit";
import { changeStatements, publishSoon } from "../../storage/events";
import { databaseFor, hasDatabaseFor, HOME_SHARD_ID } from "../../storage/db";
import { loadPolicy } from "../../storage/key-record";
import { auditLog, secretScanReports } from "../../storage/schema";
import { assertNotBlocked, clientIp, recordFailure } from "../../verification/abuse-limit";
import { unauthorized } from "../../middleware/authenticate";
import { errorResponse, errorResponses, json } from "../schemas";
import { reporterKey } from "./reporter-keys";

/**
 * GitHub's secret scanning partner program: GitHub finds strings matching our key pattern in public
 * code and posts them here, signed. Every key of ours among them is revoked (or disabled, per the
 * org's policy) under the revocation guarantee before the answer; nothing about any token is told to
 * anyone but a correctly signed reporter, and a signed report is acted on once.
 */

const KEY_ID_HEADER = "github-public-key-identifier";
const SIGNATURE_HEADER = "github-public-key-signature";
/** Tokens acted on at once: each change waits out its key's leases (up to T), so they overlap. */
const PARALLEL = 8;

const Report = z
  .array(
    z.object({
      token: z.string().max(1_000).openapi({ description: "The string found.", example: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e" }),
      type: z.string().max(200).openapi({ description: "The token type the reporter matched (ours: `keygate_api_key`).", example: "keygate_api_key" }),
      url: z.string().max(2_048).openapi({ description: "Where it was found.", example: "https://github.com/octo/repo/blob/abc/config.yml" }),
      source: z.string().max(200).openapi({ description: "The kind of place (`content`, `commit`, `issue`, …).", example: "content" }),
    }),
  )
  .min(1, "must report at least one token")
  .max(500, "must report at most 500 tokens")
  .openapi("SecretScanningReport", {
    example: [
      {
        token: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e",
        type: "keygate_api_key",
        url: "https://github.com/octo/repo/blob/abc/config.yml",
        source: "content",
      },
    ],
  });

const Labels = z
  .array(
    z.object({
      token_hash: z.string().openapi({ description: "Hex SHA-256 of the token (the token itself is never echoed)." }),
      token_type: z.string(),
      label: z.enum(["true_positive", "false_positive"]).openapi({
        description: "`true_positive`: a key this deployment issued (now revoked or disabled, or already revoked); `false_positive`: not one of ours.",
      }),
    }),
  )
  .openapi("SecretScanningLabels", {
    example: [{ token_hash: "9f2c6d2f5b0e1a7c3d4e5f60718293a4b5c6d7e8f90123456789abcdef012345", token_type: "keygate_api_key", label: "true_positive" }],
  });

/** Refuses (401, counted like any failed authentication) a request not signed by a configured reporter key. */
const signedByReporter: MiddlewareHandler<AppEnv> = async (c, next) => {
  const ip = clientIp(c.req.raw.headers);
  assertNotBlocked(ip, "secret-scanning");
  const keyIdentifier = c.req.header(KEY_ID_HEADER);
  const signature = c.req.header(SIGNATURE_HEADER);
  const refuse = (message: string, reason: string) => {
    recordFailure(c.env, ip, "secret-scanning", { code: "NOT_FOUND" }, (p) => c.executionCtx.waitUntil(p));
    return unauthorized(message, reason);
  };
  if (!keyIdentifier || !signature) throw refuse(`Reports must be signed: send ${KEY_ID_HEADER} and ${SIGNATURE_HEADER}.`, "MISSING_SIGNATURE");
  const key = await reporterKey(c.env, keyIdentifier);
  // Read as bytes: the signature covers the raw body (the JSON validator reads it again from Hono's cache).
  const body = await c.req.arrayBuffer();
  if (!key || !(await verifyReportSignature(body, signature, key.pem))) throw refuse("The report's signature does not verify.", "BAD_SIGNATURE");
  await next();
};

const route = createRoute({
  method: "post",
  path: "/v1/secret-scanning/reports",
  operationId: "reportLeakedKeys",
  tags: ["Secret scanning"],
  summary: "Report leaked keys (secret scanning partners)",
  description:
    "The endpoint GitHub's secret scanning partner program calls with strings matching our key format " +
    `(\`${KEY_PATTERN_SOURCE}\`) found in public places. The raw body must be signed with ECDSA P-256 / SHA-256 by a key ` +
    "of the reporter's published list (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`, base64 DER); " +
    "anything else is refused (401) before any token is looked at, and a report already acted on is refused (409 " +
    "`REPLAYED`). Each of our keys in it is revoked (or disabled, per the org's `leakedKeyAction`) before this answers, " +
    "everywhere (the revocation guarantee), with an audit entry `key.leaked` naming the URL; the answer labels every token. " +
    "A key already revoked or disabled is answered for once no lease on its earlier state is live either.",
  security: [{ reporterSignature: [] }],
  middleware: [signedByReporter] as const,
  request: { body: { content: { "application/json": { schema: Report } }, required: true } },
  responses: {
    200: json(Labels, "A label for each reported token, in order."),
    ...errorResponses,
    409: errorResponse("This exact signed report was already acted on (`details.reason` REPLAYED)."),
  },
});

type Reported = z.infer<typeof Report>[number];

/**
 * Acts on one reported token and answers whether it is a key this deployment issued. A key of ours is
 * revoked, or disabled when its org's policy says so, through its authority (so the change holds
 * everywhere when this returns), forced even for the org's last admin key: a leaked key is compromised.
 */
async function actOn(env: Env, report: Reported, requestId: string): Promise<boolean> {
  const parsed = parseKey(report.token);
  if (!parsed || !(await hasValidTag(report.token, env.KEY_TAG_SECRET))) return false;
  const { keyId } = parsed;
  // A key of a database this deployment no longer has (a tag of ours, an id of no shard here) is not one it holds.
  if (!hasDatabaseFor(env, keyId)) return false;
  const hash = await hashKey(report.token);
  const record = await askAuthority(env, keyId, (a) => a.check(keyId, hash));
  if (record.status === "unknown") return false;
  const actor: Actor = { actorKeyId: null, requestId, grants: null, expiresAt: null };
  const found = { url: report.url, source: report.source, type: report.type, ...(record.status === "active" && record.rotatingUntil !== undefined ? { previousSecret: true } : {}) };
  // The key's org's database: a report names keys of many orgs, each in its own.
  const database = databaseFor(env, record.orgId);
  const note = (outcome: string) => database.batch(changeStatements(database, auditEntry(record.orgId, actor, "key.leaked", keyId, { ...found, outcome })));
  // "Already revoked" (or disabled) is true everywhere only once the leases on the state before it have
  // ended: a revoke may still be waiting them out.
  const settled = () => askAuthority(env, keyId, (a) => a.settle());
  if (record.status === "revoked") {
    await settled();
    await note("already revoked");
    return true;
  }
  const { leakedKeyAction } = await loadPolicy(database, record.orgId);
  if (leakedKeyAction === "disable") {
    if (record.disabled) await settled().then(() => note("already disabled"));
    else await askAuthority(env, keyId, (a) => a.setDisabled(keyId, record.orgId, actor, true, { force: true, audit: { action: "key.leaked", details: { ...found, outcome: "disabled" } } }));
  } else {
    await askAuthority(env, keyId, (a) => a.revoke(keyId, record.orgId, actor, { force: true, audit: { action: "key.leaked", details: { ...found, outcome: "revoked" } } }));
  }
  return true;
}

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const reports = c.req.valid("json");
  const bodyHash = hex(await crypto.subtle.digest("SHA-256", await c.req.arrayBuffer()));
  // Reports are the deployment's, not an org's: they are remembered in shard 0's database.
  const database = databaseFor(c.env, HOME_SHARD_ID);
  const seen = await database.select({ at: secretScanReports.receivedAt }).from(secretScanReports).where(eq(secretScanReports.bodyHash, bodyHash)).get();
  if (seen) throw new ApiError("CONFLICT", "This report was already received and acted on.", { reason: "REPLAYED" });

  const labels: boolean[] = new Array(reports.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < reports.length; i = next++) labels[i] = await actOn(c.env, reports[i]!, c.var.requestId);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, reports.length) }, lane));
  // Recorded once every token is acted on: a report that failed half way (503) is acted on again when
  // the reporter retries it; one that succeeded is never acted on again (a captured copy is useless).
  await database
    .insert(secretScanReports)
    .values({ bodyHash, keyIdentifier: c.req.header(KEY_ID_HEADER) ?? "", tokens: reports.length, receivedAt: Date.now() })
    .onConflictDoNothing();
  // Every database: the leaked keys' events wait in the outboxes of their orgs' databases.
  publishSoon(c.env, null, (p) => c.executionCtx.waitUntil(p));
  c.set("outcome", `${labels.filter(Boolean).length} of ${reports.length} ours`);
  return c.json(
    await Promise.all(
      reports.map(async (r, i) => ({ token_hash: await hashKey(r.token), token_type: r.type, label: labels[i] ? ("true_positive" as const) : ("false_positive" as const) })),
    ),
    200,
  );
};

export const registerReportLeakedKeys = (app: App) => app.openapi(route, handler);
