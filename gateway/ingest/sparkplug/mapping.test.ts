import { describe, expect, it } from 'vitest';
import { SparkplugAliasTable } from './aliases.ts';
import { SparkplugDataType as T } from './datatype.ts';
import { mapSparkplugMessage, parseSparkplugScale, sparkplugIdempotencyKey, SparkplugMappingTable, type SparkplugMapping, type SparkplugMappingResult } from './mapping.ts';
import { decodeSparkplugPayload } from './payload.ts';
import { encodePayload, int32Bits, type MetricSpec } from './payload-encoder.ts';
import { parseSparkplugTopic } from './topic.ts';

const T0 = 1_795_000_000_000;
const press = { group: 'plant', node: 'line-1', device: 'press-7' };
const MAPPINGS: SparkplugMapping[] = [
  { ...press, metric: 'Counters/Cycles', deviceId: 'press-7', meter: 'cycles', kind: 'counter' },
  { ...press, metric: 'Energy/kWh', deviceId: 'press-7', meter: 'energy', kind: 'increment', scale: 1000n },
  { ...press, metric: 'Temperature', deviceId: 'press-7', meter: 'heat', kind: 'counter' },
  { ...press, metric: 'Rejects', deviceId: 'press-7', meter: 'rejects', kind: 'increment' },
];
const BIRTH: MetricSpec[] = [
  { name: 'bdSeq', datatype: T.Int64, timestamp: T0, value: { long: 0 } },
  { name: 'Counters/Cycles', alias: 1, datatype: T.UInt64, timestamp: T0, value: { long: 100 } },
  { name: 'Energy/kWh', alias: 2, datatype: T.UInt32, timestamp: T0, value: { int: 0 } },
  { name: 'Temperature', alias: 3, datatype: T.Float, timestamp: T0, value: { float: 21.5 } },
  { name: 'Door open', alias: 4, datatype: T.Boolean, timestamp: T0, value: { boolean: false } },
  { name: 'Rejects', alias: 5, datatype: T.Int32, timestamp: T0, value: { int: 0 } },
];

/** One gateway's view: a mapping table and an alias table, fed real encoded payloads. */
function gateway(mappings: SparkplugMapping[] = MAPPINGS) {
  const table = SparkplugMappingTable.compile(mappings);
  const aliases = new SparkplugAliasTable();
  return {
    aliases,
    send(type: string, metrics: MetricSpec[], extra: { seq?: number; timestamp?: number } = {}): SparkplugMappingResult {
      const device = type.startsWith('D') ? `/${press.device}` : '';
      const parsed = parseSparkplugTopic(`spBv1.0/${press.group}/${type}/${press.node}${device}`);
      const decoded = decodeSparkplugPayload(encodePayload({ timestamp: extra.timestamp ?? T0, seq: extra.seq ?? 1, metrics }));
      if (!parsed.ok || !decoded.ok) throw new Error('test message did not parse');
      return mapSparkplugMessage(parsed.topic, decoded.payload, table, { aliases });
    },
  };
}

function born() {
  const g = gateway();
  g.send('NBIRTH', [BIRTH[0]!], { seq: 0 });
  expect(g.send('DBIRTH', BIRTH)).toEqual({ readings: [], refusals: [] }); // births set up aliases, they are not billed
  return g;
}

