// A probe worker the benchmark runs beside the gateway, in the same workerd: it measures what the
// runtime's own building blocks cost here (a KV read, a SHA-256, a rate-limiter call), so a target
// that the gateway misses can be compared with the floor those blocks set. Not part of the product.
import { DurableObject } from "cloudflare:workers";

const encoder = new TextEncoder();

/** An object that does nothing: what reaching a Durable Object costs by itself. */
export class ProbeObject extends DurableObject {
  ping() {
    return 1;
  }
  /** The shape of a cache fill: a D1 read by primary key, then a KV write, inside the object. */
  async fill(name) {
    await this.env.DB.prepare("select v from probe where id = ?").bind("a").first();
    await this.env.KV.put(`probe:fill:${name}`, "x");
    return 1;
  }
}

const objectNamed = (env, name) => env.OBJECT.get(env.OBJECT.idFromName(name));

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    switch (pathname) {
      case "/noop":
        return new Response("ok");
      // Reads of records that exist (a cache hit reads a key record and a policy record), and of one
      // that does not: locally a present value is read from Miniflare's blob store, an absent one is not.
      case "/kv-get":
        await env.KV.get("probe:record", "json");
        return new Response("ok");
      case "/kv-get-absent":
        await env.KV.get("probe:absent", "json");
        return new Response("ok");
      case "/kv-get-2":
        await Promise.all([env.KV.get("probe:record", "json"), env.KV.get("probe:policy", "json")]);
        return new Response("ok");
      case "/kv-get-bulk":
        await env.KV.get(["probe:record", "probe:policy"], "json");
        return new Response("ok");
      // What a POST costs the runtime itself: reading a small JSON body (the verify request's shape).
      case "/post-json":
        await request.json();
        return new Response("ok");
      // The runtime calls a lease hit cannot avoid, with none of our code: read the JSON body, SHA-256
      // of the key, one log line, a JSON answer. What a verification answered from memory costs at least.
      case "/hit-floor": {
        const { key } = await request.json();
        await crypto.subtle.digest("SHA-256", encoder.encode(key));
        console.log(JSON.stringify({ probe: true }));
        return Response.json({ valid: true, code: "VALID" });
      }
      case "/sha256":
        await crypto.subtle.digest("SHA-256", encoder.encode(pathname.repeat(10)));
        return new Response("ok");
      case "/ratelimit":
        await env.LIMITER.limit({ key: "probe" });
        return new Response("ok");
      case "/do-same":
        await objectNamed(env, "same").ping();
        return new Response("ok");
      case "/do-new":
        await objectNamed(env, crypto.randomUUID()).ping();
        return new Response("ok");
      case "/d1-get":
        await env.DB.prepare("select v from probe where id = ?").bind("a").first();
        return new Response("ok");
      case "/kv-put":
        await env.KV.put(`probe:put:${crypto.randomUUID()}`, "x");
        return new Response("ok");
      case "/miss-chain": {
        // The cache-miss path's storage calls with none of our code: a KV miss, then a fresh object
        // that reads D1 (key, roles and policy in one query) and writes the KV record.
        const name = crypto.randomUUID();
        await env.KV.get(`probe:${name}`);
        await objectNamed(env, name).fill(name);
        return new Response("ok");
      }
      case "/log":
        console.log(JSON.stringify({ probe: true }));
        return new Response("ok");
      default:
        return new Response("not found", { status: 404 });
    }
  },
};
