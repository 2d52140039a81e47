/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the bytes we hash and sign.
 *
 * Our wire objects carry amounts and quantities as strings, so the only numbers
 * are small integers (sequence numbers, counts); RFC 8785 §3.2.2.3 serialises
 * them as ECMAScript does, which is `String(n)` for finite numbers.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Canonical JSON text of `value` (RFC 8785). Throws on values JSON cannot carry. */
export function canonicalJson(value: unknown): string {
  return serialise(value, '$');
}

const encoder = new TextEncoder();

/** UTF-8 bytes of {@link canonicalJson}. */
export function canonicalBytes(value: unknown): Uint8Array {
  return encoder.encode(canonicalJson(value));
}

// Paths name the bad member in errors; they are built only on the way down into nested
// values or to an error, never for every member (records are hashed on the hot path).
const memberPath = (parent: string, key: string | number): string => (typeof key === 'number' ? `${parent}[${key}]` : `${parent}.${key}`);

function serialise(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return serialiseString(value, path);
    case 'number':
      if (!Number.isFinite(value)) throw new RangeError(`${path}: ${value} cannot be represented in JSON`);
      return Object.is(value, -0) ? '0' : String(value); // RFC 8785 §3.2.2.3
    case 'object':
      if (Array.isArray(value)) return serialiseArray(value, path);
      return serialiseObject(value as Record<string, unknown>, path);
    default:
      throw new TypeError(`${path}: a ${typeof value} cannot be represented in JSON`);
  }
}

function serialiseArray(items: unknown[], path: string): string {
  let out = '[';
  for (let i = 0; i < items.length; i += 1) {
    if (i > 0) out += ',';
    const item = items[i];
    out += typeof item === 'object' && item !== null ? serialise(item, memberPath(path, i)) : serialiseScalar(item, path, i);
  }
  return `${out}]`;
}

function serialiseObject(object: Record<string, unknown>, path: string): string {
  // RFC 8785 §3.2.3: sort by UTF-16 code units, which is what the default sort compares.
  const keys = Object.keys(object).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = object[key];
    if (member === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += HAS_SURROGATE.test(key) ? serialiseString(key, memberPath(path, key)) : JSON.stringify(key);
    out += ':';
    out += typeof member === 'object' && member !== null ? serialise(member, memberPath(path, key)) : serialiseScalar(member, path, key);
  }
  return `${out}}`;
}

/** A non-object member: its path is only needed (and built) if it is refused. */
function serialiseScalar(value: unknown, parent: string, key: string | number): string {
  switch (typeof value) {
    case 'string':
      return HAS_SURROGATE.test(value) ? serialiseString(value, memberPath(parent, key)) : JSON.stringify(value);
    case 'boolean':
    case 'number':
      return serialise(value, typeof value === 'number' && !Number.isFinite(value) ? memberPath(parent, key) : parent);
    default:
      return serialise(value, memberPath(parent, key));
  }
}

/** Cheap pre-check: only strings with a surrogate code unit need the precise lone-surrogate test. */
const HAS_SURROGATE = /[\uD800-\uDFFF]/;

/** A lone UTF-16 surrogate, which `/u` sees as a code point of category Cs; a valid pair is one astral code point. */
const LONE_SURROGATE = /\p{Cs}/u;

function serialiseString(text: string, path: string): string {
  // RFC 8785 §3.1: string data MUST be expressible as Unicode; a lone surrogate is not, and
  // JSON.stringify would hide it behind a \udxxx escape no other JCS implementation produces.
  if (HAS_SURROGATE.test(text) && LONE_SURROGATE.test(text)) throw new RangeError(`${path}: string contains a lone UTF-16 surrogate, which is not Unicode`);
  return JSON.stringify(text); // RFC 8785 §3.2.2.2 matches ECMAScript JSON.stringify for strings
}
