/**
 * A small Sparkplug B payload encoder, for tests and simulated edge nodes; the gateway
 * itself only reads. Written from sparkplug_b.proto's field numbers on its own, without
 * the decoder's code, so that a round trip checks one against the other.
 */

export type ValueSpec =
  | { int: number | bigint }
  | { long: number | bigint }
  | { float: number }
  | { double: number }
  | { boolean: boolean }
  | { string: string }
  | { bytes: Uint8Array }
  | { dataset: DataSetSpec }
  | { template: TemplateSpec };

export interface MetricSpec {
  name?: string;
  alias?: number | bigint;
  timestamp?: number | bigint;
  datatype?: number;
  historical?: boolean;
  transient?: boolean;
  isNull?: boolean;
  metadata?: { contentType?: string; size?: number | bigint; description?: string };
  properties?: PropertySetSpec;
  value?: ValueSpec;
}

export interface PropertySetSpec {
  keys: string[];
  values: Array<{ type: number; value: { int: number | bigint } | { string: string } | { propertyset: PropertySetSpec } }>;
}

export interface DataSetSpec {
  columns: string[];
  types: number[];
  rows: Array<Array<{ int: number | bigint } | { long: number | bigint } | { string: string }>>;
  packedTypes?: boolean;
}

export interface TemplateSpec {
  version?: string;
  templateRef?: string;
  isDefinition?: boolean;
  metrics: MetricSpec[];
  parameters?: Array<{ name: string; type: number; value: { string: string } | { int: number | bigint } }>;
}

export interface PayloadSpec {
  timestamp?: number | bigint;
  seq?: number | bigint;
  uuid?: string;
  body?: Uint8Array;
  metrics?: MetricSpec[];
}

const text = new TextEncoder();

class Writer {
  readonly parts: number[] = [];

  varint(value: number | bigint): this {
    let v = BigInt(value);
    if (v < 0n) v = BigInt.asUintN(64, v); // a negative int64: ten bytes, as protobuf writes it
    do {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      this.parts.push(v === 0n ? byte : byte | 0x80);
    } while (v !== 0n);
    return this;
  }

  key(field: number, wireType: number): this {
    return this.varint((field << 3) | wireType);
  }

  uint(field: number, value: number | bigint | boolean | undefined): this {
    if (value === undefined) return this;
    return this.key(field, 0).varint(typeof value === 'boolean' ? (value ? 1 : 0) : value);
  }

  bytes(field: number, value: Uint8Array | string | undefined): this {
    if (value === undefined) return this;
    const bytes = typeof value === 'string' ? text.encode(value) : value;
    this.key(field, 2).varint(bytes.length);
    for (const byte of bytes) this.parts.push(byte);
    return this;
  }

  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, Uint8Array.from(inner.parts));
  }

  fixed(field: number, wireType: 1 | 5, fill: (view: DataView) => void): this {
    const view = new DataView(new ArrayBuffer(wireType === 5 ? 4 : 8));
    fill(view);
    this.key(field, wireType);
    for (const byte of new Uint8Array(view.buffer)) this.parts.push(byte);
    return this;
  }
}

/** int_value of an Int8/16/32 the way Sparkplug carries it: the value's two's complement bits in 32. */
export function int32Bits(value: number): number {
  return value >>> 0;
}

export function encodePayload(spec: PayloadSpec): Uint8Array {
  const w = new Writer();
  w.uint(1, spec.timestamp);
  for (const metric of spec.metrics ?? []) w.message(2, (m) => writeMetric(m, metric));
  w.uint(3, spec.seq);
  w.bytes(4, spec.uuid);
  w.bytes(5, spec.body);
  return Uint8Array.from(w.parts);
}

function writeMetric(w: Writer, metric: MetricSpec): void {
  w.bytes(1, metric.name).uint(2, metric.alias).uint(3, metric.timestamp).uint(4, metric.datatype);
  w.uint(5, metric.historical).uint(6, metric.transient).uint(7, metric.isNull);
  const { metadata, properties, value } = metric;
  if (metadata) w.message(8, (m) => m.bytes(2, metadata.contentType).uint(3, metadata.size).bytes(8, metadata.description));
  if (properties) w.message(9, (p) => writePropertySet(p, properties));
  if (value) writeMetricValue(w, value);
}

function writeMetricValue(w: Writer, value: ValueSpec): void {
  if ('int' in value) w.uint(10, value.int);
  else if ('long' in value) w.uint(11, value.long);
  else if ('float' in value) w.fixed(12, 5, (v) => v.setFloat32(0, value.float, true));
  else if ('double' in value) w.fixed(13, 1, (v) => v.setFloat64(0, value.double, true));
  else if ('boolean' in value) w.uint(14, value.boolean);
  else if ('string' in value) w.bytes(15, value.string);
  else if ('bytes' in value) w.bytes(16, value.bytes);
  else if ('dataset' in value) w.message(17, (d) => writeDataSet(d, value.dataset));
  else w.message(18, (t) => writeTemplate(t, value.template));
}

function writePropertySet(w: Writer, set: PropertySetSpec): void {
  for (const key of set.keys) w.bytes(1, key);
  for (const property of set.values) {
    w.message(2, (p) => {
      p.uint(1, property.type);
      const value = property.value;
      if ('int' in value) p.uint(3, value.int);
      else if ('string' in value) p.bytes(8, value.string);
      else p.message(9, (s) => writePropertySet(s, value.propertyset));
    });
  }
}

function writeDataSet(w: Writer, dataSet: DataSetSpec): void {
  w.uint(1, dataSet.columns.length);
  for (const column of dataSet.columns) w.bytes(2, column);
  if (dataSet.packedTypes) {
    w.message(3, (p) => {
      for (const type of dataSet.types) p.varint(type);
    });
  } else {
    for (const type of dataSet.types) w.uint(3, type);
  }
  for (const row of dataSet.rows) {
    w.message(4, (r) => {
      for (const cell of row) {
        r.message(1, (c) => {
          if ('int' in cell) c.uint(1, cell.int);
          else if ('long' in cell) c.uint(2, cell.long);
          else c.bytes(6, cell.string);
        });
      }
    });
  }
}

function writeTemplate(w: Writer, template: TemplateSpec): void {
  w.bytes(1, template.version);
  for (const metric of template.metrics) w.message(2, (m) => writeMetric(m, metric));
  for (const parameter of template.parameters ?? []) {
    w.message(3, (p) => {
      p.bytes(1, parameter.name).uint(2, parameter.type);
      if ('string' in parameter.value) p.bytes(8, parameter.value.string);
      else p.uint(3, parameter.value.int);
    });
  }
  w.bytes(4, template.templateRef);
  w.uint(5, template.isDefinition);
}
