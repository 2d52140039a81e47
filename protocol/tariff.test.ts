import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyRuns } from '../test/vectors/property-seed.ts';
import { canonicalJson } from './canonical-json.ts';
import { formatDecimal, nanoPerMinor, parsePriceNano, toMinorUnits } from './money.ts';
import {
  chargeNano,
  checkTariffSchedule,
  checkTariffVersion,
  marginalChargeNano,
  minimumTopUpNano,
  periodOf,
  resolveTariff,
  type TariffRule,
  type TariffSchedule,
  tariffHash,
  type TariffVersion,
  unitFactor,
} from './tariff.ts';

const EUR = 1_000_000_000n; // nano per major unit

function tariff(fields: Partial<TariffVersion> & { rule: TariffRule }): TariffVersion {
  return checkTariffVersion({ v: 1, id: 'cnc@1', meter: 'cnc', version: '1', effectiveFrom: '2026-01-01T00:00:00Z', currency: 'EUR', baseUnit: 'cycle', priceUnit: 'cycle', period: 'month', timeZone: 'UTC', ...fields });
}

const perUnit = (unitPrice: string): TariffRule => ({ type: 'per_unit', unitPrice });

/** Sum of the marginal charges of `quantities` recorded one after another in one period. */
function recordedNano(t: TariffVersion, quantities: bigint[], closed = false): bigint {
  let before = 0n;
  let sum = 0n;
  for (const q of quantities) {
    sum += marginalChargeNano(t, before, q, closed);
    before += q;
  }
  return sum;
}

describe('unitFactor', () => {
  it.each([
    ['m', 'mile', 1_609_344n, 1000n],
    ['m', 'km', 1000n, 1n],
    ['wh', 'kwh', 1000n, 1n],
    ['slot-s', 'slot-h', 3600n, 1n],
    ['s', 'h', 3600n, 1n],
    ['cycle', 'cycle', 1n, 1n],
    ['pulse', 'pulse', 1n, 1n],
    ['km', 'm', 1n, 1000n],
  ])('says one %s is %i/%i %s… in lowest terms', (base, price, num, den) => {
    const factor = unitFactor(base, price);
    expect(factor.num * den).toBe(num * factor.den);
    expect(factor.num * den === num * factor.den && [factor.num, factor.den].every((x) => x > 0n)).toBe(true);
  });

  it('gives the mile in lowest terms, 201168/125', () => {
    expect(unitFactor('m', 'mile')).toEqual({ num: 201_168n, den: 125n });
  });

  it.each([
    ['m', 'kwh', /length is not energy/],
    ['slot-s', 's', /slot-time is not time/],
    ['m', 'furlong', /unknown unit/],
    ['pulse', 'cycle', /unknown unit/],
  ])('refuses to convert %s to %s', (base, price, message) => {
    expect(() => unitFactor(base, price)).toThrow(RangeError);
    expect(() => unitFactor(base, price)).toThrow(message);
  });
});

