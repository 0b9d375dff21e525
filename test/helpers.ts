import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";

export const BOOTSTRAP = env.BOOTSTRAP_SECRET;

export interface CallOptions {
  key?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * Calls the worker as a client would. Returns the status, headers and parsed body, and a `text` of
 * the whole response for failure messages (so a red test explains itself).
 */
export async function call(method: string, path: string, options: CallOptions = {}) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await exports.default.fetch(new Request(`https://gateway.test${path}`, { method, headers, body }));
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, body: json, text: `${res.status} ${text}` };
}

/** Asserts the status, showing the whole response when it differs. */
export function expectStatus(res: { status: number; text: string }, status: number) {
  expect(res.status, res.text).toBe(status);
}

/** Creates an organization through the bootstrap endpoint; returns its id and admin key. */
export async function createOrg(name = "Acme") {
  const res = await call("POST", "/v1/orgs", { key: BOOTSTRAP, body: { name } });
  expectStatus(res, 201);
  return { orgId: res.body.org.id as string, adminKey: res.body.key.key as string, adminKeyId: res.body.key.id as string };
}
