import { inNetworks, MAX_NETWORKS, parseAddress, parseNetwork, toNetworks, type Network } from "./cidr";

/**
 * A key's allowed networks: the rules the API, the authority and the verifier share. A key with no
 * list (null or empty) may be used from anywhere; with one, only from an address inside a range.
 */

export { MAX_NETWORKS };

/**
 * The canonical, de-duplicated list of `input` ranges, or the issue of each bad entry (for a 400).
 * @example normalizeNetworks(["10.0.0.0/8", "2001:DB8::/32"]) // { ok: true, networks: ["10.0.0.0/8", "2001:db8::/32"] }
 */
export function normalizeNetworks(
  input: readonly string[],
): { ok: true; networks: string[] } | { ok: false; issues: { index: number; message: string }[] } {
  const issues: { index: number; message: string }[] = [];
  const seen = new Set<string>();
  input.forEach((text, index) => {
    const parsed = parseNetwork(text);
    if (!parsed.ok) issues.push({ index, message: parsed.error });
    else seen.add(parsed.canonical);
  });
  if (input.length > MAX_NETWORKS) issues.push({ index: MAX_NETWORKS, message: `must list at most ${MAX_NETWORKS} networks` });
  return issues.length ? { ok: false, issues } : { ok: true, networks: [...seen] };
}

/** Whether range `inner` lies inside range `outer`. */
function inside(inner: Network, outer: Network): boolean {
  return inner.prefix >= outer.prefix && inNetworks(inner.base, [outer]);
}

/**
 * Whether a key limited to `inner` is usable only where a caller limited to `outer` is (null or
 * empty: anywhere). A caller limited to networks never hands out, or takes, a key usable beyond them.
 * @example networksWithin(null, ["10.0.0.0/8"]) // false: an unlimited key is usable beyond 10/8
 */
export function networksWithin(inner: readonly string[] | null | undefined, outer: readonly string[] | null | undefined): boolean {
  if (!outer?.length) return true;
  if (!inner?.length) return false;
  const outerNets = toNetworks(outer);
  return toNetworks(inner).every((net) => outerNets.some((o) => inside(net, o)));
}

// Parsed ranges per stored list: a leased record keeps its array object, so a key in steady use
// parses its list once per isolate, not once per request.
const parsedLists = new WeakMap<readonly string[], Network[]>();

/**
 * Whether `ip` (the caller's address; undefined when unknown) may use a key limited to `allowed`.
 * An unknown or unparsable address is outside every list: a limit never holds by accident.
 */
export function addressAllowed(allowed: readonly string[] | null | undefined, ip: string | undefined): boolean {
  if (!allowed?.length) return true;
  const address = ip === undefined ? null : parseAddress(ip);
  if (address === null) return false;
  let networks = parsedLists.get(allowed);
  if (!networks) parsedLists.set(allowed, (networks = toNetworks(allowed)));
  return inNetworks(address, networks);
}
