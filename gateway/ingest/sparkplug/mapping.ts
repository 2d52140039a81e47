/**
 * Which Sparkplug metrics are billed, and how: config-driven mappings from
 * `(group, edge node, device, metric)` to a registry device and meter, and the pure
 * function that turns one decoded DDATA into readings (and refusals, with reasons).
 *
 * Money needs exact integers: only Int8..Int64 and UInt8..UInt64 metrics are billed.
 * Readings keep the order of the payload (Sparkplug 3.0
 * [tck-id-operational-behavior-data-publish-dbirth-order]: live values are chronological
 * there); historical values are flagged and never moved ahead of live ones.
 */
import { ID_PATTERN } from '../../../protocol/usage-message.ts';
import { sha256, toHex } from '../../../protocol/hash.ts';
import { SparkplugAliasTable } from './aliases.ts';
import { dataTypeName, isBillableDataType, readInteger } from './datatype.ts';
import { SPARKPLUG_DECODE_LIMITS, type SparkplugMetric, type SparkplugPayload } from './payload.ts';
import { isSparkplugId, SPARKPLUG_NAMESPACE, type SparkplugTopic } from './topic.ts';

export interface SparkplugMapping {
  group: string;
  node: string;
  device: string;
  metric: string;
  /** registry device id billed */
  deviceId: string;
  meter: string;
  /** how the metric value is read: a running total (`counter`) or the usage since the last report (`increment`) */
  kind: 'counter' | 'increment';
  /** integer base units per metric unit, default 1n; a decimal scale is refused unless exact */
  scale?: bigint;
}

export interface SparkplugReading {
  deviceId: string;
  meter: string;
  kind: 'counter' | 'increment';
  /** The metric's value times the mapping's scale: base units of the meter, never negative. */
  value: bigint;
  /** The metric's own timestamp, else the payload's: when the value was captured (ms since the epoch, UTC). */
  timestampMs: number;
  historical: boolean;
  /** The same for every delivery of the same value (see {@link sparkplugIdempotencyKey}). */
  idempotencyKey: string;
  /** Where it came from, for the operator. */
  source: { group: string; node: string; device: string; metric: string };
}

export type SparkplugRefusalReason = 'no_mapping' | 'not_billable_type' | 'negative_value' | 'null_value' | 'malformed_payload';

export interface SparkplugRefusal {
  reason: SparkplugRefusalReason;
  metric?: string;
  detail: string;
}

export interface SparkplugMappingResult {
  readings: SparkplugReading[];
  refusals: SparkplugRefusal[];
}

export interface SparkplugMapOptions {
  /** Aliases and datatypes from births; the caller keeps one table for the gateway's life. */
  aliases: SparkplugAliasTable;
}

export const MAPPINGS_MAX = 10_000;
/** 10^18: the largest quantity a usage message carries has 18 digits. */
const SCALE_MAX = 10n ** 18n;
/** JavaScript's Date range: any later timestamp cannot be written as an RFC 3339 time. */
const TIMESTAMP_MS_MAX = 8_640_000_000_000_000n;

const utf8 = new TextEncoder();

/** Mappings validated once, frozen, and indexed by metric. */
export class SparkplugMappingTable {
  readonly #byMetric: ReadonlyMap<string, Readonly<Required<SparkplugMapping>>>;
  readonly groups: readonly string[];

  private constructor(byMetric: Map<string, Readonly<Required<SparkplugMapping>>>) {
    this.#byMetric = byMetric;
    this.groups = Object.freeze([...new Set([...byMetric.values()].map((m) => m.group))]);
  }

  /** Throws a TypeError or RangeError naming the bad entry (`mappings[3].meter: …`): a bad config must stop the gateway. */
  static compile(mappings: readonly SparkplugMapping[], mappingsMax = MAPPINGS_MAX): SparkplugMappingTable {
    if (mappings.length > mappingsMax) throw new RangeError(`mappings: ${mappings.length} entries, at most ${mappingsMax} allowed`);
    const byMetric = new Map<string, Readonly<Required<SparkplugMapping>>>();
    const firstIndex = new Map<string, number>();
    mappings.forEach((mapping, i) => {
      const checked = checkMapping(mapping, `mappings[${i}]`);
      const key = metricKey(checked.group, checked.node, checked.device, checked.metric);
      const earlier = firstIndex.get(key);
      if (earlier !== undefined) throw new RangeError(`mappings[${i}]: metric ${JSON.stringify(checked.metric)} of ${checked.group}/${checked.node}/${checked.device} is already mapped by mappings[${earlier}]`);
      firstIndex.set(key, i);
      byMetric.set(key, checked);
    });
    return new SparkplugMappingTable(byMetric);
  }

