/**
 * Sparkplug B payload decoding (Eclipse Sparkplug 3.0 §6.4, `Payload` in sparkplug_b.proto).
 *
 * Pure and total: any bytes give a result, never an exception. Every unsigned 64-bit
 * field (timestamps, seq, alias, long_value) is a bigint, so nothing above 2^53 is
 * rounded; integer metric values keep their wire bits here and get their sign and width
 * from the datatype in {@link readInteger} (the datatype of a DATA metric is usually
 * only in the birth certificate). Sizes are bounded by {@link SparkplugDecodeLimits}.
 */
import { decodeMetric, type DecodeContext } from './payload-metric.ts';
import { expectWireType, WIRE_LEN, WIRE_VARINT, WireError, WireReader } from './wire.ts';

/** One oneof value as it was on the wire. `int` is int_value (uint32), `long` is long_value (uint64). */
export type SparkplugScalar =
  | { kind: 'int'; bits: bigint }
  | { kind: 'long'; bits: bigint }
  | { kind: 'float'; value: number }
  | { kind: 'double'; value: number }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'string'; value: string }
  /** A third-party extension value: recognised, its content skipped. */
  | { kind: 'extension' }
  | { kind: 'none' };

/** The value of a metric: the oneof `value` of `Payload.Metric`. */
export type SparkplugValue =
  | SparkplugScalar
  | { kind: 'bytes'; value: Uint8Array }
  | { kind: 'dataset'; value: SparkplugDataSet }
  | { kind: 'template'; value: SparkplugTemplate };

export interface SparkplugMetric {
  name?: string;
  alias?: bigint;
  /** Milliseconds since the epoch, UTC, when the value was captured. */
  timestamp?: bigint;
  /** A {@link SparkplugDataType} code; in DATA messages usually absent (it is in the birth). */
  datatype?: number;
  isHistorical: boolean;
  isTransient: boolean;
  isNull: boolean;
  metadata?: SparkplugMetaData;
  properties?: SparkplugPropertySet;
  value: SparkplugValue;
}

export interface SparkplugMetaData {
  isMultiPart?: boolean;
  contentType?: string;
  size?: bigint;
  seq?: bigint;
  fileName?: string;
  fileType?: string;
  md5?: string;
  description?: string;
}

export interface SparkplugPropertySet {
  keys: string[];
  values: SparkplugPropertyValue[];
}

export interface SparkplugPropertyValue {
  type?: number;
  isNull: boolean;
  value: SparkplugScalar | { kind: 'propertyset'; value: SparkplugPropertySet } | { kind: 'propertysets'; value: SparkplugPropertySet[] };
}

export interface SparkplugDataSet {
  numOfColumns?: bigint;
  columns: string[];
  types: number[];
  rows: SparkplugScalar[][];
}

export interface SparkplugTemplate {
  version?: string;
  metrics: SparkplugMetric[];
  parameters: SparkplugTemplateParameter[];
  templateRef?: string;
  isDefinition?: boolean;
}

export interface SparkplugTemplateParameter {
  name?: string;
  type?: number;
  value: SparkplugScalar;
}

export interface SparkplugPayload {
  /** Milliseconds since the epoch, UTC, when the message was published. */
  timestamp?: bigint;
  metrics: SparkplugMetric[];
  /** 0..255 from a conforming edge node; kept as sent so a bad one can be reported. */
  seq?: bigint;
  uuid?: string;
  body?: Uint8Array;
}

export interface SparkplugDecodeLimits {
  /** Larger payloads are refused before any parsing. */
  payloadBytesMax: number;
  /** Metrics in one payload, counting those nested in templates. */
  metricsMax: number;
  /** Any one string (names, string values, uuid, …), in UTF-8 bytes. */
  stringBytesMax: number;
  /** Nested values other than metrics: property values and keys, dataset cells, columns and types, template parameters. */
  valuesMax: number;
  /** Nesting of messages (templates in metrics, property sets in property values, …). */
  depthMax: number;
}

