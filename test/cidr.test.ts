import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatAddress,
  formatNetwork,
  inNetworks,
  MAX_NETWORKS,
  parseAddress,
  parseNetwork,
  toNetworks,
  type Network,
} from "../src/domain/cidr";
import { networksWithin } from "../src/domain/allowed-networks";
import { trials } from "./helpers";

/**
 * Allowed networks (issue 14, point 4): the address and range parser, the canonical text and the
 * matcher, against hand-written tables, RFC 5952's examples, the WHATWG URL parser (a second,
 * independent IPv6 parser and serializer) and a naive bit-string reference.
 */

const ALL_ONES = (1n << 128n) - 1n;
/** The 128-bit value of eight 16-bit groups. */
const groups = (...g: number[]) => g.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n);
/** The IPv4-mapped value of a.b.c.d. */
const v4 = (a: number, b: number, c: number, d: number) => groups(0, 0, 0, 0, 0, 0xffff, (a << 8) | b, (c << 8) | d);

describe("parseAddress", () => {
  it.each<[string, bigint]>([
    ["0.0.0.0", v4(0, 0, 0, 0)],
    ["255.255.255.255", v4(255, 255, 255, 255)],
    ["1.2.3.4", v4(1, 2, 3, 4)],
    ["10.0.0.1", v4(10, 0, 0, 1)],
    ["192.168.100.200", v4(192, 168, 100, 200)],
    ["100.64.0.0", v4(100, 64, 0, 0)],
    ["0.0.0.255", v4(0, 0, 0, 255)],
    ["9.99.199.249", v4(9, 99, 199, 249)],
  ])("IPv4 %s is its IPv4-mapped value", (text, value) => {
    expect(parseAddress(text)).toBe(value);
  });

  it.each([
    "",
    "1.2.3",
    "1.2",
    "1",
    "4294967295", // one number: inet_aton accepts it, we do not
    "256.0.0.1",
    "1.2.3.256",
    "1000.2.3.4",
    "1.2.3.4.5",
    "01.2.3.4", // leading zeros: octal to some parsers, decimal to others
    "1.2.3.04",
    "00.0.0.0",
    "1.2.3.00",
    "010.0.0.1",
    "0x1.2.3.4",
    "0x01020304",
    "1..2.3",
    ".1.2.3",
    "1.2.3.",
    "1.2.3.4.",
    "1.2.3.-4",
    "+1.2.3.4",
    "1e1.2.3.4",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.4\n",
    "1.2.3.4\u0000",
    "1. 2.3.4",
    "\uff11.2.3.4", // a fullwidth digit
    "\u0661.2.3.4", // an Arabic-Indic digit
    "1.2.3.4/32",
    "1.2.3.4:80",
    "a.b.c.d",
    "localhost",
  ])("IPv4 %j is refused", (text) => {
    expect(parseAddress(text)).toBeNull();
  });

  it.each<[string, bigint]>([
    ["::", 0n],
    ["::1", 1n],
    ["1::", groups(1, 0, 0, 0, 0, 0, 0, 0)],
    ["1::8", groups(1, 0, 0, 0, 0, 0, 0, 8)],
    ["2001:db8::1", groups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)],
    ["2001:DB8::1", groups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)],
    ["2001:Db8::aBcD", groups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xabcd)],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", groups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)],
    ["1:2:3:4:5:6:7:8", groups(1, 2, 3, 4, 5, 6, 7, 8)],
    ["1:2:3:4:5:6:7::", groups(1, 2, 3, 4, 5, 6, 7, 0)], // "::" for a single group: RFC 4291 allows it
    ["::2:3:4:5:6:7:8", groups(0, 2, 3, 4, 5, 6, 7, 8)],
    ["1:2:3::6:7:8", groups(1, 2, 3, 0, 0, 6, 7, 8)],
    ["fe80::1", groups(0xfe80, 0, 0, 0, 0, 0, 0, 1)],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ALL_ONES],
    ["FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF", ALL_ONES],
    ["0:0:0:0:0:0:0:0", 0n],
    ["0000:0000:0000:0000:0000:0000:0000:0000", 0n],
    // IPv4-mapped, in every spelling: the same value as the dotted quad.
    ["::ffff:1.2.3.4", v4(1, 2, 3, 4)],
    ["::FFFF:1.2.3.4", v4(1, 2, 3, 4)],
    ["0:0:0:0:0:ffff:1.2.3.4", v4(1, 2, 3, 4)],
    ["0000:0000:0000:0000:0000:FFFF:1.2.3.4", v4(1, 2, 3, 4)],
    ["::ffff:102:304", v4(1, 2, 3, 4)],
    ["::ffff:0.0.0.0", v4(0, 0, 0, 0)],
    ["::ffff:255.255.255.255", v4(255, 255, 255, 255)],
    ["::ffff:ffff:ffff", v4(255, 255, 255, 255)],
    // Other dotted tails are the IPv6 addresses they spell, not IPv4 (decided: see src/domain/cidr.ts).
    ["::1.2.3.4", groups(0, 0, 0, 0, 0, 0, 0x102, 0x304)],
    ["::0.0.0.1", 1n],
    ["64:ff9b::1.2.3.4", groups(0x64, 0xff9b, 0, 0, 0, 0, 0x102, 0x304)],
    ["1:2:3:4:5:6:1.2.3.4", groups(1, 2, 3, 4, 5, 6, 0x102, 0x304)],
    ["1::1.2.3.4", groups(1, 0, 0, 0, 0, 0, 0x102, 0x304)],
    ["1:2:3:4:5::1.2.3.4", groups(1, 2, 3, 4, 5, 0, 0x102, 0x304)],
    ["::ffff:0:1.2.3.4", groups(0, 0, 0, 0, 0xffff, 0, 0x102, 0x304)], // IPv4-translated: not mapped
    ["ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", ALL_ONES], // the longest address text (45)
  ])("IPv6 %s", (text, value) => {
    expect(parseAddress(text)).toBe(value);
  });

  it.each([
    ":",
    ":::",
    "::::",
    ":::1",
    "1:::",
    "1:::2",
    "1::2::3",
    "::1::",
    "1:2:3:4:5:6:7:8:9", // too many groups
    "1:2:3:4:5:6:7", // too few, without "::"
    "1:2:3:4:5:6:7:8::", // "::" must stand for at least one group
    "::1:2:3:4:5:6:7:8",
    "1:2:3:4::5:6:7:8",
    "12345::", // 5 hex digits
    "::12345",
    "00000::",
    "1:2:3:4:5:6:7:00000",
    "g::",
    "::g",
    "1:",
    ":1",
    "1:2:3:4:5:6:7:8:",
    ":1:2:3:4:5:6:7:8",
    "1::2:",
    ":1::2",
    "fe80::1%eth0", // zone ids
    "fe80::1%1",
    "fe80::1%",
    "::ffff:1.2.3.4%eth0",
    "[::1]", // brackets and ports
    "[::1]:80",
    "::1]",
    "::1 ", // whitespace
    " ::1",
    ":: 1",
    "::\t1",
    "::1\n",
    "::ffff:1.2.3", // bad dotted tails
    "::ffff:1.2.3.4.5",
    "::ffff:256.1.2.3",
    "::ffff:01.2.3.4",
    "::ffff:1.2.3.04",
    "::ffff:1.2.3.",
    "::ffff:.1.2.3",
    "::ffff:1.2.3.4:5",
    "::ffff:1.2.3.4::",
    "::ffff:0x1.2.3.4",
    "::1234.1.2.3",
    "1.2.3.4::",
    "1.2.3.4::ffff",
    "1:2:3:4:5:6:7:1.2.3.4", // 7 groups and a tail: 9
    "1:2:3:4:5:6::1.2.3.4", // 6, a tail and "::" for nothing
    "::1.2.3.4:1",
    "::1/128", // slashes belong to ranges
    "::-1",
    "::+1",
    "::0x1",
    "\uff1a\uff1a1", // fullwidth colons
    "::\uff11",
    "0000:0000:0000:0000:0000:0000:0000:0000:0000", // too long before a scan
    "0".repeat(10_000) + "::",
    "::" + "1:".repeat(10_000) + "1",
  ])("IPv6 %j is refused", (text) => {
    expect(parseAddress(text)).toBeNull();
  });

  it("refuses what is not a string without throwing", () => {
    for (const value of [undefined, null, 1, 0x01020304, {}, [], ["1.2.3.4"]]) {
      expect(parseAddress(value as unknown as string)).toBeNull();
    }
  });
});

