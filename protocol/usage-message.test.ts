import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseUsageMessage,
  rejectionTopic,
  USAGE_PAYLOAD_BYTES_MAX,
  type UsageParseError,
  type UsageParseResult,
  usageTimeMs,
  usageTopic,
  validateUsageMessage,
} from './usage-message.ts';

const VALID = {
  v: 1,
  deviceId: 'cnc-7',
  seq: 41,
  meter: 'spindle-cycles',
  quantity: '1200',
  unit: 'cycle',
  time: '2026-11-27T15:00:00.000Z',
} as const;

const FIELDS = ['v', 'deviceId', 'seq', 'meter', 'quantity', 'unit', 'time'] as const;

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function parseJson(value: unknown): UsageParseResult {
  return parseUsageMessage(bytes(JSON.stringify(value)));
}

function errorOf(result: UsageParseResult): UsageParseError {
  if (result.ok) throw new Error(`expected a rejection, got ${JSON.stringify(result.message)}`);
  return result.error;
}

function expectAccepted(result: UsageParseResult): void {
  expect(result.ok ? 'accepted' : result.error).toBe('accepted');
}

function expectInvalid(change: Record<string, unknown>, field: string): void {
  const error = errorOf(parseJson({ ...VALID, ...change }));
  expect(error.reason).toBe('invalid_field');
  expect(error.field).toBe(field);
  expect(error.detail).toContain(field);
}

describe('parseUsageMessage accepts', () => {
  it('the example message from docs/protocol.md, field for field', () => {
    expect(parseJson(VALID)).toEqual({ ok: true, message: VALID });
  });

  it('the same message with its fields in any order and with whitespace', () => {
    const text = `{ "time": "${VALID.time}", "unit": "cycle", "quantity": "1200", "meter": "spindle-cycles",\n "seq": 41, "deviceId": "cnc-7", "v": 1 }`;
    expect(parseUsageMessage(bytes(text))).toEqual({ ok: true, message: VALID });
  });

  it('only the v1 fields in its result', () => {
    const result = parseJson(VALID);
    expect(result.ok && Object.keys(result.message).sort()).toEqual([...FIELDS].sort());
  });

  it('a payload that starts with a UTF-8 byte order mark, which the decoder drops', () => {
    expectAccepted(parseUsageMessage(new Uint8Array([0xef, 0xbb, 0xbf, ...bytes(JSON.stringify(VALID))])));
  });

  it('a duplicated member by its last occurrence, as JSON.parse does (devices must not send duplicates)', () => {
    const text = `${JSON.stringify(VALID).slice(0, -1)},"quantity":"7"}`;
    expect(parseUsageMessage(bytes(text))).toEqual({ ok: true, message: { ...VALID, quantity: '7' } });
  });

  it('a payload of exactly the maximum size', () => {
    const text = JSON.stringify(VALID);
    const padded = `${text.slice(0, -1)}${' '.repeat(USAGE_PAYLOAD_BYTES_MAX - text.length)}}`;
    expect(bytes(padded)).toHaveLength(USAGE_PAYLOAD_BYTES_MAX);
    expectAccepted(parseUsageMessage(bytes(padded)));
  });

  it.each([
    ['the smallest quantity', { quantity: '1' }],
    ['an 18-digit quantity', { quantity: '999999999999999999' }],
    ['seq 1', { seq: 1 }],
    ['the largest safe seq', { seq: Number.MAX_SAFE_INTEGER }],
    ['seq written as 41.0 in the JSON text, which is the number 41', { seq: 41.0 }],
    ['a one-character deviceId', { deviceId: '7' }],
    ['a 63-character deviceId', { deviceId: `a${'b'.repeat(62)}` }],
    ['a deviceId with . _ and -', { deviceId: 'yard.crane_2-b' }],
    ['a mixed-case unit', { unit: 'kWh' }],
    ['a 32-character unit', { unit: `u${'x'.repeat(31)}` }],
    ['a time without fractional seconds', { time: '2026-11-27T15:00:00Z' }],
    ['a time with nanoseconds', { time: '2026-11-27T15:00:00.123456789Z' }],
    ['29 February of a leap year', { time: '2028-02-29T23:59:59Z' }],
  ])('%s', (_name, change) => {
    expectAccepted(parseJson({ ...VALID, ...change }));
  });
});