export const SPARKPLUG_DECODE_LIMITS: Readonly<SparkplugDecodeLimits> = Object.freeze({
  payloadBytesMax: 65_536,
  metricsMax: 1_000,
  stringBytesMax: 4_096,
  valuesMax: 16_384,
  depthMax: 16,
});

/** Hard ceilings for configured limits: a limit is a promise about memory, so it has one too. */
const LIMIT_CEILINGS: Readonly<SparkplugDecodeLimits> = Object.freeze({
  payloadBytesMax: 16 * 1_048_576,
  metricsMax: 100_000,
  stringBytesMax: 1_048_576,
  valuesMax: 1_000_000,
  depthMax: 64,
});

export type SparkplugDecodeResult =
  | { ok: true; payload: SparkplugPayload }
  | { ok: false; reason: 'malformed_payload'; detail: string };

/** Fills defaults and checks bounds; throws a RangeError naming the bad limit (a configuration bug). */
export function checkDecodeLimits(limits: Partial<SparkplugDecodeLimits> = {}): Readonly<SparkplugDecodeLimits> {
  const checked = { ...SPARKPLUG_DECODE_LIMITS, ...limits };
  for (const key of Object.keys(SPARKPLUG_DECODE_LIMITS) as Array<keyof SparkplugDecodeLimits>) {
    const value = checked[key];
    if (!Number.isSafeInteger(value) || value < 1 || value > LIMIT_CEILINGS[key]) {
      throw new RangeError(`limits.${key}: must be an integer from 1 to ${LIMIT_CEILINGS[key]}, got ${String(value)}`);
    }
  }
  return Object.freeze(checked);
}

/** Decodes one MQTT payload of a `spBv1.0/…` topic. Never throws on any input bytes. */
export function decodeSparkplugPayload(bytes: Uint8Array, limits: Readonly<SparkplugDecodeLimits> = SPARKPLUG_DECODE_LIMITS): SparkplugDecodeResult {
  if (bytes.length > limits.payloadBytesMax) {
    return malformed(`payload is ${bytes.length} bytes, at most ${limits.payloadBytesMax} allowed`);
  }
  const context: DecodeContext = { limits, metrics: 0, values: 0 };
  try {
    return { ok: true, payload: readPayload(new WireReader(bytes), context) };
  } catch (error) {
    if (error instanceof WireError) return malformed(error.message);
    throw error; // a bug in this decoder, not bad input: let the supervisor see it
  }
}

function malformed(detail: string): SparkplugDecodeResult {
  return { ok: false, reason: 'malformed_payload', detail: `Cannot decode Sparkplug B payload: ${detail}` };
}

function readPayload(reader: WireReader, context: DecodeContext): SparkplugPayload {
  const payload: SparkplugPayload = { metrics: [] };
  while (!reader.done) {
    const tag = reader.tag();
    switch (tag.field) {
      case 1:
        expectWireType(tag, WIRE_VARINT, 'payload timestamp');
        payload.timestamp = reader.uint64();
        break;
      case 2: {
        expectWireType(tag, WIRE_LEN, 'metric');
        const index = payload.metrics.length;
        try {
          payload.metrics.push(decodeMetric(reader.message('metric'), context, 1));
        } catch (error) {
          if (error instanceof WireError) throw new WireError(`metric ${index}: ${error.message}`);
          throw error;
        }
        break;
      }
      case 3:
        expectWireType(tag, WIRE_VARINT, 'payload seq');
        payload.seq = reader.uint64();
        break;
      case 4:
        expectWireType(tag, WIRE_LEN, 'payload uuid');
        payload.uuid = reader.string(context.limits.stringBytesMax, 'payload uuid');
        break;
      case 5:
        expectWireType(tag, WIRE_LEN, 'payload body');
        payload.body = reader.bytes(context.limits.payloadBytesMax, 'payload body');
        break;
      default:
        reader.skip(tag.wireType); // extensions 6 to max
    }
  }
  return payload;
}