  find(group: string, node: string, device: string, metric: string): Readonly<Required<SparkplugMapping>> | undefined {
    return this.#byMetric.get(metricKey(group, node, device, metric));
  }

  get size(): number {
    return this.#byMetric.size;
  }
}

/** Group, node and device cannot contain `/`, so this key is unambiguous even for metric names with `/`. */
function metricKey(group: string, node: string, device: string, metric: string): string {
  return `${group}/${node}/${device}/${metric}`;
}

function checkMapping(mapping: SparkplugMapping, path: string): Readonly<Required<SparkplugMapping>> {
  if (typeof mapping !== 'object' || mapping === null) throw new TypeError(`${path}: must be an object`);
  for (const field of ['group', 'node', 'device', 'metric', 'deviceId', 'meter'] as const) {
    if (typeof mapping[field] !== 'string') throw new TypeError(`${path}.${field}: must be a string`);
  }
  for (const field of ['group', 'node', 'device'] as const) {
    if (!isSparkplugId(mapping[field])) throw new RangeError(`${path}.${field}: ${JSON.stringify(mapping[field])} is not a Sparkplug id (non-empty, no / + # or NUL)`);
  }
  const metricBytes = utf8.encode(mapping.metric).length;
  if (metricBytes === 0 || metricBytes > SPARKPLUG_DECODE_LIMITS.stringBytesMax) {
    throw new RangeError(`${path}.metric: must be 1 to ${SPARKPLUG_DECODE_LIMITS.stringBytesMax} bytes of UTF-8`);
  }
  if (!ID_PATTERN.test(mapping.deviceId)) throw new RangeError(`${path}.deviceId: must be 1-63 of a-z 0-9 . _ - starting with a letter or digit`);
  if (!ID_PATTERN.test(mapping.meter)) throw new RangeError(`${path}.meter: must be 1-63 of a-z 0-9 . _ - starting with a letter or digit`);
  if (mapping.kind !== 'counter' && mapping.kind !== 'increment') throw new RangeError(`${path}.kind: must be "counter" or "increment"`);
  const scale = mapping.scale ?? 1n;
  if (typeof scale !== 'bigint') throw new TypeError(`${path}.scale: must be a bigint (parse config text with parseSparkplugScale)`);
  if (scale < 1n || scale > SCALE_MAX) throw new RangeError(`${path}.scale: must be a whole number from 1 to 10^18, got ${scale}`);
  const { group, node, device, metric, deviceId, meter, kind } = mapping;
  return Object.freeze({ group, node, device, metric, deviceId, meter, kind, scale });
}

/**
 * A scale from config text or JSON: a whole number of base units per metric unit.
 * "1000", 1000 and "1000.000" are 1000n; "0.5", 2.5, "1e3" are refused (RangeError):
 * a fractional scale would need rounding, and money is never rounded here. Choose a
 * finer base unit for the meter instead.
 */
export function parseSparkplugScale(value: unknown, path: string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`${path}: ${value} is not a whole number of base units per metric unit`);
    return BigInt(value);
  }
  if (typeof value === 'string') {
    const match = /^([0-9]{1,19})(?:\.(0+))?$/.exec(value);
    if (!match) throw new RangeError(`${path}: ${JSON.stringify(value)} is not a whole number of base units per metric unit`);
    return BigInt(match[1]!);
  }
  throw new TypeError(`${path}: must be a whole number or a string of digits`);
}

/**
 * `spb1:` and the SHA-256 (hex) of the RFC 8785 canonical JSON array
 * `["spBv1.0", group, node, device, metric, timestampMs, value]` (the last two as decimal
 * strings; `value` as sent, before scaling). Sparkplug's 0-255 seq repeats, so it is
 * not part of the key. Sparkplug 3.0 §5 "Data Publish" lets one DDATA carry several
 * values of one metric only with different timestamps, so (metric, timestamp, value)
 * names one reading.
 */
export function sparkplugIdempotencyKey(group: string, node: string, device: string, metric: string, timestampMs: number, value: bigint): string {
  // JSON.stringify of an array of strings is its RFC 8785 form (§3.2.2.2 uses the same escaping).
  const canonical = JSON.stringify([SPARKPLUG_NAMESPACE, group, node, device, metric, String(timestampMs), value.toString()]);
  return `spb1:${toHex(sha256(utf8.encode(canonical)))}`;
}