describe("formatAddress: RFC 5952", () => {
  it.each([
    // RFC 5952 §4: one canonical text per address.
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // §4.2.3: the first of two equal runs
    ["2001:0db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // §4.1: no leading zeros
    ["2001:db8::1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8::0:1", "2001:db8::1"], // §4.2.1: the longest possible run
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:db8::2:1", "2001:db8::2:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // §4.2.2: one zero group is not compressed
    ["2001:db8:0000:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // §4.2.3: the longest run
    ["2001:DB8::AAAA", "2001:db8::aaaa"], // §4.3: lowercase
    ["2001:db8:aaaa:bbbb:cccc:dddd:eeee:0001", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"],
    ["0:1:0:1:0:1:0:1", "0:1:0:1:0:1:0:1"],
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"],
    ["1:2:0:0:3:0:0:0", "1:2:0:0:3::"],
    ["0:0:1:0:0:0:1:0", "0:0:1::1:0"],
    ["1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"],
    ["fe80:0000:0000:0000:0204:61ff:fe9d:f156", "fe80::204:61ff:fe9d:f156"],
    // §5: IPv4-mapped addresses keep the dotted quad; no other embedding does.
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["::ffff:c000:201", "::ffff:192.0.2.1"],
    ["0:0:0:0:0:ffff:0:0", "::ffff:0.0.0.0"],
    ["192.0.2.1", "::ffff:192.0.2.1"],
    ["::1.2.3.4", "::102:304"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["::ffff:0:1.2.3.4", "::ffff:0:102:304"],
    ["::fffe:ffff:ffff", "::fffe:ffff:ffff"],
    ["::1:0:0:0", "::1:0:0:0"],
  ])("%s → %s", (text, canonical) => {
    expect(formatAddress(parseAddress(text)!)).toBe(canonical);
  });
});

describe("parseNetwork", () => {
  it.each<[string, string, number]>([
    // input, canonical, prefix in the 128-bit space
    ["10.0.0.0/8", "10.0.0.0/8", 104],
    ["0.0.0.0/0", "0.0.0.0/0", 96],
    ["1.2.3.4", "1.2.3.4/32", 128],
    ["1.2.3.4/32", "1.2.3.4/32", 128],
    ["128.0.0.0/1", "128.0.0.0/1", 97],
    ["255.255.255.254/31", "255.255.255.254/31", 127],
    ["192.168.0.0/16", "192.168.0.0/16", 112],
    ["::/0", "::/0", 0],
    ["::", "::/128", 128],
    ["::1", "::1/128", 128],
    ["::1/128", "::1/128", 128],
    ["2001:db8::/32", "2001:db8::/32", 32],
    ["2001:DB8::/32", "2001:db8::/32", 32],
    ["2001:0db8:0000::/48", "2001:db8::/48", 48],
    ["2001:db8:0:0:1::/80", "2001:db8:0:0:1::/80", 80], // the longer run is compressed, not the first,
    ["fe80::/10", "fe80::/10", 10],
    ["8000::/1", "8000::/1", 1],
    ["::/96", "::/96", 96], // not the mapped range: stays IPv6
    ["::/1", "::/1", 1],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 128],
    // Ranges inside ::ffff:0:0/96 are written as the IPv4 ranges they are.
    ["::ffff:10.0.0.0/104", "10.0.0.0/8", 104],
    ["::ffff:a00:0/104", "10.0.0.0/8", 104],
    ["::ffff:0:0/96", "0.0.0.0/0", 96],
    ["::ffff:0.0.0.0/96", "0.0.0.0/0", 96],
    ["::ffff:1.2.3.4", "1.2.3.4/32", 128],
    ["::FFFF:102:304/128", "1.2.3.4/32", 128],
    ["::ffff:128.0.0.0/97", "128.0.0.0/1", 97],
    // Other embeddings are IPv6.
    ["::1.2.3.4", "::102:304/128", 128],
    ["64:ff9b::/96", "64:ff9b::/96", 96],
    ["::ffff:0:0:0/96", "::ffff:0:0:0/96", 96],
    ["::fffe:0:0/95", "::fffe:0:0/95", 95], // just below the mapped range, containing half of it
  ])("%s → %s", (text, canonical, prefix) => {
    const parsed = parseNetwork(text);
    expect(parsed).toMatchObject({ ok: true, canonical, network: { prefix } });
    if (!parsed.ok) return;
    // The canonical text is a fixed point and means the same range.
    expect(parseNetwork(canonical)).toEqual(parsed);
    expect(formatNetwork(parsed.network)).toBe(canonical);
    // The base's host bits are zero.
    const hostBits = (1n << BigInt(128 - prefix)) - 1n;
    expect(parsed.network.base & hostBits).toBe(0n);
  });

  it("gives a bare address the whole-address prefix of the family it is written in", () => {
    expect(parseNetwork("1.2.3.4")).toEqual({ ok: true, network: { base: v4(1, 2, 3, 4), prefix: 128 }, canonical: "1.2.3.4/32" });
    expect(parseNetwork("::1")).toEqual({ ok: true, network: { base: 1n, prefix: 128 }, canonical: "::1/128" });
  });

  it.each([
    ["10.1.2.3/8", "10.0.0.0/8"],
    ["10.0.0.1/31", "10.0.0.0/31"],
    ["1.2.3.4/0", "0.0.0.0/0"],
    ["255.255.255.255/1", "128.0.0.0/1"],
    ["192.168.1.1/24", "192.168.1.0/24"],
    ["2001:db8::1/32", "2001:db8::/32"],
    ["2001:DB8::1/32", "2001:db8::/32"],
    ["::1/0", "::/0"],
    ["::1/127", "::/127"],
    ["ffff::/1", "8000::/1"],
    ["::ffff:10.1.0.0/104", "10.0.0.0/8"],
    ["::ffff:1.2.3.4/97", "0.0.0.0/1"],
    ["::ffff:0:0/95", "::fffe:0:0/95"],
    ["::ffff:1.2.3.4/80", "::/80"],
    ["::ffff:1.2.3.4/33", "::/33"],
  ])("%s has host bits set: the error names %s", (text, meant) => {
    expect(parseNetwork(text)).toEqual({ ok: false, error: `${text} has host bits set: did you mean ${meant}?` });
    // And what it names is a valid range.
    expect(parseNetwork(meant)).toMatchObject({ ok: true, canonical: meant });
  });

  it.each([
    "1.2.3.4/33", // IPv4 text takes IPv4 prefixes
    "0.0.0.0/33",
    "0.0.0.0/128",
    "0.0.0.0/96",
    "::/129",
    "::/1000",
    "::/0128",
    "1.2.3.4/08", // no leading zeros
    "1.2.3.4/00",
    "1.2.3.4/032",
    "1.2.3.4/-1",
    "1.2.3.4/+8",
    "1.2.3.4/",
    "::/",
    "1.2.3.4/8/8",
    "1.2.3.4//8",
    "1.2.3.4/ 8",
    "1.2.3.4/8 ",
    "1.2.3.4/0x8",
    "1.2.3.4/1e1",
    "1.2.3.4/8.0",
    "1.2.3.4/\uff18",
    "::/ 0",
    "fe80::/10%eth0",
    "10.0.0.0/255.0.0.0", // netmask notation
  ])("%j: a bad prefix length", (text) => {
    const parsed = parseNetwork(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(/bad prefix length: IPv[46] takes 0 to (32|128)$/);
  });

  it.each([
    "",
    "/",
    "/8",
    "10.0.0/8",
    "10.0.0.0.0/8",
    "256.0.0.0/8",
    "010.0.0.0/8",
    "fe80::1%eth0/64",
    "[::1]/128",
    "[::1/128]",
    "::1::/64",
    " 10.0.0.0/8",
    "10.0.0.0 /8",
    "any",
    "*",
    "10.0.0.0-10.0.0.255",
  ])("%j: not an address or range", (text) => {
    const parsed = parseNetwork(text);
    expect(parsed).toEqual({ ok: false, error: `${JSON.stringify(text)} is not an IP address or CIDR range` });
  });

  it("quotes a long or hostile input short, and refuses it before scanning", () => {
    for (const text of ["1".repeat(100_000), "::" + "0:".repeat(50_000), "10.0.0.0/" + "8".repeat(100_000), "\u0000\"\\<>".repeat(1000)]) {
      const parsed = parseNetwork(text);
      expect(parsed.ok).toBe(false);
      // At most 60 characters of the input, each at most 6 once escaped ("\u0000").
      if (!parsed.ok) expect(parsed.error.length).toBeLessThan(60 * 6 + 60);
    }
  });

  it("refuses what is not a string without throwing", () => {
    for (const value of [undefined, null, 8, {}, ["10.0.0.0/8"]]) {
      expect(parseNetwork(value as unknown as string)).toEqual({ ok: false, error: "must be a string" });
    }
  });
});

/** Parses a range that must be valid. */
function net(text: string): Network {
  const parsed = parseNetwork(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.network;
}
/** Parses an address that must be valid. */
function addr(text: string): bigint {
  const value = parseAddress(text);
  if (value === null) throw new Error(`not an address: ${text}`);
  return value;
}

describe("inNetworks", () => {
  const max = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  it.each<[string, string, string, string | null, string | null]>([
    // range, its first and last address, the address just before and just after it (null: none)
    ["10.0.0.0/8", "10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0"],
    ["192.168.1.0/24", "192.168.1.0", "192.168.1.255", "192.168.0.255", "192.168.2.0"],
    ["1.2.3.4/32", "1.2.3.4", "1.2.3.4", "1.2.3.3", "1.2.3.5"],
    ["1.2.3.4/31", "1.2.3.4", "1.2.3.5", "1.2.3.3", "1.2.3.6"],
    ["0.0.0.0/1", "0.0.0.0", "127.255.255.255", "::fffe:ffff:ffff", "128.0.0.0"],
    ["128.0.0.0/1", "128.0.0.0", "255.255.255.255", "127.255.255.255", "::1:0:0:0"],
    ["0.0.0.0/0", "0.0.0.0", "255.255.255.255", "::fffe:ffff:ffff", "::1:0:0:0"],
    ["::ffff:10.0.0.0/104", "::ffff:10.0.0.0", "::ffff:10.255.255.255", "9.255.255.255", "::ffff:b00:0"],
    ["2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"],
    ["fe80::/10", "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::"],
    ["::1/128", "::1", "::1", "::", "::2"],
    ["::/128", "::", "::", null, "::1"],
    [`${max}/128`, max, max, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", null],
    ["8000::/1", "8000::", max, "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", null],
    ["::/1", "::", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", null, "8000::"],
    ["::/0", "::", max, null, null],
    ["::/96", "::", "::255.255.255.255", null, "::1:0:0"],
  ])("%s: holds %s to %s, not %s or %s", (range, first, last, before, after) => {
    const networks = [net(range)];
    expect(inNetworks(addr(first), networks)).toBe(true);
    expect(inNetworks(addr(last), networks)).toBe(true);
    // The table's neighbours really are one address away (so the table tests the edges).
    if (before !== null) {
      expect(addr(before)).toBe(addr(first) - 1n);
      expect(inNetworks(addr(before), networks)).toBe(false);
    } else expect(addr(first)).toBe(0n);
    if (after !== null) {
      expect(addr(after)).toBe(addr(last) + 1n);
      expect(inNetworks(addr(after), networks)).toBe(false);
    } else expect(addr(last)).toBe(ALL_ONES);
  });

  it("matches an IPv4 address however it is written, against an IPv4 range however it is written", () => {
    const addresses = ["10.1.2.3", "::ffff:10.1.2.3", "::FFFF:a01:203", "0:0:0:0:0:ffff:10.1.2.3"];
    const ranges = ["10.0.0.0/8", "::ffff:10.0.0.0/104", "::ffff:a00:0/104", "10.1.2.3", "::ffff:10.1.2.3/128"];
    for (const a of addresses) for (const r of ranges) expect(inNetworks(addr(a), [net(r)]), `${a} in ${r}`).toBe(true);
    // The IPv4-compatible and translated spellings are other addresses.
    for (const a of ["::10.1.2.3", "::ffff:0:10.1.2.3", "64:ff9b::10.1.2.3", "a01:203::"]) {
      for (const r of ranges) expect(inNetworks(addr(a), [net(r)]), `${a} in ${r}`).toBe(false);
    }
  });

  it("::/0 holds everything; 0.0.0.0/0 every IPv4 address and nothing else", () => {
    const all = [net("::/0")];
    const ipv4 = [net("0.0.0.0/0")];
    for (const a of ["0.0.0.0", "1.2.3.4", "255.255.255.255", "::ffff:1.2.3.4", "::", "::1", "2001:db8::1", max]) {
      expect(inNetworks(addr(a), all), a).toBe(true);
    }
    for (const a of ["0.0.0.0", "1.2.3.4", "255.255.255.255", "::ffff:1.2.3.4", "::ffff:0:0", "::ffff:ffff:ffff"]) {
      expect(inNetworks(addr(a), ipv4), a).toBe(true);
    }
    for (const a of ["::", "::1", "::1.2.3.4", "2001:db8::1", "::fffe:ffff:ffff", "::1:0:0:0", "ffff::", max]) {
      expect(inNetworks(addr(a), ipv4), a).toBe(false);
    }
  });

  it("checks every network of a list, and none of an empty one", () => {
    const list = toNetworks(["10.0.0.0/8", "2001:db8::/32", "192.168.1.1", "fe80::/10"]);
    expect(inNetworks(addr("192.168.1.1"), list)).toBe(true);
    expect(inNetworks(addr("fe80::abcd"), list)).toBe(true);
    expect(inNetworks(addr("10.9.9.9"), list)).toBe(true);
    expect(inNetworks(addr("192.168.1.2"), list)).toBe(false);
    expect(inNetworks(addr("::1"), list)).toBe(false);
    expect(inNetworks(addr("1.2.3.4"), [])).toBe(false);
    expect(inNetworks(0n, [])).toBe(false);
  });

  it(`handles a full list of ${MAX_NETWORKS} ranges`, () => {
    const list = toNetworks(Array.from({ length: MAX_NETWORKS }, (_, i) => `10.${i}.0.0/16`));
    expect(inNetworks(addr(`10.${MAX_NETWORKS - 1}.255.255`), list)).toBe(true);
    expect(inNetworks(addr(`10.${MAX_NETWORKS}.0.0`), list)).toBe(false);
  });
});

describe("toNetworks", () => {
  it("parses a stored list, in order", () => {
    expect(toNetworks(["10.0.0.0/8", "::/0", "1.2.3.4/32"])).toEqual([
      { base: v4(10, 0, 0, 0), prefix: 104 },
      { base: 0n, prefix: 0 },
      { base: v4(1, 2, 3, 4), prefix: 128 },
    ]);
    expect(toNetworks([])).toEqual([]);
  });

  it("throws on an entry that should never have been stored", () => {
    expect(() => toNetworks(["10.0.0.0/8", "10.1.2.3/8"])).toThrow(/host bits set/);
    expect(() => toNetworks(["nonsense"])).toThrow(/not an IP address/);
  });
});

describe("against references (fast-check)", () => {
  const RUNS = trials(20_000, 2_000);

  /** The naive reference: two addresses agree on their first `prefix` bits, compared as bit strings. */
  const bits = (value: bigint) => value.toString(2).padStart(128, "0");
  const referenceBase = (value: bigint, prefix: number) => BigInt(`0b${bits(value).slice(0, prefix).padEnd(128, "0")}`);
  const referenceContains = (network: Network, address: bigint) => bits(address).slice(0, network.prefix) === bits(network.base).slice(0, network.prefix);

  /** 128-bit values that are often interesting: zero runs, all-ones groups, IPv4-mapped ones. */
  const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xff }));
  const value128 = fc.oneof(
    fc.bigInt({ min: 0n, max: ALL_ONES }),
    fc.array(group, { minLength: 8, maxLength: 8 }).map((g) => groups(...g)),
    fc.integer({ min: 0, max: 0xffff_ffff }).map((x) => 0xffff_0000_0000n | BigInt(x)),
  );
  const prefix = fc.oneof(fc.integer({ min: 0, max: 128 }), fc.integer({ min: 96, max: 128 }), fc.constantFrom(0, 1, 32, 64, 95, 96, 97, 127, 128));
  const network = fc.tuple(value128, prefix).map(([v, p]): Network => ({ base: referenceBase(v, p), prefix: p }));

  it("inNetworks agrees with the bit-string reference", () => {
    fc.assert(
      fc.property(
        fc.array(network, { maxLength: MAX_NETWORKS }),
        value128,
        fc.nat(),
        fc.constantFrom("any", "inside", "edge"),
        (networks, noise, pick, how) => {
          let address = noise;
          if (how !== "any" && networks.length > 0) {
            // An address inside (or at the edge of) one of the ranges, so matches are as common as misses.
            const n = networks[pick % networks.length]!;
            const host = (1n << BigInt(128 - n.prefix)) - 1n;
            address = how === "inside" ? n.base | (noise & host) : (pick & 1 ? n.base - 1n : n.base + host + 1n) & ALL_ONES;
          }
          expect(inNetworks(address, networks)).toBe(networks.some((n) => referenceContains(n, address)));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("a range's canonical text parses back to the same range; an address's text to the same address", () => {
    fc.assert(
      fc.property(network, value128, (n, address) => {
        const text = formatNetwork(n);
        const parsed = parseNetwork(text);
        expect(parsed).toEqual({ ok: true, network: n, canonical: text });
        expect(parseAddress(formatAddress(address))).toBe(address);
        // With host bits set, the error names exactly the reference's range.
        const host = (1n << BigInt(128 - n.prefix)) - 1n;
        if (host > 0n) {
          // Written in IPv6 form, so the prefix is the 128-bit one even for a mapped range.
          const dirty = `${formatAddress(n.base | (address & host) | 1n)}/${n.prefix}`;
          expect(parseNetwork(dirty)).toEqual({ ok: false, error: `${dirty} has host bits set: did you mean ${text}?` });
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("formatAddress agrees with the WHATWG URL serializer (RFC 5952 compression) for every IPv6 address", () => {
    fc.assert(
      fc.property(value128, (address) => {
        const whatwg = new URL(`http://[${formatAddress(address)}]/`).hostname;
        const mapped = address >> 32n === 0xffffn;
        // WHATWG writes no dotted quads: compare a mapped address by value, everything else by text.
        if (mapped) expect(parseAddress(whatwg.slice(1, -1))).toBe(address);
        else expect(whatwg).toBe(`[${formatAddress(address)}]`);
      }),
      { numRuns: RUNS },
    );
  });

  /** IPv6-ish text: groups of 0–5 hex digits, one or two "::", sometimes a dotted tail, rarely junk. */
  const hexGroup = fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), minLength: 0, maxLength: 5 });
  const octet = fc.oneof(fc.integer({ min: 0, max: 255 }).map(String), fc.constantFrom("256", "01", "00", "", "1000"));
  const ipv6ish = fc.oneof(
    fc
      .tuple(
        fc.array(hexGroup, { minLength: 0, maxLength: 9 }),
        fc.array(fc.nat(9), { maxLength: 2 }),
        fc.option(fc.array(octet, { minLength: 3, maxLength: 5 }), { nil: undefined }),
      )
      .map(([gs, gaps, tail]) => {
        const parts = [...gs];
        for (const gap of gaps) parts.splice(Math.min(gap, parts.length), 0, "");
        let text = parts.join(":");
        if (tail) text += (text && !text.endsWith(":") ? ":" : "") + tail.join(".");
        return text;
      }),
    fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:.%]"), maxLength: 46 }),
  );

  it("parseAddress accepts exactly the IPv6 text the WHATWG URL parser accepts, with the same value", () => {
    fc.assert(
      fc.property(ipv6ish, (text) => {
        let whatwg: string | null = null;
        try {
          whatwg = new URL(`http://[${text}]/`).hostname;
        } catch {
          whatwg = null;
        }
        const ours = parseAddress(text);
        // Every WHATWG-valid IPv6 text has a colon; text without one is IPv4 to us, tested apart.
        if (!text.includes(":")) return;
        expect(ours === null, `${text}: WHATWG says ${whatwg}`).toBe(whatwg === null);
        if (ours !== null) expect(parseAddress(whatwg!.slice(1, -1))).toBe(ours);
      }),
      { numRuns: RUNS },
    );
  });

  it("parseAddress accepts exactly strict dotted quads", () => {
    const strictOctet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
    const strict = new RegExp(`^${strictOctet}(\\.${strictOctet}){3}$`);
    const dotted = fc.oneof(
      fc.array(octet, { minLength: 1, maxLength: 6 }).map((o) => o.join(".")),
      fc.string({ unit: fc.constantFrom(..."0123456789."), maxLength: 20 }),
    );
    fc.assert(
      fc.property(dotted, (text) => {
        const ours = parseAddress(text);
        expect(ours !== null, text).toBe(strict.test(text));
        if (ours !== null) {
          const [a, b, c, d] = text.split(".").map(Number) as [number, number, number, number];
          expect(ours).toBe(v4(a, b, c, d));
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe("networksWithin (a caller limited to networks hands out only keys inside them)", () => {
  it.each<[string[] | null, string[] | null, boolean]>([
    // IPv4 at the boundary of a /24: one bit wider is refused, the same range and one bit narrower are not.
    [["192.0.2.0/23"], ["192.0.2.0/24"], false],
    [["192.0.2.0/24"], ["192.0.2.0/24"], true],
    [["192.0.2.0/25"], ["192.0.2.0/24"], true],
    [["192.0.2.128/25"], ["192.0.2.0/24"], true],
    [["192.0.2.255"], ["192.0.2.0/24"], true],
    [["192.0.3.0/24"], ["192.0.2.0/24"], false],
    [["192.0.0.0/16"], ["192.0.2.0/24"], false],
    [["0.0.0.0/0"], ["192.0.2.0/24"], false],
    // The same in IPv6, at a /48.
    [["2001:db8::/47"], ["2001:db8::/48"], false],
    [["2001:db8::/48"], ["2001:db8::/48"], true],
    [["2001:db8::/49"], ["2001:db8::/48"], true],
    [["2001:db8:0:8000::/49"], ["2001:db8::/48"], true],
    [["2001:db8:1::/48"], ["2001:db8::/48"], false],
    [["::/0"], ["2001:db8::/48"], false],
    // An IPv4 range is inside IPv4-mapped IPv6 space only at the same or a narrower prefix.
    [["192.0.2.0/24"], ["::ffff:192.0.2.0/120"], true],
    [["192.0.2.0/23"], ["::ffff:192.0.2.0/120"], false],
    [["::ffff:192.0.2.0/119"], ["192.0.2.0/24"], false],
    // Every range of the inner list must fit some range of the outer one.
    [["192.0.2.0/24", "2001:db8::/48"], ["192.0.2.0/24", "2001:db8::/48"], true],
    [["192.0.2.0/24", "2001:db8::/47"], ["192.0.2.0/24", "2001:db8::/48"], false],
    // No list: anywhere. A caller limited to networks never hands out an unlimited key.
    [null, ["192.0.2.0/24"], false],
    [[], ["192.0.2.0/24"], false],
    [null, null, true],
    [["192.0.2.0/23"], [], true],
  ])("%j inside %j is %s", (inner, outer, within) => {
    expect(networksWithin(inner, outer)).toBe(within);
  });
});
