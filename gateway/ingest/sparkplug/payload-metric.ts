/**
 * The message types inside a Sparkplug B payload: Metric, MetaData, PropertySet,
 * PropertyValue, DataSet, Template (field numbers from sparkplug_b.proto, Sparkplug 3.0
 * §6.4). They nest (templates hold metrics, property values hold property sets), so each
 * decoder takes the depth it is at and the shared counters that bound the whole payload.
 *
 * A singular field sent twice keeps the last occurrence (protobuf's rule for scalars; for
 * sub-messages, which protobuf would merge, we also keep the last: no conforming encoder
 * repeats them). Unknown fields and extensions are skipped.
 */
import type {
  SparkplugDataSet,
  SparkplugDecodeLimits,
  SparkplugMetaData,
  SparkplugMetric,
  SparkplugPropertySet,
  SparkplugPropertyValue,
  SparkplugScalar,
  SparkplugTemplate,
  SparkplugTemplateParameter,
} from './payload.ts';
import { expectWireType, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireError, type Tag, type WireReader } from './wire.ts';

export interface DecodeContext {
  readonly limits: Readonly<SparkplugDecodeLimits>;
  /** Metrics decoded so far in this payload, nested ones included. */
  metrics: number;
  /** Other nested values decoded so far (see `valuesMax`). */
  values: number;
}

function enter(context: DecodeContext, depth: number, what: string): void {
  if (depth > context.limits.depthMax) throw new WireError(`${what} is nested ${depth} deep, at most ${context.limits.depthMax} allowed`);
}

function countValue(context: DecodeContext): void {
  context.values += 1;
  if (context.values > context.limits.valuesMax) throw new WireError(`more than ${context.limits.valuesMax} nested values`);
}

/**
 * The six scalar members every Sparkplug oneof shares, in the same order from `first`:
 * int_value (uint32), long_value (uint64), float, double, bool, string. Undefined if
 * `tag` is not one of them.
 */
function readScalar(reader: WireReader, tag: Tag, first: number, context: DecodeContext): SparkplugScalar | undefined {
  switch (tag.field - first) {
    case 0:
      expectWireType(tag, WIRE_VARINT, 'int_value');
      return { kind: 'int', bits: reader.uint32() };
    case 1:
      expectWireType(tag, WIRE_VARINT, 'long_value');
      return { kind: 'long', bits: reader.uint64() };
    case 2:
      expectWireType(tag, WIRE_I32, 'float_value');
      return { kind: 'float', value: reader.float() };
    case 3:
      expectWireType(tag, WIRE_I64, 'double_value');
      return { kind: 'double', value: reader.double() };
    case 4:
      expectWireType(tag, WIRE_VARINT, 'boolean_value');
      return { kind: 'boolean', value: reader.bool() };
    case 5:
      expectWireType(tag, WIRE_LEN, 'string_value');
      return { kind: 'string', value: reader.string(context.limits.stringBytesMax, 'string_value') };
    default:
      return undefined;
  }
}

function skipExtension(reader: WireReader, tag: Tag): SparkplugScalar {
  expectWireType(tag, WIRE_LEN, 'extension_value');
  reader.skip(WIRE_LEN);
  return { kind: 'extension' };
}

function uint32Number(reader: WireReader): number {
  return Number(reader.uint32());
}

/** `Payload.Metric`: fields 1-9 describe it, 10-19 are the oneof value. */
export function decodeMetric(reader: WireReader, context: DecodeContext, depth: number): SparkplugMetric {
  enter(context, depth, 'metric');
  context.metrics += 1;
  if (context.metrics > context.limits.metricsMax) throw new WireError(`more than ${context.limits.metricsMax} metrics`);
  const metric: SparkplugMetric = { isHistorical: false, isTransient: false, isNull: false, value: { kind: 'none' } };
  const max = context.limits.stringBytesMax;
  while (!reader.done) {
    const tag = reader.tag();
    const scalar = readScalar(reader, tag, 10, context);
    if (scalar) {
      metric.value = scalar;
      continue;
    }
    switch (tag.field) {
      case 1: expectWireType(tag, WIRE_LEN, 'metric name'); metric.name = reader.string(max, 'metric name'); break;
      case 2: expectWireType(tag, WIRE_VARINT, 'metric alias'); metric.alias = reader.uint64(); break;
      case 3: expectWireType(tag, WIRE_VARINT, 'metric timestamp'); metric.timestamp = reader.uint64(); break;
      case 4: expectWireType(tag, WIRE_VARINT, 'metric datatype'); metric.datatype = uint32Number(reader); break;
      case 5: expectWireType(tag, WIRE_VARINT, 'is_historical'); metric.isHistorical = reader.bool(); break;
      case 6: expectWireType(tag, WIRE_VARINT, 'is_transient'); metric.isTransient = reader.bool(); break;
      case 7: expectWireType(tag, WIRE_VARINT, 'is_null'); metric.isNull = reader.bool(); break;
      case 8: expectWireType(tag, WIRE_LEN, 'metadata'); metric.metadata = decodeMetaData(reader.message('metadata'), context, depth + 1); break;
      case 9: expectWireType(tag, WIRE_LEN, 'properties'); metric.properties = decodePropertySet(reader.message('properties'), context, depth + 1); break;
      case 16: expectWireType(tag, WIRE_LEN, 'bytes_value'); metric.value = { kind: 'bytes', value: reader.bytes(context.limits.payloadBytesMax, 'bytes_value') }; break;
      case 17: expectWireType(tag, WIRE_LEN, 'dataset_value'); metric.value = { kind: 'dataset', value: decodeDataSet(reader.message('dataset_value'), context, depth + 1) }; break;
      case 18: expectWireType(tag, WIRE_LEN, 'template_value'); metric.value = { kind: 'template', value: decodeTemplate(reader.message('template_value'), context, depth + 1) }; break;
      case 19: metric.value = skipExtension(reader, tag); break;
      default: reader.skip(tag.wireType);
    }
  }
  return metric;
}

