// A probe worker the benchmark runs beside the gateway, in the same workerd: it measures what the
// runtime's own building blocks cost here (a KV read, a SHA-256, a rate-limiter call), so a target
// that the gateway misses can be compared with the floor those blocks set. Not part of the product.
const encoder = new TextEncoder();

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    switch (pathname) {
      case "/noop":
        return new Response("ok");
      case "/kv-get":
        await env.KV.get("probe:missing");
        return new Response("ok");
      case "/kv-get-2":
        await env.KV.get("probe:missing");
        await env.KV.get("probe:other");
        return new Response("ok");
      case "/sha256":
        await crypto.subtle.digest("SHA-256", encoder.encode(pathname.repeat(10)));
        return new Response("ok");
      case "/ratelimit":
        await env.LIMITER.limit({ key: "probe" });
        return new Response("ok");
      case "/log":
        console.log(JSON.stringify({ probe: true }));
        return new Response("ok");
      default:
        return new Response("not found", { status: 404 });
    }
  },
};
