import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeMetadataHeader,
  encodeMetadataHeader,
  METADATA_MAX_BYTES,
  METADATA_MAX_DEPTH,
  metadataIssue,
  type Metadata,
} from "../src/domain/metadata";
import { trials } from "./helpers";

/**
 * Key metadata (issue 14, point 5): what is acceptable, measured as JSON.stringify's UTF-8 bytes; what
 * is refused without ever throwing or running the input's code; the upstream header's encoding.
 * Objects with a key "__proto__" are made with JSON.parse (as a request body is) or defineProperty:
 * an object literal's `__proto__:` sets the prototype instead.
 */

const utf8Bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value)).length;
const NOT_OBJECT = "must be a JSON object";
const TOO_DEEP = `must not nest deeper than ${METADATA_MAX_DEPTH} levels`;

/** `levels` nested objects, the innermost holding only a scalar. */
function nested(levels: number, innermost: unknown = 1): Record<string, unknown> {
  let value: Record<string, unknown> = { v: innermost };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

describe("metadataIssue: acceptable metadata", () => {
  const withOwnProto = JSON.parse('{"a":1}');
  it.each<[string, unknown]>([
    ["an empty object", {}],
    ["a customer and a plan", { customer: "c_1", plan: "pro" }],
    ["every scalar", { s: "x", n: 1.5, i: -3, z: 0, negZero: -0, big: 1e308, tiny: 5e-324, t: true, f: false, nil: null }],
    ["arrays of mixed values", { tags: ["a", 1, null, true, [], {}, [[]]] }],
    ["an object without a prototype", Object.assign(Object.create(null), { a: 1, b: Object.assign(Object.create(null), { c: 2 }) })],
    ["JSON.parse output", withOwnProto],
    ["non-ASCII keys and values", { "Zürich": "日本", "🙂": "\u{1f600}" }],
    ["control characters and lone surrogates (JSON escapes them)", { s: "\u0000\u001f\n\t\"\\\ud800x\udfff" }],
    ["the empty key", { "": "" }],
    ["near-miss keys: only the exact names are refused", { __proto: 1, proto: 2, Constructor: 3, prototypes: 4, "__proto__ ": 5, PROTOTYPE: 6 }],
    ["values equal to the refused key names", { a: "__proto__", b: ["constructor", "prototype"] }],
    ["shared (not cyclic) references", (() => { const leaf = { x: 1 }; return { a: leaf, b: leaf, c: [leaf, leaf] }; })()],
    [`${METADATA_MAX_DEPTH} levels of objects`, nested(METADATA_MAX_DEPTH)],
    [`${METADATA_MAX_DEPTH} levels, arrays counted`, { a: [[[[1]]]] }],
    [`${METADATA_MAX_DEPTH} levels, the innermost empty`, nested(METADATA_MAX_DEPTH - 1, {})],
    [`${METADATA_MAX_DEPTH} levels in one branch, 1 in another`, { deep: nested(METADATA_MAX_DEPTH - 1), flat: 1 }],
  ])("%s", (_name, value) => {
    expect(metadataIssue(value)).toBeNull();
  });
});

describe("metadataIssue: not an object", () => {
  class Plan {
    name = "pro";
  }
  it.each<[string, unknown]>([
    ["undefined", undefined],
    ["null", null],
    ["a number", 1],
    ["a string", "{}"],
    ["a boolean", true],
    ["a bigint", 1n],
    ["a symbol", Symbol("s")],
    ["a function", () => ({})],
    ["an empty array", []],
    ["an array of objects", [{ a: 1 }]],
    ["an array from JSON.parse", JSON.parse("[1]")],
    ["a Date", new Date()],
    ["a Map", new Map([["a", 1]])],
    ["a Set", new Set()],
    ["a RegExp", /x/],
    ["an Error", new Error("x")],
    ["a Promise", Promise.resolve()],
    ["a class instance", new Plan()],
    ["a boxed string", new String("x")],
    ["an object with another prototype", Object.create({ inherited: 1 })],
    ["an object literal that set __proto__", { __proto__: { a: 1 } }],
    ["a typed array", new Uint8Array(2)],
  ])("%s", (_name, value) => {
    expect(metadataIssue(value)).toBe(NOT_OBJECT);
  });
});

describe("metadataIssue: values JSON would drop, change or refuse", () => {
  class Plan {
    name = "pro";
  }
  const sparse: unknown[] = [1];
  sparse[2] = 3;
  const getter = Object.defineProperty({}, "a", { enumerable: true, get: () => 1 });
  const setter = Object.defineProperty({}, "a", { enumerable: true, set: () => {} });
  it.each<[string, unknown, string]>([
    ["undefined in an object", { a: undefined }, "a is undefined"],
    ["undefined in an array", { a: [1, undefined] }, "a[1] is undefined"],
    ["a hole in an array", { a: sparse }, "a[1] is missing (a hole in the array)"],
    ["a function", { a: () => 1 }, "a is a function"],
    ["a class", { a: Plan }, "a is a function"],
    ["NaN", { a: NaN }, "a is NaN"],
    ["Infinity", { a: Infinity }, "a is Infinity"],
    ["-Infinity", { a: [-Infinity] }, "a[0] is -Infinity"],
    ["a bigint", { a: 1n }, "a is a bigint"],
    ["a symbol", { a: Symbol("s") }, "a is a symbol"],
    ["a Date", { since: new Date(0) }, "since is not a plain object or array"],
    ["a Map", { a: new Map() }, "a is not a plain object or array"],
    ["a Set", { a: new Set() }, "a is not a plain object or array"],
    ["a RegExp", { a: /x/ }, "a is not a plain object or array"],
    ["a class instance", { a: new Plan() }, "a is not a plain object or array"],
    ["a boxed number", { a: new Number(1) }, "a is not a plain object or array"],
    ["a boxed boolean", { a: new Boolean(false) }, "a is not a plain object or array"],
    ["a typed array", { a: new Uint8Array(1) }, "a is not a plain object or array"],
    ["an Array subclass", { a: new (class extends Array {})() }, "a is not a plain array"],
    ["an array-like object", { a: Object.create(Array.prototype) }, "a is not a plain object or array"],
    ["an object with another prototype", { a: Object.create({ x: 1 }) }, "a is not a plain object or array"],
    ["a getter", getter, "a is a getter or setter"],
    ["a setter", { a: setter }, "a.a is a getter or setter"],
    ["symbol keys", { a: { [Symbol("s")]: 1 } }, "a is an object with symbol keys"],
    ["symbol keys at the top", { [Symbol("s")]: 1 }, "the top level is an object with symbol keys"],
    ["a deep path", { "a b": { c: [0, { d: undefined }] } }, '["a b"].c[1].d is undefined'],
    ["an identifier path", { $x: { _y: [[NaN]] } }, "$x._y[0][0] is NaN"],
    ["a long key, cut short", { ["k".repeat(100)]: undefined }, `[${JSON.stringify(`${"k".repeat(40)}…`)}] is undefined`],
  ])("%s", (_name, value, where) => {
    expect(metadataIssue(value)).toBe(`must hold only JSON values: ${where}`);
  });

  it("never runs a getter", () => {
    let calls = 0;
    const value = { nested: { get secret() { calls++; throw new Error("ran"); } } };
    expect(metadataIssue(value)).toBe("must hold only JSON values: nested.secret is a getter or setter");
    expect(calls).toBe(0);
  });

  it("refuses a Proxy whose traps throw, without throwing", () => {
    const throwing = new Proxy({}, { ownKeys: () => { throw new Error("trap"); }, getPrototypeOf: () => Object.prototype });
    expect(metadataIssue(throwing)).toBe(NOT_OBJECT);
    expect(metadataIssue({ a: throwing })).toBe(NOT_OBJECT);
    const badProto = new Proxy({}, { getPrototypeOf: () => { throw new Error("trap"); } });
    expect(metadataIssue(badProto)).toBe(NOT_OBJECT);
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    expect(metadataIssue({ a: revocable.proxy })).toBe(NOT_OBJECT);
  });
});

describe("metadataIssue: prototype keys", () => {
  it.each([
    ['{"__proto__":1}', "__proto__"],
    ['{"constructor":{}}', "constructor"],
    ['{"prototype":null}', "prototype"],
    ['{"a":{"__proto__":{"polluted":true}}}', "__proto__"],
    ['{"a":[{"constructor":{"prototype":{}}}]}', "constructor"],
    ['{"a":[1,2,{"b":{"prototype":1}}]}', "prototype"],
    ['{"ok":1,"a":{"b":{"c":{"d":{"__proto__":1}}}}}', "__proto__"], // at level 5
  ])("%s: refuses %s", (json, key) => {
    expect(metadataIssue(JSON.parse(json))).toBe(`must not use the key "${key}"`);
  });

  it("finds own __proto__ keys however they were made", () => {
    expect(metadataIssue(Object.defineProperty({}, "__proto__", { value: 1, enumerable: true }))).toBe('must not use the key "__proto__"');
    expect(metadataIssue({ ["__proto__"]: 1 })).toBe('must not use the key "__proto__"'); // a computed key is an own property
    expect(metadataIssue({ a: { constructor: 1 } })).toBe('must not use the key "constructor"');
  });

  it("does not pollute anything while looking", () => {
    metadataIssue(JSON.parse('{"__proto__":{"polluted":true},"a":{"__proto__":{"polluted":true}}}'));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("metadataIssue: depth", () => {
  it.each<[string, unknown, boolean]>([
    ["objects, 5 levels", nested(5), true],
    ["objects, 6 levels", nested(6), false],
    ["an object of 4 arrays (5 levels)", { a: [[[[1]]]] }, true],
    ["an object of 5 arrays (6 levels)", { a: [[[[[1]]]]] }, false],
    ["an empty object at level 6 counts", nested(5, {}), false],
    ["an empty array at level 6 counts", nested(5, []), false],
    ["an empty array at level 5", nested(4, []), true],
    ["6 levels in the last branch only", { a: 1, b: nested(3), c: [nested(4)] }, false],
    ["very deep", nested(10_000), false],
  ])("%s", (_name, value, ok) => {
    expect(metadataIssue(value)).toBe(ok ? null : TOO_DEEP);
  });
});

describe("metadataIssue: size", () => {
  /** `{"k":"<filler><x…>"}` padded with ASCII to exactly `bytes` bytes of UTF-8 JSON. */
  function ofSize(bytes: number, filler: string): Metadata {
    const base = utf8Bytes({ k: filler });
    if (base > bytes) throw new Error("filler too long");
    const value = { k: filler + "x".repeat(bytes - base) };
    expect(utf8Bytes(value)).toBe(bytes); // the reference: what JSON.stringify writes, in UTF-8
    return value;
  }

  it.each([
    ["ASCII", ""],
    ["2-byte characters (é)", "é".repeat(500)],
    ["3-byte characters (€, 日)", "€日".repeat(160)],
    ["4-byte characters (🙂, a surrogate pair)", "🙂".repeat(250)],
    ["quotes and backslashes (escaped: 2 bytes each)", '"\\'.repeat(250)],
    ["\\n \\t \\b \\f \\r (2 bytes each)", "\n\t\b\f\r".repeat(100)],
    ["other control characters (\\u00XX: 6 bytes each)", "\u0000\u0001\u001f".repeat(50)],
    ["lone surrogates (\\uDXXX: 6 bytes each)", "\ud800\udbff\udc00\udfff".repeat(40)],
    ["DEL and U+0080, U+07FF, U+0800, U+FFFF", "\u007f\u0080\u07ff\u0800\uffff".repeat(50)],
    ["a surrogate pair split by a lone one", "\ud83d\ud83d\ude42".repeat(60)],
  ])("%s: exactly 1024 bytes pass, 1025 do not", (_name, filler) => {
    expect(metadataIssue(ofSize(METADATA_MAX_BYTES, filler))).toBeNull();
    expect(metadataIssue(ofSize(METADATA_MAX_BYTES + 1, filler))).toBe("must be at most 1024 bytes as JSON (is 1025)");
  });

  it("counts keys, punctuation and numbers as JSON writes them", () => {
    const value: Record<string, unknown> = {};
    for (let i = 0; utf8Bytes(value) < 1300; i++) value[`κλειδί${i}`] = [i * 1.5, -i, 1e21 + i, null, true, false, { é: "" }];
    expect(metadataIssue(value)).toBe(`must be at most 1024 bytes as JSON (is ${utf8Bytes(value)})`);
  });

  it("stops early on huge input, and says so", () => {
    const huge = (value: unknown) => {
      const started = performance.now();
      const issue = metadataIssue(value);
      return { issue, ms: performance.now() - started };
    };
    const MORE = "must be at most 1024 bytes as JSON (is more than 65536)";
    const longArray: unknown[] = [];
    longArray.length = 1e9; // a billion holes: refused on its length, before any is visited
    const manyKeys = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]));
    const wide = Array.from({ length: 1000 }, () => 1);
    const fanOut = { a: Array(1000).fill({ b: Array(1000).fill(wide) }) }; // 10^9 values if walked, 5 levels
    for (const value of [{ s: "x".repeat(50_000_000) }, { a: longArray }, manyKeys, fanOut]) {
      const { issue, ms } = huge(value);
      expect(issue).toBe(MORE);
      expect(ms).toBeLessThan(1000);
    }
    // Just past the stopping point the exact size is still reported.
    expect(metadataIssue({ s: "x".repeat(65_536 - 8) })).toBe("must be at most 1024 bytes as JSON (is 65536)");
  });

  it("reports a shape problem rather than the size (known only at the end)", () => {
    expect(metadataIssue({ a: undefined, s: "x".repeat(2000) })).toBe("must hold only JSON values: a is undefined");
    expect(metadataIssue({ s: "x".repeat(2000), a: undefined })).toBe("must hold only JSON values: a is undefined");
  });
});

describe("metadataIssue: cycles", () => {
  it("refuses cycles at any depth, without throwing", () => {
    const self: Record<string, unknown> = { x: 1 };
    self.self = self;
    expect(metadataIssue(self)).toBe("must not contain itself (a cycle at self)");

    const a: Record<string, unknown> = {};
    a.b = { c: { d: a } };
    expect(metadataIssue(a)).toBe("must not contain itself (a cycle at b.c.d)");

    const list: unknown[] = [];
    list.push(list);
    expect(metadataIssue({ list })).toBe("must not contain itself (a cycle at list[0])");

    const left: Record<string, unknown> = {};
    const right: Record<string, unknown> = { left };
    left.right = right;
    expect(metadataIssue({ left })).toBe("must not contain itself (a cycle at left.right.left)");

    // Closing at level 6 it is still called a cycle (what it is); one among levels past 5 is only too deep.
    const deep = nested(5) as { a: { a: { a: { a: Record<string, unknown> } } } };
    deep.a.a.a.a.loop = deep;
    expect(metadataIssue(deep)).toBe("must not contain itself (a cycle at a.a.a.a.loop)");
    const below = nested(7) as { a: { a: { a: { a: { a: { a: Record<string, unknown> } } } } } };
    below.a.a.a.a.a.a.loop = below.a.a.a.a.a;
    expect(metadataIssue(below)).toBe(TOO_DEEP);

    // Wide and cyclic: stops at the first repeat.
    const wideLoop: Record<string, unknown> = {};
    for (let i = 0; i < 10_000; i++) wideLoop[`k${i}`] = wideLoop;
    expect(metadataIssue(wideLoop)).toBe("must not contain itself (a cycle at k0)");
    // JSON.stringify itself throws on all of these.
    expect(() => JSON.stringify(self)).toThrow();
  });
});

/** Strict structural equality for JSON data: same types, same prototypes' kinds, same own keys in order. */
function sameJson(a: unknown, b: unknown): boolean {
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) return Object.is(a, b) || (a === 0 && b === 0);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** A naive, independent verdict: walk with the obvious recursion, measure with JSON.stringify and TextEncoder. */
function referenceAcceptable(value: unknown): boolean {
  const forbidden = ["__proto__", "constructor", "prototype"];
  const seen: object[] = [];
  const ok = (v: unknown, depth: number): boolean => {
    if (typeof v === "string" || typeof v === "boolean" || v === null) return true;
    if (typeof v === "number") return Number.isFinite(v);
    if (typeof v !== "object") return false;
    if (depth > METADATA_MAX_DEPTH || seen.includes(v) || Object.getOwnPropertySymbols(v).length) return false;
    seen.push(v);
    let result: boolean;
    if (Array.isArray(v)) {
      result = Object.getPrototypeOf(v) === Array.prototype && Array.from({ length: v.length }, (_, i) => i).every((i) => Object.hasOwn(v, i) && ok(v[i], depth + 1));
    } else {
      const proto = Object.getPrototypeOf(v);
      result =
        (proto === Object.prototype || proto === null) &&
        Object.keys(v).every((k) => !forbidden.includes(k) && "value" in Object.getOwnPropertyDescriptor(v, k)! && ok((v as Record<string, unknown>)[k], depth + 1));
    }
    seen.pop();
    return result;
  };
  const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
  return isObject && ok(value, 1) && utf8Bytes(value) <= METADATA_MAX_BYTES;
}

describe("metadataIssue against references (fast-check)", () => {
  const RUNS = trials(20_000, 2_000);
  /** Strings of any UTF-16 units, lone surrogates and control characters included. */
  const anyString = fc.string({ unit: fc.oneof(fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), fc.constantFrom("\ud83d\ude42", '"', "\\", "é", "\u0000")), maxLength: 40 });
  const key = fc.oneof(anyString, fc.constantFrom("__proto__", "constructor", "prototype", "a", ""));

  it("never throws, and agrees with the naive reference on anything", () => {
    const anything = fc.anything({
      key,
      maxDepth: 7,
      withBoxedValues: true,
      withMap: true,
      withSet: true,
      withObjectString: true,
      withNullPrototype: true,
      withBigInt: true,
      withDate: true,
      withTypedArray: true,
      withSparseArray: true,
      withUnicodeString: true,
    });
    fc.assert(
      fc.property(fc.oneof(anything, fc.dictionary(key, anything, { maxKeys: 8 })), (value) => {
        const issue = metadataIssue(value);
        expect(issue === null || typeof issue === "string").toBe(true);
        expect(issue === null, JSON.stringify(issue)).toBe(referenceAcceptable(value));
        // What is accepted goes through JSON unchanged: nothing dropped, nothing converted.
        if (issue === null) expect(sameJson(JSON.parse(JSON.stringify(value)), value)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  /** JSON data of every size around the limit, with every kind of character. */
  const jsonObject = fc.dictionary(
    anyString,
    fc.oneof(
      anyString,
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.integer(),
      fc.constantFrom(null, true, false),
      fc.array(fc.oneof(anyString, fc.double({ noNaN: true, noDefaultInfinity: true })), { maxLength: 8 }),
      fc.dictionary(anyString, anyString, { maxKeys: 4 }),
    ),
    { maxKeys: 40 },
  ).filter((o) => !Object.keys(o).some((k) => ["__proto__", "constructor", "prototype"].includes(k)));

  it("measures exactly the UTF-8 bytes JSON.stringify writes", () => {
    fc.assert(
      fc.property(jsonObject, (value) => {
        const bytes = utf8Bytes(value);
        expect(metadataIssue(value)).toBe(bytes <= METADATA_MAX_BYTES ? null : `must be at most 1024 bytes as JSON (is ${bytes})`);
      }),
      { numRuns: RUNS },
    );
  });

  it("the header round-trips whatever is acceptable, in the base64url alphabet only", () => {
    fc.assert(
      fc.property(jsonObject, (value) => {
        if (metadataIssue(value) !== null) return;
        const header = encodeMetadataHeader(value);
        expect(header).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(header).toBe(referenceBase64Url(JSON.stringify(value)));
        expect(sameJson(decodeMetadataHeader(header), value)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

/** base64url through the platform's btoa, for comparison. */
function referenceBase64Url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
const header = (text: string) => referenceBase64Url(text);

describe("the metadata header", () => {
  it("is base64url of the UTF-8 JSON, unpadded", () => {
    expect(encodeMetadataHeader({ plan: "pro" })).toBe("eyJwbGFuIjoicHJvIn0");
    expect(encodeMetadataHeader({})).toBe("e30");
    expect(encodeMetadataHeader({ a: 1 })).toBe("eyJhIjoxfQ");
    // Bytes that standard base64 writes as + and /: '{"a":"?>?"}' and '{"a":"~~~"}'.
    expect(encodeMetadataHeader({ a: "?>?" })).toBe(referenceBase64Url('{"a":"?>?"}'));
    expect(referenceBase64Url('{"a":"?>?"}')).toMatch(/[-_]/);
  });

  it("round-trips non-ASCII text", () => {
    const metadata = { customer: "Zürich – 東京 🙂", tags: ["é", "\u0000", "\ud800"], nested: { "ключ": "значение" } };
    const value = encodeMetadataHeader(metadata);
    expect(value).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeMetadataHeader(value)).toEqual(metadata);
    expect(new TextDecoder().decode(Uint8Array.from(atob(value.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0)))).toBe(
      JSON.stringify(metadata),
    );
  });

  it("round-trips the largest acceptable metadata", () => {
    const metadata = { k: "🙂".repeat(200) + "x".repeat(METADATA_MAX_BYTES - 8 - 800) };
    expect(utf8Bytes(metadata)).toBe(METADATA_MAX_BYTES);
    const value = encodeMetadataHeader(metadata);
    expect(value.length).toBe(Math.ceil((METADATA_MAX_BYTES * 4) / 3));
    expect(decodeMetadataHeader(value)).toEqual(metadata);
  });

  it.each<[string, string]>([
    ["empty", ""],
    ["padding", "e30="],
    ["the standard alphabet", btoa('{"a":"?>?"}').replace(/=+$/, "")],
    ["whitespace", "e30 "],
    ["a length no encoding has", "e30ab"],
    ["non-zero unused bits (a second spelling of {})", "e31"],
    ["non-ASCII", "e30é"],
    ["an array", header("[1]")],
    ["null", header("null")],
    ["a string", header('"x"')],
    ["not JSON", header("{a:1}")],
    ["trailing garbage", header("{}x")],
    ["a byte-order mark", header("\ufeff{}")],
    ["invalid UTF-8", "_w"], // the byte 0xff
    ["a prototype key", header('{"__proto__":{"x":1}}')],
    ["too deep", header(JSON.stringify(nested(6)))],
    ["too large", header(JSON.stringify({ k: "x".repeat(1017) }))],
    ["much too long", "e".repeat(100_000)],
  ])("refuses %s", (_name, value) => {
    expect(decodeMetadataHeader(value)).toBeNull();
  });

  it("accepts any spelling of valid JSON, and what is not a string is refused without throwing", () => {
    expect(decodeMetadataHeader(header('{ "a" : [ 1 , 2 ] }'))).toEqual({ a: [1, 2] });
    for (const value of [undefined, null, 1, {}, ["e30"]]) expect(decodeMetadataHeader(value as unknown as string)).toBeNull();
  });
});