describe('chargeNano per rule', () => {
  it('prices cycles per cycle: 1000 cycles at 0.0003 EUR are 0.3 EUR', () => {
    const t = tariff({ rule: perUnit('0.0003') });
    expect(chargeNano(t, 1000n, false)).toBe(300_000_000n);
    expect(chargeNano(t, 0n, false)).toBe(0n);
    expect(chargeNano(t, 1n, true)).toBe(300_000n);
  });

  it('prices metres per mile exactly: 1.609344 EUR a mile is 0.001 EUR a metre', () => {
    const perMile = tariff({ baseUnit: 'm', priceUnit: 'mile', rule: perUnit('1.609344') });
    const perMetre = tariff({ baseUnit: 'm', priceUnit: 'm', rule: perUnit('0.001') });
    for (const metres of [1n, 999n, 1000n, 1_609_344n, 123_456_789n]) expect(chargeNano(perMile, metres, false)).toBe(chargeNano(perMetre, metres, false));
  });

  it('floors a non-terminating per-mile charge once, on the aggregate, not per record', () => {
    const t = tariff({ baseUnit: 'm', priceUnit: 'mile', rule: perUnit('1') });
    expect(chargeNano(t, 1n, false)).toBe(621_371n); // 1/1609.344 EUR = 621371.19… nano
    expect(chargeNano(t, 1609n, false)).toBe(999_786_248n); // 1609/1609.344 EUR = 0.99978624…
    expect(chargeNano(t, 1_609_344n, false)).toBe(1000n * EUR);
    // 1609 one-metre records: floored one by one they would lose 309 nano.
    expect(recordedNano(t, Array.from({ length: 1609 }, () => 1n))).toBe(999_786_248n);
    expect(1609n * 621_371n).toBe(999_785_939n);
  });

  it('prices Wh per kWh: 0.25 EUR a kWh is 0.00025 EUR a Wh', () => {
    const t = tariff({ baseUnit: 'wh', priceUnit: 'kwh', rule: perUnit('0.25') });
    expect(chargeNano(t, 1n, false)).toBe(250_000n);
    expect(chargeNano(t, 1234n, false)).toBe(308_500_000n);
    expect(chargeNano(t, 1234n, false)).toBe(chargeNano(tariff({ baseUnit: 'wh', priceUnit: 'wh', rule: perUnit('0.00025') }), 1234n, false));
  });

  it('prices slot-seconds per slot-hour: 3.60 GBP an hour is 0.001 GBP a second', () => {
    const t = tariff({ currency: 'GBP', baseUnit: 'slot-s', priceUnit: 'slot-h', rule: perUnit('3.60') });
    expect(chargeNano(t, 1n, false)).toBe(1_000_000n);
    expect(chargeNano(t, 5400n, false)).toBe(5_400_000_000n);
    const oneAnHour = tariff({ baseUnit: 'slot-s', priceUnit: 'slot-h', rule: perUnit('1') });
    expect(chargeNano(oneAnHour, 1n, false)).toBe(277_777n); // 1/3600 EUR, floored
    expect(chargeNano(oneAnHour, 3600n, false)).toBe(EUR);
  });

  describe('graduated, 3 tiers per kWh on a Wh meter: 0.30 up to 100, 0.20 up to 250.5, then 0.10', () => {
    const t = tariff({ baseUnit: 'wh', priceUnit: 'kwh', rule: { type: 'graduated', tiers: [{ upTo: '100', unitPrice: '0.30' }, { upTo: '250.5', unitPrice: '0.20' }, { upTo: null, unitPrice: '0.10' }] } });

    it.each([
      [0n, 0n],
      [99_000n, 29_700_000_000n], // 99 × 0.30
      [100_000n, 30n * EUR], // the boundary itself is still tier 1
      [101_000n, 30_200_000_000n], // 30 + 1 × 0.20
      [250_500n, 60_100_000_000n], // 30 + 150.5 × 0.20
      [300_000n, 65_050_000_000n], // 30 + 30.1 + 49.5 × 0.10
      [1n, 300_000n],
    ])('charges %i Wh %i nano', (wh, nano) => {
      expect(chargeNano(t, wh, false)).toBe(nano);
    });

    it('prices a record that crosses a boundary partly in each tier', () => {
      expect(marginalChargeNano(t, 99_000n, 2_000n, false)).toBe(500_000_000n); // 1 kWh at 0.30 + 1 kWh at 0.20
      expect(marginalChargeNano(t, 0n, 300_000n, false)).toBe(65_050_000_000n); // one record across all three
      expect(recordedNano(t, [50_000n, 100_000n, 100_000n, 50_000n])).toBe(65_050_000_000n);
    });
  });

  describe('volume tiers per cycle: 1.00 up to 100, 0.50 up to 1000, then 0.25, for all units', () => {
    const t = tariff({ rule: { type: 'volume', tiers: [{ upTo: '100', unitPrice: '1.00' }, { upTo: '1000', unitPrice: '0.50' }, { upTo: null, unitPrice: '0.25' }] } });

    it.each([
      [100n, 100n * EUR],
      [101n, 50_500_000_000n],
      [1000n, 500n * EUR],
      [1001n, 250_250_000_000n],
    ])('charges %i cycles %i nano', (cycles, nano) => {
      expect(chargeNano(t, cycles, false)).toBe(nano);
    });

    it('credits the record that reaches a cheaper tier (negative marginal)', () => {
      expect(marginalChargeNano(t, 100n, 1n, false)).toBe(-49_500_000_000n);
      expect(recordedNano(t, [60n, 40n, 1n])).toBe(50_500_000_000n);
    });
  });

  describe('package: 2 EUR per started block of 0.5 kWh, on a Wh meter', () => {
    const t = tariff({ baseUnit: 'wh', priceUnit: 'kwh', rule: { type: 'package', blockSize: '0.5', blockPrice: '2' } });

    it.each([
      [0n, 0n],
      [1n, 2n * EUR],
      [500n, 2n * EUR],
      [501n, 4n * EUR],
      [1500n, 6n * EUR],
    ])('charges %i Wh %i nano', (wh, nano) => {
      expect(chargeNano(t, wh, false)).toBe(nano);
    });

    it('charges a new block only to the record that starts it', () => {
      expect([marginalChargeNano(t, 0n, 1n, false), marginalChargeNano(t, 1n, 499n, false), marginalChargeNano(t, 500n, 1n, false)]).toEqual([2n * EUR, 0n, 2n * EUR]);
    });
  });

  describe('minimum 5 EUR per period on 0.01 EUR a cycle', () => {
    const t = tariff({ rule: perUnit('0.01'), minimumPerPeriod: '5' });

    it('charges the usage while the period is open and the minimum once it is closed', () => {
      expect(chargeNano(t, 100n, false)).toBe(1n * EUR);
      expect(chargeNano(t, 100n, true)).toBe(5n * EUR);
      expect(minimumTopUpNano(t, 100n)).toBe(4n * EUR);
    });

    it('adds nothing at close above the minimum, or to a period without usage', () => {
      expect(chargeNano(t, 1000n, true)).toBe(10n * EUR);
      expect(minimumTopUpNano(t, 1000n)).toBe(0n);
      expect(chargeNano(t, 0n, true)).toBe(0n);
      expect(minimumTopUpNano(t, 0n)).toBe(0n);
    });

    it('prices late records of a closed period against the minimum already booked', () => {
      // 100 cycles while open (1 EUR) + top-up (4 EUR) + 300 late cycles = 5 EUR + what exceeds it.
      expect(recordedNano(t, [100n]) + minimumTopUpNano(t, 100n) + marginalChargeNano(t, 100n, 300n, true)).toBe(chargeNano(t, 400n, true));
      expect(marginalChargeNano(t, 100n, 300n, true)).toBe(0n);
      expect(marginalChargeNano(t, 400n, 200n, true)).toBe(1n * EUR);
      expect(marginalChargeNano(t, 0n, 10n, true)).toBe(5n * EUR); // a first, late record owes the minimum
    });
  });

  describe('cap 3 EUR per period on 0.01 EUR a cycle', () => {
    const t = tariff({ rule: perUnit('0.01'), capPerPeriod: '3', minimumPerPeriod: '1' });

    it('charges usage up to the cap and nothing beyond', () => {
      expect(chargeNano(t, 250n, false)).toBe(2_500_000_000n);
      expect(chargeNano(t, 400n, false)).toBe(3n * EUR);
      expect(marginalChargeNano(t, 250n, 100n, false)).toBe(500_000_000n);
      expect(marginalChargeNano(t, 300n, 100n, false)).toBe(0n);
    });

    it('applies the minimum below the cap when closed', () => {
      expect(chargeNano(t, 50n, true)).toBe(1n * EUR);
      expect(chargeNano(t, 400n, true)).toBe(3n * EUR);
    });
  });

  it.each([-1n, 1 as unknown as bigint])('refuses quantity %o', (quantity) => {
    const t = tariff({ rule: perUnit('1') });
    expect(() => chargeNano(t, quantity, false)).toThrow(/^quantityBase: must be a non-negative bigint/);
    expect(() => marginalChargeNano(t, quantity, 1n, false)).toThrow(/^quantityBeforeBase: /);
  });
});

