import { describe, expect, it } from 'vitest';
import { readInteger, SparkplugDataType as T } from './datatype.ts';
import { checkDecodeLimits, decodeSparkplugPayload, SPARKPLUG_DECODE_LIMITS, type SparkplugDecodeResult, type SparkplugPayload } from './payload.ts';
import { encodePayload, int32Bits } from './payload-encoder.ts';

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.replace(/#.*$/gm, '').trim().split(/\s+/).map((byte) => Number.parseInt(byte, 16)));
}

function decoded(result: SparkplugDecodeResult): SparkplugPayload {
  if (!result.ok) throw new Error(`expected a payload, got: ${result.detail}`);
  return result.payload;
}

function refusal(result: SparkplugDecodeResult): string {
  if (result.ok) throw new Error('expected malformed_payload, got a payload');
  expect(result.reason).toBe('malformed_payload');
  return result.detail;
}

// Built by hand from the field numbers in sparkplug_b.proto (Sparkplug 3.0 §6.4.1), not by
// our encoder: key byte = field number << 3 | wire type.
const HAND_VECTOR = hex(`
  08 80 d0 95 ff bc 31              # 1 timestamp varint = 1700000000000
  12 1e                             # 2 metrics, 30 bytes
    0a 06 63 79 63 6c 65 73         #   1 name "cycles"
    10 07                           #   2 alias 7
    18 fb d0 95 ff bc 31            #   3 timestamp 1700000000123
    20 08                           #   4 datatype UInt64
    58 ff ff ff ff ff ff ff ff ff 01 #  11 long_value 2^64 - 1
  12 0e                             # 2 metrics, 14 bytes
    0a 04 74 65 6d 70               #   1 name "temp"
    20 03                           #   4 datatype Int32
    50 fb ff ff ff 0f               #  10 int_value 0xfffffffb (-5 as Sparkplug sends it)
  12 10                             # 2 metrics, 16 bytes
    0a 05 73 70 65 65 64            #   1 name "speed"
    20 09                           #   4 datatype Float
    28 01                           #   5 is_historical true
    65 00 00 c0 3f                  #  12 float_value 1.5 (fixed32, little-endian)
  18 2a                             # 3 seq 42
  22 03 61 62 63                    # 4 uuid "abc"
`);

describe('decodeSparkplugPayload on a vector built by hand from the spec', () => {
  it('reads every field of the hand-built payload exactly', () => {
    const payload = decoded(decodeSparkplugPayload(HAND_VECTOR));
    expect(payload.timestamp).toBe(1_700_000_000_000n);
    expect(payload.seq).toBe(42n);
    expect(payload.uuid).toBe('abc');
    expect(payload.metrics).toHaveLength(3);
    const [cycles, temp, speed] = payload.metrics;
    expect(cycles).toMatchObject({ name: 'cycles', alias: 7n, timestamp: 1_700_000_000_123n, datatype: T.UInt64, isHistorical: false });
    expect(cycles!.value).toEqual({ kind: 'long', bits: 2n ** 64n - 1n });
    expect(readInteger(T.UInt64, cycles!.value)).toEqual({ ok: true, value: 18_446_744_073_709_551_615n });
    expect(readInteger(T.Int32, temp!.value)).toEqual({ ok: true, value: -5n });
    expect(speed).toMatchObject({ name: 'speed', datatype: T.Float, isHistorical: true, value: { kind: 'float', value: 1.5 } });
  });

  it('refuses the hand-built payload cut short by one byte, naming where', () => {
    const detail = refusal(decodeSparkplugPayload(HAND_VECTOR.subarray(0, HAND_VECTOR.length - 1)));
    expect(detail).toMatch(/uuid .* claims 3 bytes but only 2 are left/);
  });

  it('matches what our encoder writes for the same payload', () => {
    const encoded = encodePayload({
      timestamp: 1_700_000_000_000,
      metrics: [
        { name: 'cycles', alias: 7, timestamp: 1_700_000_000_123, datatype: T.UInt64, value: { long: 2n ** 64n - 1n } },
        { name: 'temp', datatype: T.Int32, value: { int: int32Bits(-5) } },
        { name: 'speed', datatype: T.Float, historical: true, value: { float: 1.5 } },
      ],
      seq: 42,
      uuid: 'abc',
    });
    expect(Buffer.from(encoded).toString('hex')).toBe(Buffer.from(HAND_VECTOR).toString('hex'));
  });

  it('refuses a metric whose length runs past the payload', () => {
    const bytes = hex('12 05 0a 04 74 65'); // a metric claiming 5 bytes, 4 present
    expect(refusal(decodeSparkplugPayload(bytes))).toMatch(/metric 0: metric at byte 1 claims 5 bytes but only 4 are left/);
  });
});

