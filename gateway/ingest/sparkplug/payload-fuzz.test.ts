/**
 * Hostile bytes: whatever arrives on a spBv1.0 topic, decoding gives a result and never
 * throws, and mapping a decoded payload never throws either. fast-check prints the seed
 * and the shrunk counterexample on failure; set SPARKPLUG_FUZZ_SEED to replay one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SparkplugAliasTable } from './aliases.ts';
import { SparkplugDataType as T } from './datatype.ts';
import { mapSparkplugMessage, SparkplugMappingTable } from './mapping.ts';
import { decodeSparkplugPayload, type SparkplugDecodeResult } from './payload.ts';
import { encodePayload } from './payload-encoder.ts';
import { SparkplugSequenceTracker } from './sequence.ts';
import { parseSparkplugTopic, type SparkplugTopic } from './topic.ts';

const SEED = Number(process.env.SPARKPLUG_FUZZ_SEED ?? 20_261_127);
const RUNS = 2_000;

const mappings = SparkplugMappingTable.compile([{ group: 'g', node: 'n', device: 'd', metric: 'm', deviceId: 'dev', meter: 'cycles', kind: 'increment' }]);

function topicOf(text: string): SparkplugTopic {
  const parsed = parseSparkplugTopic(text);
  if (!parsed.ok) throw new Error(parsed.detail);
  return parsed.topic;
}
const TOPICS = ['spBv1.0/g/DBIRTH/n/d', 'spBv1.0/g/DDATA/n/d', 'spBv1.0/g/NBIRTH/n', 'spBv1.0/g/NDEATH/n'].map(topicOf);

const VALID = [
  encodePayload({ timestamp: 1, seq: 0, metrics: [{ name: 'bdSeq', datatype: T.Int64, value: { long: 3 } }] }),
  encodePayload({ timestamp: 2, seq: 1, metrics: [{ name: 'm', alias: 1, datatype: T.UInt64, timestamp: 3, value: { long: 2n ** 64n - 1n } }, { name: 'f', alias: 2, datatype: T.Float, value: { float: 1.5 } }] }),
  encodePayload({ timestamp: 4, seq: 2, metrics: [{ alias: 1, timestamp: 5, historical: true, value: { long: 7 } }, { name: 'm', isNull: true }] }),
  encodePayload({
    seq: 3,
    metrics: [{
      name: 'ds', datatype: T.DataSet,
      properties: { keys: ['k'], values: [{ type: T.PropertySet, value: { propertyset: { keys: ['x'], values: [{ type: T.String, value: { string: 'y' } }] } } }] },
      value: { dataset: { columns: ['a'], types: [T.Int32], rows: [[{ int: 1 }], [{ string: 'z' }]] } },
    }, { name: 't', datatype: T.Template, value: { template: { version: '1', metrics: [{ name: 'in', datatype: T.Int8, value: { int: 255 } }], parameters: [{ name: 'p', type: T.Int32, value: { int: 1 } }] } } }],
  }),
];

/** Decodes, and if that worked, runs the payload through tracking and mapping too. */
function exercise(bytes: Uint8Array): SparkplugDecodeResult {
  const result = decodeSparkplugPayload(bytes);
  expect(typeof result.ok).toBe('boolean');
  if (!result.ok) {
    expect(result.reason).toBe('malformed_payload');
    expect(result.detail).toMatch(/^Cannot decode Sparkplug B payload: /);
    return result;
  }
  const aliases = new SparkplugAliasTable();
  const tracker = new SparkplugSequenceTracker();
  for (const topic of TOPICS) {
    tracker.observe(topic, result.payload, 0);
    const mapped = mapSparkplugMessage(topic, result.payload, mappings, { aliases });
    for (const reading of mapped.readings) expect(reading.value >= 0n).toBe(true);
  }
  return result;
}

const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(source: Uint8Array, mutations: Mutation[]): Uint8Array {
  const bytes = [...source];
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.at % bytes.length;
    if (m.op === 'flip') bytes[at] = m.byte;
    else if (m.op === 'insert') bytes.splice(at, 0, m.byte);
    else if (m.op === 'delete') bytes.splice(at, 1);
    else bytes.length = at;
  }
  return Uint8Array.from(bytes);
}

describe('Sparkplug B decoding under fuzzing', () => {
  it('decodes every unmutated sample payload', () => {
    for (const bytes of VALID) expect(exercise(bytes).ok).toBe(true);
  });

  it('returns a result and never throws for 2000 random byte arrays', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => void exercise(bytes)), { numRuns: RUNS, seed: SEED });
  });

  it('returns a result and never throws for 2000 random mutations of valid payloads', () => {
    const outcomes = { decoded: 0, refused: 0 };
    fc.assert(
      fc.property(fc.constantFrom(...VALID), fc.array(mutation, { minLength: 1, maxLength: 8 }), (bytes, mutations) => {
        outcomes[exercise(mutate(bytes, mutations)).ok ? 'decoded' : 'refused'] += 1;
      }),
      { numRuns: RUNS, seed: SEED + 1 },
    );
    // Both paths are reached: mutated payloads that still decode go on through tracking and mapping.
    expect(outcomes.decoded).toBeGreaterThan(100);
    expect(outcomes.refused).toBeGreaterThan(100);
  });

  it('returns a result for random protobuf-shaped input: valid keys with random values', () => {
    const field = fc.tuple(fc.integer({ min: 1, max: 20 }), fc.constantFrom(0, 1, 2, 5), fc.uint8Array({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(field, { maxLength: 24 }), (fields) => {
        const bytes: number[] = [];
        for (const [number, wireType, body] of fields) {
          const key = (number << 3) | wireType;
          if (key < 0x80) bytes.push(key);
          else bytes.push((key & 0x7f) | 0x80, key >> 7);
          if (wireType === 2) bytes.push(body.length);
          bytes.push(...body);
        }
        void exercise(Uint8Array.from(bytes));
      }),
      { numRuns: RUNS, seed: SEED + 2 },
    );
  });
});
