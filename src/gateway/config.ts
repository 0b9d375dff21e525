import { z } from "zod";
import { PERMISSIONS } from "../domain/catalog";
import { VERIFY_MODES } from "../domain/lease";

/**
 * The schema of the gateway's route table (`routes.ts`), checked when the worker loads: a table that
 * does not parse stops the worker from starting, with every problem named, instead of misrouting.
 */

export const GATEWAY_PREFIX = "/gw/";
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

const Upstream = z.union([
  z.strictObject({
    url: z
      .url({ protocol: /^https?$/ })
      .refine((u) => !/[?#]/.test(u), "must have no query or fragment: the request's path is appended to it and its query sent")
      .describe("Base URL the path is appended to"),
  }),
  z.strictObject({ service: z.string().regex(/^[A-Z][A-Z0-9_]*$/, "must name a service binding, e.g. UPSTREAM") }),
]);

export const GatewayRouteSchema = z
  .strictObject({
    name: z.string().min(1),
    /** `/gw/…` with `:param` segments and an optional trailing `*`. */
    pattern: z
      .string()
      .startsWith(GATEWAY_PREFIX, `must start with ${GATEWAY_PREFIX}`)
      .regex(/^(\/(:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9._~-]+))+(\/\*)?$/, "must be /segments with :params and an optional trailing /*"),
    methods: z.array(z.enum(METHODS)).min(1).default(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
    upstream: Upstream,
    /**
     * Removed from the front of the path before it is appended to the upstream: whole literal segments
     * of the pattern (`/gw/demo`, never `/gw/demo/` or `/gw/de`), so what is left starts with `/`.
     */
    stripPrefix: z
      .string()
      .regex(/^(\/[A-Za-z0-9._~-]+)+$/, "must be whole literal segments (/a/b): no :params, no *, no trailing /")
      .optional(),
    /** `false` for an open route that needs no key. */
    auth: z.boolean().default(true),
    permission: z.enum(PERMISSIONS).optional(),
    /** The `:param` of the pattern that names the app the permission is needed on. */
    appParam: z.string().optional(),
    /** Verify with the key's authority instead of the edge cache: zero staleness, more latency. */
    strict: z.boolean().default(false),
    /** `lease` (default), `strict` or `cached`: see docs/consistency.md. `strict: true` is `mode: "strict"`. */
    mode: z.enum(VERIFY_MODES).optional(),
    /** Credits one request spends from a metered key (default 1). */
    cost: z.number().int().min(1).max(1_000).default(1),
  })
  .superRefine((route, ctx) => {
    if (route.appParam && !route.pattern.split("/").includes(`:${route.appParam}`)) {
      ctx.addIssue({ code: "custom", path: ["appParam"], message: `:${route.appParam} is not a parameter of the pattern` });
    }
    if (route.appParam && !route.permission) {
      ctx.addIssue({ code: "custom", path: ["appParam"], message: "names an app but the route requires no permission" });
    }
    if (!route.auth && (route.permission || route.strict || route.mode)) {
      ctx.addIssue({ code: "custom", path: ["auth"], message: "an open route cannot require a permission or a verification mode" });
    }
    // A prefix that ends inside a segment would glue the rest of the path onto the upstream's host
    // (`/gw/svc/` + `.evil.example`): it must end where a segment of the pattern ends.
    const boundary = route.stripPrefix ? route.pattern[route.stripPrefix.length] : undefined;
    if (route.stripPrefix && (!route.pattern.startsWith(route.stripPrefix) || (boundary !== undefined && boundary !== "/"))) {
      ctx.addIssue({ code: "custom", path: ["stripPrefix"], message: "must be a prefix of the pattern that ends on a segment boundary" });
    }
  });
export type GatewayRouteInput = z.input<typeof GatewayRouteSchema>;
export type GatewayRoute = z.output<typeof GatewayRouteSchema>;

export class GatewayConfigError extends Error {
  override name = "GatewayConfigError";
}

/** A route with its pattern compiled. */
export interface CompiledRoute extends GatewayRoute {
  regex: RegExp;
  params: string[];
}

/**
 * Parses and compiles the route table; throws `GatewayConfigError` naming each bad field.
 * @example const routes = compileGateway(GATEWAY_ROUTES);
 */
export function compileGateway(input: unknown): CompiledRoute[] {
  const parsed = z
    .array(GatewayRouteSchema)
    .superRefine((routes, ctx) => {
      const names = new Set<string>();
      routes.forEach((r, i) => {
        if (names.has(r.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `duplicate route name ${r.name}` });
        names.add(r.name);
      });
    })
    .safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `routes.${i.path.join(".")}: ${i.message}`).join("; ");
    throw new GatewayConfigError(`Invalid gateway route table (src/gateway/routes.ts): ${problems}`);
  }
  return parsed.data.map((route) => {
    const params: string[] = [];
    const source = route.pattern
      .split("/")
      .map((segment) => {
        if (segment === "*") return "(?:/(?<rest>.*))?";
        if (segment.startsWith(":")) {
          params.push(segment.slice(1));
          return `/(?<${segment.slice(1)}>[^/]+)`;
        }
        return segment ? `/${segment.replace(/[.~-]/g, "\\$&")}` : "";
      })
      .join("");
    return { ...route, params, regex: new RegExp(`^${source}$`) };
  });
}

/** The first route whose pattern matches `path`, with its parameters. */
export function matchRoute(routes: readonly CompiledRoute[], path: string) {
  for (const route of routes) {
    const match = route.regex.exec(path);
    if (match) return { route, params: { ...match.groups } as Record<string, string> };
  }
  return null;
}
