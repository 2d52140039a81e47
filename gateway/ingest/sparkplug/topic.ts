/**
 * Sparkplug B topic names (Sparkplug 3.0 §4.1):
 * `spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]`, and the host
 * application's `spBv1.0/STATE/<host_id>`. Parsing never throws; a topic that is not a
 * valid Sparkplug B topic gives a reason the operator can read.
 */

export const SPARKPLUG_NAMESPACE = 'spBv1.0';

export const NODE_MESSAGE_TYPES = ['NBIRTH', 'NDEATH', 'NDATA', 'NCMD'] as const;
export const DEVICE_MESSAGE_TYPES = ['DBIRTH', 'DDEATH', 'DDATA', 'DCMD'] as const;
export const SPARKPLUG_MESSAGE_TYPES = [...NODE_MESSAGE_TYPES, ...DEVICE_MESSAGE_TYPES, 'STATE'] as const;

export type NodeMessageType = (typeof NODE_MESSAGE_TYPES)[number];
export type DeviceMessageType = (typeof DEVICE_MESSAGE_TYPES)[number];
export type SparkplugMessageType = (typeof SPARKPLUG_MESSAGE_TYPES)[number];

export type SparkplugTopic =
  | { type: NodeMessageType; group: string; node: string }
  | { type: DeviceMessageType; group: string; node: string; device: string }
  | { type: 'STATE'; hostId: string };

export type SparkplugTopicRefusal = 'not_sparkplug' | 'unknown_message_type' | 'malformed_topic';

export type SparkplugTopicResult = { ok: true; topic: SparkplugTopic } | { ok: false; reason: SparkplugTopicRefusal; detail: string };

/** MQTT allows 65535 bytes; Sparkplug ids are meant to be short, and a limit keeps logs sane. */
export const TOPIC_CHARS_MAX = 1_024;

// Sparkplug 3.0 [tck-id-topic-structure-namespace-valid-group-id] (and edge node id, device
// id): a valid UTF-8 string except + / #. We also refuse NUL (MQTT-1.5.3-2) and lone
// surrogates, which are not UTF-8.
const FORBIDDEN_IN_ID = /[+#\u0000]|\p{Cs}/u;

function refuse(reason: SparkplugTopicRefusal, detail: string): SparkplugTopicResult {
  return { ok: false, reason, detail };
}

/** A valid group, edge node, device or host id: non-empty, no `/`, `+`, `#`, NUL or lone surrogate. */
export function isSparkplugId(id: string): boolean {
  return id !== '' && !id.includes('/') && !FORBIDDEN_IN_ID.test(id);
}

function badId(levels: readonly string[], index: number, what: string): string | undefined {
  const id = levels[index];
  if (id === undefined || id === '') return `${what} is empty`;
  if (!isSparkplugId(id)) return `${what} ${JSON.stringify(id)} contains +, #, NUL or a lone surrogate`;
  return undefined;
}

export function isNodeMessageType(type: string): type is NodeMessageType {
  return (NODE_MESSAGE_TYPES as readonly string[]).includes(type);
}

export function isDeviceMessageType(type: string): type is DeviceMessageType {
  return (DEVICE_MESSAGE_TYPES as readonly string[]).includes(type);
}

/** Parses and validates an MQTT topic name as a Sparkplug B topic. */
export function parseSparkplugTopic(topic: string): SparkplugTopicResult {
  if (topic.length > TOPIC_CHARS_MAX) return refuse('malformed_topic', `topic is ${topic.length} characters, at most ${TOPIC_CHARS_MAX} allowed`);
  const levels = topic.split('/');
  if (levels[0] !== SPARKPLUG_NAMESPACE) {
    return refuse('not_sparkplug', `topic ${JSON.stringify(topic.slice(0, 80))} does not start with ${SPARKPLUG_NAMESPACE}/`);
  }
  // Sparkplug 3.0 §4.2: the host application's state topic is spBv1.0/STATE/<host_id>.
  if (levels[1] === 'STATE' && levels.length === 3) {
    const problem = badId(levels, 2, 'host id');
    return problem ? refuse('malformed_topic', problem) : { ok: true, topic: { type: 'STATE', hostId: levels[2]! } };
  }
  const type = levels[2];
  if (type === undefined || levels.length < 4) {
    return refuse('malformed_topic', `topic has ${levels.length} levels, a Sparkplug B topic has namespace/group_id/message_type/edge_node_id[/device_id]`);
  }
  const device = isDeviceMessageType(type);
  if (!device && !isNodeMessageType(type)) {
    return refuse('unknown_message_type', `message type ${JSON.stringify(type.slice(0, 40))} is not one of ${SPARKPLUG_MESSAGE_TYPES.join(', ')}`);
  }
  const levelsExpected = device ? 5 : 4;
  if (levels.length !== levelsExpected) {
    // Sparkplug 3.0 [tck-id-topic-structure-namespace-device-id-associated-message-types] and
    // [...-non-associated-message-types]: device_id with D* messages only, and always with them.
    return refuse('malformed_topic', `${type} topics have ${levelsExpected} levels (${device ? 'with' : 'without'} a device id), this one has ${levels.length}`);
  }
  const problem = badId(levels, 1, 'group id') ?? badId(levels, 3, 'edge node id') ?? (device ? badId(levels, 4, 'device id') : undefined);
  if (problem) return refuse('malformed_topic', problem);
  const [, group, , node, deviceId] = levels as [string, string, string, string, string?];
  if (device) return { ok: true, topic: { type, group, node, device: deviceId! } };
  return { ok: true, topic: { type: type as NodeMessageType, group, node } };
}

/** `<group>/<node>`: names one edge node (its "Edge Node Descriptor", unique per Sparkplug 3.0 §4.1.3). */
export function edgeNodeKey(group: string, node: string): string {
  return `${group}/${node}`;
}

/**
 * The MQTT subscriptions a read-only consumer of `groups` needs. Every message that
 * carries `seq` (NBIRTH, DBIRTH, NDATA, DDATA, DDEATH) must be seen for gap detection to
 * be right, and NDEATH for deaths; commands (NCMD, DCMD) and STATE are not needed.
 */
export function sparkplugSubscriptions(groups: readonly string[]): string[] {
  const filters: string[] = [];
  for (const group of new Set(groups)) {
    if (!isSparkplugId(group)) throw new RangeError(`groups: ${JSON.stringify(group)} is not a valid Sparkplug group id`);
    for (const type of ['NBIRTH', 'NDEATH', 'NDATA']) filters.push(`${SPARKPLUG_NAMESPACE}/${group}/${type}/+`);
    for (const type of ['DBIRTH', 'DDEATH', 'DDATA']) filters.push(`${SPARKPLUG_NAMESPACE}/${group}/${type}/+/+`);
  }
  return filters;
}