function decodeMetaData(reader: WireReader, context: DecodeContext, depth: number): SparkplugMetaData {
  enter(context, depth, 'metadata');
  const metaData: SparkplugMetaData = {};
  const max = context.limits.stringBytesMax;
  while (!reader.done) {
    const tag = reader.tag();
    switch (tag.field) {
      case 1: expectWireType(tag, WIRE_VARINT, 'is_multi_part'); metaData.isMultiPart = reader.bool(); break;
      case 2: expectWireType(tag, WIRE_LEN, 'content_type'); metaData.contentType = reader.string(max, 'content_type'); break;
      case 3: expectWireType(tag, WIRE_VARINT, 'metadata size'); metaData.size = reader.uint64(); break;
      case 4: expectWireType(tag, WIRE_VARINT, 'metadata seq'); metaData.seq = reader.uint64(); break;
      case 5: expectWireType(tag, WIRE_LEN, 'file_name'); metaData.fileName = reader.string(max, 'file_name'); break;
      case 6: expectWireType(tag, WIRE_LEN, 'file_type'); metaData.fileType = reader.string(max, 'file_type'); break;
      case 7: expectWireType(tag, WIRE_LEN, 'md5'); metaData.md5 = reader.string(max, 'md5'); break;
      case 8: expectWireType(tag, WIRE_LEN, 'description'); metaData.description = reader.string(max, 'description'); break;
      default: reader.skip(tag.wireType);
    }
  }
  return metaData;
}

function decodePropertySet(reader: WireReader, context: DecodeContext, depth: number): SparkplugPropertySet {
  enter(context, depth, 'property set');
  const set: SparkplugPropertySet = { keys: [], values: [] };
  while (!reader.done) {
    const tag = reader.tag();
    if (tag.field === 1) {
      expectWireType(tag, WIRE_LEN, 'property key');
      countValue(context);
      set.keys.push(reader.string(context.limits.stringBytesMax, 'property key'));
    } else if (tag.field === 2) {
      expectWireType(tag, WIRE_LEN, 'property value');
      countValue(context);
      set.values.push(decodePropertyValue(reader.message('property value'), context, depth + 1));
    } else {
      reader.skip(tag.wireType);
    }
  }
  return set;
}

function decodePropertyValue(reader: WireReader, context: DecodeContext, depth: number): SparkplugPropertyValue {
  enter(context, depth, 'property value');
  const property: SparkplugPropertyValue = { isNull: false, value: { kind: 'none' } };
  while (!reader.done) {
    const tag = reader.tag();
    const scalar = readScalar(reader, tag, 3, context);
    if (scalar) {
      property.value = scalar;
      continue;
    }
    switch (tag.field) {
      case 1: expectWireType(tag, WIRE_VARINT, 'property type'); property.type = uint32Number(reader); break;
      case 2: expectWireType(tag, WIRE_VARINT, 'property is_null'); property.isNull = reader.bool(); break;
      case 9:
        expectWireType(tag, WIRE_LEN, 'propertyset_value');
        property.value = { kind: 'propertyset', value: decodePropertySet(reader.message('propertyset_value'), context, depth + 1) };
        break;
      case 10:
        expectWireType(tag, WIRE_LEN, 'propertysets_value');
        property.value = { kind: 'propertysets', value: decodePropertySetList(reader.message('propertysets_value'), context, depth + 1) };
        break;
      case 11: property.value = skipExtension(reader, tag); break;
      default: reader.skip(tag.wireType);
    }
  }
  return property;
}

