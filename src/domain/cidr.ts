/**
 * Allowed networks (issue 14): IPv4 and IPv6 addresses and CIDR ranges, parsed strictly and matched
 * in one 128-bit space.
 *
 * - One space: the IPv4 address a.b.c.d is the IPv4-mapped IPv6 address ::ffff:a.b.c.d (RFC 4291
 *   §2.5.5.2) and an IPv4 /n is the mapped /(96+n). So `::/0` holds every address, `0.0.0.0/0` every
 *   IPv4 address however it is written, and a client that a dual-stack socket reports as
 *   ::ffff:a.b.c.d matches IPv4 ranges (and the other way round).
 * - Only ::ffff:0:0/96 is IPv4. The deprecated IPv4-compatible form "::1.2.3.4" (RFC 4291 §2.5.5.1)
 *   parses as what it literally is, the IPv6 address ::102:304, which matches no IPv4 range; so does
 *   any other x:x:x:x:x:x:d.d.d.d text (e.g. NAT64's 64:ff9b::1.2.3.4).
 * - Strict text, no guessing: IPv4 is exactly four decimal octets 0–255 without leading zeros
 *   (inet_aton reads "010" as octal 8, a browser as decimal 10: refusing it leaves no ambiguity);
 *   IPv6 groups are 1–4 hex digits in any case, at most one "::" (standing for one or more zero
 *   groups), an optional dotted IPv4 tail. No zone ids (a scope belongs to a host's interface, not to
 *   a network anyone can list), brackets, ports or whitespace.
 * - A range must not have host bits set: "10.1.2.3/8" is refused with the range it probably meant,
 *   rather than silently widened or narrowed. A prefix is plain decimal without leading zeros, 0–32
 *   after IPv4 text, 0–128 after IPv6 text; a bare address is a /32 or /128.
 * - Canonical text (what is stored and shown): dotted quad for IPv4; RFC 5952 for IPv6 (lowercase,
 *   no leading zeros, the longest run of two or more zero groups as "::", the first on a tie), with
 *   ::ffff:a.b.c.d for a mapped address (RFC 5952 §5). A range inside ::ffff:0:0/96 (prefix ≥ 96) is
 *   written as the IPv4 range it is: "::ffff:10.0.0.0/104" → "10.0.0.0/8". A range always shows its prefix.
 */

export const MAX_NETWORKS = 50;

/** A range of the 128-bit space: `prefix` 0..128, `base` with every bit after the prefix zero. */
export interface Network {
  base: bigint;
  prefix: number;
}

const IPV4_MAPPED = 0xffff_0000_0000n;
const ALL_ONES = (1n << 128n) - 1n;
/** MASKS[p] has the top p bits set: built once, so a match is one AND and one compare. */
const MASKS: readonly bigint[] = Array.from({ length: 129 }, (_, p) => ALL_ONES ^ ((1n << BigInt(128 - p)) - 1n));

/** "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255": anything longer is refused before a scan. */
const MAX_ADDRESS_LENGTH = 45;
/** The longest address and "/128". */
const MAX_NETWORK_LENGTH = MAX_ADDRESS_LENGTH + 4;

// Reused by every IPv6 parse (synchronous, one isolate thread), so a parse allocates only its result.
const GROUPS = new Uint16Array(8);

/**
 * The 128-bit value of a client address (IPv4 dotted quad, or IPv6 in any case, with "::" and an
 * optional dotted IPv4 tail); null if `text` is not exactly an address (see the rules above).
 * @example parseAddress("10.0.0.1") === 0xffff_0a00_0001n // the IPv4-mapped value
 */
export function parseAddress(text: string): bigint | null {
  if (typeof text !== "string" || text.length === 0 || text.length > MAX_ADDRESS_LENGTH) return null;
  if (text.indexOf(":") < 0) {
    const v4 = parseIPv4(text, 0, text.length);
    return v4 < 0 ? null : IPV4_MAPPED | BigInt(v4);
  }
  return parseIPv6(text);
}

/** The 32-bit value of the dotted quad text[start, end), or -1. */
function parseIPv4(text: string, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  for (;;) {
    const first = i;
    let octet = 0;
    while (i < end) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      octet = octet * 10 + (c - 48);
      if (++i - first > 3) return -1;
    }
    if (i === first || octet > 255 || (i - first > 1 && text.charCodeAt(first) === 48)) return -1;
    value = value * 256 + octet;
    if (++octets === 4) return i === end ? value : -1;
    if (i === end || text.charCodeAt(i) !== 46) return -1;
    i++;
  }
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20; // 'A'..'F' → 'a'..'f'; maps nothing else into 'a'..'f'
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

