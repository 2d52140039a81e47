import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyRuns } from '../test/vectors/property-seed.ts';
import { canonicalBytes, canonicalJson } from './canonical-json.ts';

/** RFC 8785 §3.2.2: the sample object as parsed from JSON text, and its canonical form. */
const RFC_SAMPLE_INPUT = String.raw`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`;
const RFC_SAMPLE_CANONICAL = String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`;

/** RFC 8785 §3.2.3: property sorting by UTF-16 code units. */
const RFC_SORTING_INPUT = String.raw`{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`;
const RFC_SORTING_CANONICAL =
  '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",' +
  '"€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}';

/** Compares by UTF-16 code units, written out so the test does not lean on Array#sort's default. */
function compareCodeUnits(a: string, b: string): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const diff = a.charCodeAt(i) - b.charCodeAt(i);
    if (diff !== 0) return diff;
  }
  return a.length - b.length;
}

/**
 * A second canonicaliser for the property tests: members sorted by the explicit comparator,
 * primitives written by JSON.stringify (which prints finite numbers as Number#toString).
 */
function referenceCanonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(referenceCanonical).join(',')}]`;
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  const object = value as Record<string, unknown>;
  const members = Object.keys(object)
    .sort(compareCodeUnits)
    .map((key) => `${JSON.stringify(key)}:${referenceCanonical(object[key])}`);
  return `{${members.join(',')}}`;
}

describe('canonicalJson on the RFC 8785 examples', () => {
  it('writes the §3.2.2 sample as the RFC does: sorted, no whitespace, ECMAScript numbers and strings', () => {
    expect(canonicalJson(JSON.parse(RFC_SAMPLE_INPUT))).toBe(RFC_SAMPLE_CANONICAL);
  });

  it('sorts the §3.2.3 properties by UTF-16 code units, so the emoji comes before U+FB33', () => {
    expect(canonicalJson(JSON.parse(RFC_SORTING_INPUT))).toBe(RFC_SORTING_CANONICAL);
  });

  it('would not match the RFC if it sorted by code point instead', () => {
    const object = JSON.parse(RFC_SORTING_INPUT) as Record<string, string>;
    const byCodePoint = Object.keys(object).sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    expect(byCodePoint.at(-1)).toBe('😀');
    expect(Object.keys(JSON.parse(canonicalJson(object)) as object).at(-1)).toBe('\ufb33');
  });

  it('emits UTF-8 bytes (§3.2.4): the euro sign is e2 82 ac, not an escape', () => {
    const bytes = canonicalBytes(JSON.parse(RFC_SAMPLE_INPUT));
    expect(Buffer.from(bytes).toString('utf8')).toBe(RFC_SAMPLE_CANONICAL);
    expect(Buffer.from(bytes).toString('hex')).toContain('22737472696e67223a22e282ac24'); // "string":"€$
  });

  it.each([
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af6', '1e+23'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555555', '333333333.3333333'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
  ])('writes the IEEE 754 double %s as %s (Appendix B)', (ieeeHex, text) => {
    expect(canonicalJson(Buffer.from(ieeeHex, 'hex').readDoubleBE(0))).toBe(text);
  });
});

