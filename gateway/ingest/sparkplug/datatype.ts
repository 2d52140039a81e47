/**
 * Sparkplug B data types (Sparkplug 3.0 §6.4.16 "DataType Details", enum DataType in
 * sparkplug_b.proto) and the exact reading of integer values.
 *
 * Sparkplug carries Int8, Int16 and Int32 in the protobuf `uint32` field int_value, so the
 * sign is a convention, not a wire type: the value is the two's complement bit pattern of
 * the declared width (Int8 -1 is 0xFF, as Eclipse Tahu's JavaScript encoder writes it).
 * Encoders that widen to 32 bits first (Tahu Java: -1 becomes 0xFFFFFFFF) are read the
 * same. Int64 in the `uint64` long_value is its 64-bit two's complement pattern.
 */
import type { SparkplugValue } from './payload.ts';

export const SparkplugDataType = Object.freeze({
  Unknown: 0,
  Int8: 1,
  Int16: 2,
  Int32: 3,
  Int64: 4,
  UInt8: 5,
  UInt16: 6,
  UInt32: 7,
  UInt64: 8,
  Float: 9,
  Double: 10,
  Boolean: 11,
  String: 12,
  DateTime: 13,
  Text: 14,
  UUID: 15,
  DataSet: 16,
  Bytes: 17,
  File: 18,
  Template: 19,
  PropertySet: 20,
  PropertySetList: 21,
  Int8Array: 22,
  Int16Array: 23,
  Int32Array: 24,
  Int64Array: 25,
  UInt8Array: 26,
  UInt16Array: 27,
  UInt32Array: 28,
  UInt64Array: 29,
  FloatArray: 30,
  DoubleArray: 31,
  BooleanArray: 32,
  StringArray: 33,
  DateTimeArray: 34,
});

const NAMES: readonly string[] = Object.keys(SparkplugDataType);

/** `Int32`, or `datatype 99` for a code the spec does not define. */
export function dataTypeName(code: number): string {
  return NAMES[code] ?? `datatype ${code}`;
}

interface IntegerLayout {
  bits: number;
  signed: boolean;
  /** Which oneof member of the value carries it: int_value (uint32) or long_value (uint64). */
  field: 'int' | 'long';
}

const INTEGER_LAYOUTS: ReadonlyMap<number, IntegerLayout> = new Map([
  [SparkplugDataType.Int8, { bits: 8, signed: true, field: 'int' }],
  [SparkplugDataType.Int16, { bits: 16, signed: true, field: 'int' }],
  [SparkplugDataType.Int32, { bits: 32, signed: true, field: 'int' }],
  [SparkplugDataType.Int64, { bits: 64, signed: true, field: 'long' }],
  [SparkplugDataType.UInt8, { bits: 8, signed: false, field: 'int' }],
  [SparkplugDataType.UInt16, { bits: 16, signed: false, field: 'int' }],
  [SparkplugDataType.UInt32, { bits: 32, signed: false, field: 'int' }],
  [SparkplugDataType.UInt64, { bits: 64, signed: false, field: 'long' }],
  [SparkplugDataType.DateTime, { bits: 64, signed: false, field: 'long' }],
]);

/** Int8..Int64 and UInt8..UInt64: quantities. DateTime is an integer too, but a time, not usage. */
export function isBillableDataType(code: number): boolean {
  return code >= SparkplugDataType.Int8 && code <= SparkplugDataType.UInt64;
}

export function isIntegerDataType(code: number): boolean {
  return INTEGER_LAYOUTS.has(code);
}

export type IntegerResult = { ok: true; value: bigint } | { ok: false; detail: string };

/**
 * The exact value of an integer-typed value (Int8..Int64, UInt8..UInt64, DateTime) as a
 * bigint. Refuses, with a reason, a value in the wrong oneof member or out of range for
 * its declared width, rather than guessing.
 */
export function readInteger(datatype: number, value: SparkplugValue): IntegerResult {
  const layout = INTEGER_LAYOUTS.get(datatype);
  const name = dataTypeName(datatype);
  if (!layout) return { ok: false, detail: `${name} is not an integer type` };
  if (value.kind !== layout.field) {
    return { ok: false, detail: `${name} must be carried in ${layout.field}_value, found ${value.kind === 'none' ? 'no value' : `${value.kind}_value`}` };
  }
  const bits = value.bits;
  const width = BigInt(layout.bits);
  if (!layout.signed) {
    if (bits >> width !== 0n) return { ok: false, detail: `${name} value ${bits} does not fit in ${layout.bits} bits` };
    return { ok: true, value: bits };
  }
  if (bits >> width === 0n) return { ok: true, value: BigInt.asIntN(layout.bits, bits) };
  // A negative value sign-extended to the wire width (32 bits for int_value).
  const widened = BigInt.asIntN(layout.field === 'int' ? 32 : 64, bits);
  if (widened < 0n && widened >= -(1n << (width - 1n))) return { ok: true, value: widened };
  return { ok: false, detail: `${name} value 0x${bits.toString(16)} is neither a ${layout.bits}-bit pattern nor a sign-extended negative ${name}` };
}
