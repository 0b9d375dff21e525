import { inNetworks, parseAddress, toNetworks } from "../domain/cidr";

/**
 * Which URLs an organization may register as webhook endpoints: `https` only (the payload and its
 * signature travel in the clear otherwise), ports 443 and 8443, and never an address inside anyone's
 * own network — loopback, private, link-local, carrier-grade NAT, documentation, multicast, reserved,
 * or a name that only resolves inside a network (`localhost`, `*.local`, `*.internal`, a single
 * label). Local development adds loopback receivers (over http too), nothing else; link-local and
 * cloud metadata addresses are refused in every mode. Workers' outbound fetch reaches the public
 * internet only, so this is the first of two walls, and the one that answers the user with a reason.
 *
 * A name is judged as written, not resolved: a public name pointing at 10.0.0.1 passes here and is
 * stopped by the platform's egress.
 */

export const WEBHOOK_URL_MAX_LENGTH = 2048;

/**
 * IPv4 ranges that are not the public internet (RFC 6890 and friends). They also hold as IPv4-mapped
 * IPv6 (::ffff:a.b.c.d), since `parseAddress` puts both in one space.
 */
const NON_PUBLIC_V4 = [
  "0.0.0.0/8", // "this network"
  "10.0.0.0/8", // private
  "100.64.0.0/10", // carrier-grade NAT
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local (cloud metadata services live here)
  "172.16.0.0/12", // private
  "192.0.0.0/24", // IETF protocol assignments
  "192.0.2.0/24", // documentation
  "192.88.99.0/24", // 6to4 relay anycast
  "192.168.0.0/16", // private
  "198.18.0.0/15", // benchmarking
  "198.51.100.0/24", // documentation
  "203.0.113.0/24", // documentation
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved and broadcast
];
/** IPv6 outside global unicast, and the global unicast ranges that are not a public host of their own. */
const NON_PUBLIC_V6 = [
  "::/96", // unspecified, loopback, the deprecated IPv4-compatible form
  "64:ff9b::/96", // NAT64: would reach any IPv4 address, private ones included
  "64:ff9b:1::/48", // local-use NAT64
  "100::/64", // discard
  "2001::/23", // IETF protocol assignments (Teredo among them)
  "2001:db8::/32", // documentation
  "2002::/16", // 6to4: embeds any IPv4 address
  "3fff::/20", // documentation
  "fc00::/7", // unique local
  "fe80::/10", // link-local
  "fec0::/10", // site-local (deprecated)
  "ff00::/8", // multicast
];
const NON_PUBLIC = toNetworks([...NON_PUBLIC_V4, ...NON_PUBLIC_V6]);
const GLOBAL_UNICAST_V6 = toNetworks(["2000::/3"]);
const IPV4_SPACE = toNetworks(["::ffff:0.0.0.0/96"]);

/**
 * Refused in every mode, local development included: link-local ranges, where cloud metadata services
 * answer (credentials for the machine's role among them), and the metadata services' other addresses
 * and names. A receiver is never one of these.
 */
const LINK_LOCAL_OR_METADATA = toNetworks([
  "169.254.0.0/16", // link-local: AWS, GCP, Azure, Oracle and OpenStack metadata at 169.254.169.254
  "fe80::/10", // link-local
  "fd00:ec2::254/128", // AWS's IPv6 metadata service
  "100.100.100.200/32", // Alibaba Cloud's metadata service
]);
const METADATA_NAME = /^(metadata\.google\.internal|metadata\.goog|metadata|instance-data|instance-data\.ec2\.internal|metadata\.tencentyun\.com|metadata\.platformequinix\.com)$/;

/** Loopback: the only internal destination local development admits (the demo receiver on localhost). */
const LOOPBACK = toNetworks(["127.0.0.0/8", "::1/128"]);
const LOOPBACK_NAME = /(^|\.)localhost$/;

/**
 * Ports a production endpoint may use: https's own and its common alternative. A webhook receiver is a
 * public web service; other ports are where a public host's internal services listen (admin panels,
 * databases, caches, mail), so a URL naming one is refused rather than probed from our egress.
 */
export const WEBHOOK_PORTS = ["443", "8443"] as const;

/** Names that only mean something inside a network (RFC 6761, RFC 6762, RFC 8375, ICANN's .internal). */
const INTERNAL_NAME = /(^|\.)(localhost|local|internal|intranet|lan|home\.arpa|invalid)$/;

