import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.ts';
import { canonicalMessageJson, canonicalRecordJson } from './canonical-usage.ts';

const recordKeys = ['amountNano', 'counterEvent', 'currency', 'deviceId', 'deviceSig', 'deviceTime', 'epoch', 'gatewayId', 'index', 'kind', 'messageHash', 'meter', 'payer', 'period', 'periodQtyBefore', 'prevEpoch', 'prevReading', 'quantity', 'reading', 'receivedAt', 'seq', 'tariff', 'tariffHash', 'unit', 'unitPrice', 'v'];
const messageKeys = ['deviceId', 'epoch', 'kind', 'meter', 'quantity', 'reading', 'seq', 'sig', 'time', 'unit', 'v'];
const value = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.stringMatching(/^[a-z0-9._-]{1,20}$/), fc.integer(), fc.double(), fc.constant(-0), fc.constant(undefined), fc.boolean(), fc.constant(null));

/** For random objects with (mostly) the given keys: the fast path writes what canonicalJson writes, or both throw. */
function agreesWithCanonicalJson(fast: (object: object) => string, keys: string[], seed: number): void {
  fc.assert(fc.property(fc.dictionary(fc.oneof(fc.constantFrom(...keys), fc.string()), value), (object) => {
    let expected: string | Error;
    try {
      expected = canonicalJson(object);
    } catch (error) {
      expected = error as Error;
    }
    if (expected instanceof Error) expect(() => fast(object)).toThrow();
    else expect(fast(object)).toBe(expected);
  }), { numRuns: 20_000, seed });
}

describe('canonical fast paths', () => {
  it('write exactly what canonicalJson writes, for any record-shaped object (property)', () => {
    agreesWithCanonicalJson(canonicalRecordJson, recordKeys, 8785);
  });

  it('write exactly what canonicalJson writes, for any message-shaped object (property)', () => {
    agreesWithCanonicalJson(canonicalMessageJson, messageKeys, 8786);
  });

  it('match canonicalJson on a real record and message', () => {
    const message = { v: 1, deviceId: 'cnc-1', seq: 41, meter: 'cycles', quantity: '1', unit: 'cycle', time: '2026-11-27T15:00:00.000Z' };
    expect(canonicalMessageJson(message)).toBe(canonicalJson(message));
    const record = { ...message, index: 7, gatewayId: 'gw', deviceTime: message.time, receivedAt: '2026-11-27T15:00:01.000Z', payer: 'acme', tariff: 'cycles@1', unitPrice: '0.0003', currency: 'EUR', amountNano: '300000', messageHash: 'ab'.repeat(32) };
    expect(canonicalRecordJson(record)).toBe(canonicalJson(record));
  });
});
