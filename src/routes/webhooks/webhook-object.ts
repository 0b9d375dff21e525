import { z } from "@hono/zod-openapi";
import { EVENT_TYPES } from "../../storage/events";
import type { webhookDeliveries, webhookEndpoints } from "../../storage/schema";
import { iso } from "../../storage/audit";
import { Id, OrgIdParam, Timestamp } from "../schemas";

/** Schemas of the webhook endpoints and their deliveries, shared by the webhook routes. */

export const WebhookIdParams = OrgIdParam.extend({
  webhookId: Id.openapi({ param: { name: "webhookId", in: "path" }, example: "01jd8xb3c4d5e6f7g8h9" }),
});

export const DELIVERY_ID_PATTERN = /^msg_[0-9a-hjkmnp-tv-z]{20}$/;
export const DeliveryId = z.string().regex(DELIVERY_ID_PATTERN, "must be a delivery id (msg_ and 20 characters of lowercase base32)");

export const DeliveryIdParams = WebhookIdParams.extend({
  deliveryId: DeliveryId.openapi({ param: { name: "deliveryId", in: "path" }, example: "msg_01jd8xc4d5e6f7g8h9j0" }),
});

export const EventTypesSchema = z
  .array(z.enum([...EVENT_TYPES, "*"]))
  .min(1, "must list at least one event type")
  .max(EVENT_TYPES.length, `must list at most ${EVENT_TYPES.length} event types`)
  .refine((types) => new Set(types).size === types.length, "must not list an event type twice")
  .refine((types) => !types.includes("*") || types.length === 1, 'must be ["*"] alone, or event types without "*"')
  .openapi({
    description: `The events delivered to this endpoint: any of ${EVENT_TYPES.map((t) => `\`${t}\``).join(", ")}; or \`["*"]\` for every event, including types added later.`,
    example: ["key.revoked", "key.leaked"],
  });

const WEBHOOK_EXAMPLE = {
  id: "01jd8xb3c4d5e6f7g8h9",
  orgId: "01jd8x6w2m9k3v7q4r5t",
  url: "https://hooks.example.com/keygate",
  eventTypes: ["key.revoked", "key.leaked"],
  description: "Security alerts",
  createdAt: "2026-11-22T14:00:00.000Z",
  disabledAt: null,
};

export const WebhookObject = z
  .object({
    id: Id,
    orgId: Id,
    url: z.string().openapi({ description: "Where events are POSTed." }),
    eventTypes: z.array(z.string()).openapi({ description: 'The event types delivered, or `["*"]` for all.' }),
    description: z.string().nullable(),
    createdAt: Timestamp.openapi({ description: "Events from this time on are delivered." }),
    disabledAt: Timestamp.nullable().openapi({ description: "When deliveries to it stopped; null while it receives them." }),
  })
  .openapi("Webhook", { example: WEBHOOK_EXAMPLE });

export const SECRET_EXAMPLE = "whsec_C2X5Vq9nP4Lk7hYbS1mW0dRzT3uFjA8eG6iK5oQ2tNc=";

export const WebhookWithSecret = WebhookObject.extend({
  secret: z.string().openapi({
    description:
      "The signing secret, shown only in this response: `whsec_` and the base64 of 32 random bytes. Verify each request's " +
      "`webhook-signature` with it (Standard Webhooks). Stored encrypted; never shown again.",
    example: SECRET_EXAMPLE,
  }),
}).openapi("WebhookWithSecret", { example: { ...WEBHOOK_EXAMPLE, secret: SECRET_EXAMPLE } });

/** The API's view of an endpoint row: never its secret. */
export const toWebhookObject = (row: typeof webhookEndpoints.$inferSelect) => ({
  id: row.id,
  orgId: row.orgId,
  url: row.url,
  eventTypes: row.eventTypes,
  description: row.description,
  createdAt: iso(row.createdAt)!,
  disabledAt: iso(row.disabledAt),
});

export const DELIVERY_EXAMPLE = {
  id: "msg_01jd8xc4d5e6f7g8h9j0",
  webhookId: "01jd8xb3c4d5e6f7g8h9",
  eventId: "evt_01jd8xc3b4c5d6e7f8g9",
  eventType: "key.revoked",
  status: "failed" as const,
  attempts: 2,
  lastStatus: 503,
  lastError: "HTTP 503",
  nextAttemptAt: "2026-11-22T14:01:30.000Z",
  createdAt: "2026-11-22T14:00:00.000Z",
  updatedAt: "2026-11-22T14:00:30.000Z",
};

export const DeliveryObject = z
  .object({
    id: DeliveryId.openapi({ description: "The delivery's id, sent as `webhook-id` on every attempt: receivers deduplicate by it." }),
    webhookId: Id,
    eventId: z.string(),
    eventType: z.string().nullable().openapi({ description: "The event's type; null if the event is gone." }),
    status: z.enum(["pending", "succeeded", "failed", "dead"]).openapi({
      description:
        "`pending` (not attempted yet, or a resend is queued), `succeeded` (a 2xx answer), `failed` (the last attempt failed; " +
        "another is scheduled at `nextAttemptAt`), `dead` (still failing 24 h after it was created: no more attempts unless resent).",
    }),
    attempts: z.number().int().openapi({ description: "Attempts made so far." }),
    lastStatus: z.number().int().nullable().openapi({ description: "The HTTP status of the last attempt; null when none answered." }),
    lastError: z.string().nullable().openapi({ description: "Why the last attempt failed (status, timeout, network error); null after a success." }),
    nextAttemptAt: Timestamp.nullable().openapi({ description: "When the next attempt is due; null when none is scheduled." }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi("WebhookDelivery", { example: DELIVERY_EXAMPLE });

/** The API's view of a delivery row, with its event's type. */
export const toDeliveryObject = (row: typeof webhookDeliveries.$inferSelect, eventType: string | null) => ({
  id: row.id,
  webhookId: row.endpointId,
  eventId: row.eventId,
  eventType,
  status: row.status,
  attempts: row.attempts,
  lastStatus: row.lastStatus,
  lastError: row.lastError,
  nextAttemptAt: iso(row.nextAttemptAt),
  createdAt: iso(row.createdAt)!,
  updatedAt: iso(row.updatedAt)!,
});
