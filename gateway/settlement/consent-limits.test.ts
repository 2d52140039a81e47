import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addSpend, BOUNDARY_MARGIN_MS, checkLimits, partCapMinor, pruneSpend, removeSpend, splitAmount, windowsAround, type ConsentCaps } from './consent-limits.ts';

const utc = (text: string): number => Date.parse(text);
const money = (minor: bigint): string => `${minor}`;
const caps: ConsentCaps = {
  consentId: 'c1',
  createdMs: utc('2026-03-01T10:00:00Z'),
  currency: 'GBP',
  maxIndividualMinor: 600n,
  periodicLimits: [{ periodType: 'Day', periodAlignment: 'Calendar', amountMinor: 2_500n }],
};

describe('splitAmount', () => {
  it('splits into near-equal parts of at most the cap, larger first', () => {
    expect(splitAmount(1_450n, 600n, 12)).toEqual([484n, 483n, 483n]);
    expect(splitAmount(600n, 600n, 12)).toEqual([600n]);
    expect(splitAmount(1n, 600n, 12)).toEqual([1n]);
  });

  it('refuses to split beyond partsMax, and a non-positive amount or cap', () => {
    expect(splitAmount(601n * 12n, 601n, 11)).toBeUndefined();
    expect(() => splitAmount(0n, 600n, 12)).toThrow(RangeError);
    expect(() => splitAmount(5n, 0n, 12)).toThrow(RangeError);
  });

  it('keeps every minor unit and every cap, for any amount and cap', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: 10n ** 15n }), fc.bigInt({ min: 1n, max: 10n ** 12n }), (amount, cap) => {
      const parts = splitAmount(amount, cap, 1_000_000);
      if (parts === undefined) return (amount + cap - 1n) / cap > 1_000_000n;
      return parts.reduce((a, b) => a + b, 0n) === amount && parts.every((p) => p > 0n && p <= cap) && parts[0]! - parts.at(-1)! <= 1n;
    }));
  });
});

describe('checkLimits', () => {
  it('caps a part at the smaller of MaximumIndividualAmount and any whole period limit', () => {
    expect(partCapMinor(caps)).toBe(600n);
    expect(partCapMinor({ ...caps, periodicLimits: [{ periodType: 'Week', periodAlignment: 'Consent', amountMinor: 250n }] })).toBe(250n);
  });

  it('lets a payment through that fits the period and refuses the one that would break it, until the period ends', () => {
    const at = utc('2026-03-02T12:00:00Z');
    const fits = checkLimits(caps, {}, 600n, at, money);
    expect(fits).toEqual({ ok: true, windowIds: [`0@${utc('2026-03-02T00:00:00Z')}`] });
    const spent = addSpend(caps, {}, fits.ok ? fits.windowIds : [], 2_000n);
    expect(checkLimits(caps, spent, 500n, at, money).ok).toBe(true);
    const refused = checkLimits(caps, spent, 501n, at, money);
    expect(refused).toEqual({ ok: false, untilMs: utc('2026-03-03T00:00:00Z') + BOUNDARY_MARGIN_MS, reason: 'the Day limit (Calendar aligned) of 2500 for 2026-03-02 to 2026-03-03 has 2000 paid, so 501 more would exceed it' });
  });

  it('refuses a payment above MaximumIndividualAmount whatever the periods hold', () => {
    expect(checkLimits(caps, {}, 601n, utc('2026-03-02T12:00:00Z'), money)).toMatchObject({ ok: false, reason: expect.stringMatching(/exceeds the consent's MaximumIndividualAmount of 600/) });
  });

  it('counts a payment near midnight in both days, since the bank may see it in either', () => {
    const windows = windowsAround(caps, utc('2026-03-02T23:30:00Z')).map((w) => w.id);
    expect(windows).toEqual([`0@${utc('2026-03-02T00:00:00Z')}`, `0@${utc('2026-03-03T00:00:00Z')}`]);
    const spent = addSpend(caps, {}, windows, 2_400n);
    expect(checkLimits(caps, spent, 200n, utc('2026-03-03T09:00:00Z'), money).ok).toBe(false);
  });

  it('takes back what the bank did not make, and forgets ended periods', () => {
    const id = `0@${utc('2026-03-02T00:00:00Z')}`;
    const spent = removeSpend(addSpend(caps, {}, [id], 700n), [id], 300n);
    expect(spent[id]).toEqual({ endMs: utc('2026-03-03T00:00:00Z'), paidMinor: '400' });
    expect(removeSpend(spent, [id], 1_000n)[id]!.paidMinor).toBe('0');
    expect(pruneSpend(spent, utc('2026-03-03T00:00:00Z') + BOUNDARY_MARGIN_MS)).toEqual({});
    expect(pruneSpend(spent, utc('2026-03-03T00:00:00Z'))).toEqual(spent);
  });
});
