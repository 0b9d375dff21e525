/**
 * Key metadata (issue 14): a small JSON object a key carries (a customer id, a plan), returned by
 * verification and forwarded upstream in one header. Validated as data, never as code:
 *
 * - a plain object (prototype Object.prototype or null) at the top, not an array, not null;
 * - inside, only JSON values: strings, finite numbers, booleans, null, arrays (dense, plain) and plain
 *   objects. Anything JSON.stringify would drop, change or choke on is refused rather than silently
 *   altered: undefined, functions, symbols, bigints, NaN and ±Infinity, Dates, class instances,
 *   boxed primitives, getters, symbol keys, holes, cycles;
 * - no key "__proto__", "constructor" or "prototype" at any depth: code that merges or spreads the
 *   object into another (here or in a customer's upstream) must not be able to reach a prototype;
 * - at most 1 KiB as UTF-8 JSON (JSON.stringify's own text, counted in bytes, so "é" counts 2) and
 *   at most 5 levels (every object or array is a level; an object holding only scalars is 1).
 *
 * The walk reads properties through their descriptors, so no getter runs (a Proxy's traps do, and
 * whatever they throw is caught), and gives up as soon as the input is known bad (at 64 KiB counted,
 * or at level 6), so a huge or cyclic input costs little.
 *
 * Upstream header: the base64url (RFC 4648 §5, no padding) of the UTF-8 JSON text.
 */

export const METADATA_MAX_BYTES = 1024;
export const METADATA_MAX_DEPTH = 5;

// Interfaces, not type aliases: TypeScript expands them lazily, so the Durable Object RPC types
// (which map every field of what crosses the boundary) terminate on this recursive type.
export type JsonValue = string | number | boolean | null | JsonArray | JsonObject;
export interface JsonArray extends Array<JsonValue> {}
export interface JsonObject {
  [k: string]: JsonValue;
}
export type Metadata = JsonObject;

const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);
/** Past this many bytes counted the walk stops: the size is then reported as "more than". */
const STOP_BYTES = 64 * 1024;

interface Walk {
  bytes: number;
  /** The containers enclosing the current value (at most METADATA_MAX_DEPTH): a repeat is a cycle. */
  ancestors: object[];
  /** Where the current value is, for the message. */
  path: (string | number)[];
}

/**
 * Why `value` is not acceptable key metadata (a message for a 400, to follow the field's name), or
 * null when it is. Never throws.
 * @example metadataIssue({ customer: "c_1", plan: "pro" }) // null
 * @example metadataIssue([1]) // "must be a JSON object"
 */
export function metadataIssue(value: unknown): string | null {
  try {
    if (!isPlainObject(value)) return "must be a JSON object";
    const walk: Walk = { bytes: 0, ancestors: [], path: [] };
    const issue = container(value, 1, walk);
    if (issue !== null) return issue;
    return walk.bytes > METADATA_MAX_BYTES ? tooLarge(walk.bytes) : null;
  } catch {
    // Only a Proxy can throw here (a trap); whatever it is, it is not data.
    return "must be a JSON object";
  }
}