function decodePropertySetList(reader: WireReader, context: DecodeContext, depth: number): SparkplugPropertySet[] {
  enter(context, depth, 'property set list');
  const list: SparkplugPropertySet[] = [];
  while (!reader.done) {
    const tag = reader.tag();
    if (tag.field !== 1) {
      reader.skip(tag.wireType);
      continue;
    }
    expectWireType(tag, WIRE_LEN, 'propertyset');
    countValue(context);
    list.push(decodePropertySet(reader.message('propertyset'), context, depth + 1));
  }
  return list;
}

function decodeDataSet(reader: WireReader, context: DecodeContext, depth: number): SparkplugDataSet {
  enter(context, depth, 'dataset');
  const dataSet: SparkplugDataSet = { columns: [], types: [], rows: [] };
  while (!reader.done) {
    const tag = reader.tag();
    switch (tag.field) {
      case 1: expectWireType(tag, WIRE_VARINT, 'num_of_columns'); dataSet.numOfColumns = reader.uint64(); break;
      case 2:
        expectWireType(tag, WIRE_LEN, 'column');
        countValue(context);
        dataSet.columns.push(reader.string(context.limits.stringBytesMax, 'column'));
        break;
      case 3:
        // repeated uint32: proto2 writes it unpacked, but a parser must accept packed too.
        if (tag.wireType === WIRE_LEN) {
          const packed = reader.message('types');
          while (!packed.done) {
            countValue(context);
            dataSet.types.push(uint32Number(packed));
          }
        } else {
          expectWireType(tag, WIRE_VARINT, 'types');
          countValue(context);
          dataSet.types.push(uint32Number(reader));
        }
        break;
      case 4: expectWireType(tag, WIRE_LEN, 'row'); dataSet.rows.push(decodeRow(reader.message('row'), context, depth + 1)); break;
      default: reader.skip(tag.wireType);
    }
  }
  return dataSet;
}

function decodeRow(reader: WireReader, context: DecodeContext, depth: number): SparkplugScalar[] {
  enter(context, depth, 'dataset row');
  const row: SparkplugScalar[] = [];
  while (!reader.done) {
    const tag = reader.tag();
    if (tag.field !== 1) {
      reader.skip(tag.wireType);
      continue;
    }
    expectWireType(tag, WIRE_LEN, 'dataset value');
    countValue(context);
    row.push(decodeOneofOnly(reader.message('dataset value'), context, depth + 1, 1));
  }
  return row;
}

/** DataSetValue: a message that is only the scalar oneof, from field `first`; extension after it. */
function decodeOneofOnly(reader: WireReader, context: DecodeContext, depth: number, first: number): SparkplugScalar {
  enter(context, depth, 'value');
  let value: SparkplugScalar = { kind: 'none' };
  while (!reader.done) {
    const tag = reader.tag();
    const scalar = readScalar(reader, tag, first, context);
    if (scalar) value = scalar;
    else if (tag.field === first + 6) value = skipExtension(reader, tag);
    else reader.skip(tag.wireType);
  }
  return value;
}

function decodeTemplate(reader: WireReader, context: DecodeContext, depth: number): SparkplugTemplate {
  enter(context, depth, 'template');
  const template: SparkplugTemplate = { metrics: [], parameters: [] };
  const max = context.limits.stringBytesMax;
  while (!reader.done) {
    const tag = reader.tag();
    switch (tag.field) {
      case 1: expectWireType(tag, WIRE_LEN, 'template version'); template.version = reader.string(max, 'template version'); break;
      case 2: expectWireType(tag, WIRE_LEN, 'template metric'); template.metrics.push(decodeMetric(reader.message('template metric'), context, depth + 1)); break;
      case 3:
        expectWireType(tag, WIRE_LEN, 'template parameter');
        countValue(context);
        template.parameters.push(decodeParameter(reader.message('template parameter'), context, depth + 1));
        break;
      case 4: expectWireType(tag, WIRE_LEN, 'template_ref'); template.templateRef = reader.string(max, 'template_ref'); break;
      case 5: expectWireType(tag, WIRE_VARINT, 'is_definition'); template.isDefinition = reader.bool(); break;
      default: reader.skip(tag.wireType);
    }
  }
  return template;
}

function decodeParameter(reader: WireReader, context: DecodeContext, depth: number): SparkplugTemplateParameter {
  enter(context, depth, 'template parameter');
  const parameter: SparkplugTemplateParameter = { value: { kind: 'none' } };
  while (!reader.done) {
    const tag = reader.tag();
    const scalar = readScalar(reader, tag, 3, context);
    if (scalar) parameter.value = scalar;
    else if (tag.field === 1) {
      expectWireType(tag, WIRE_LEN, 'parameter name');
      parameter.name = reader.string(context.limits.stringBytesMax, 'parameter name');
    } else if (tag.field === 2) {
      expectWireType(tag, WIRE_VARINT, 'parameter type');
      parameter.type = uint32Number(reader);
    } else if (tag.field === 9) parameter.value = skipExtension(reader, tag);
    else reader.skip(tag.wireType);
  }
  return parameter;
}