describe('checkTariffVersion', () => {
  const base = { v: 1, id: 'energy@2', meter: 'energy', version: '2', effectiveFrom: '2026-01-01T00:00:00.000Z', currency: 'EUR', baseUnit: 'wh', priceUnit: 'kwh', period: 'month', timeZone: 'Europe/London' } as const;
  const tiers = (...upTo: Array<string | null>): TariffRule => ({ type: 'graduated', tiers: upTo.map((u) => ({ upTo: u, unitPrice: '0.1' })) });
  const CASES: Array<[string, Record<string, unknown>, Record<string, unknown>, RegExp]> = [
    ['ascending tiers', { rule: tiers('100', '100.5', null) }, { rule: tiers('100', '100', null) }, /^tariff energy@2: rule\.tiers\.1\.upTo: must be greater than 100$/],
    ['a positive first bound', { rule: tiers('0.000000001', null) }, { rule: tiers('0', null) }, /rule\.tiers\.0\.upTo: must be greater than 0/],
    ['an open last tier', { rule: tiers('100', null) }, { rule: tiers('100', '200') }, /rule\.tiers\.1\.upTo: must be null on the last tier/],
    ['only the last tier open', { rule: tiers('100', null) }, { rule: tiers(null, null) }, /rule\.tiers\.0\.upTo: /],
    ['some tiers', { rule: tiers(null) }, { rule: { type: 'volume', tiers: [] } }, /rule\.tiers: must be a non-empty array/],
    ['at most 32 tiers', { rule: tiers(...Array.from({ length: 31 }, (_, i) => `${i + 1}`), null) }, { rule: tiers(...Array.from({ length: 32 }, (_, i) => `${i + 1}`), null) }, /rule\.tiers: 33 tiers, at most 32/],
    ['prices with at most 9 decimals', { rule: perUnit('0.000000001') }, { rule: perUnit('0.0000000001') }, /rule\.unitPrice: "0\.0000000001" has 10 decimal places/],
    ['decimal prices', { rule: perUnit('1') }, { rule: perUnit('-1') }, /rule\.unitPrice: "-1" is not a non-negative decimal/],
    ['string prices', { rule: perUnit('1') }, { rule: { type: 'per_unit', unitPrice: 1 } }, /rule\.unitPrice: must be a decimal string/],
    ['a known rule type', { rule: perUnit('1') }, { rule: { type: 'flat', unitPrice: '1' } }, /rule\.type: "flat" must be one of/],
    ['only the rule’s fields', { rule: { type: 'package', blockSize: '1', blockPrice: '1' } }, { rule: { type: 'package', blockSize: '1', blockPrice: '1', unitPrice: '1' } }, /rule\.unitPrice: is not a known field/],
    ['a positive block', { rule: { type: 'package', blockSize: '0.5', blockPrice: '1' } }, { rule: { type: 'package', blockSize: '0', blockPrice: '1' } }, /rule\.blockSize: must be greater than 0/],
    ['convertible units', { priceUnit: 'wh' }, { priceUnit: 'mile' }, /^tariff energy@2: priceUnit: .*energy is not length/],
    ['known units', { baseUnit: 'm', priceUnit: 'km' }, { baseUnit: 'm', priceUnit: 'furlong' }, /priceUnit: .*unknown unit/],
    ['a supported currency', { currency: 'JPY' }, { currency: 'XYZ' }, /currency: XYZ is not supported/],
    ['a time zone Intl knows', { timeZone: 'Asia/Tokyo' }, { timeZone: 'Mars/Olympus_Mons' }, /timeZone: "Mars\/Olympus_Mons" is not a time zone/],
    ['a UTC effectiveFrom', { effectiveFrom: '2026-11-01T00:00:00Z' }, { effectiveFrom: '2026-11-01T01:00:00+01:00' }, /effectiveFrom: .* must be UTC/],
    ['a real date', { effectiveFrom: '2028-02-29T00:00:00Z' }, { effectiveFrom: '2026-02-29T00:00:00Z' }, /effectiveFrom: "2026-02-29T00:00:00Z" is not a valid date/],
    ['a day or month period', { period: 'day' }, { period: 'week' }, /period: "week" must be "day" or "month"/],
    ['a minimum within the cap', { minimumPerPeriod: '5', capPerPeriod: '5' }, { minimumPerPeriod: '5.01', capPerPeriod: '5' }, /minimumPerPeriod: must not exceed capPerPeriod 5/],
    ['a decimal cap', { capPerPeriod: '100' }, { capPerPeriod: '1e3' }, /capPerPeriod: "1e3" is not a non-negative decimal/],
    ['an id of meter and version', { id: 'energy@2/acme' }, { id: 'energy@3' }, /^tariff energy@3: id: must be "energy@2" or "energy@2\/<payer>"/],
    ['a payer id after the slash', { id: 'energy@2/acme' }, { id: 'energy@2/' }, /id: must be/],
    ['v 1', { v: 1 }, { v: 2 }, /v: must be 1/],
    ['only known fields', {}, { colour: 'red' }, /^tariff energy@2: colour: is not a known field/],
  ];

  it.each(CASES.map(([what, good]) => [what, good] as const))('accepts %s', (_what, good) => {
    const t = checkTariffVersion({ ...base, rule: perUnit('0.25'), ...good });
    expect(Object.isFrozen(t) && Object.isFrozen(t.rule)).toBe(true);
    expect(chargeNano(t, 1000n, true) >= 0n).toBe(true);
  });

  it.each(CASES.map(([what, , bad, message]) => [what, bad, message] as const))('refuses a tariff without %s, naming the field', (_what, bad, message) => {
    expect(() => checkTariffVersion({ ...base, rule: perUnit('0.25'), ...bad })).toThrow(message);
  });

  it('refuses a non-object with a TypeError', () => {
    expect(() => checkTariffVersion('per_unit')).toThrow(TypeError);
    expect(() => chargeNano({ ...base, rule: perUnit('x') } as TariffVersion, 1n, false)).toThrow(/^tariff energy@2: rule\.unitPrice: /);
  });
});

