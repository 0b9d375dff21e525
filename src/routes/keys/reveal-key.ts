import { createRoute, z, type RouteHandler } from "@hono/zod-openapi";
import type { App } from "../../app";
import type { AppEnv } from "../../context";
import { requireSecret } from "../../domain/crypto";
import { authenticate } from "../../middleware/authenticate";
import { ErrorSchema, errorResponses, json, KeyIdParams } from "../schemas";
import { databaseFor } from "../../storage/db";
import { actorOf, meteringBoundOf } from "./access-input";
import { askKeyOfOrg } from "./key-directory";

const RevealedKey = z
  .object({
    id: z.string().openapi({ example: "01jd8x7a0b1c2d3e4f5g" }),
    key: z.string().openapi({ example: "kgw_01jd8x7a0b1c2d3e4f5g_3hF9kQ2mN8pL4xR7vB1cZ6dW0sY5tG2j4UaP9e" }),
  })
  .openapi("RevealedKey");

const route = createRoute({
  method: "post",
  path: "/v1/orgs/{orgId}/keys/{keyId}/reveal",
  operationId: "revealKey",
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
  // Refused here first, before any read, when this deployment cannot decrypt anyway (the authority's
  // decryption refuses it too: crypto.ts never decrypts under a missing or short secret).
  requireSecret("KEY_ENCRYPTION_SECRET", c.env.KEY_ENCRYPTION_SECRET);
  // Rights, decryption (never under a missing or short KEY_ENCRYPTION_SECRET: 500 MISCONFIGURED) and
  // the audit entry happen in the key's serialized operation, on the key as it is (KeyAuthority.reveal).
  const actor = actorOf(c.var.caller, c.var.requestId, await meteringBoundOf(databaseFor(c.env, orgId), c.var.caller));
  const { key } = await askKeyOfOrg(c.env, orgId, keyId, (a) => a.reveal(keyId, orgId, actor));
  return c.json({ id: keyId, key }, 200);
};

export const registerRevealKey = (app: App) => app.openapi(route, handler);
