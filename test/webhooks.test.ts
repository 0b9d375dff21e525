import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { decryptSecret } from "../src/domain/crypto";
import { newId } from "../src/domain/key-format";
import worker from "../src/index";
import { db } from "../src/storage/db";
import { events, webhookDeliveries } from "../src/storage/schema";
import { MAX_WEBHOOKS_PER_ORG } from "../src/routes/webhooks/create-webhook";
import { call, createOrg, expectStatus } from "./helpers";
import { createKeyAs } from "./key-fixtures";

/**
 * Webhook endpoints API (issue 15, point 3): register (secret shown once, stored encrypted), list, get,
 * delete, the delivery log and resend; https and public hosts only outside local development; org:admin
 * only; another organization's endpoints are 404.
 *
 * Keys are made before any endpoint exists: a key's creation is an event, and an event is delivered.
 */

type Org = Awaited<ReturnType<typeof createOrg>>;
let org: Org;
let other: Org;
let member: string;
let manager: string;

beforeAll(async () => {
  org = await createOrg("Hooks Co");
  other = await createOrg("Other Hooks Co");
  member = (await createKeyAs(org.adminKey, org.orgId, { kind: "rbac", name: "Member", orgRole: "member" })).key;
  manager = (await createKeyAs(org.adminKey, org.orgId, { kind: "scoped", name: "Manager", scopes: ["apiKeyManagement", "org:read"] })).key;
});

const hooks = (orgId: string) => `/v1/orgs/${orgId}/webhooks`;
const VALID = { url: "https://hooks.example.com/keygate", eventTypes: ["key.revoked", "key.leaked"], description: "Security alerts" };

async function register(body: Record<string, unknown> = VALID, who: Org = org) {
  const res = await call("POST", hooks(who.orgId), { key: who.adminKey, body });
  expectStatus(res, 201);
  return res.body as { id: string; secret: string; url: string; eventTypes: string[] };
}

