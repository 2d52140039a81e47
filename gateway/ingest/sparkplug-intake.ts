/**
 * Sparkplug B into the one intake: an edge node (a registry device with a `sparkplug`
 * grant) publishes `spBv1.0/<group>/<type>/<node>[/<device>]`; births teach aliases and
 * datatypes, DDATA metrics mapped in config become usage of the mapped registry device.
 *
 * Idempotency: Sparkplug's 0–255 seq repeats, so a reading's seq is its metric timestamp
 * in ms; config allows one mapping per billed device, so (device, timestamp) is unique,
 * and a redelivered DDATA is recognised as a duplicate.
 */
import type { Logger } from 'pino';
import type { UsageMessage } from '../../protocol/usage-message.ts';
import type { DeviceEntry, DeviceRegistry } from './device-registry.ts';
import type { Intake } from './intake.ts';
import type { RejectionLog } from './rejection-log.ts';
import { SparkplugAliasTable } from './sparkplug/aliases.ts';
import { mapSparkplugMessage, type SparkplugMappingTable } from './sparkplug/mapping.ts';
import { decodeSparkplugPayload } from './sparkplug/payload.ts';
import { SparkplugSequenceTracker, type SparkplugSequenceEvent } from './sparkplug/sequence.ts';
import { parseSparkplugTopic } from './sparkplug/topic.ts';

export const SPARKPLUG_TOPIC_PREFIX = 'spBv1.0/';

export class SparkplugIntake {
  readonly #aliases = new SparkplugAliasTable();
  readonly #tracker = new SparkplugSequenceTracker();
  readonly #mappings: SparkplugMappingTable;
  readonly #registry: DeviceRegistry;
  readonly #intake: Intake;
  readonly #rejections: RejectionLog;
  readonly #logger: Logger;
  readonly #units: Readonly<Record<string, string>>;

  constructor(parts: { mappings: SparkplugMappingTable; registry: DeviceRegistry; intake: Intake; rejections: RejectionLog; logger: Logger; meterUnits: Readonly<Record<string, string>> }) {
    this.#mappings = parts.mappings;
    this.#registry = parts.registry;
    this.#intake = parts.intake;
    this.#rejections = parts.rejections;
    this.#logger = parts.logger;
    this.#units = parts.meterUnits;
  }

  /** How many of each sequence event (gap, birth, rebirth, death…) since start, for /metrics. */
  eventCounts(): ReadonlyMap<string, number> {
    return this.#tracker.countsByKind();
  }

  /** Gaps, rebirths and deaths seen, newest first, for the operator. */
  recentEvents(limit = 50): SparkplugSequenceEvent[] {
    return this.#tracker.recentEvents(limit);
  }

  #refuse(deviceId: string, topic: string, reason: 'topic_not_allowed' | 'malformed_sparkplug' | 'sparkplug_not_billable', detail: string): void {
    this.#rejections.add({ at: new Date().toISOString(), deviceId, topic, reason, detail });
  }

  /** May `node` (a registry device) publish on `topic`? */
  allowed(node: DeviceEntry, topic: string): boolean {
    const parsed = parseSparkplugTopic(topic);
    return parsed.ok && parsed.topic.type !== 'STATE' && node.sparkplug !== undefined && parsed.topic.group === node.sparkplug.group && parsed.topic.node === node.sparkplug.node;
  }

  /** Resolves once every billable metric in the message is durable (or refused). */
  async receive(node: DeviceEntry, topic: string, payload: Uint8Array): Promise<void> {
    const parsed = parseSparkplugTopic(topic);
    if (!parsed.ok || parsed.topic.type === 'STATE') return this.#refuse(node.id, topic, 'malformed_sparkplug', parsed.ok ? 'STATE is not accepted from edge nodes' : parsed.detail);
    const decoded = decodeSparkplugPayload(payload);
    if (!decoded.ok) return this.#refuse(node.id, topic, 'malformed_sparkplug', decoded.detail);
    for (const event of this.#tracker.observe(parsed.topic, decoded.payload, Date.now())) {
      if (event.kind === 'gap') this.#logger.warn({ event }, 'Sparkplug sequence gap');
    }
    const { readings, refusals } = mapSparkplugMessage(parsed.topic, decoded.payload, this.#mappings, { aliases: this.#aliases });
    for (const refusal of refusals) {
      // Edge nodes publish many metrics nobody bills (temperatures…): count those, keep the rest.
      if (refusal.reason === 'no_mapping') {
        this.#rejections.count('sparkplug_not_billable');
        continue;
      }
      this.#refuse(node.id, topic, 'sparkplug_not_billable', `${refusal.reason}${refusal.metric ? ` (${refusal.metric})` : ''}: ${refusal.detail}`);
    }
    for (const reading of readings) {
      const device = this.#registry.get(reading.deviceId);
      if (!device) {
        this.#refuse(node.id, topic, 'sparkplug_not_billable', `mapping bills ${reading.deviceId}, which is not provisioned`);
        continue;
      }
      if (reading.kind === 'increment' && reading.value === 0n) continue;
      const common = { v: 1 as const, deviceId: device.id, seq: reading.timestampMs, meter: reading.meter, unit: this.#units[reading.meter] ?? '', time: new Date(reading.timestampMs).toISOString() };
      const message: UsageMessage = reading.kind === 'counter'
        // One epoch for the mapping's life: bdSeq changes on every reconnect and would read as a reset.
        ? { ...common, kind: 'counter', reading: reading.value.toString(), epoch: 'sparkplug' }
        : { ...common, quantity: reading.value.toString() };
      await this.#intake.accept(device, topic, message);
    }
  }
}