describe('tariffHash', () => {
  const t = tariff({ rule: { type: 'volume', tiers: [{ upTo: '10', unitPrice: '1' }, { upTo: null, unitPrice: '0.5' }] }, capPerPeriod: '100' });

  it('is the SHA-256 of the RFC 8785 canonical JSON, cross-checked with node:crypto', () => {
    expect(tariffHash(t)).toBe(createHash('sha256').update(canonicalJson(t)).digest('hex'));
    expect(tariffHash(JSON.parse(JSON.stringify(t)) as TariffVersion)).toBe(tariffHash(t));
  });

  it('changes with any field', () => {
    expect(tariffHash(tariff({ ...t, capPerPeriod: '100.01' }))).not.toBe(tariffHash(t));
    expect(tariffHash(tariff({ ...t, id: 'cnc@1/acme' }))).not.toBe(tariffHash(t));
  });
});

describe('resolveTariff', () => {
  const schedule: TariffSchedule = {
    meter: 'cnc',
    baseUnit: 'cycle',
    versions: [
      { v: 1, version: '2', effectiveFrom: '2026-11-01T00:00:00Z', currency: 'EUR', priceUnit: 'cycle', period: 'month', timeZone: 'Europe/London', rule: perUnit('0.0004'), overrides: { acme: { rule: perUnit('0.0002'), minimumPerPeriod: '1' } } },
      { v: 1, version: '1', effectiveFrom: '2026-01-01T00:00:00Z', currency: 'EUR', priceUnit: 'cycle', period: 'month', timeZone: 'Europe/London', rule: perUnit('0.0003') },
    ],
  };

  it.each([
    ['2025-12-31T23:59:59.999Z', undefined],
    ['2026-01-01T00:00:00Z', 'cnc@1'],
    ['2026-10-31T23:59:59.999Z', 'cnc@1'],
    ['2026-11-01T00:00:00Z', 'cnc@2'],
    ['2026-11-01T00:00:00.000000001Z', 'cnc@2'],
    ['2026-11-01T00:59:59+01:00', 'cnc@1'],
    ['2026-11-01T01:00:00+01:00', 'cnc@2'],
  ])('at %s picks %s: the latest effectiveFrom not after it', (at, id) => {
    expect(resolveTariff(schedule, 'globex', at)?.id).toBe(id);
  });

  it('merges a payer override and names it in the id', () => {
    const acme = resolveTariff(schedule, 'acme', '2026-11-15T00:00:00Z')!;
    expect(acme).toMatchObject({ id: 'cnc@2/acme', meter: 'cnc', baseUnit: 'cycle', rule: perUnit('0.0002'), minimumPerPeriod: '1', timeZone: 'Europe/London' });
    expect(acme).not.toHaveProperty('overrides');
    expect(chargeNano(acme, 1000n, false)).toBe(200_000_000n);
    expect(chargeNano(resolveTariff(schedule, 'globex', '2026-11-15T00:00:00Z')!, 1000n, false)).toBe(400_000_000n);
    expect(resolveTariff(schedule, 'acme', '2026-10-15T00:00:00Z')?.id).toBe('cnc@1'); // no override on version 1
  });

  it('returns the same object each time, so per-object caches stay warm', () => {
    expect(resolveTariff(schedule, 'acme', '2026-11-02T00:00:00Z')).toBe(resolveTariff(schedule, 'acme', '2026-12-02T00:00:00Z'));
  });

  it.each([
    ['two versions at one instant', { versions: [schedule.versions[1]!, { ...schedule.versions[1]!, version: '1b' }] }, /^tariff cnc@1b?: effectiveFrom: cnc@1b? takes effect at the same instant/],
    ['a bad override rule', { versions: [{ ...schedule.versions[1]!, overrides: { acme: { rule: perUnit('x') } } }] }, /^tariff cnc@1\/acme: rule\.unitPrice: /],
    ['an override minimum above the cap', { versions: [{ ...schedule.versions[1]!, capPerPeriod: '2', overrides: { acme: { minimumPerPeriod: '3' } } }] }, /^tariff cnc@1\/acme: minimumPerPeriod: /],
    ['an unknown override field', { versions: [{ ...schedule.versions[1]!, overrides: { acme: { unitPrice: '1' } } }] }, /^tariff cnc@1: overrides\.acme\.unitPrice: is not a known field/],
    ['no versions', { versions: [] }, /versions: must be a non-empty array/],
  ])('refuses a schedule with %s', (_what, change, message) => {
    const bad = { ...schedule, ...change } as TariffSchedule;
    expect(() => checkTariffSchedule(bad)).toThrow(message);
    expect(() => resolveTariff(bad, 'acme', '2026-11-15T00:00:00Z')).toThrow(message);
  });

  it('refuses an instant that is not RFC 3339', () => {
    expect(() => resolveTariff(schedule, 'acme', '2026-11-15 00:00')).toThrow(/^at: "2026-11-15 00:00" is not an RFC 3339 instant/);
  });
});

