/**
 * Usage message, version 1: what a machine publishes for each use (docs/protocol.md).
 *
 * Quantities are integers in the meter's base unit, carried as decimal strings so no
 * JSON parser can round them. Parsing never throws: a bad message yields a
 * {@link UsageParseError} naming the field and why.
 */

export const USAGE_MESSAGE_VERSION = 1;
export const USAGE_PAYLOAD_BYTES_MAX = 4096;
export const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** 10^18 base units: far above any real single use, far below bigint trouble. */
export const QUANTITY_DIGITS_MAX = 18;

interface UsageMessageBase {
  v: 1;
  deviceId: string;
  /** Per-device sequence number, 1, 2, 3… assigned by the device; (deviceId, seq) is the idempotency key. */
  seq: number;
  meter: string;
  unit: string;
  /** Device clock, RFC 3339 UTC (`Z`). */
  time: string;
  /** Optional Ed25519 signature by the device's own key (hex, 64 bytes) over the canonical message without `sig`. */
  sig?: string;
}

/** One use (or a batch of uses) of a meter: `quantity` base units since the last event. */
export interface UsageEventMessage extends UsageMessageBase {
  kind?: 'event';
  /** Positive integer in the meter's base unit, as a decimal string. */
  quantity: string;
}

/**
 * A cumulative meter register (OCMF-style): usage is the difference to the previous
 * accepted reading of the same meter. `epoch` changes when the register restarts from
 * zero (reboot, replacement), so a drop with a new epoch is a reset, not a fraud.
 */
export interface CounterReadingMessage extends UsageMessageBase {
  kind: 'counter';
  /** Register value in base units, non-negative integer as a decimal string. */
  reading: string;
  /** Identifies one run of the register: boot id, meter serial and reset count… */
  epoch: string;
}

export type UsageMessage = UsageEventMessage | CounterReadingMessage;

export type UsageParseErrorReason = 'malformed_json' | 'payload_too_large' | 'unsupported_version' | 'missing_field' | 'invalid_field' | 'unknown_field';

export interface UsageParseError {
  reason: UsageParseErrorReason;
  field?: string;
  detail: string;
}

export type UsageParseResult = { ok: true; message: UsageMessage } | { ok: false; error: UsageParseError };

const COMMON_FIELDS = ['v', 'deviceId', 'seq', 'meter', 'unit', 'time'] as const;
const EVENT_FIELDS = [...COMMON_FIELDS, 'quantity'] as const;
const COUNTER_FIELDS = [...COMMON_FIELDS, 'reading', 'epoch'] as const;
const OPTIONAL_FIELDS = ['kind', 'sig'] as const;
const READING = new RegExp(`^(0|[1-9][0-9]{0,${QUANTITY_DIGITS_MAX - 1}})$`);
const SIGNATURE = /^[0-9a-f]{128}$/;
const QUANTITY = new RegExp(`^[1-9][0-9]{0,${QUANTITY_DIGITS_MAX - 1}}$`);
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;
const UNIT = /^[a-z][a-z0-9_-]{0,31}$/i;

function fail(reason: UsageParseErrorReason, field: string | undefined, detail: string): UsageParseResult {
  return { ok: false, error: field === undefined ? { reason, detail } : { reason, field, detail } };
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The digit at `at` of an ASCII string as a number (the caller has checked the shape). */
const digit = (text: string, at: number): number => text.charCodeAt(at) - 48;

/**
 * Epoch ms (sub-millisecond digits floored) of a usage message's `time`, or NaN when it is
 * not an RFC 3339 UTC timestamp or its date and clock name no real instant: 2026-02-30 and T24:00:00 are refused
 * (RFC 3339 §5.6: hour is 00-23, mday as the month allows), where Date.parse would roll
 * them over. Plain arithmetic, no Date and no regex: this runs for every usage message.
 */
export function usageTimeMs(time: string): number {
  if (!RFC3339_UTC.test(time)) return Number.NaN;
  const year = digit(time, 0) * 1000 + digit(time, 1) * 100 + digit(time, 2) * 10 + digit(time, 3);
  const month = digit(time, 5) * 10 + digit(time, 6);
  const day = digit(time, 8) * 10 + digit(time, 9);
  const hour = digit(time, 11) * 10 + digit(time, 12);
  const minute = digit(time, 14) * 10 + digit(time, 15);
  const second = digit(time, 17) * 10 + digit(time, 18);
  const leapYear = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]! + (month === 2 && leapYear ? 1 : 0) || hour > 23 || minute > 59 || second > 59) return Number.NaN;
  let ms = 0;
  if (time.charCodeAt(19) === 46 /* . */) {
    for (let at = 20, scale = 100; at < 23; at += 1, scale /= 10) {
      const d = digit(time, at);
      if (d < 0 || d > 9) break;
      ms += d * scale;
    }
  }
  // Days from 1970-01-01 of a proleptic Gregorian date (civil-from-days, inverted).
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  const days = era * 146_097 + dayOfEra - 719_468;
  return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms;
}