describe('parseUsageMessage rejects', () => {
  it.each(FIELDS)('a message without %s as missing_field naming it', (field) => {
    const { [field]: _dropped, ...rest } = VALID;
    const error = errorOf(parseJson(rest));
    expect(error).toMatchObject({ reason: 'missing_field', field });
    expect(error.detail).toBe(`field ${field} is required`);
  });

  it.each(FIELDS)('a message with %s set to null as missing_field naming it', (field) => {
    expect(errorOf(parseJson({ ...VALID, [field]: null }))).toMatchObject({ reason: 'missing_field', field });
  });

  it.each([
    ['deviceId', 7],
    ['deviceId', ['cnc-7']],
    ['seq', '41'],
    ['seq', true],
    ['meter', 1],
    ['quantity', 1200],
    ['quantity', { value: '1200' }],
    ['unit', false],
    ['time', 1795791600000],
  ])('%s of the wrong type (%j) as invalid_field naming it', (field, value) => {
    expectInvalid({ [field]: value }, field);
  });

  it.each([
    ['negative', '-1'],
    ['zero', '0'],
    ['a decimal', '1.5'],
    ['an exponent', '1e3'],
    ['a leading zero', '01200'],
    ['19 digits', '1000000000000000000'],
    ['empty', ''],
    ['padded with a space', ' 1200'],
    ['a plus sign', '+1200'],
    ['a digit separator', '1_200'],
    ['non-ASCII digits', '١٢'],
  ])('a quantity that is %s as invalid_field naming quantity', (_name, quantity) => {
    expectInvalid({ quantity }, 'quantity');
  });

  it.each([
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['2^53, beyond the safe integers', 2 ** 53],
    ['1e300', 1e300],
  ])('seq %s as invalid_field naming seq', (_name, seq) => {
    expectInvalid({ seq }, 'seq');
  });

  it.each([
    ['a space instead of T', '2026-11-27 15:00:00Z'],
    ['a lower-case t', '2026-11-27t15:00:00Z'],
    ['a lower-case z', '2026-11-27T15:00:00z'],
    ['no zone', '2026-11-27T15:00:00'],
    ['a +01:00 offset', '2026-11-27T16:00:00+01:00'],
    ['a +00:00 offset', '2026-11-27T15:00:00+00:00'],
    ['no seconds', '2026-11-27T15:00Z'],
    ['ten fractional digits', '2026-11-27T15:00:00.1234567890Z'],
    ['an empty fraction', '2026-11-27T15:00:00.Z'],
    ['a date only', '2026-11-27'],
    ['milliseconds since the epoch as a string', '1795791600000'],
    ['month 13', '2026-13-01T00:00:00Z'],
    ['30 February', '2026-02-30T00:00:00Z'],
    ['29 February of a common year', '2026-02-29T00:00:00Z'],
    ['31 November', '2026-11-31T00:00:00Z'],
    ['hour 24', '2026-11-27T24:00:00Z'],
    ['minute 60', '2026-11-27T15:60:00Z'],
    ['a leap second', '2026-12-31T23:59:60Z'],
    ['a two-digit year', '26-11-27T15:00:00Z'],
  ])('a time with %s as invalid_field naming time', (_name, time) => {
    expectInvalid({ time }, 'time');
  });

  it.each([
    ['deviceId', 'CNC-7', 'upper case'],
    ['deviceId', '-cnc', 'a leading dash'],
    ['deviceId', '.cnc', 'a leading dot'],
    ['deviceId', `a${'b'.repeat(63)}`, '64 characters'],
    ['deviceId', 'cnc/7', 'an MQTT level separator'],
    ['deviceId', 'cnc+', 'an MQTT wildcard +'],
    ['deviceId', 'cnc#', 'an MQTT wildcard #'],
    ['deviceId', '', 'nothing in it'],
    ['meter', 'Spindle', 'upper case'],
    ['meter', 'spindle cycles', 'a space'],
    ['unit', '1cycle', 'a leading digit'],
    ['unit', `u${'x'.repeat(32)}`, '33 characters'],
    ['unit', 'm/s', 'a slash'],
    ['unit', '', 'nothing in it'],
  ])('%s %j (%s) as invalid_field naming it', (field, value, _why) => {
    expectInvalid({ [field]: value }, field);
  });

  it('a field v1 does not define as unknown_field naming it', () => {
    expect(errorOf(parseJson({ ...VALID, price: '0.01' }))).toMatchObject({ reason: 'unknown_field', field: 'price' });
  });

  it('a __proto__ member as unknown_field rather than a prototype', () => {
    const text = `${JSON.stringify(VALID).slice(0, -1)},"__proto__":{"seq":1}}`;
    expect(errorOf(parseUsageMessage(bytes(text)))).toMatchObject({ reason: 'unknown_field', field: '__proto__' });
  });

  it.each([2, 0, '1', 1.5, true])('version %j as unsupported_version naming v', (v) => {
    expect(errorOf(parseJson({ ...VALID, v }))).toMatchObject({ reason: 'unsupported_version', field: 'v' });
  });

  it('a version 2 message with fields v1 lacks as unsupported_version, not unknown_field', () => {
    expect(errorOf(parseJson({ ...VALID, v: 2, site: 'plant-3' }))).toMatchObject({ reason: 'unsupported_version', field: 'v' });
  });

  it('a version 2 message without a v1 field as unsupported_version, not missing_field', () => {
    const { quantity: _quantity, ...rest } = VALID;
    expect(errorOf(parseJson({ ...rest, v: 2 }))).toMatchObject({ reason: 'unsupported_version', field: 'v' });
  });

  it.each([
    ['plain text', 'hello'],
    ['truncated JSON', JSON.stringify(VALID).slice(0, -1)],
    ['an empty payload', ''],
    ['a trailing comma', `${JSON.stringify(VALID).slice(0, -1)},}`],
    ['single quotes', "{'v':1}"],
    ['two objects', `${JSON.stringify(VALID)}${JSON.stringify(VALID)}`],
    ['a byte order mark after the opening brace', `{\ufeff${JSON.stringify(VALID).slice(1)}`],
  ])('%s as malformed_json without a field', (_name, text) => {
    const error = errorOf(parseUsageMessage(bytes(text)));
    expect(error.reason).toBe('malformed_json');
    expect(error).not.toHaveProperty('field');
  });

  it.each([
    ['a lone continuation byte', [0x80]],
    ['0xff', [0xff]],
    ['an overlong encoding of /', [0xc0, 0xaf]],
    ['a UTF-8-encoded surrogate', [0xed, 0xa0, 0x80]],
    ['a truncated sequence', [0xe2, 0x82]],
  ])('invalid UTF-8 (%s) inside a string as malformed_json', (_name, badBytes) => {
    const [head, tail] = JSON.stringify(VALID).split('cnc-7') as [string, string];
    const payload = new Uint8Array([...bytes(`${head}cnc`), ...badBytes, ...bytes(tail)]);
    expect(errorOf(parseUsageMessage(payload))).toMatchObject({ reason: 'malformed_json' });
  });

  it.each([
    ['an array', [VALID]],
    ['a number', 1],
    ['a string', 'cnc-7'],
    ['null', null],
  ])('a payload that is %s, not an object, as invalid_field without a field', (_name, value) => {
    const error = errorOf(parseJson(value));
    expect(error.reason).toBe('invalid_field');
    expect(error).not.toHaveProperty('field');
  });

  it('a payload one byte over the maximum as payload_too_large, before parsing it', () => {
    const text = JSON.stringify(VALID);
    const padded = `${text.slice(0, -1)}${' '.repeat(USAGE_PAYLOAD_BYTES_MAX + 1 - text.length)}}`;
    expect(errorOf(parseUsageMessage(bytes(padded)))).toMatchObject({ reason: 'payload_too_large' });
    expect(errorOf(parseUsageMessage(new Uint8Array(USAGE_PAYLOAD_BYTES_MAX + 1).fill(0xff)))).toMatchObject({ reason: 'payload_too_large' });
  });
});