/** Calls the worker with some bindings replaced: production's URL rules, a queue that records or fails. */
async function callWith(bindings: Partial<Env>, method: string, path: string, key: string, body?: unknown) {
  const ctx = createExecutionContext();
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await worker.fetch(
    new Request(`https://gateway.test${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }),
    { ...env, ...bindings } as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text: `${res.status} ${text}` };
}

const PRODUCTION = { WEBHOOKS_ALLOW_INSECURE_URLS: "false" };

describe("POST /v1/orgs/{orgId}/webhooks", () => {
  it("registers an endpoint and shows its signing secret once: never in reads, the audit log or D1", async () => {
    const created = await register();
    expect(created).toMatchObject({ ...VALID, orgId: org.orgId, disabledAt: null });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const got = await call("GET", `${hooks(org.orgId)}/${created.id}`, { key: org.adminKey });
    expectStatus(got, 200);
    expect(got.body).toEqual({ ...created, secret: undefined });
    const listed = await call("GET", hooks(org.orgId), { key: org.adminKey });
    expect(listed.body.webhooks.map((w: { id: string }) => w.id)).toContain(created.id);
    const secretPart = created.secret.slice("whsec_".length);
    for (const res of [got, listed, await call("GET", `/v1/orgs/${org.orgId}/audit-log`, { key: org.adminKey })]) {
      expect(res.text).not.toContain(secretPart);
    }
    const row = await env.DB.prepare("select * from webhook_endpoints where id = ?").bind(created.id).first<Record<string, string>>();
    expect(JSON.stringify(row)).not.toContain(secretPart);
    // Encrypted under the deployment's key, bound to this endpoint.
    expect(await decryptSecret(env.KEY_ENCRYPTION_SECRET, row!.secret_ciphertext!, created.id)).toBe(created.secret);
    await expect(decryptSecret(env.KEY_ENCRYPTION_SECRET, row!.secret_ciphertext!, newId())).rejects.toThrow();
  });

  it("is audited as webhook.create with the endpoint's origin only", async () => {
    const created = await register({ url: "https://hooks.example.com/t/receiver-token-123?sig=abc", eventTypes: ["*"] });
    const log = await call("GET", `/v1/orgs/${org.orgId}/audit-log?action=webhook.create`, { key: org.adminKey });
    const entry = log.body.entries.find((e: { targetId: string }) => e.targetId === created.id);
    expect(entry).toMatchObject({
      action: "webhook.create",
      targetType: "webhook",
      actorKeyId: org.adminKeyId,
      details: { origin: "https://hooks.example.com", eventTypes: ["*"] },
    });
    expect(JSON.stringify(entry)).not.toContain("receiver-token-123");
  });

  it("refuses bad bodies with 400 naming the field, registering nothing", async () => {
    const before = (await call("GET", hooks(org.orgId), { key: org.adminKey })).body.webhooks.length;
    const bad: [Record<string, unknown>, string][] = [
      [{ ...VALID, url: "not a url" }, "url"],
      [{ ...VALID, url: "ftp://hooks.example.com/x" }, "url"],
      [{ ...VALID, url: "https://user:pass@hooks.example.com/x" }, "url"],
      [{ ...VALID, url: "https://hooks.example.com/x#frag" }, "url"],
      [{ ...VALID, url: `https://hooks.example.com/${"x".repeat(2048)}` }, "url"],
      [{ ...VALID, eventTypes: [] }, "eventTypes"],
      [{ ...VALID, eventTypes: ["key.stolen"] }, "eventTypes.0"],
      [{ ...VALID, eventTypes: ["key.revoked", "key.revoked"] }, "eventTypes"],
      [{ ...VALID, eventTypes: ["*", "key.revoked"] }, "eventTypes"],
      [{ ...VALID, eventTypes: "*" }, "eventTypes"],
      [{ ...VALID, description: "a\u0000b" }, "description"],
      [{ ...VALID, description: "x".repeat(201) }, "description"],
      [{ ...VALID, secret: "whsec_mine" }, "(body)"],
      [{ eventTypes: ["*"] }, "url"],
    ];
    for (const [body, field] of bad) {
      const res = await call("POST", hooks(org.orgId), { key: org.adminKey, body });
      expectStatus(res, 400);
      expect(res.body.error.code).toBe("INVALID_REQUEST");
      expect(res.body.error.details.issues.map((i: { field: string }) => i.field), res.text).toContain(field);
    }
    expect((await call("GET", hooks(org.orgId), { key: org.adminKey })).body.webhooks.length).toBe(before);
  });

  it("in production, refuses http and every private, loopback, link-local or internal host, however it is spelled", async () => {
    const refused = [
      "http://hooks.example.com/keygate",
      "https://127.0.0.1/x",
      "https://127.1/x",
      "https://2130706433/x",
      "https://0x7f000001/x",
      "https://10.1.2.3/x",
      "https://172.16.5.4/x",
      "https://192.168.1.1/x",
      "https://100.64.0.1/x",
      "https://169.254.169.254/latest/meta-data",
      "https://0.0.0.0/x",
      "https://224.0.0.1/x",
      "https://[::1]/x",
      "https://[::]/x",
      "https://[fe80::1]/x",
      "https://[fd00::1]/x",
      "https://[::ffff:10.0.0.1]/x",
      "https://[::ffff:7f00:1]/x",
      "https://[64:ff9b::a00:1]/x",
      "https://[2002:a00:1::]/x",
      "https://localhost/x",
      "https://LOCALHOST./x",
      "https://api.localhost/x",
      "https://printer.local/x",
      "https://db.internal/x",
      "https://router.home.arpa/x",
      "https://intranet/x",
    ];
    for (const url of refused) {
      const res = await callWith(PRODUCTION, "POST", hooks(org.orgId), org.adminKey, { ...VALID, url });
      expect(res.status, `${url}: ${res.text}`).toBe(400);
      expect(res.body.error.details.issues[0].field).toBe("url");
    }
    for (const url of ["https://hooks.example.com/keygate", "https://93.184.216.34/hook", "https://[2606:4700:4700::1111]/hook", "https://hooks.example.com:8443/k?x=1"]) {
      const res = await callWith(PRODUCTION, "POST", hooks(org.orgId), org.adminKey, { ...VALID, url });
      expect(res.status, `${url}: ${res.text}`).toBe(201);
    }
  });

  it("refuses link-local and cloud metadata addresses and names in every mode, with a stable reason beside url", async () => {
    const metadata = [
      "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
      "https://169.254.169.254/latest/meta-data",
      "http://169.254.170.2/v2/credentials",
      "http://[fe80::1]/x",
      "http://[fd00:ec2::254]/latest/meta-data",
      "http://[::ffff:169.254.169.254]/x",
      "http://metadata.google.internal/computeMetadata/v1/",
      "http://metadata.google.internal./computeMetadata/v1/",
      "https://metadata.goog/computeMetadata/v1/",
      "http://instance-data/latest/",
      "http://100.100.100.200/latest/meta-data",
    ];
    for (const mode of [PRODUCTION, { WEBHOOKS_ALLOW_INSECURE_URLS: "true" }]) {
      for (const url of metadata) {
        const res = await callWith(mode, "POST", hooks(org.orgId), org.adminKey, { ...VALID, url });
        expect(res.status, `${mode.WEBHOOKS_ALLOW_INSECURE_URLS} ${url}: ${res.text}`).toBe(400);
        expect(res.body.error.details.issues[0], res.text).toMatchObject({ field: "url", reason: "LINK_LOCAL_OR_METADATA" });
      }
    }
  });

  it("in local development, admits loopback receivers only: other internal hosts and http to public hosts are refused", async () => {
    const DEV = { WEBHOOKS_ALLOW_INSECURE_URLS: "true" };
    for (const url of ["http://localhost:8787/hook", "http://127.0.0.1:9000/hook", "http://[::1]:8080/hook", "http://receiver.localhost/hook", "https://hooks.example.com/keygate"]) {
      const res = await callWith(DEV, "POST", hooks(org.orgId), org.adminKey, { ...VALID, url });
      expect(res.status, `${url}: ${res.text}`).toBe(201);
      await callWith(DEV, "DELETE", `${hooks(org.orgId)}/${res.body.id}`, org.adminKey);
    }
    for (const [url, reason] of [
      ["http://10.1.2.3/hook", "INSECURE_SCHEME"],
      ["https://10.1.2.3/hook", "INTERNAL_ADDRESS"],
      ["https://192.168.1.1/hook", "INTERNAL_ADDRESS"],
      ["https://[fd12::1]/hook", "INTERNAL_ADDRESS"],
      ["https://printer.local/hook", "INTERNAL_NAME"],
      ["http://hooks.example.com/keygate", "INSECURE_SCHEME"],
    ]) {
      const res = await callWith(DEV, "POST", hooks(org.orgId), org.adminKey, { ...VALID, url });
      expect(res.status, `${url}: ${res.text}`).toBe(400);
      expect(res.body.error.details.issues[0], res.text).toMatchObject({ field: "url", reason });
    }
  });

  it("in production, admits ports 443 and 8443 only", async () => {
    for (const url of ["https://hooks.example.com:443/k", "https://hooks.example.com:8443/k"]) {
      const res = await callWith(PRODUCTION, "POST", hooks(org.orgId), org.adminKey, { ...VALID, url });
      expect(res.status, `${url}: ${res.text}`).toBe(201);
      await callWith(PRODUCTION, "DELETE", `${hooks(org.orgId)}/${res.body.id}`, org.adminKey);
    }
    for (const url of ["https://hooks.example.com:8080/k", "https://hooks.example.com:22/k", "https://hooks.example.com:6379/k", "https://93.184.216.34:9200/k"]) {
      const res = await callWith(PRODUCTION, "POST", hooks(org.orgId), org.adminKey, { ...VALID, url });
      expect(res.status, `${url}: ${res.text}`).toBe(400);
      expect(res.body.error.details.issues[0], res.text).toMatchObject({ field: "url", reason: "PORT_NOT_ALLOWED" });
    }
  });

  it("in local development (WEBHOOKS_ALLOW_INSECURE_URLS), admits the demo receiver on http://localhost", async () => {
    const created = await register({ url: "http://localhost:8787/gw/demo/webhooks", eventTypes: ["*"] });
    expect(created.url).toBe("http://localhost:8787/gw/demo/webhooks");
  });

  it("stores the URL as it will be called: normalized by the URL parser", async () => {
    expect((await register({ url: " HTTPS://Hooks.Example.COM ", eventTypes: ["*"] })).url).toBe("https://hooks.example.com/");
  });

  it(`holds at most ${MAX_WEBHOOKS_PER_ORG} endpoints per organization (409)`, async () => {
    const crowded = await createOrg("Crowded Hooks");
    for (let i = 0; i < MAX_WEBHOOKS_PER_ORG; i++) await register({ url: `https://hooks.example.com/${i}`, eventTypes: ["*"] }, crowded);
    const res = await call("POST", hooks(crowded.orgId), { key: crowded.adminKey, body: VALID });
    expectStatus(res, 409);
    expect(res.body.error.code).toBe("CONFLICT");
  });
});

