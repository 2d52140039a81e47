import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalRecordJson } from '../../protocol/canonical-usage.ts';
import { recordSummaryOf } from './record-summary.ts';

/** Any text a string member may hold, quotes, backslashes and all. */
const anyText = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.stringMatching(/^[a-z0-9._-]{1,20}$/), fc.constantFrom('"', '\\', ',"payer":"x', '","seq":1', ',"kind":"counter"'));
const record = fc.record({
  v: fc.constant(1), index: fc.integer({ min: 1, max: 2 ** 40 }), gatewayId: anyText, deviceId: anyText, seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  meter: anyText, quantity: fc.stringMatching(/^[1-9][0-9]{0,20}$/), unit: anyText, deviceTime: anyText, receivedAt: anyText, payer: anyText,
  tariff: anyText, currency: anyText, amountNano: fc.stringMatching(/^-?[0-9]{1,30}$/), messageHash: anyText,
  kind: fc.option(fc.constantFrom('counter', 'minimum'), { nil: undefined }), counterEvent: fc.option(anyText, { nil: undefined }),
  deviceSig: fc.option(anyText, { nil: undefined }), epoch: fc.option(anyText, { nil: undefined }),
}, { requiredKeys: ['v', 'index', 'gatewayId', 'deviceId', 'seq', 'meter', 'quantity', 'unit', 'deviceTime', 'receivedAt', 'payer', 'tariff', 'currency', 'amountNano', 'messageHash'] });

describe('recordSummaryOf', () => {
  it('reads from the canonical text what JSON.parse reads, for any record (property, 2·10^4 cases)', () => {
    fc.assert(fc.property(record, (r) => {
      const parsed = JSON.parse(canonicalRecordJson(r)) as typeof r;
      const expected: Record<string, unknown> = { index: parsed.index, deviceId: parsed.deviceId, seq: parsed.seq, payer: parsed.payer, currency: parsed.currency, amountNano: parsed.amountNano };
      if (parsed.kind !== undefined) expected.kind = parsed.kind;
      expect(recordSummaryOf(canonicalRecordJson(r))).toEqual(expected);
    }), { numRuns: 20_000, seed: 4242 });
  });

  it('reads another layout the slow way, and throws on what is not JSON', () => {
    expect(recordSummaryOf('{ "index": 3, "deviceId": "d", "seq": 9, "payer": "p", "currency": "EUR", "amountNano": "5" }')).toEqual({ index: 3, deviceId: 'd', seq: 9, payer: 'p', currency: 'EUR', amountNano: '5' });
    expect(() => recordSummaryOf('{"amountNano":"1",')).toThrow();
  });
});