/** Why a URL cannot be a webhook endpoint: `reason` is stable (for programs), `message` is for people. */
export interface EndpointUrlIssue {
  reason:
    | "TOO_LONG"
    | "NOT_A_URL"
    | "INSECURE_SCHEME"
    | "CREDENTIALS_IN_URL"
    | "FRAGMENT"
    | "LINK_LOCAL_OR_METADATA"
    | "INTERNAL_ADDRESS"
    | "INTERNAL_NAME"
    | "PORT_NOT_ALLOWED";
  message: string;
}

const issue = (reason: EndpointUrlIssue["reason"], message: string): EndpointUrlIssue => ({ reason, message });

/** `host` (a URL's hostname) without a trailing dot or IPv6 brackets, and its address when it is one. */
function hostOf(host: string): { name: string; address: bigint | null } {
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  const literal = name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
  return { name, address: parseAddress(literal) };
}

/** Why `host` is not a public destination, or null when it is one. */
function internalHostIssue({ name, address }: { name: string; address: bigint | null }): EndpointUrlIssue | null {
  if (address !== null) {
    const isV4 = inNetworks(address, IPV4_SPACE);
    if (inNetworks(address, NON_PUBLIC) || (!isV4 && !inNetworks(address, GLOBAL_UNICAST_V6))) {
      return issue("INTERNAL_ADDRESS", "must not be a private, loopback, link-local or otherwise internal address");
    }
    return null;
  }
  if (INTERNAL_NAME.test(name)) return issue("INTERNAL_NAME", "must not be a name that only resolves inside a network (localhost, *.local, *.internal…)");
  if (!name.includes(".")) return issue("INTERNAL_NAME", "must be a fully qualified public host name");
  return null;
}

/**
 * Why `text` cannot be a webhook endpoint, or null when it can. In every mode: an absolute URL with no
 * credentials or fragment, and never a link-local or cloud metadata address or name. In production:
 * `https`, a public host, port 443 or 8443. `allowInsecure` (local development only:
 * `WEBHOOKS_ALLOW_INSECURE_URLS = "true"`) admits loopback receivers besides (`localhost`,
 * `127.0.0.0/8`, `::1`), over `http` too and on any port, so the demo receiver on localhost can be one;
 * any other URL is judged as in production.
 * @example endpointUrlIssue("http://10.0.0.1/hook", false) // { reason: "INSECURE_SCHEME", … }
 * @example endpointUrlIssue("https://hooks.example.com/keygate", false) // null
 */
export function endpointUrlIssue(text: string, allowInsecure: boolean): EndpointUrlIssue | null {
  if (text.length > WEBHOOK_URL_MAX_LENGTH) return issue("TOO_LONG", `must be at most ${WEBHOOK_URL_MAX_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return issue("NOT_A_URL", "must be an absolute URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return issue("INSECURE_SCHEME", "must use https");
  // Credentials in a URL are shown wherever the URL is (lists, the console): a receiver's token belongs in the path or query.
  if (url.username || url.password) return issue("CREDENTIALS_IN_URL", "must not contain a user name or password");
  if (url.hash) return issue("FRAGMENT", "must not have a fragment");
  // The URL parser has already turned every IPv4 spelling (decimal, hex, octal, short forms) into a dotted quad.
  const host = hostOf(url.hostname.toLowerCase());
  if ((host.address !== null && inNetworks(host.address, LINK_LOCAL_OR_METADATA)) || METADATA_NAME.test(host.name)) {
    return issue("LINK_LOCAL_OR_METADATA", "must not be a link-local or cloud metadata address (refused in every mode)");
  }
  const loopback = host.address !== null ? inNetworks(host.address, LOOPBACK) : LOOPBACK_NAME.test(host.name);
  if (allowInsecure && loopback) return null;
  if (url.protocol !== "https:") return issue("INSECURE_SCHEME", allowInsecure ? "must use https (http is admitted for loopback receivers only)" : "must use https");
  const internal = internalHostIssue(host);
  if (internal) return internal;
  // `port` is "" when the URL names the scheme's default (443).
  if (url.port !== "" && !(WEBHOOK_PORTS as readonly string[]).includes(url.port)) {
    return issue("PORT_NOT_ALLOWED", `must use port ${WEBHOOK_PORTS.join(" or ")}`);
  }
  return null;
}

/** Whether the deployment is local development, where loopback endpoint URLs (over http too) are allowed. */
export const allowsInsecureUrls = (env: { WEBHOOKS_ALLOW_INSECURE_URLS?: string }) => env.WEBHOOKS_ALLOW_INSECURE_URLS === "true";