describe('periodOf', () => {
  const london = tariff({ timeZone: 'Europe/London', period: 'day', rule: perUnit('1') });
  const londonMonth = tariff({ timeZone: 'Europe/London', rule: perUnit('1') });
  const tokyo = tariff({ timeZone: 'Asia/Tokyo', rule: perUnit('1') });

  it.each([
    ['2026-10-24T22:59:59Z', '2026-10-24'], // 23:59:59 BST
    ['2026-10-24T23:00:00Z', '2026-10-25'], // 00:00 BST
    ['2026-10-25T00:59:59Z', '2026-10-25'], // 01:59:59 BST, just before clocks go back
    ['2026-10-25T01:00:00Z', '2026-10-25'], // 01:00 GMT, the repeated hour
    ['2026-10-25T23:59:59.999Z', '2026-10-25'], // the 25-hour day ends at midnight GMT
    ['2026-10-26T00:00:00Z', '2026-10-26'],
  ])('puts %s in the London day %s across the DST change', (at, day) => {
    expect(periodOf(london, at)).toBe(day);
  });

  it.each([
    [londonMonth, '2026-03-31T23:30:00Z', '2026-04'], // 00:30 BST on 1 April
    [londonMonth, '2026-10-31T23:30:00Z', '2026-10'], // 23:30 GMT on 31 October
    [tokyo, '2026-11-30T14:59:59.999Z', '2026-11'],
    [tokyo, '2026-11-30T15:00:00Z', '2026-12'], // midnight JST
    [tokyo, '2026-12-01T00:00:00+09:00', '2026-12'],
  ])('puts %#: %s in the month %s', (t, at, month) => {
    expect(periodOf(t, at)).toBe(month);
  });

  it('is exact where a midnight falls inside its 15-minute cache bucket (Monrovia, UTC−0:44:30 in 1971)', () => {
    const monrovia = tariff({ timeZone: 'Africa/Monrovia', period: 'day', rule: perUnit('1') });
    expect(['1971-06-02T00:30:00Z', '1971-06-02T00:44:29Z', '1971-06-02T00:44:30Z', '1971-06-02T00:44:29Z'].map((at) => periodOf(monrovia, at))).toEqual(['1971-06-01', '1971-06-01', '1971-06-02', '1971-06-01']);
  });

  it.each(['2026-11-31T00:00:00Z', '2026-11-01T24:00:00Z', '2026-11-01', 'yesterday'])('refuses the instant %s', (at) => {
    expect(() => periodOf(london, at)).toThrow(/^at: /);
  });
});

