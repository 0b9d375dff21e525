// The demo upstream `npm run dev` starts beside the gateway (and the tests use as their local
// upstream): it echoes what it received, so you can see what the gateway forwards.
const encoder = new TextEncoder();

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/stream") {
      // A long streamed body: proves the gateway streams instead of buffering.
      const chunks = Math.min(Number(url.searchParams.get("chunks") ?? 100), 10_000);
      let i = 0;
      const body = new ReadableStream({
        pull(controller) {
          if (i >= chunks) return controller.close();
          controller.enqueue(encoder.encode(`chunk ${i++} ${"x".repeat(1000)}\n`));
        },
      });
      return new Response(body, { headers: { "content-type": "text/plain", "x-demo-upstream": "stream" } });
    }
    const body = request.body ? await request.text() : "";
    return Response.json(
      {
        upstream: "keygate demo upstream",
        method: request.method,
        path: url.pathname,
        query: url.search,
        headers: Object.fromEntries(request.headers),
        bodyLength: body.length,
        bodySha256: [...new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(body)))]
          .map((b) => b.toString(16).padStart(2, "0"))
          .join(""),
      },
      { status: url.pathname.endsWith("/teapot") ? 418 : 200, headers: { "x-demo-upstream": "echo", "set-cookie": "demo=1; Path=/" } },
    );
  },
};