describe('validateUsageMessage', () => {
  it('accepts an already-parsed valid message', () => {
    expect(validateUsageMessage({ ...VALID })).toEqual({ ok: true, message: VALID });
  });

  it('rejects an already-parsed message with an undefined field as missing_field', () => {
    expect(errorOf(validateUsageMessage({ ...VALID, seq: undefined }))).toMatchObject({ reason: 'missing_field', field: 'seq' });
  });
});

describe('MQTT topics', () => {
  it('puts a device’s usage on meterbridge/v1/devices/<deviceId>/usage', () => {
    expect(usageTopic('cnc-7')).toBe('meterbridge/v1/devices/cnc-7/usage');
  });

  it('puts a device’s rejection notices on meterbridge/v1/devices/<deviceId>/rejections', () => {
    expect(rejectionTopic('cnc-7')).toBe('meterbridge/v1/devices/cnc-7/rejections');
  });

  it('keeps one device’s topics apart from another’s', () => {
    expect(usageTopic('cnc-7')).not.toBe(usageTopic('cnc-8'));
    expect(rejectionTopic('cnc-7')).not.toBe(usageTopic('cnc-7'));
  });
});

describe('usageTimeMs', () => {
  /** What it replaced: Date.parse, refused unless the fields survive the round trip through toISOString. */
  const byDate = (time: string): number => {
    const ms = Date.parse(time);
    return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 19) === time.slice(0, 19) ? ms : Number.NaN;
  };
  const pad = (n: number, width: number): string => String(n).padStart(width, '0');

  it('agrees with Date.parse on every date, clock and fraction, real or not (2·10^4 cases)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }),
        fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 60 }),
        fc.option(fc.stringMatching(/^[0-9]{1,9}$/)),
        (year, month, day, hour, minute, second, fraction) => {
          const time = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction ? `.${fraction}` : ''}Z`;
          expect(usageTimeMs(time)).toBe(byDate(time));
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it('knows leap years and month ends', () => {
    expect(usageTimeMs('2028-02-29T00:00:00Z')).toBe(Date.UTC(2028, 1, 29));
    expect(usageTimeMs('2026-02-29T00:00:00Z')).toBeNaN();
    expect(usageTimeMs('2000-02-29T23:59:59.999Z')).toBe(Date.UTC(2000, 1, 29, 23, 59, 59, 999));
    expect(usageTimeMs('2100-02-29T00:00:00Z')).toBeNaN();
    expect(usageTimeMs('2026-04-31T00:00:00Z')).toBeNaN();
    expect(usageTimeMs('2026-11-27T24:00:00Z')).toBeNaN();
  });
});
