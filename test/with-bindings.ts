import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import worker from "../src/index";

/**
 * Sends `request` to the worker with some of its bindings replaced (failing, recording or differently
 * configured storage), waiting for what it left running; returns status, headers, parsed body and a
 * `text` of the whole response for failure messages.
 */
export async function fetchWithBindings(bindings: Partial<Env>, request: Request) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(request as Parameters<typeof worker.fetch>[0], { ...env, ...bindings } as Env, ctx);
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, headers: res.headers, text: `${res.status} ${text}` };
}
