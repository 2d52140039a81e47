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
      if (Array.isArray(value)) return `[${value.map((item, i) => serialise(item, `${path}[${i}]`)).join(',')}]`;
      return serialiseObject(value as Record<string, unknown>, path);
    default:
      throw new TypeError(`${path}: a ${typeof value} cannot be represented in JSON`);
  }
}

function serialiseObject(object: Record<string, unknown>, path: string): string {
  // RFC 8785 §3.2.3: sort by UTF-16 code units, which is what the default sort compares.
  const keys = Object.keys(object).filter((key) => object[key] !== undefined).sort();
  const members = keys.map((key) => `${serialiseString(key, `${path}.${key}`)}:${serialise(object[key], `${path}.${key}`)}`);
  return `{${members.join(',')}}`;
}

/** A lone UTF-16 surrogate, which `/u` sees as a code point of category Cs; a valid pair is one astral code point. */
const LONE_SURROGATE = /\p{Cs}/u;

function serialiseString(text: string, path: string): string {
  // RFC 8785 §3.1: string data MUST be expressible as Unicode; a lone surrogate is not, and
  // JSON.stringify would hide it behind a \udxxx escape no other JCS implementation produces.
  if (LONE_SURROGATE.test(text)) throw new RangeError(`${path}: string contains a lone UTF-16 surrogate, which is not Unicode`);
  return JSON.stringify(text); // RFC 8785 §3.2.2.2 matches ECMAScript JSON.stringify for strings
}
