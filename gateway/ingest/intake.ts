/**
 * The one intake every usage source feeds: validate, check the device may report it,
 * price, append durably. Resolves only after the record is on disk; throws only when
 * it could not be stored (the caller then must not acknowledge).
 */
import { parseUsageMessage, usageTimeMs, type UsageMessage } from '../../protocol/usage-message.ts';
import type { Journal } from '../ledger/journal.ts';
import { priceUsage } from '../ledger/pricing.ts';
import { TariffBook } from '../ledger/tariff-book.ts';
import type { GatewayConfig } from '../config.ts';
import type { DeviceEntry } from './device-registry.ts';
import type { RejectReason, RejectionLog } from './rejection-log.ts';
import { checkDeviceSignature } from './device-signature.ts';
import { SequenceGaps } from './sequence-gaps.ts';
import type { StorageGuard } from './storage-guard.ts';
import type { IngestRates } from './ingest-rate.ts';

export type IntakeResult =
  | { status: 'accepted' | 'duplicate'; index: number }
  | { status: 'rejected'; reason: RejectReason; field?: string; detail: string };

export interface IntakeLimits {
  clockSkewMaxMs: number;
  usageAgeMaxMs: number;
}

export interface DeviceActivity {
  accepted: number;
  duplicates: number;
  rejected: number;
  lastSeq?: number;
  lastSeenAt?: string;
  /** The last accepted usage: its meter, quantity in base units (a counter's delta) and unit. */
  lastReading?: { meter: string; quantity: string; unit: string; at: string };
}

/** What is kept per device per message: plain fields, no object per message. */
interface ActivityState {
  accepted: number;
  duplicates: number;
  rejected: number;
  lastSeq?: number;
  lastSeenAtMs: number;
  lastMeter?: string;
  lastQuantity?: string;
  lastUnit?: string;
  lastReadingAtMs?: number;
}

export class Intake {
  readonly #journal: Journal;
  readonly #config: Pick<GatewayConfig, 'meters' | 'tariffs'>;
  readonly #rejections: RejectionLog;
  #accepted = 0;
  #duplicates = 0;
  readonly #activity = new Map<string, ActivityState>();
  readonly #rates: IngestRates | undefined;
  readonly #outbox: { checkRoomForUsage(): void } | undefined;

  /** Missing sequence numbers per device, shown to the operator. */
  readonly gaps: SequenceGaps;
  readonly #limits: IntakeLimits;
  readonly #clock: () => Date;
  readonly #storage: StorageGuard | undefined;
  readonly tariffs: TariffBook;

  constructor(journal: Journal, config: Pick<GatewayConfig, 'meters' | 'tariffs'>, rejections: RejectionLog, options: { limits: IntakeLimits; clock?: () => Date; gaps?: SequenceGaps; storage?: StorageGuard; rates?: IngestRates; outbox?: { checkRoomForUsage(): void } }) {
    this.#rates = options.rates;
    this.#outbox = options.outbox;
    this.gaps = options.gaps ?? new SequenceGaps();
    this.#storage = options.storage;
    this.tariffs = new TariffBook(config);
    this.#journal = journal;
    this.#config = config;
    this.#rejections = rejections;
    this.#limits = options.limits;
    this.#clock = options.clock ?? (() => new Date());
  }

  get acceptedCount(): number {
    return this.#accepted;
  }

  get duplicateCount(): number {
    return this.#duplicates;
  }

  /** What each device sent since start. */
  activity(deviceId: string): DeviceActivity {
    const seen = this.#activity.get(deviceId);
    if (!seen) return { accepted: 0, duplicates: 0, rejected: 0 };
    const activity: DeviceActivity = { accepted: seen.accepted, duplicates: seen.duplicates, rejected: seen.rejected, lastSeenAt: new Date(seen.lastSeenAtMs).toISOString() };
    if (seen.lastSeq !== undefined) activity.lastSeq = seen.lastSeq;
    if (seen.lastMeter !== undefined && seen.lastQuantity !== undefined && seen.lastUnit !== undefined && seen.lastReadingAtMs !== undefined) {
      activity.lastReading = { meter: seen.lastMeter, quantity: seen.lastQuantity, unit: seen.lastUnit, at: new Date(seen.lastReadingAtMs).toISOString() };
    }
    return activity;
  }

