/**
 * Refused messages are data: each is kept for the operator (bounded, oldest dropped
 * first, drops counted) and counted by reason for /metrics.
 */
export const REJECT_REASONS = [
  'auth_failed',
  'topic_not_allowed',
  'subscribe_not_allowed',
  'qos_not_supported',
  'malformed_json',
  'payload_too_large',
  'unsupported_version',
  'missing_field',
  'invalid_field',
  'unknown_field',
  'device_mismatch',
  'unknown_meter',
  'meter_not_allowed',
  'unit_mismatch',
  'no_tariff',
  'seq_conflict',
  'counter_decreased',
  'stale_reading',
  'time_in_future',
  'time_too_old',
  'signature_required',
  'bad_signature',
  'unknown_device',
  'rate_limited',
  'storage_low',
  'outbox_full',
  'topic_too_deep',
  'too_many_connections',
  'malformed_sparkplug',
  'sparkplug_not_billable',
  /** Not refused for good: the journal queue is full, so no ack; the device resends later. */
  'intake_overloaded',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface Rejection {
  at: string;
  deviceId: string;
  topic: string;
  reason: RejectReason;
  field?: string;
  detail: string;
}

export class RejectionLog {
  readonly #kept: Rejection[] = [];
  readonly #capacity: number;
  readonly #byReason = new Map<RejectReason, number>();
  #dropped = 0;
  #listeners: Array<(rejection: Rejection) => void> = [];

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  add(rejection: Rejection): void {
    this.#byReason.set(rejection.reason, (this.#byReason.get(rejection.reason) ?? 0) + 1);
    if (this.#capacity > 0) {
      this.#kept.push(rejection);
      if (this.#kept.length > this.#capacity) {
        this.#kept.shift();
        this.#dropped += 1;
      }
    } else {
      this.#dropped += 1;
    }
    for (const listener of this.#listeners) listener(rejection);
  }

  /** Counts a refusal without keeping it: for high-volume, low-value ones (unmapped Sparkplug metrics). */
  count(reason: RejectReason): void {
    this.#byReason.set(reason, (this.#byReason.get(reason) ?? 0) + 1);
  }

  onRejection(listener: (rejection: Rejection) => void): void {
    this.#listeners.push(listener);
  }

  /** Newest first. */
  recent(limit: number): Rejection[] {
    return this.#kept.slice(-limit).reverse();
  }

  countsByReason(): ReadonlyMap<RejectReason, number> {
    return this.#byReason;
  }

  get dropped(): number {
    return this.#dropped;
  }
}