describe("GET, DELETE /v1/orgs/{orgId}/webhooks…", () => {
  it("lists newest first, page by page", async () => {
    const fresh = await createOrg("Paging Hooks");
    for (let i = 0; i < 3; i++) await register({ url: `https://hooks.example.com/${i}`, eventTypes: ["*"] }, fresh);
    const first = await call("GET", `${hooks(fresh.orgId)}?limit=2`, { key: fresh.adminKey });
    expectStatus(first, 200);
    expect(first.body.webhooks.map((w: { url: string }) => w.url)).toEqual(["https://hooks.example.com/2", "https://hooks.example.com/1"]);
    const second = await call("GET", `${hooks(fresh.orgId)}?limit=2&cursor=${first.body.nextCursor}`, { key: fresh.adminKey });
    expect(second.body.webhooks.map((w: { url: string }) => w.url)).toEqual(["https://hooks.example.com/0"]);
    expect(second.body.nextCursor).toBeNull();
    expectStatus(await call("GET", `${hooks(fresh.orgId)}?cursor=bogus`, { key: fresh.adminKey }), 400);
  });

  it("deletes an endpoint with its delivery log, audited as webhook.delete", async () => {
    const created = await register();
    const eventId = await seedEvent(org.orgId);
    await seedDelivery(org.orgId, created.id, eventId);
    const res = await call("DELETE", `${hooks(org.orgId)}/${created.id}`, { key: org.adminKey });
    expectStatus(res, 204);
    expectStatus(await call("GET", `${hooks(org.orgId)}/${created.id}`, { key: org.adminKey }), 404);
    expectStatus(await call("DELETE", `${hooks(org.orgId)}/${created.id}`, { key: org.adminKey }), 404);
    expectStatus(await call("GET", `${hooks(org.orgId)}/${created.id}/deliveries`, { key: org.adminKey }), 404);
    const left = await env.DB.prepare("select count(*) as n from webhook_deliveries where endpoint_id = ?").bind(created.id).first<{ n: number }>();
    expect(left!.n).toBe(0);
    const log = await call("GET", `/v1/orgs/${org.orgId}/audit-log?action=webhook.delete`, { key: org.adminKey });
    expect(log.body.entries.some((e: { targetType: string; targetId: string }) => e.targetType === "webhook" && e.targetId === created.id)).toBe(true);
  });

  it("refuses malformed ids with 400", async () => {
    expectStatus(await call("GET", `${hooks(org.orgId)}/not-an-id`, { key: org.adminKey }), 400);
    expectStatus(await call("DELETE", `${hooks(org.orgId)}/not-an-id`, { key: org.adminKey }), 400);
  });
});