  #touch(deviceId: string): ActivityState {
    let activity = this.#activity.get(deviceId);
    if (!activity) {
      activity = { accepted: 0, duplicates: 0, rejected: 0, lastSeenAtMs: 0 };
      this.#activity.set(deviceId, activity);
    }
    // A number per message; the text is made when someone asks (activity()).
    activity.lastSeenAtMs = Date.now();
    return activity;
  }

  submit(device: DeviceEntry, topic: string, payload: Uint8Array): Promise<IntakeResult> {
    const parsed = parseUsageMessage(payload);
    if (!parsed.ok) return Promise.resolve(this.#reject(device.id, topic, parsed.error.reason, parsed.error.field, parsed.error.detail));
    return this.accept(device, topic, parsed.message);
  }

  /** For sources that build the message themselves (GPIO counters, Sparkplug metrics). */
  async accept(device: DeviceEntry, topic: string, message: UsageMessage): Promise<IntakeResult> {
    if (message.deviceId !== device.id) {
      return this.#reject(device.id, topic, 'device_mismatch', 'deviceId', `message names device ${message.deviceId} but was sent by ${device.id}`);
    }
    // Parsed once here for the clock check, the tariff lookup and the period.
    const parsedMs = usageTimeMs(message.time);
    const atMs = Number.isNaN(parsedMs) ? Date.parse(message.time) : parsedMs;
    const timeProblem = this.#checkTime(message.time, atMs);
    if (timeProblem) return this.#reject(device.id, topic, timeProblem.reason, 'time', timeProblem.detail);
    const signatureProblem = checkDeviceSignature(message, device);
    if (signatureProblem) return this.#reject(device.id, topic, signatureProblem.reason, 'sig', signatureProblem.detail);
    const priced = priceUsage(message, device, this.#config, this.tariffs, atMs);
    if (!priced.ok) return this.#reject(device.id, topic, priced.reason, priced.field, priced.detail);
    // Throws StorageLowError: the caller must not acknowledge, the device keeps the message.
    const checking = this.#storage?.check();
    if (checking) await checking;
    // Throws OutboxFullError: billing data waiting for the cloud is never dropped, so new usage waits instead.
    this.#outbox?.checkRoomForUsage();
    const result = await this.#journal.append(priced.draft, priced.tariff);
    const activity = this.#touch(device.id);
    switch (result.status) {
      case 'accepted':
        this.#accepted += 1;
        activity.accepted += 1;
        activity.lastSeq = message.seq;
        activity.lastMeter = message.meter;
        activity.lastQuantity = result.quantity;
        activity.lastUnit = message.unit;
        activity.lastReadingAtMs = activity.lastSeenAtMs;
        this.#rates?.record(device.id, message.meter, result.quantity, activity.lastSeenAtMs);
        // Gaps matter for events; a lost counter reading merges into the next delta.
        if (message.kind !== 'counter') this.gaps.see(device.id, message.seq);
        return result;
      case 'duplicate':
        this.#duplicates += 1;
        activity.duplicates += 1;
        return result;
      case 'conflict':
        return this.#reject(device.id, topic, 'seq_conflict', 'seq', `seq ${message.seq} already recorded (record ${result.index}) with different content`);
      case 'refused':
        return this.#reject(device.id, topic, result.reason, 'reading', result.detail);
      case 'not_needed':
        throw new Error(`a usage message was taken for a period close: ${result.detail}`); // a bug, not an input
    }
  }

  /** Future times are clock trouble or forgery; very old ones are replays of long-gone usage. */
  #checkTime(time: string, atMs: number): { reason: 'time_in_future' | 'time_too_old'; detail: string } | undefined {
    const nowMs = this.#clock().getTime();
    if (atMs > nowMs + this.#limits.clockSkewMaxMs) {
      return { reason: 'time_in_future', detail: `time ${time} is more than ${this.#limits.clockSkewMaxMs / 1000} s ahead of the gateway clock` };
    }
    if (atMs < nowMs - this.#limits.usageAgeMaxMs) {
      return { reason: 'time_too_old', detail: `time ${time} is older than ${Math.floor(this.#limits.usageAgeMaxMs / 86_400_000)} days: refused as a replay` };
    }
    return undefined;
  }

  #reject(deviceId: string, topic: string, reason: RejectReason, field: string | undefined, detail: string): IntakeResult {
    const rejection = { at: new Date().toISOString(), deviceId, topic, reason, detail, ...(field === undefined ? {} : { field }) };
    this.#rejections.add(rejection);
    this.#touch(deviceId).rejected += 1;
    return { status: 'rejected', reason, detail, ...(field === undefined ? {} : { field }) };
  }
}