/**
 * Turns one Sparkplug message into readings. NBIRTH and DBIRTH update `options.aliases`
 * (births are not billed: a DBIRTH repeats current values already reported); DDATA is
 * billed; other messages give nothing.
 */
export function mapSparkplugMessage(topic: SparkplugTopic, payload: SparkplugPayload, mappings: SparkplugMappingTable, options: SparkplugMapOptions): SparkplugMappingResult {
  const result: SparkplugMappingResult = { readings: [], refusals: [] };
  if (topic.type === 'NBIRTH') options.aliases.forgetNode(topic.group, topic.node);
  if (topic.type === 'DBIRTH') {
    const { group, node, device } = topic;
    const problems = options.aliases.learnBirth(group, node, device, payload.metrics, (name) => mappings.find(group, node, device, name) !== undefined);
    for (const problem of problems) result.refusals.push({ reason: 'malformed_payload', ...problem });
  }
  if (topic.type !== 'DDATA') return result;
  for (const metric of payload.metrics) {
    const outcome = mapMetric(topic, payload, metric, mappings, options.aliases);
    if ('reason' in outcome) result.refusals.push(outcome);
    else result.readings.push(outcome);
  }
  return result;
}

type DeviceTopic = Extract<SparkplugTopic, { device: string }>;

function mapMetric(topic: DeviceTopic, payload: SparkplugPayload, metric: SparkplugMetric, mappings: SparkplugMappingTable, aliases: SparkplugAliasTable): SparkplugReading | SparkplugRefusal {
  const { group, node, device } = topic;
  const where = `${group}/${node}/${device}`;
  let name = metric.name;
  if (name === undefined) {
    if (metric.alias === undefined) return { reason: 'malformed_payload', detail: `a metric of ${where} has neither name nor alias` };
    name = aliases.byAlias(group, node, device, metric.alias)?.name;
    if (name === undefined) {
      return { reason: 'no_mapping', detail: `alias ${metric.alias} of ${where} is not a mapped metric in the device's last DBIRTH (or no DBIRTH was seen since start)` };
    }
  }
  const mapping = mappings.find(group, node, device, name);
  if (!mapping) return { reason: 'no_mapping', metric: name, detail: `metric ${JSON.stringify(name)} of ${where} is not mapped to a meter` };
  if (metric.isNull) return { reason: 'null_value', metric: name, detail: `metric ${JSON.stringify(name)} of ${where} is null: no usage to bill` };
  const datatype = metric.datatype ?? aliases.byName(group, node, device, name)?.datatype;
  if (datatype === undefined) {
    return { reason: 'not_billable_type', metric: name, detail: `metric ${JSON.stringify(name)} of ${where} has no datatype, and none was learned from a DBIRTH: its sign and width are unknown` };
  }
  if (!isBillableDataType(datatype)) {
    return { reason: 'not_billable_type', metric: name, detail: `metric ${JSON.stringify(name)} of ${where} is ${dataTypeName(datatype)}; only integer types are billed, since money needs exact integers` };
  }
  const integer = readInteger(datatype, metric.value);
  if (!integer.ok) return { reason: 'malformed_payload', metric: name, detail: `metric ${JSON.stringify(name)} of ${where}: ${integer.detail}` };
  if (integer.value < 0n) return { reason: 'negative_value', metric: name, detail: `metric ${JSON.stringify(name)} of ${where} is ${integer.value}; usage cannot be negative` };
  const timestamp = metric.timestamp ?? payload.timestamp;
  if (timestamp === undefined) return { reason: 'malformed_payload', metric: name, detail: `metric ${JSON.stringify(name)} of ${where} has no timestamp, and neither has its payload` };
  if (timestamp > TIMESTAMP_MS_MAX) return { reason: 'malformed_payload', metric: name, detail: `metric ${JSON.stringify(name)} of ${where} has timestamp ${timestamp}, beyond any representable date` };
  const timestampMs = Number(timestamp);
  return {
    deviceId: mapping.deviceId,
    meter: mapping.meter,
    kind: mapping.kind,
    value: integer.value * mapping.scale,
    timestampMs,
    historical: metric.isHistorical,
    idempotencyKey: sparkplugIdempotencyKey(group, node, device, name, timestampMs, integer.value),
    source: { group, node, device, metric: name },
  };
}