// ---------------------------------------------------------------------------------------
// Properties

const UNIT_PAIRS: Array<[string, string]> = [['cycle', 'cycle'], ['m', 'm'], ['m', 'km'], ['m', 'mile'], ['wh', 'kwh'], ['slot-s', 'slot-h'], ['s', 'h']];
const decimalNano = (max: bigint): fc.Arbitrary<string> => fc.bigInt({ min: 0n, max }).map((n) => formatDecimal(n, 9));
const tiersArb = fc.array(fc.tuple(fc.bigInt({ min: 1n, max: 400n * EUR }), decimalNano(2n * EUR)), { minLength: 1, maxLength: 4 }).map((steps) => {
  let upTo = 0n;
  return steps.map(([step, unitPrice], i) => {
    upTo += step;
    return { upTo: i === steps.length - 1 ? null : formatDecimal(upTo, 9), unitPrice };
  });
});
const ruleArb: fc.Arbitrary<TariffRule> = fc.oneof(
  decimalNano(3n * EUR).map((unitPrice) => ({ type: 'per_unit' as const, unitPrice })),
  tiersArb.map((tiers) => ({ type: 'graduated' as const, tiers })),
  tiersArb.map((tiers) => ({ type: 'volume' as const, tiers })),
  fc.tuple(fc.bigInt({ min: 1n, max: 50n * EUR }), decimalNano(10n * EUR)).map(([size, blockPrice]) => ({ type: 'package' as const, blockSize: formatDecimal(size, 9), blockPrice })),
);
const tariffArb: fc.Arbitrary<TariffVersion> = fc
  .record({ units: fc.constantFrom(...UNIT_PAIRS), currency: fc.constantFrom('EUR', 'GBP', 'JPY'), rule: ruleArb, limits: fc.tuple(fc.option(fc.bigInt({ min: 0n, max: 500n * EUR }), { nil: undefined }), fc.option(fc.bigInt({ min: 0n, max: 500n * EUR }), { nil: undefined })) })
  .map(({ units: [baseUnit, priceUnit], currency, rule, limits: [a, b] }) => {
    const t: TariffVersion = { v: 1, id: 'meter@1', meter: 'meter', version: '1', effectiveFrom: '2026-01-01T00:00:00Z', currency, baseUnit, priceUnit, period: 'month', timeZone: 'UTC', rule };
    const [low, high] = a !== undefined && b !== undefined && a > b ? [b, a] : [a, b];
    if (low !== undefined) t.minimumPerPeriod = formatDecimal(low, 9);
    if (high !== undefined) t.capPerPeriod = formatDecimal(high, 9);
    return t;
  });