describe('decodeSparkplugPayload on integers', () => {
  it('reads a negative Int32 sent as a 10-byte sign-extended varint, as some encoders do', () => {
    const payload = decoded(decodeSparkplugPayload(hex('12 0d 20 03 50 fb ff ff ff ff ff ff ff ff 01')));
    expect(readInteger(T.Int32, payload.metrics[0]!.value)).toEqual({ ok: true, value: -5n });
  });

  it('refuses an int_value whose upper 32 bits are neither all zero nor all one', () => {
    const detail = refusal(decodeSparkplugPayload(hex('12 0d 20 03 50 fb ff ff ff 1f 00 00 00 00 00')));
    expect(detail).toMatch(/metric 0: uint32 varint .* more than 32 bits/);
  });

  it('reads UInt64 max and Int64 min as exact bigints', () => {
    const bytes = encodePayload({ metrics: [{ name: 'u', datatype: T.UInt64, value: { long: 2n ** 64n - 1n } }, { name: 'i', datatype: T.Int64, value: { long: -(2n ** 63n) } }] });
    const [u, i] = decoded(decodeSparkplugPayload(bytes)).metrics;
    expect(readInteger(T.UInt64, u!.value)).toEqual({ ok: true, value: 18_446_744_073_709_551_615n });
    expect(readInteger(T.Int64, i!.value)).toEqual({ ok: true, value: -9_223_372_036_854_775_808n });
  });

  it('refuses a varint wider than 64 bits', () => {
    expect(refusal(decodeSparkplugPayload(hex('12 0b 58 ff ff ff ff ff ff ff ff ff 02')))).toMatch(/wider than 64 bits/);
    expect(refusal(decodeSparkplugPayload(hex('18 80 80 80 80 80 80 80 80 80 80 01')))).toMatch(/wider than 64 bits|longer than 10 bytes/);
  });
});

describe('decodeSparkplugPayload on nested values', () => {
  const nested = encodePayload({
    timestamp: 1,
    metrics: [
      {
        name: 'table',
        datatype: T.DataSet,
        properties: { keys: ['unit', 'limits'], values: [{ type: T.String, value: { string: 'cycle' } }, { type: T.PropertySet, value: { propertyset: { keys: ['max'], values: [{ type: T.Int32, value: { int: 9 } }] } } }] },
        metadata: { contentType: 'text/plain', size: 3n, description: 'd' },
        value: { dataset: { columns: ['a', 'b'], types: [T.Int32, T.String], packedTypes: true, rows: [[{ int: 1 }, { string: 'x' }]] } },
      },
      { name: 'udt', datatype: T.Template, value: { template: { version: 'v1', templateRef: 'Motor', metrics: [{ name: 'rpm', datatype: T.UInt32, value: { int: 1500 } }], parameters: [{ name: 'p', type: T.String, value: { string: 'q' } }] } } },
      { name: 'blob', datatype: T.Bytes, value: { bytes: Uint8Array.of(1, 2, 3) } },
    ],
  });

  it('decodes datasets (packed types), templates, property sets and metadata', () => {
    const [table, udt, blob] = decoded(decodeSparkplugPayload(nested)).metrics;
    expect(table!.value).toEqual({ kind: 'dataset', value: { numOfColumns: 2n, columns: ['a', 'b'], types: [T.Int32, T.String], rows: [[{ kind: 'int', bits: 1n }, { kind: 'string', value: 'x' }]] } });
    expect(table!.properties!.keys).toEqual(['unit', 'limits']);
    expect(table!.properties!.values[1]!.value).toEqual({ kind: 'propertyset', value: { keys: ['max'], values: [{ type: T.Int32, isNull: false, value: { kind: 'int', bits: 9n } }] } });
    expect(table!.metadata).toEqual({ contentType: 'text/plain', size: 3n, description: 'd' });
    expect(udt!.value).toMatchObject({ kind: 'template', value: { version: 'v1', templateRef: 'Motor', metrics: [{ name: 'rpm', value: { kind: 'int', bits: 1500n } }], parameters: [{ name: 'p', type: T.String, value: { kind: 'string', value: 'q' } }] } });
    expect(blob!.value).toEqual({ kind: 'bytes', value: Uint8Array.of(1, 2, 3) });
  });

  it('refuses templates nested deeper than depthMax', () => {
    let inner: Parameters<typeof encodePayload>[0]['metrics'] = [{ name: 'leaf', datatype: T.Int8, value: { int: 1 } }];
    for (let i = 0; i < 20; i += 1) inner = [{ name: `t${i}`, datatype: T.Template, value: { template: { metrics: inner } } }];
    expect(refusal(decodeSparkplugPayload(encodePayload({ metrics: inner })))).toMatch(/nested \d+ deep, at most 16 allowed/);
  });

  it('skips unknown fields and extensions, as protobuf requires', () => {
    const withUnknown = hex(`
      12 0e                 # metric, 14 bytes
        0a 01 61            #   1 name "a"
        a8 01 05            #  21 (unknown) varint 5
        9a 01 02 08 01      #  19 extension_value, 2 bytes
        f2 01 00            #  30 (unknown) LEN, empty
      35 01 02 03 04        # 6 (payload extension) fixed32
      39 01 02 03 04 05 06 07 08  # 7 (payload extension) fixed64
    `);
    const payload = decoded(decodeSparkplugPayload(withUnknown));
    expect(payload.metrics[0]!.name).toBe('a');
    expect(payload.metrics[0]!.value).toEqual({ kind: 'extension' });
  });

  it('refuses a known field sent with the wrong wire type', () => {
    expect(refusal(decodeSparkplugPayload(hex('0a 01 00')))).toMatch(/payload timestamp \(field 1\) has wire type LEN, expected VARINT/);
  });

  it('refuses protobuf groups, which Sparkplug never uses', () => {
    expect(refusal(decodeSparkplugPayload(hex('33 34')))).toMatch(/wire type SGROUP/);
  });
});