/** An event of `orgId`, written straight to the outbox as already published (no publisher picks it up). */
async function seedEvent(orgId: string, type = "key.revoked") {
  const id = `evt_${newId()}`;
  await db(env.DB).insert(events).values({ id, orgId, type, subjectType: "key", subjectId: newId(), data: {}, createdAt: Date.now(), publishedAt: Date.now() });
  return id;
}

async function seedDelivery(orgId: string, endpointId: string, eventId: string, fields: Partial<typeof webhookDeliveries.$inferInsert> = {}) {
  const now = Date.now();
  const id = `msg_${newId(now)}`;
  await db(env.DB)
    .insert(webhookDeliveries)
    .values({ id, orgId, endpointId, eventId, status: "pending", attempts: 0, createdAt: now, updatedAt: now, ...fields });
  return id;
}

describe("the delivery log and resend", () => {
  it("lists an endpoint's deliveries newest first with their event type, status and last error", async () => {
    const created = await register();
    const ids = [];
    for (const type of ["key.created", "key.revoked", "key.leaked"]) {
      ids.push(await seedDelivery(org.orgId, created.id, await seedEvent(org.orgId, type), { status: "failed", attempts: 2, lastStatus: 503, lastError: "HTTP 503", nextAttemptAt: Date.now() + 60_000 }));
      await new Promise((r) => setTimeout(r, 2));
    }
    const first = await call("GET", `${hooks(org.orgId)}/${created.id}/deliveries?limit=2`, { key: org.adminKey });
    expectStatus(first, 200);
    expect(first.body.deliveries.map((d: { eventType: string }) => d.eventType)).toEqual(["key.leaked", "key.revoked"]);
    expect(first.body.deliveries[0]).toMatchObject({ id: ids[2], webhookId: created.id, status: "failed", attempts: 2, lastStatus: 503, lastError: "HTTP 503" });
    expect(first.body.deliveries[0].nextAttemptAt).toMatch(/Z$/);
    const second = await call("GET", `${hooks(org.orgId)}/${created.id}/deliveries?limit=2&cursor=${first.body.nextCursor}`, { key: org.adminKey });
    expect(second.body.deliveries.map((d: { id: string }) => d.id)).toEqual([ids[0]]);
    expectStatus(await call("GET", `${hooks(org.orgId)}/${created.id}/deliveries?cursor=${first.body.nextCursor.slice(0, -2)}`, { key: org.adminKey }), 400);
  });

  it("resend queues a new attempt now, whatever the status; an unknown delivery is 404", async () => {
    const created = await register();
    const deliveryId = await seedDelivery(org.orgId, created.id, await seedEvent(org.orgId), { status: "dead", attempts: 12, lastError: "HTTP 500" });
    const sent: unknown[] = [];
    const queue = { send: async (body: unknown) => void sent.push(body), sendBatch: async () => undefined } as unknown as Queue;
    const before = Date.now();
    const res = await callWith({ EVENTS: queue }, "POST", `${hooks(org.orgId)}/${created.id}/deliveries/${deliveryId}/resend`, org.adminKey);
    expectStatus(res, 202);
    expect(res.body).toMatchObject({ id: deliveryId, status: "pending", attempts: 12, eventType: "key.revoked" });
    expect(Date.parse(res.body.nextAttemptAt)).toBeGreaterThanOrEqual(before);
    expect(sent).toEqual([{ kind: "delivery", deliveryId }]);
    const unknown = `msg_${newId()}`;
    expectStatus(await callWith({ EVENTS: queue }, "POST", `${hooks(org.orgId)}/${created.id}/deliveries/${unknown}/resend`, org.adminKey), 404);
    expectStatus(await callWith({ EVENTS: queue }, "POST", `${hooks(org.orgId)}/${created.id}/deliveries/evt_x/resend`, org.adminKey), 400);
    // A delivery of another endpoint is not found under this one.
    const elsewhere = await register();
    expectStatus(await callWith({ EVENTS: queue }, "POST", `${hooks(org.orgId)}/${elsewhere.id}/deliveries/${deliveryId}/resend`, org.adminKey), 404);
    expect(sent).toHaveLength(1);
  });

  it("resend answers 503 when the queue is down, and says nothing was sent", async () => {
    const created = await register();
    const deliveryId = await seedDelivery(org.orgId, created.id, await seedEvent(org.orgId), { status: "succeeded", attempts: 1, lastStatus: 200 });
    const down = { send: async () => Promise.reject(new Error("queue unavailable")) } as unknown as Queue;
    const res = await callWith({ EVENTS: down }, "POST", `${hooks(org.orgId)}/${created.id}/deliveries/${deliveryId}/resend`, org.adminKey);
    expectStatus(res, 503);
    expect(res.body.error.code).toBe("SERVICE_UNAVAILABLE");
  });
});