const quantityArb = fc.bigInt({ min: 0n, max: 3_000_000n });

function same(actual: bigint, expected: bigint, what: string): void {
  if (actual !== expected) throw new Error(`${what}: ${actual} !== ${expected}`);
}

describe('tariff properties', () => {
  it('telescopes: any split of a period’s usage sums to the charge of its total', () => {
    fc.assert(
      fc.property(tariffArb, fc.array(quantityArb, { minLength: 1, maxLength: 6 }), fc.boolean(), (t, quantities, closed) => {
        let before = 0n;
        let sum = 0n;
        for (const q of quantities) {
          const marginal = marginalChargeNano(t, before, q, closed);
          if (marginal < 0n && t.rule.type !== 'volume') throw new Error(`only volume tiers credit, got ${marginal}`);
          sum += marginal;
          before += q;
        }
        same(sum, chargeNano(t, before, closed), 'sum of marginals');
        same(chargeNano(t, before, false) + minimumTopUpNano(t, before), chargeNano(t, before, true), 'open charge + top-up');
        if (t.capPerPeriod !== undefined && chargeNano(t, before, closed) > parsePriceNano(t.capPerPeriod, 'cap')) throw new Error('above the cap');
      }),
      propertyRuns(100_000),
    );
  });

  it('conserves money through settlement: booked = settled + carried + pending, for every payer and currency', () => {
    const eventArb = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('use' as const), payer: fc.nat(2), tariff: fc.nat(2), period: fc.nat(2), quantity: quantityArb }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('settle' as const), payer: fc.nat(2) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), period: fc.nat(2) }) },
    );
    fc.assert(
      fc.property(fc.array(tariffArb, { minLength: 1, maxLength: 3 }), fc.array(eventArb, { maxLength: 16 }), (tariffs, events) => {
        const settlement = new SettlementModel();
        for (const event of events) {
          if (event.kind === 'use') settlement.use(event.payer, event.tariff % tariffs.length, tariffs[event.tariff % tariffs.length]!, event.period, event.quantity);
          else if (event.kind === 'settle') for (const currency of ['EUR', 'GBP', 'JPY']) settlement.settle(event.payer, currency);
          else settlement.close(event.period);
        }
        for (const period of [0, 1, 2]) settlement.close(period);
        for (const payer of [0, 1, 2]) for (const currency of ['EUR', 'GBP', 'JPY']) settlement.settle(payer, currency);
        settlement.check();
      }),
      propertyRuns(100_000),
    );
  });
});

