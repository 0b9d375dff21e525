import { inNetworks, parseAddress, toNetworks } from "../domain/cidr";

/**
 * Which URLs an organization may register as webhook endpoints. Outside local development: `https`
 * only (the payload and its signature travel in the clear otherwise), and never an address inside
 * anyone's own network — loopback, private, link-local, carrier-grade NAT, documentation, multicast,
 * reserved, or a name that only resolves inside a network (`localhost`, `*.local`, `*.internal`, a
 * single label). Workers' outbound fetch reaches the public internet only, so this is the first of
 * two walls, and the one that answers the user with a reason.
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

/** Names that only mean something inside a network (RFC 6761, RFC 6762, RFC 8375, ICANN's .internal). */
const INTERNAL_NAME = /(^|\.)(localhost|local|internal|intranet|lan|home\.arpa|invalid)$/;

/** Why `host` (a URL's hostname) is not a public destination, or null when it is one. */
function internalHostIssue(host: string): string | null {
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  const literal = name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
  const address = parseAddress(literal);
  if (address !== null) {
    const isV4 = inNetworks(address, IPV4_SPACE);
    if (inNetworks(address, NON_PUBLIC) || (!isV4 && !inNetworks(address, GLOBAL_UNICAST_V6))) {
      return "must not be a private, loopback, link-local or otherwise internal address";
    }
    return null;
  }
  if (INTERNAL_NAME.test(name)) return "must not be a name that only resolves inside a network (localhost, *.local, *.internal…)";
  if (!name.includes(".")) return "must be a fully qualified public host name";
  return null;
}

/**
 * Why `text` cannot be a webhook endpoint, or null when it can. `allowInsecure` (local development
 * only: `WEBHOOKS_ALLOW_INSECURE_URLS = "true"`) admits `http` and internal hosts, so that the demo
 * receiver on localhost can be one.
 * @example endpointUrlIssue("http://10.0.0.1/hook", false) // "must use https"
 * @example endpointUrlIssue("https://hooks.example.com/keygate", false) // null
 */
export function endpointUrlIssue(text: string, allowInsecure: boolean): string | null {
  if (text.length > WEBHOOK_URL_MAX_LENGTH) return `must be at most ${WEBHOOK_URL_MAX_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "must be an absolute URL";
  }
  if (url.protocol !== "https:" && !(allowInsecure && url.protocol === "http:")) {
    return allowInsecure ? "must use https or http" : "must use https";
  }
  // Credentials in a URL are shown wherever the URL is (lists, the console): a receiver's token belongs in the path or query.
  if (url.username || url.password) return "must not contain a user name or password";
  if (url.hash) return "must not have a fragment";
  if (allowInsecure) return null;
  // The URL parser has already turned every IPv4 spelling (decimal, hex, octal, short forms) into a dotted quad.
  return internalHostIssue(url.hostname.toLowerCase());
}

/** Whether the deployment is local development, where insecure endpoint URLs are allowed. */
export const allowsInsecureUrls = (env: { WEBHOOKS_ALLOW_INSECURE_URLS?: string }) => env.WEBHOOKS_ALLOW_INSECURE_URLS === "true";