describe('canonicalJson on our own cases', () => {
  it('sorts non-ASCII keys by UTF-16 code units at every level', () => {
    const value = { ö: 1, z: { é: [1, { b: 2, a: 1 }], e: null }, Z: true, '': 'empty', '10': 0, '9': 0 };
    expect(canonicalJson(value)).toBe('{"":"empty","10":0,"9":0,"Z":true,"z":{"e":null,"é":[1,{"a":1,"b":2}]},"ö":1}');
  });

  it.each([
    ['quote and backslash', '"\\', String.raw`"\"\\"`],
    ['the short escapes', '\b\t\n\f\r', String.raw`"\b\t\n\f\r"`],
    ['other controls as lower-case \\u00xx', '\u0000\u0001\u000b\u001f', String.raw`"\u0000\u0001\u000b\u001f"`],
    ['DEL as itself', '\u007f', '"\u007f"'],
    ['solidus unescaped', '/', '"/"'],
    ['non-ASCII as itself', 'Müller € 😀', '"Müller € 😀"'],
    ['line and paragraph separators as themselves', '\u2028\u2029', '"\u2028\u2029"'],
  ])('escapes strings as RFC 8785 §3.2.2.2 says: %s', (_name, text, expected) => {
    expect(canonicalJson(text)).toBe(expected);
  });

  it.each([
    [0, '0'],
    [-0, '0'],
    [1, '1'],
    [-1, '-1'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
    [1e21, '1e+21'],
    [1e20, '100000000000000000000'],
    [0.1, '0.1'],
    [1e-7, '1e-7'],
  ])('writes the number %d as %s', (value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it('writes literals, empty containers and nested arrays without whitespace', () => {
    expect(canonicalJson([null, true, false, [], {}, [[1, [2]], { a: [] }]])).toBe('[null,true,false,[],{},[[1,[2]],{"a":[]}]]');
  });

  it('drops object members whose value is undefined, as JSON.stringify does', () => {
    expect(canonicalJson({ b: undefined, a: 1, c: { d: undefined } })).toBe('{"a":1,"c":{}}');
  });

  it('keeps members whose value is null', () => {
    expect(canonicalJson({ a: null })).toBe('{"a":null}');
  });

  it('writes a key named __proto__ like any other key', () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":2}'))).toBe('{"__proto__":2,"b":1}');
  });

  it('gives the same text whatever order the members were inserted in', () => {
    expect(canonicalJson({ b: 2, a: 1 })).toBe(canonicalJson({ a: 1, b: 2 }));
  });

  it('accepts a surrogate pair, which is one Unicode character', () => {
    expect(canonicalJson({ '\ud83d\ude00': '\ud83d\ude00' })).toBe('{"😀":"😀"}');
  });
});

describe('canonicalJson refuses what JSON cannot carry, naming the path', () => {
  it.each([
    [{ a: Number.NaN }, RangeError, /^\$\.a: NaN cannot be represented/],
    [{ a: [1, Number.POSITIVE_INFINITY] }, RangeError, /^\$\.a\[1\]: Infinity cannot be represented/],
    [{ a: { b: Number.NEGATIVE_INFINITY } }, RangeError, /^\$\.a\.b: -Infinity cannot be represented/],
    [{ f: () => 1 }, TypeError, /^\$\.f: a function cannot be represented/],
    [{ n: [10n] }, TypeError, /^\$\.n\[0\]: a bigint cannot be represented/],
    [{ s: Symbol('x') }, TypeError, /^\$\.s: a symbol cannot be represented/],
    [[1, undefined], TypeError, /^\$\[1\]: a undefined cannot be represented/],
    [Number.NaN, RangeError, /^\$: NaN/],
    [{ a: 'x\ud800y' }, RangeError, /^\$\.a: string contains a lone UTF-16 surrogate/],
    [{ 'k\udc00': 1 }, RangeError, /^\$\.k\udc00: string contains a lone UTF-16 surrogate/],
    [['\ude00\ud83d'], RangeError, /^\$\[0\]: string contains a lone UTF-16 surrogate/],
  ])('refuses %o', (value, errorType, message) => {
    expect(() => canonicalJson(value)).toThrow(errorType);
    expect(() => canonicalJson(value)).toThrow(message);
  });
});

describe('canonicalJson properties', () => {
  const jsonValues = fc.jsonValue({ stringUnit: 'binary', maxDepth: 4 });

  it('matches a reference that sorts members with an explicit UTF-16 code unit comparator', () => {
    fc.assert(
      fc.property(jsonValues, (value) => {
        expect(canonicalJson(value)).toBe(referenceCanonical(value));
      }),
      propertyRuns(2_000),
    );
  });

  it('is a fixed point: canonicalising the parsed canonical text gives the same text', () => {
    fc.assert(
      fc.property(jsonValues, (value) => {
        const text = canonicalJson(value);
        expect(canonicalJson(JSON.parse(text))).toBe(text);
        expect(Buffer.from(canonicalBytes(value)).toString('utf8')).toBe(text);
      }),
      propertyRuns(2_000),
    );
  });
});