/**
 * The settlement arithmetic, modelled purely: records priced at their marginal charge,
 * minimum top-ups booked at period close, and per (payer, currency) batches paying
 * pending + carried in whole minor units (toMinorUnits) and carrying the rest. A negative
 * balance (a volume-tier credit) is not paid out; it waits for later charges.
 */
class SettlementModel {
  readonly #groups = new Map<string, { t: TariffVersion; quantity: bigint; closed: boolean; bookedNano: bigint; account: string }>();
  readonly #accounts = new Map<string, { currency: string; bookedNano: bigint; pendingNano: bigint; carriedNano: bigint; settledMinor: bigint }>();
  readonly #closed = new Set<number>();

  #account(payer: number, currency: string): { currency: string; bookedNano: bigint; pendingNano: bigint; carriedNano: bigint; settledMinor: bigint } {
    const key = `${payer}/${currency}`;
    let account = this.#accounts.get(key);
    if (!account) this.#accounts.set(key, (account = { currency, bookedNano: 0n, pendingNano: 0n, carriedNano: 0n, settledMinor: 0n }));
    return account;
  }

  use(payer: number, tariffNo: number, t: TariffVersion, period: number, quantity: bigint): void {
    const key = `${payer}/${tariffNo}/${period}`;
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = { t, quantity: 0n, closed: this.#closed.has(period), bookedNano: 0n, account: `${payer}/${t.currency}` }));
    this.#book(payer, t.currency, group, marginalChargeNano(t, group.quantity, quantity, group.closed));
    group.quantity += quantity;
  }

  close(period: number): void {
    this.#closed.add(period);
    for (const [key, group] of this.#groups) {
      if (group.closed || !key.endsWith(`/${period}`)) continue;
      this.#book(Number(key.split('/')[0]), group.t.currency, group, minimumTopUpNano(group.t, group.quantity));
      group.closed = true;
    }
  }

  #book(payer: number, currency: string, group: { bookedNano: bigint }, amountNano: bigint): void {
    const account = this.#account(payer, currency);
    group.bookedNano += amountNano;
    account.bookedNano += amountNano;
    account.pendingNano += amountNano;
  }

  settle(payer: number, currency: string): void {
    const account = this.#accounts.get(`${payer}/${currency}`);
    if (!account || account.pendingNano + account.carriedNano < 0n) return;
    const { minor, carriedNano } = toMinorUnits(account.pendingNano + account.carriedNano, currency);
    account.settledMinor += minor;
    account.carriedNano = carriedNano;
    account.pendingNano = 0n;
  }

  check(): void {
    for (const group of this.#groups.values()) same(group.bookedNano, chargeNano(group.t, group.quantity, group.closed), 'a group books the charge of its total');
    for (const [key, account] of this.#accounts) {
      const perMinor = nanoPerMinor(account.currency);
      same(account.bookedNano, account.settledMinor * perMinor + account.carriedNano + account.pendingNano, `${key}: booked = settled + carried + pending`);
      if (account.carriedNano < 0n || account.carriedNano >= perMinor || account.settledMinor < 0n) throw new Error(`${key}: carried ${account.carriedNano} out of range`);
      if (account.pendingNano > 0n) throw new Error(`${key}: ${account.pendingNano} left unsettled after the final settlement`);
    }
  }
}