describe('decodeSparkplugPayload limits', () => {
  it('accepts exactly metricsMax metrics', () => {
    const metrics = Array.from({ length: SPARKPLUG_DECODE_LIMITS.metricsMax }, (_, i) => ({ alias: i, value: { int: 1 } }));
    expect(decoded(decodeSparkplugPayload(encodePayload({ metrics }))).metrics).toHaveLength(1000);
  });

  it('refuses one metric more than metricsMax', () => {
    const metrics = Array.from({ length: SPARKPLUG_DECODE_LIMITS.metricsMax + 1 }, (_, i) => ({ alias: i, value: { int: 1 } }));
    expect(refusal(decodeSparkplugPayload(encodePayload({ metrics })))).toMatch(/metric 1000: more than 1000 metrics/);
  });

  it('accepts a 4 KiB string', () => {
    expect(decoded(decodeSparkplugPayload(encodePayload({ metrics: [{ name: 'n'.repeat(4096) }] }))).metrics[0]!.name).toHaveLength(4096);
  });

  it('refuses a string of 4 KiB and one byte', () => {
    expect(refusal(decodeSparkplugPayload(encodePayload({ metrics: [{ name: 'n'.repeat(4097) }] })))).toMatch(/metric name is 4097 bytes, at most 4096 allowed/);
  });

  it('accepts a payload of exactly payloadBytesMax bytes', () => {
    const body = new Uint8Array(SPARKPLUG_DECODE_LIMITS.payloadBytesMax - 4); // key 0x2a + 3-byte length
    const bytes = encodePayload({ body });
    expect(bytes.length).toBe(65_536);
    expect(decoded(decodeSparkplugPayload(bytes)).body).toHaveLength(65_532);
  });

  it('refuses a payload of payloadBytesMax + 1 bytes before parsing it', () => {
    expect(refusal(decodeSparkplugPayload(new Uint8Array(65_537)))).toMatch(/payload is 65537 bytes, at most 65536 allowed/);
  });

  it('accepts valid UTF-8 names, including a leading byte order mark kept as is', () => {
    expect(decoded(decodeSparkplugPayload(encodePayload({ metrics: [{ name: '\ufeffZähler/ステップ' }] }))).metrics[0]!.name).toBe('\ufeffZähler/ステップ');
  });

  it('refuses a name that is not valid UTF-8', () => {
    expect(refusal(decodeSparkplugPayload(hex('12 04 0a 02 c3 28')))).toMatch(/metric name at byte 4 is not valid UTF-8/);
  });

  it('accepts limits within their ceilings and fills defaults', () => {
    expect(checkDecodeLimits({ metricsMax: 10 })).toEqual({ ...SPARKPLUG_DECODE_LIMITS, metricsMax: 10 });
  });

  it('refuses limits outside their ceilings, naming the limit', () => {
    expect(() => checkDecodeLimits({ metricsMax: 0 })).toThrow(/limits.metricsMax: must be an integer from 1 to 100000, got 0/);
    expect(() => checkDecodeLimits({ depthMax: 1.5 })).toThrow(RangeError);
  });

  it('decodes an empty payload as no metrics (an NDEATH may carry nothing else)', () => {
    expect(decoded(decodeSparkplugPayload(new Uint8Array(0)))).toEqual({ metrics: [] });
  });

  it('refuses a lone field key with no value', () => {
    expect(refusal(decodeSparkplugPayload(hex('08')))).toMatch(/varint at byte 1 runs past the end/);
  });
});
