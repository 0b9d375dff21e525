import type { GatewayRouteInput } from "./config";

/**
 * The gateway's route table: the one file an operator edits. Each request under `/gw/` goes to the
 * first route whose pattern matches. Checked when the worker loads (see `config.ts`).
 *
 * - `pattern`: `/gw/…` with `:param` segments and an optional trailing `/*`
 * - `methods`: allowed methods (others answer 405)
 * - `upstream`: `{ service: "BINDING" }` (a service binding in wrangler.toml) or `{ url: "https://…" }`
 * - `stripPrefix`: whole leading segments of the pattern (`/gw/demo`, not `/gw/demo/`), removed from
 *   the path before it becomes the upstream URL's path (the upstream's host and port never change)
 * - `auth: false` for an open route; otherwise `permission` (optional) and `appParam`, the `:param`
 *   naming the app the permission is needed on
 * - `mode`: `lease` (the default: in force everywhere once a change returns, no I/O while a lease is
 *   held), `strict` (asks the key's authority every time) or `cached` (KV, up to its propagation delay
 *   behind a change); `strict: true` is `mode: "strict"`
 *
 * The routes below serve the demo upstream that `npm run dev` starts (demo/upstream.js).
 */
export const GATEWAY_ROUTES: GatewayRouteInput[] = [
  {
    name: "demo-upload-bundle",
    pattern: "/gw/demo/apps/:appId/bundles",
    methods: ["POST"],
    upstream: { service: "DEMO_UPSTREAM" },
    stripPrefix: "/gw/demo",
    permission: "app:upload",
    appParam: "appId",
  },
  {
    name: "demo-app",
    pattern: "/gw/demo/apps/:appId/*",
    methods: ["GET", "HEAD"],
    upstream: { service: "DEMO_UPSTREAM" },
    stripPrefix: "/gw/demo",
    permission: "app:read",
    appParam: "appId",
  },
  {
    name: "demo-deploy",
    pattern: "/gw/demo/deploy",
    methods: ["POST"],
    upstream: { service: "DEMO_UPSTREAM" },
    stripPrefix: "/gw/demo",
    permission: "project:deploy",
    strict: true,
  },
  {
    name: "demo-whoami",
    pattern: "/gw/demo/whoami",
    methods: ["GET"],
    upstream: { service: "DEMO_UPSTREAM" },
    stripPrefix: "/gw/demo",
  },
  {
    name: "demo-stream",
    pattern: "/gw/demo/stream",
    methods: ["GET", "POST"],
    upstream: { service: "DEMO_UPSTREAM" },
    stripPrefix: "/gw/demo",
  },
  {
    // The demo webhook receiver (README "Webhooks"): open, because webhook requests carry a signature, not a key.
    name: "demo-webhooks",
    pattern: "/gw/demo/webhooks",
    methods: ["GET", "POST"],
    upstream: { service: "DEMO_UPSTREAM" },
    stripPrefix: "/gw/demo",
    auth: false,
  },
  {
    name: "demo-public",
    pattern: "/gw/demo/public/*",
    methods: ["GET", "POST"],
    upstream: { service: "DEMO_UPSTREAM" },
    stripPrefix: "/gw/demo",
    auth: false,
  },
];