function parseIPv6(text: string): bigint | null {
  const end = text.length;
  let count = 0; // groups read
  let gap = -1; // where "::" stands, as a group index
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return null;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    const first = i;
    let group = 0;
    for (let d: number; i < end && (d = hexDigit(text.charCodeAt(i))) >= 0; i++) {
      if (i - first === 4) return null;
      group = group * 16 + d;
    }
    if (i < end && text.charCodeAt(i) === 46) {
      // A dotted IPv4 tail: the last two groups, ending the text.
      if (count > 6) return null;
      const v4 = parseIPv4(text, first, end);
      if (v4 < 0) return null;
      GROUPS[count++] = v4 >>> 16;
      GROUPS[count++] = v4 & 0xffff;
      break;
    }
    if (i === first || count === 8) return null;
    GROUPS[count++] = group;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return null; // '%' of a zone id, ']', '/', space, any other character
    if (++i === end) return null; // a lone trailing ':'
    if (text.charCodeAt(i) === 58) {
      if (gap >= 0) return null;
      gap = count;
      i++;
    }
  }
  if (gap < 0 ? count !== 8 : count > 7) return null;
  // The groups after "::" move to the end; the zeros it stands for go between.
  if (gap >= 0) {
    const moved = count - gap;
    for (let k = 1; k <= moved; k++) GROUPS[8 - k] = GROUPS[count - k]!;
    for (let k = gap; k < 8 - moved; k++) GROUPS[k] = 0;
  }
  const g = GROUPS;
  const w0 = g[0]! * 0x10000 + g[1]!;
  const w1 = g[2]! * 0x10000 + g[3]!;
  const w2 = g[4]! * 0x10000 + g[5]!;
  const w3 = g[6]! * 0x10000 + g[7]!;
  if (w0 === 0 && w1 === 0 && w2 === 0xffff) return IPV4_MAPPED | BigInt(w3);
  return (BigInt(w0) << 96n) | (BigInt(w1) << 64n) | (BigInt(w2) << 32n) | BigInt(w3);
}

/** Decimal digits without a leading zero, 0..128; -1 otherwise. */
function parsePrefix(text: string, start: number): number {
  const length = text.length - start;
  if (length < 1 || length > 3 || (length > 1 && text.charCodeAt(start) === 48)) return -1;
  let value = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    value = value * 10 + (c - 48);
  }
  return value;
}

/** Quoted for an error message, cut short so a hostile input does not fill the response. */
function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

/**
 * A CIDR range or a bare address (a /32 or /128), with its canonical text; or the reason it is not one.
 * @example parseNetwork("2001:DB8::/32") // { ok: true, network: { base: 0x20010db8n << 96n, prefix: 32 }, canonical: "2001:db8::/32" }
 * @example parseNetwork("10.1.2.3/8") // { ok: false, error: "10.1.2.3/8 has host bits set: did you mean 10.0.0.0/8?" }
 */
export function parseNetwork(text: string): { ok: true; network: Network; canonical: string } | { ok: false; error: string } {
  if (typeof text !== "string") return { ok: false, error: "must be a string" };
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const address = text.length > MAX_NETWORK_LENGTH ? null : parseAddress(addressText);
  if (address === null) return { ok: false, error: `${quote(text)} is not an IP address or CIDR range` };
  const isV4 = addressText.indexOf(":") < 0;
  const max = isV4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    prefix = parsePrefix(text, slash + 1);
    if (prefix < 0 || prefix > max) {
      return { ok: false, error: `${quote(text)} has a bad prefix length: ${isV4 ? "IPv4" : "IPv6"} takes 0 to ${max}` };
    }
  }
  const network: Network = { base: address & MASKS[isV4 ? prefix + 96 : prefix]!, prefix: isV4 ? prefix + 96 : prefix };
  // The text is a valid address and prefix here, so it is short and safe to echo as written.
  if (network.base !== address) return { ok: false, error: `${text} has host bits set: did you mean ${formatNetwork(network)}?` };
  return { ok: true, network, canonical: formatNetwork(network) };
}

/** Whether `address` lies inside any of `networks` (none: false). */
export function inNetworks(address: bigint, networks: readonly Network[]): boolean {
  for (let i = 0; i < networks.length; i++) {
    const network = networks[i]!;
    if ((address & MASKS[network.prefix]!) === network.base) return true;
  }
  return false;
}

/** The ranges of a stored list (validated when it was stored, so a bad entry is a bug: it throws). */
export function toNetworks(list: readonly string[]): Network[] {
  return list.map((text) => {
    const parsed = parseNetwork(text);
    if (!parsed.ok) throw new Error(`stored allowed networks hold a bad entry: ${parsed.error}`);
    return parsed.network;
  });
}

function dottedQuad(v4: number): string {
  return `${v4 >>> 24}.${(v4 >>> 16) & 0xff}.${(v4 >>> 8) & 0xff}.${v4 & 0xff}`;
}

/** An address as RFC 5952 text (an IPv4-mapped one as ::ffff:a.b.c.d). */
export function formatAddress(address: bigint): string {
  if (address >> 32n === 0xffffn) return `::ffff:${dottedQuad(Number(address & 0xffff_ffffn))}`;
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((address >> shift) & 0xffffn));
  // The longest run of at least two zero groups, the first one on a tie (RFC 5952 §4.2).
  let runStart = -1;
  let runLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > runLength) [runStart, runLength] = [i, j - i];
    i = j;
  }
  const hex = (part: number[]) => part.map((g) => g.toString(16)).join(":");
  return runStart < 0 ? hex(groups) : `${hex(groups.slice(0, runStart))}::${hex(groups.slice(runStart + runLength))}`;
}

/** A range's canonical text: the IPv4 form for ranges inside ::ffff:0:0/96, else RFC 5952 and the prefix. */
export function formatNetwork(network: Network): string {
  if (network.prefix >= 96 && network.base >> 32n === 0xffffn) {
    return `${dottedQuad(Number(network.base & 0xffff_ffffn))}/${network.prefix - 96}`;
  }
  return `${formatAddress(network.base)}/${network.prefix}`;
}