describe("security", () => {
  const paths = (orgId: string, webhookId: string, deliveryId: string) =>
    [
      ["POST", hooks(orgId), VALID],
      ["GET", hooks(orgId)],
      ["GET", `${hooks(orgId)}/${webhookId}`],
      ["DELETE", `${hooks(orgId)}/${webhookId}`],
      ["GET", `${hooks(orgId)}/${webhookId}/deliveries`],
      ["POST", `${hooks(orgId)}/${webhookId}/deliveries/${deliveryId}/resend`],
    ] as const;

  it("needs org:admin: a member or a key manager gets 403, no key 401", async () => {
    const created = await register();
    const deliveryId = await seedDelivery(org.orgId, created.id, await seedEvent(org.orgId));
    for (const [method, path, body] of paths(org.orgId, created.id, deliveryId)) {
      for (const key of [member, manager]) {
        const res = await call(method, path, { key, body });
        expectStatus(res, 403);
        expect(res.body.error.code).toBe("FORBIDDEN");
      }
      expectStatus(await call(method, path, { body }), 401);
    }
    expectStatus(await call("GET", `${hooks(org.orgId)}/${created.id}`, { key: org.adminKey }), 200);
  });

  it("another organization's admin gets 404 for every webhook operation, and changes nothing", async () => {
    const created = await register();
    const deliveryId = await seedDelivery(org.orgId, created.id, await seedEvent(org.orgId));
    for (const [method, path, body] of paths(org.orgId, created.id, deliveryId)) {
      const res = await call(method, path, { key: other.adminKey, body });
      expectStatus(res, 404);
    }
    // Its own org's paths with our ids: not found either.
    for (const [method, path, body] of paths(other.orgId, created.id, deliveryId).slice(2)) {
      expectStatus(await call(method, path, { key: other.adminKey, body }), 404);
    }
    expectStatus(await call("GET", `${hooks(org.orgId)}/${created.id}`, { key: org.adminKey }), 200);
    const row = await env.DB.prepare("select status from webhook_deliveries where id = ?").bind(deliveryId).first<{ status: string }>();
    expect(row!.status).toBe("pending");
  });
});
