import { z } from "@hono/zod-openapi";
import { LEAKED_KEY_ACTIONS, MAX_LIFETIME_DAYS_LIMIT } from "../../domain/policy";
import { RateLimitsField } from "../schemas";

export const PolicyObject = z
  .strictObject({
    requireExpiration: z.boolean().openapi({ description: "Every key must have an expiration date.", example: true }),
    maxLifetimeDays: z
      .number()
      .int("must be a whole number")
      .min(1, "must be at least 1")
      .max(MAX_LIFETIME_DAYS_LIMIT, `must be at most ${MAX_LIFETIME_DAYS_LIMIT}`)
      .nullable()
      .openapi({ description: "Longest lifetime of a key from its creation, in days; null for no cap.", example: 90 }),
    requireNetworksForAdmin: z.boolean().default(false).openapi({
      description:
        "Keys that hold `org:admin` or `apiKeyManagement` must carry `allowedNetworks` (refused at create and edit, " +
        "POLICY_VIOLATION at use). Default false.",
      example: false,
    }),
    leakedKeyAction: z.enum(LEAKED_KEY_ACTIONS).default("revoke").openapi({
      description:
        "What a secret scanning report (`POST /v1/secret-scanning/reports`) of one of the organization's keys does: " +
        "`revoke` it (the default) or `disable` it, reversibly. Either holds everywhere before the report is answered.",
      example: "revoke",
    }),
    unusedKeyDays: z
      .number()
      .int("must be a whole number")
      .min(1, "must be at least 1")
      .max(MAX_LIFETIME_DAYS_LIMIT, `must be at most ${MAX_LIFETIME_DAYS_LIMIT}`)
      .nullable()
      .default(null)
      .openapi({
        description:
          "Keys not used for this many days (since their last use, or their creation) are flagged by the daily check: a " +
          "`key.unused` event and audit entry. null (the default): never.",
        example: 90,
      }),
    rateLimits: RateLimitsField.nullable()
      .default(null)
      .openapi({ description: "Rate limits of every key that has none of its own; null (the default): none." }),
    expireUnusedKeys: z.boolean().default(false).openapi({
      description: "With `unusedKeyDays`: the daily check also expires such keys (through their authority), not only flags them.",
      example: false,
    }),
  })
  .openapi("Policy", {
    description:
      "The organization's key policy, enforced at create, at edit and at every use: a key that breaks a policy set " +
      "after it was made stops verifying (code POLICY_VIOLATION, with the reason).",
  });
