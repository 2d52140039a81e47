import { describe, expect, it } from 'vitest';
import { dataTypeName, isBillableDataType, readInteger, SparkplugDataType as T } from './datatype.ts';
import type { SparkplugValue } from './payload.ts';

const int = (bits: bigint): SparkplugValue => ({ kind: 'int', bits });
const long = (bits: bigint): SparkplugValue => ({ kind: 'long', bits });

describe('readInteger', () => {
  // [datatype, wire value, exact value]
  const accepted: Array<[number, SparkplugValue, bigint]> = [
    [T.Int8, int(0x7fn), 127n],
    [T.Int8, int(0xffn), -1n], // the 8-bit pattern, as Tahu's JavaScript encoder writes it
    [T.Int8, int(0xffff_ffffn), -1n], // widened to 32 bits first, as Tahu's Java encoder writes it
    [T.Int8, int(0x80n), -128n],
    [T.Int8, int(0xffff_ff80n), -128n],
    [T.Int16, int(0x8000n), -32_768n],
    [T.Int16, int(0xffff_8000n), -32_768n],
    [T.Int32, int(0xffff_fffbn), -5n],
    [T.Int32, int(0x7fff_ffffn), 2_147_483_647n],
    [T.Int64, long(2n ** 64n - 1n), -1n],
    [T.Int64, long(2n ** 63n - 1n), 9_223_372_036_854_775_807n],
    [T.UInt8, int(255n), 255n],
    [T.UInt16, int(65_535n), 65_535n],
    [T.UInt32, int(0xffff_ffffn), 4_294_967_295n],
    [T.UInt64, long(2n ** 64n - 1n), 18_446_744_073_709_551_615n],
    [T.DateTime, long(1_700_000_000_000n), 1_700_000_000_000n],
  ];
  it.each(accepted)('reads datatype %s exactly', (datatype, value, expected) => {
    expect(readInteger(datatype, value)).toEqual({ ok: true, value: expected });
  });

  // [datatype, wire value, why]
  const refused: Array<[number, SparkplugValue, RegExp]> = [
    [T.Int8, int(0x100n), /neither a 8-bit pattern nor a sign-extended negative Int8/],
    [T.Int8, int(0xffff_ff7fn), /neither a 8-bit pattern/], // -129 does not fit in Int8
    [T.Int16, int(0x1_0000n), /neither a 16-bit pattern/],
    [T.UInt8, int(256n), /UInt8 value 256 does not fit in 8 bits/],
    [T.UInt16, int(0xffff_ffffn), /does not fit in 16 bits/],
    [T.UInt32, long(1n), /UInt32 must be carried in int_value, found long_value/],
    [T.UInt64, int(1n), /UInt64 must be carried in long_value, found int_value/],
    [T.Int32, { kind: 'none' }, /found no value/],
    [T.Float, { kind: 'float', value: 1.5 }, /Float is not an integer type/],
    [99, int(1n), /datatype 99 is not an integer type/],
  ];
  it.each(refused)('refuses datatype %s with a value it cannot hold', (datatype, value, why) => {
    const result = readInteger(datatype, value);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.detail).toMatch(why);
  });
});

describe('isBillableDataType', () => {
  it('bills the eight integer types', () => {
    for (const type of [T.Int8, T.Int16, T.Int32, T.Int64, T.UInt8, T.UInt16, T.UInt32, T.UInt64]) expect(isBillableDataType(type)).toBe(true);
  });

  it('does not bill floats, booleans, strings, times or anything else', () => {
    for (const type of [T.Unknown, T.Float, T.Double, T.Boolean, T.String, T.DateTime, T.Text, T.Bytes, T.DataSet, T.Template, T.Int32Array, 35]) {
      expect(isBillableDataType(type)).toBe(false);
    }
  });

  it('names data types the way the spec does', () => {
    expect(dataTypeName(T.UInt64)).toBe('UInt64');
    expect(dataTypeName(T.DateTimeArray)).toBe('DateTimeArray');
  });

  it('names a code the spec does not define by its number', () => {
    expect(dataTypeName(35)).toBe('datatype 35');
  });
});