describe('mapSparkplugMessage aliases', () => {
  it('bills a DDATA metric sent by alias, through the aliases of the last DBIRTH, exactly above 2^53', () => {
    const { readings, refusals } = born().send('DDATA', [{ alias: 1, timestamp: T0 + 5, value: { long: 2n ** 64n - 1n } }]);
    expect(refusals).toEqual([]);
    expect(readings).toEqual([{
      deviceId: 'press-7', meter: 'cycles', kind: 'counter', value: 18_446_744_073_709_551_615n, timestampMs: T0 + 5, historical: false,
      idempotencyKey: sparkplugIdempotencyKey('plant', 'line-1', 'press-7', 'Counters/Cycles', T0 + 5, 2n ** 64n - 1n),
      source: { ...press, metric: 'Counters/Cycles' },
    }]);
  });

  it('refuses a DDATA metric sent by alias when no DBIRTH was seen', () => {
    const { readings, refusals } = gateway().send('DDATA', [{ alias: 1, timestamp: T0, value: { long: 5 } }]);
    expect(readings).toEqual([]);
    expect(refusals).toEqual([{ reason: 'no_mapping', detail: expect.stringMatching(/alias 1 of plant\/line-1\/press-7 is not a mapped metric in the device's last DBIRTH/) }]);
  });

  it('forgets the aliases of a node\'s devices when the node is born again, until their DBIRTH', () => {
    const g = born();
    g.send('NBIRTH', [BIRTH[0]!], { seq: 0 });
    expect(g.send('DDATA', [{ alias: 1, timestamp: T0, value: { long: 5 } }]).refusals[0]!.reason).toBe('no_mapping');
    g.send('DBIRTH', BIRTH);
    expect(g.send('DDATA', [{ alias: 1, timestamp: T0, value: { long: 5 } }]).readings).toHaveLength(1);
  });

  it('refuses an alias that the DBIRTH gave to two metrics, and bills the others', () => {
    const g = gateway();
    const clash = [...BIRTH.slice(1, 3), { name: 'Rejects', alias: 2, datatype: T.Int32, timestamp: T0, value: { int: 0 } }];
    expect(g.send('DBIRTH', clash).refusals).toEqual([
      { reason: 'malformed_payload', metric: 'Energy/kWh', detail: expect.stringMatching(/gives alias 2 to 2 metrics/) },
      { reason: 'malformed_payload', metric: 'Rejects', detail: expect.stringMatching(/gives alias 2 to 2 metrics/) },
    ]);
    expect(g.send('DDATA', [{ alias: 2, timestamp: T0, value: { int: 1 } }]).refusals[0]!.reason).toBe('no_mapping');
    expect(g.send('DDATA', [{ alias: 1, timestamp: T0, value: { long: 1 } }]).readings).toHaveLength(1);
  });

  it('keeps only mapped metrics from a birth, so the table never outgrows the mappings', () => {
    const g = gateway();
    const many = Array.from({ length: 900 }, (_, i) => ({ name: `noise/${i}`, alias: 100 + i, datatype: T.Int32, timestamp: T0, value: { int: 0 } }));
    g.send('DBIRTH', [...BIRTH, ...many]);
    expect(g.aliases.size).toBe(4);
  });
});

describe('mapSparkplugMessage values', () => {
  it('scales an increment to the meter\'s base unit', () => {
    expect(born().send('DDATA', [{ alias: 2, timestamp: T0, value: { int: 3 } }]).readings[0]).toMatchObject({ meter: 'energy', kind: 'increment', value: 3000n });
  });

  it('bills a mapped metric sent by name with its own datatype, even without a DBIRTH', () => {
    const { readings } = gateway().send('DDATA', [{ name: 'Rejects', datatype: T.Int32, timestamp: T0, value: { int: 2 } }]);
    expect(readings[0]).toMatchObject({ meter: 'rejects', value: 2n });
  });

  it('refuses a mapped metric by name whose datatype is unknown, since its sign cannot be read', () => {
    const { refusals } = gateway().send('DDATA', [{ name: 'Rejects', timestamp: T0, value: { int: int32Bits(-1) } }]);
    expect(refusals).toEqual([{ reason: 'not_billable_type', metric: 'Rejects', detail: expect.stringMatching(/no datatype, and none was learned from a DBIRTH/) }]);
  });

  it('refuses a metric no mapping names, saying which', () => {
    const { readings, refusals } = born().send('DDATA', [{ name: 'Spindle/RPM', datatype: T.UInt32, timestamp: T0, value: { int: 1200 } }]);
    expect(readings).toEqual([]);
    expect(refusals).toEqual([{ reason: 'no_mapping', metric: 'Spindle/RPM', detail: 'metric "Spindle/RPM" of plant/line-1/press-7 is not mapped to a meter' }]);
  });

  it('refuses a float metric even when it is mapped: money needs exact integers', () => {
    const { refusals } = born().send('DDATA', [{ alias: 3, timestamp: T0, value: { float: 22 } }]);
    expect(refusals).toEqual([{ reason: 'not_billable_type', metric: 'Temperature', detail: expect.stringMatching(/is Float; only integer types are billed/) }]);
  });

  it('refuses a negative Int32 sent the Sparkplug way (two\'s complement in uint32)', () => {
    const { refusals } = born().send('DDATA', [{ alias: 5, timestamp: T0, value: { int: int32Bits(-5) } }]);
    expect(refusals).toEqual([{ reason: 'negative_value', metric: 'Rejects', detail: expect.stringMatching(/is -5; usage cannot be negative/) }]);
  });

  it('bills a positive Int32 of the same metric', () => {
    expect(born().send('DDATA', [{ alias: 5, timestamp: T0, value: { int: 5 } }]).readings[0]!.value).toBe(5n);
  });

  it('refuses a null value', () => {
    expect(born().send('DDATA', [{ alias: 1, timestamp: T0, isNull: true }]).refusals[0]).toMatchObject({ reason: 'null_value', metric: 'Counters/Cycles' });
  });

  it('refuses a value outside its declared width as malformed', () => {
    expect(born().send('DDATA', [{ alias: 2, datatype: T.UInt8, timestamp: T0, value: { int: 300 } }]).refusals[0]).toMatchObject({ reason: 'malformed_payload', detail: expect.stringMatching(/UInt8 value 300 does not fit in 8 bits/) });
  });

  it('refuses a metric with neither name nor alias', () => {
    expect(born().send('DDATA', [{ timestamp: T0, value: { int: 1 } }]).refusals[0]!.reason).toBe('malformed_payload');
  });

  it('takes the payload timestamp when a metric has none', () => {
    expect(born().send('DDATA', [{ alias: 1, value: { long: 7 } }], { timestamp: T0 + 9 }).readings[0]!.timestampMs).toBe(T0 + 9);
  });

  it('refuses a metric when neither it nor its payload has a timestamp', () => {
    const g = born();
    const parsed = parseSparkplugTopic('spBv1.0/plant/DDATA/line-1/press-7');
    const decoded = decodeSparkplugPayload(encodePayload({ seq: 3, metrics: [{ alias: 1, value: { long: 7 } }] }));
    if (!parsed.ok || !decoded.ok) throw new Error('test message did not parse');
    const result = mapSparkplugMessage(parsed.topic, decoded.payload, SparkplugMappingTable.compile(MAPPINGS), { aliases: g.aliases });
    expect(result.refusals[0]).toMatchObject({ reason: 'malformed_payload', detail: expect.stringMatching(/has no timestamp, and neither has its payload/) });
  });

  it('bills transient metrics like any other: is_transient is about historians, not usage', () => {
    expect(born().send('DDATA', [{ alias: 1, transient: true, timestamp: T0, value: { long: 7 } }]).readings[0]!.value).toBe(7n);
  });

  it('does not bill the same metric in NDATA or in a birth: only DDATA is billed', () => {
    const g = born();
    expect(g.send('NDATA', [{ name: 'Counters/Cycles', datatype: T.UInt64, timestamp: T0, value: { long: 7 } }])).toEqual({ readings: [], refusals: [] });
    expect(g.send('DBIRTH', BIRTH).readings).toEqual([]);
  });
});

describe('mapSparkplugMessage historical values and idempotency', () => {
  it('flags historical values and keeps them where the payload put them, behind live ones', () => {
    const { readings } = born().send('DDATA', [
      { alias: 1, timestamp: T0 + 60_000, value: { long: 500 } },
      { alias: 1, historical: true, timestamp: T0 + 1_000, value: { long: 200 } },
    ]);
    expect(readings.map((r) => [r.value, r.historical, r.timestampMs])).toEqual([[500n, false, T0 + 60_000], [200n, true, T0 + 1_000]]);
  });

  it('does not flag live values as historical', () => {
    expect(born().send('DDATA', [{ alias: 1, timestamp: T0, value: { long: 1 } }]).readings[0]!.historical).toBe(false);
  });

  it('gives a redelivered message the same idempotency key, whatever its seq', () => {
    const g = born();
    const metric = { alias: 1, timestamp: T0 + 1, value: { long: 42 } };
    const first = g.send('DDATA', [metric], { seq: 7 }).readings[0]!.idempotencyKey;
    expect(g.send('DDATA', [metric], { seq: 200 }).readings[0]!.idempotencyKey).toBe(first);
    expect(first).toMatch(/^spb1:[0-9a-f]{64}$/);
  });

  it('gives another timestamp, value or device another idempotency key', () => {
    const key = sparkplugIdempotencyKey('plant', 'line-1', 'press-7', 'Counters/Cycles', T0, 42n);
    expect(sparkplugIdempotencyKey('plant', 'line-1', 'press-7', 'Counters/Cycles', T0 + 1, 42n)).not.toBe(key);
    expect(sparkplugIdempotencyKey('plant', 'line-1', 'press-7', 'Counters/Cycles', T0, 43n)).not.toBe(key);
    expect(sparkplugIdempotencyKey('plant', 'line-1', 'press-8', 'Counters/Cycles', T0, 42n)).not.toBe(key);
    // Field boundaries cannot be shifted: "a","b/c" and "a/b","c" differ.
    expect(sparkplugIdempotencyKey('plant', 'line-1', 'a', 'b/c', T0, 1n)).not.toBe(sparkplugIdempotencyKey('plant', 'line-1', 'a/b', 'c', T0, 1n));
  });
});

describe('SparkplugMappingTable.compile', () => {
  it('indexes valid mappings and lists their groups for subscriptions', () => {
    const table = SparkplugMappingTable.compile(MAPPINGS);
    expect(table.size).toBe(4);
    expect(table.groups).toEqual(['plant']);
    expect(table.find('plant', 'line-1', 'press-7', 'Energy/kWh')).toMatchObject({ scale: 1000n });
    expect(table.find('plant', 'line-1', 'press-7', 'Counters/Cycles')).toMatchObject({ scale: 1n });
  });

  it('refuses a metric mapped twice, and bad fields, naming the entry', () => {
    expect(() => SparkplugMappingTable.compile([MAPPINGS[0]!, MAPPINGS[0]!])).toThrow('mappings[1]: metric "Counters/Cycles" of plant/line-1/press-7 is already mapped by mappings[0]');
    expect(() => SparkplugMappingTable.compile([{ ...MAPPINGS[0]!, deviceId: 'Press 7' }])).toThrow(/mappings\[0\]\.deviceId/);
    expect(() => SparkplugMappingTable.compile([{ ...MAPPINGS[0]!, group: 'a/b' }])).toThrow(/mappings\[0\]\.group/);
    expect(() => SparkplugMappingTable.compile([{ ...MAPPINGS[0]!, scale: 0n }])).toThrow(/mappings\[0\]\.scale: must be a whole number from 1/);
    expect(() => SparkplugMappingTable.compile([{ ...MAPPINGS[0]!, kind: 'gauge' as 'counter' }])).toThrow(/mappings\[0\]\.kind/);
    expect(() => SparkplugMappingTable.compile(MAPPINGS, 3)).toThrow(/at most 3 allowed/);
  });

  it('reads a whole-number scale from config text, including an exact decimal', () => {
    expect(parseSparkplugScale('1000', 'scale')).toBe(1000n);
    expect(parseSparkplugScale('1000.000', 'scale')).toBe(1000n);
    expect(parseSparkplugScale(60, 'scale')).toBe(60n);
  });

  it('refuses a scale that would need rounding', () => {
    expect(() => parseSparkplugScale('0.5', 'mappings[2].scale')).toThrow('mappings[2].scale: "0.5" is not a whole number of base units per metric unit');
    expect(() => parseSparkplugScale(2.5, 'scale')).toThrow(RangeError);
    expect(() => parseSparkplugScale('1e3', 'scale')).toThrow(RangeError);
    expect(() => parseSparkplugScale(null, 'scale')).toThrow(TypeError);
  });
});
