import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { decryptSecret, requireSecret } from "../../domain/crypto";
import { auditEntry } from "../../durable-objects/key-authority";
import { ApiError } from "../../errors";
import { authenticate } from "../../middleware/authenticate";
import { db } from "../../storage/db";
import { auditLog } from "../../storage/schema";
import { ErrorSchema, errorResponses, json, KeyIdParams } from "../schemas";
import { manageableKey } from "./access-input";

const RevealedKey = z
  .object({
    id: z.string().openapi({ example: "01jd8x7a0b1c2d3e4f5g" }),
    key: z.string().openapi({ example: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e" }),
  })
  .openapi("RevealedKey");

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys/{keyId}/reveal",
  tags: ["Keys"],
  summary: "Reveal a non-secure key",
  description:
    "Returns the full key of a non-secure key, decrypted from its AES-GCM ciphertext. Secure keys are stored " +
    "only as a hash and answer 409. Needs `apiKeyManagement` and at least the key's own access and lifetime, judged " +
    "on the key as it is when the reveal runs; every " +
    "reveal is written to the audit log (without the secret). 500 `MISCONFIGURED` when the deployment's " +
    "`KEY_ENCRYPTION_SECRET` is missing or shorter than 32 bytes.",
  security: [{ apiKey: [] }],
  middleware: [authenticate({ permission: "apiKeyManagement" })] as const,
  request: { params: KeyIdParams },
  responses: {
    200: json(RevealedKey, "The full key."),
    409: json(ErrorSchema, "The key is secure: it can never be revealed."),
    ...errorResponses,
  },
});

const handler: RouteHandler<typeof route, AppEnv> = async (c) => {
  const { orgId, keyId } = c.req.valid("param");
  const database = db(c.env.DB);
  const row = await manageableKey(database, c.var.caller, orgId, keyId);
  if (row.secure || row.secretCiphertext === null) {
    throw new ApiError("CONFLICT", "This is a secure key: only its hash is stored, so it cannot be revealed. Regenerate it for a new secret.");
  }
  // Never decrypted under a missing or short secret (500 MISCONFIGURED), which would fail open.
  const key = await decryptSecret(requireSecret("KEY_ENCRYPTION_SECRET", c.env.KEY_ENCRYPTION_SECRET), row.secretCiphertext, row.id);
  // Audited before the secret leaves: a reveal that cannot be recorded does not happen.
  await database
    .insert(auditLog)
    .values(auditEntry(orgId, { actorKeyId: c.var.caller.keyId, requestId: c.var.requestId }, "key.reveal", keyId, { name: row.name }));
  return c.json({ id: row.id, key }, 200);
};

export const registerRevealKey = (app: App) => app.openapi(route, handler);