/** One decoder for all messages; `fatal` makes invalid UTF-8 an error instead of U+FFFD. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Parses and validates the raw MQTT payload of a usage message. */
export function parseUsageMessage(payload: Uint8Array): UsageParseResult {
  if (payload.length > USAGE_PAYLOAD_BYTES_MAX) {
    return fail('payload_too_large', undefined, `payload is ${payload.length} bytes, at most ${USAGE_PAYLOAD_BYTES_MAX} allowed`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(STRICT_UTF8.decode(payload));
  } catch (error) {
    return fail('malformed_json', undefined, `payload is not UTF-8 JSON: ${(error as Error).message}`);
  }
  return validateUsageMessage(parsed);
}

/** Validates an already-parsed JSON value as a {@link UsageMessage}. */
export function validateUsageMessage(value: unknown): UsageParseResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('invalid_field', undefined, 'payload must be a JSON object');
  }
  const object = value as Record<string, unknown>;
  // Version first: a newer message's new fields must read as "unsupported_version", not "unknown_field".
  if (object.v !== undefined && object.v !== null && object.v !== USAGE_MESSAGE_VERSION) {
    return fail('unsupported_version', 'v', `version ${JSON.stringify(object.v)} is not supported, expected 1`);
  }
  const kind = object.kind ?? 'event';
  if (kind !== 'event' && kind !== 'counter') return fail('invalid_field', 'kind', `kind must be "event" or "counter", got ${JSON.stringify(object.kind)}`);
  const fields: readonly string[] = kind === 'counter' ? COUNTER_FIELDS : EVENT_FIELDS;
  for (const key of Object.keys(object)) {
    if (!fields.includes(key) && !(OPTIONAL_FIELDS as readonly string[]).includes(key)) {
      return fail('unknown_field', key, `field ${key} is not part of a usage message v1 of kind ${kind}`);
    }
  }
  for (const field of fields) {
    if (object[field] === undefined || object[field] === null) return fail('missing_field', field, `field ${field} is required`);
  }
  const { deviceId, seq, meter, unit, time, sig } = object;
  if (typeof deviceId !== 'string' || !ID_PATTERN.test(deviceId)) return fail('invalid_field', 'deviceId', 'deviceId must be 1-63 of a-z 0-9 . _ - starting with a letter or digit');
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return fail('invalid_field', 'seq', `seq must be an integer >= 1, got ${JSON.stringify(seq)}`);
  if (typeof meter !== 'string' || !ID_PATTERN.test(meter)) return fail('invalid_field', 'meter', 'meter must be 1-63 of a-z 0-9 . _ - starting with a letter or digit');
  if (kind === 'event') {
    const { quantity } = object;
    if (typeof quantity !== 'string') return fail('invalid_field', 'quantity', `quantity must be a string of digits, got a ${typeof quantity}`);
    if (!QUANTITY.test(quantity)) {
      return fail('invalid_field', 'quantity', `quantity ${JSON.stringify(quantity)} must be a positive integer in base units, at most ${QUANTITY_DIGITS_MAX} digits`);
    }
  } else {
    const { reading, epoch } = object;
    if (typeof reading !== 'string' || !READING.test(reading)) {
      return fail('invalid_field', 'reading', `reading ${JSON.stringify(reading)} must be a non-negative integer in base units as a string, at most ${QUANTITY_DIGITS_MAX} digits`);
    }
    if (typeof epoch !== 'string' || !ID_PATTERN.test(epoch)) return fail('invalid_field', 'epoch', 'epoch must be 1-63 of a-z 0-9 . _ - starting with a letter or digit');
  }
  if (typeof unit !== 'string' || !UNIT.test(unit)) return fail('invalid_field', 'unit', 'unit must be 1-32 letters, digits, _ or -');
  if (typeof time !== 'string' || Number.isNaN(usageTimeMs(time))) {
    return fail('invalid_field', 'time', 'time must be an RFC 3339 UTC timestamp like 2026-11-27T15:00:00.000Z');
  }
  if (sig !== undefined && (typeof sig !== 'string' || !SIGNATURE.test(sig))) return fail('invalid_field', 'sig', 'sig must be 128 lower-case hex digits (an Ed25519 signature)');
  // Object literals rather than spreads: this runs for every message.
  let message: UsageMessage;
  if (kind === 'counter') message = { v: 1, kind: 'counter', deviceId, seq, meter, reading: object.reading as string, epoch: object.epoch as string, unit, time };
  else if (object.kind === 'event') message = { v: 1, kind: 'event', deviceId, seq, meter, quantity: object.quantity as string, unit, time };
  else message = { v: 1, deviceId, seq, meter, quantity: object.quantity as string, unit, time };
  if (sig !== undefined) message.sig = sig as string;
  return { ok: true, message };
}

/** The bytes a device signs: the canonical message without its `sig`. */
export function unsignedMessage(message: UsageMessage): Omit<UsageMessage, 'sig'> {
  const { sig: _sig, ...rest } = message;
  return rest;
}

/** MQTT topics of a device. A device may publish only to its own usage topic. */
export const TOPIC_ROOT = 'meterbridge/v1/devices';

export function usageTopic(deviceId: string): string {
  return `${TOPIC_ROOT}/${deviceId}/usage`;
}

/** Where the gateway tells an MQTT 3.1.1 device why a message was refused. */
export function rejectionTopic(deviceId: string): string {
  return `${TOPIC_ROOT}/${deviceId}/rejections`;
}