function isPlainObject(value: unknown): value is object {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function tooLarge(bytes: number): string {
  return `must be at most ${METADATA_MAX_BYTES} bytes as JSON (is ${bytes > STOP_BYTES ? `more than ${STOP_BYTES}` : bytes})`;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function notJson(walk: Walk, what: string): string {
  return `must hold only JSON values: ${where(walk)} is ${what}`;
}

/** The current value's path, as JavaScript would write it: `plan.limits[2]`, `["a b"]`. */
function where(walk: Walk): string {
  let text = "";
  for (const step of walk.path) {
    if (typeof step === "number") text += `[${step}]`;
    else if (step.length <= 40 && IDENTIFIER.test(step)) text += text ? `.${step}` : step;
    else text += `[${JSON.stringify(step.length > 40 ? `${step.slice(0, 40)}…` : step)}]`;
  }
  return text || "the top level";
}

/** Walks one object or array at level `depth`; its bytes go to `walk.bytes`. */
function container(obj: object, depth: number, walk: Walk): string | null {
  if (walk.ancestors.includes(obj)) return `must not contain itself (a cycle at ${where(walk)})`;
  if (depth > METADATA_MAX_DEPTH) return `must not nest deeper than ${METADATA_MAX_DEPTH} levels`;
  if (Object.getOwnPropertySymbols(obj).length > 0) return notJson(walk, "an object with symbol keys");
  walk.ancestors.push(obj);
  if (Array.isArray(obj)) {
    if (Object.getPrototypeOf(obj) !== Array.prototype) return notJson(walk, "not a plain array");
    const length = obj.length;
    walk.bytes += 2 + Math.max(0, length - 1); // brackets and commas
    if (walk.bytes > STOP_BYTES) return tooLarge(walk.bytes);
    for (let i = 0; i < length; i++) {
      walk.path.push(i);
      const issue = property(Object.getOwnPropertyDescriptor(obj, i), depth, walk);
      if (issue !== null) return issue;
      walk.path.pop();
    }
  } else {
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) return notJson(walk, "not a plain object or array");
    const keys = Object.keys(obj);
    walk.bytes += 2 + Math.max(0, keys.length - 1); // braces and commas
    if (walk.bytes > STOP_BYTES) return tooLarge(walk.bytes);
    for (const key of keys) {
      if (FORBIDDEN_KEYS.has(key)) return `must not use the key ${JSON.stringify(key)}`;
      walk.path.push(key);
      walk.bytes += stringBytes(key) + 1; // and the colon
      if (walk.bytes > STOP_BYTES) return tooLarge(walk.bytes);
      const issue = property(Object.getOwnPropertyDescriptor(obj, key), depth, walk);
      if (issue !== null) return issue;
      walk.path.pop();
    }
  }
  walk.ancestors.pop();
  return null;
}

/** Walks one member of a container at level `depth`. */
function property(descriptor: PropertyDescriptor | undefined, depth: number, walk: Walk): string | null {
  if (descriptor === undefined) return notJson(walk, "missing (a hole in the array)");
  if (!("value" in descriptor)) return notJson(walk, "a getter or setter");
  const value: unknown = descriptor.value;
  switch (typeof value) {
    case "string":
      walk.bytes += stringBytes(value);
      return walk.bytes > STOP_BYTES ? tooLarge(walk.bytes) : null;
    case "number":
      if (!Number.isFinite(value)) return notJson(walk, String(value));
      walk.bytes += String(value).length; // JSON writes numbers as String does (-0 as "0" both ways)
      return null;
    case "boolean":
      walk.bytes += value ? 4 : 5;
      return null;
    case "object":
      if (value === null) {
        walk.bytes += 4;
        return null;
      }
      return container(value, depth + 1, walk);
    case "undefined":
      return notJson(walk, "undefined");
    case "function":
      return notJson(walk, "a function");
    default:
      return notJson(walk, `a ${typeof value}`); // bigint, symbol
  }
}

/** The UTF-8 length of JSON.stringify(text), quotes included, without building it. */
function stringBytes(text: string): number {
  // Every UTF-16 unit costs at least one byte: a string this long is too large whatever it holds.
  if (text.length > STOP_BYTES) return STOP_BYTES + 1;
  let bytes = 2;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      // '"' and '\' and \b \t \n \f \r take a backslash; other controls become \u00XX.
      if (c === 34 || c === 92 || c === 8 || c === 9 || c === 10 || c === 12 || c === 13) bytes += 2;
      else bytes += c < 0x20 ? 6 : 1;
    } else if (c < 0x800) {
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // a surrogate pair: one code point above U+FFFF
      i++;
    } else {
      bytes += c >= 0xd800 && c <= 0xdfff ? 6 : 3; // a lone surrogate is written as \uDXXX
    }
  }
  return bytes;
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64URL_CODE = Uint8Array.from(BASE64URL, (c) => c.charCodeAt(0));
const BASE64URL_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE64URL.length; i++) BASE64URL_VALUE[BASE64URL.charCodeAt(i)] = i;
/** The longest header acceptable metadata makes: 4 characters per 3 bytes, unpadded. */
const MAX_HEADER_LENGTH = Math.ceil((METADATA_MAX_BYTES * 4) / 3);

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const asciiDecoder = new TextDecoder();

/**
 * The upstream header's value: base64url without padding of the UTF-8 JSON. Header-safe whatever
 * the metadata holds (no quoting, no non-ASCII); compute it once per key, not per request.
 * @example encodeMetadataHeader({ plan: "pro" }) // "eyJwbGFuIjoicHJvIn0"
 */
export function encodeMetadataHeader(metadata: Metadata): string {
  const bytes = encoder.encode(JSON.stringify(metadata));
  // Written as ASCII bytes and decoded once: about twice as fast as concatenating characters at 1 KiB.
  const out = new Uint8Array(Math.ceil((bytes.length * 4) / 3));
  let o = 0;
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = BASE64URL_CODE[n >>> 18]!;
    out[o++] = BASE64URL_CODE[(n >>> 12) & 63]!;
    out[o++] = BASE64URL_CODE[(n >>> 6) & 63]!;
    out[o++] = BASE64URL_CODE[n & 63]!;
  }
  if (i < bytes.length) {
    // One or two bytes left: two or three characters, no padding.
    const n = (bytes[i]! << 16) | (i + 1 < bytes.length ? bytes[i + 1]! << 8 : 0);
    out[o++] = BASE64URL_CODE[n >>> 18]!;
    out[o++] = BASE64URL_CODE[(n >>> 12) & 63]!;
    if (i + 1 < bytes.length) out[o++] = BASE64URL_CODE[(n >>> 6) & 63]!;
  }
  return asciiDecoder.decode(out);
}

/**
 * The metadata in a header made by {@link encodeMetadataHeader}; null unless `value` is exactly
 * unpadded base64url (the canonical encoding: unused trailing bits zero) of UTF-8 JSON text that is
 * acceptable metadata.
 */
export function decodeMetadataHeader(value: string): Metadata | null {
  if (typeof value !== "string" || value.length > MAX_HEADER_LENGTH || value.length % 4 === 1) return null;
  const bytes = new Uint8Array(Math.floor((value.length * 3) / 4));
  let length = 0;
  let bits = 0;
  let acc = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const v = c < 128 ? BASE64URL_VALUE[c]! : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[length++] = acc >>> bits;
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    return null;
  }
  return metadataIssue(parsed) === null ? (parsed as Metadata) : null;
}
