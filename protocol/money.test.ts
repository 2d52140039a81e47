import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyRuns } from '../test/vectors/property-seed.ts';
import {
  formatDecimal,
  formatMinor,
  formatNano,
  MINOR_DIGITS,
  minorDigits,
  NANO_PER_MAJOR,
  nanoPerMinor,
  parseDecimal,
  parseMinor,
  parsePriceNano,
  toMinorUnits,
} from './money.ts';

const CURRENCIES = Object.keys(MINOR_DIGITS);

describe('parseDecimal and formatDecimal', () => {
  it.each([
    ['0', 9, 0n],
    ['0.0003', 9, 300_000n],
    ['12.345678901', 9, 12_345_678_901n],
    ['0.000000001', 9, 1n],
    ['1', 2, 100n],
    ['1.5', 2, 150n],
    ['12.34', 2, 1234n],
    ['1234', 0, 1234n],
    ['1.000000000', 9, 1_000_000_000n],
    ['99999999999999999999.999999999', 9, 99_999_999_999_999_999_999_999_999_999n],
  ])('reads %j at %i decimals as %s', (text, digits, value) => {
    expect(parseDecimal(text, digits, 'price')).toBe(value);
  });

  it.each([
    [0n, 9, '0.000000000'],
    [300_000n, 9, '0.000300000'],
    [12_345_678_901n, 9, '12.345678901'],
    [5n, 2, '0.05'],
    [1234n, 2, '12.34'],
    [1234n, 0, '1234'],
    [-5n, 2, '-0.05'],
    [-1234n, 0, '-1234'],
  ])('writes %s at %i decimals as %j', (value, digits, text) => {
    expect(formatDecimal(value, digits)).toBe(text);
  });

  it('reads back whatever it writes, for any non-negative amount and scale', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 96n }), fc.integer({ min: 0, max: 18 }), (value, digits) => {
        expect(parseDecimal(formatDecimal(value, digits), digits, 'amount')).toBe(value);
      }),
      propertyRuns(5_000),
    );
  });

  it('writes back the same digits it reads when the text has exactly the scale’s decimals', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 24n }), fc.integer({ min: 1, max: 12 }), (whole, digits) => {
        const text = `${whole}.${'7'.repeat(digits)}`;
        expect(formatDecimal(parseDecimal(text, digits, 'amount'), digits)).toBe(text);
      }),
      propertyRuns(2_000),
    );
  });

  it('accepts exactly as many decimals as the scale holds', () => {
    expect(parseDecimal('0.123456789', 9, 'unitPrice')).toBe(123_456_789n);
  });

  it('refuses more decimals than the scale holds, naming the field and the count', () => {
    expect(() => parseDecimal('0.1234567891', 9, 'unitPrice')).toThrow(RangeError);
    expect(() => parseDecimal('0.1234567891', 9, 'unitPrice')).toThrow(/^unitPrice: .*10 decimal places, at most 9/);
    expect(() => parseDecimal('1.0', 0, 'amount')).toThrow(/^amount: .*1 decimal places, at most 0/);
  });

  it('accepts zero and plain digits', () => {
    expect(parseDecimal('0', 2, 'amount')).toBe(0n);
    expect(parseDecimal('10', 2, 'amount')).toBe(1000n);
  });

  it.each(['-1', '-0.01', '-0'])('refuses the negative %j, naming the field', (text) => {
    expect(() => parseDecimal(text, 2, 'maxIndividualAmount')).toThrow(RangeError);
    expect(() => parseDecimal(text, 2, 'maxIndividualAmount')).toThrow(/^maxIndividualAmount: /);
  });

  it.each(['', ' ', 'abc', '1e3', '1E3', '01', '00.5', '1.', '.5', ' 1', '1 ', '1,5', '+1', '0x10', '1_000', 'Infinity', 'NaN', '١', '１'])(
    'refuses the junk %j, naming the field',
    (text) => {
      expect(() => parseDecimal(text, 9, 'unitPrice')).toThrow(RangeError);
      expect(() => parseDecimal(text, 9, 'unitPrice')).toThrow(/^unitPrice: .* is not a non-negative decimal/);
    },
  );

  it.each([12, null, undefined, 1n, {}])('refuses the non-string %s with a TypeError naming the field', (value) => {
    expect(() => parseDecimal(value as unknown as string, 9, 'unitPrice')).toThrow(TypeError);
    expect(() => parseDecimal(value as unknown as string, 9, 'unitPrice')).toThrow(/^unitPrice: must be a decimal string/);
  });
});

describe('prices and minor units', () => {
  it('reads a price per unit into nano of the major unit, and writes it back with nine decimals', () => {
    expect(parsePriceNano('0.0003', 'tariffs.cnc.unitPrice')).toBe(300_000n);
    expect(formatNano(300_000n)).toBe('0.000300000');
    expect(formatNano(12_345_678_901n)).toBe('12.345678901');
  });

  it('refuses a price finer than one nano, naming the field', () => {
    expect(() => parsePriceNano('0.0000000001', 'tariffs.cnc.unitPrice')).toThrow(/^tariffs\.cnc\.unitPrice: /);
  });

  it('writes minor units with the currency’s own decimals', () => {
    expect(formatMinor(1234n, 'EUR')).toBe('12.34');
    expect(formatMinor(5n, 'GBP')).toBe('0.05');
    expect(formatMinor(1234n, 'JPY')).toBe('1234');
  });

  it('reads minor units with the currency’s own decimals', () => {
    expect(parseMinor('12.34', 'EUR', 'amount')).toBe(1234n);
    expect(parseMinor('12.3', 'EUR', 'amount')).toBe(1230n);
    expect(parseMinor('1234', 'JPY', 'amount')).toBe(1234n);
  });

  it('refuses minor units finer than the currency has, naming the field', () => {
    expect(() => parseMinor('12.345', 'EUR', 'payers.acme.maxIndividualAmount')).toThrow(/^payers\.acme\.maxIndividualAmount: .*3 decimal places, at most 2/);
    expect(() => parseMinor('12.3', 'JPY', 'amount')).toThrow(/^amount: .*at most 0/);
  });

  it.each(CURRENCIES)('knows the minor digits of %s', (currency) => {
    expect(minorDigits(currency)).toBe(MINOR_DIGITS[currency]);
    expect(nanoPerMinor(currency)).toBe(NANO_PER_MAJOR / 10n ** BigInt(MINOR_DIGITS[currency]!));
  });

  it('has 10^7 nano per cent and 10^9 nano per yen', () => {
    expect(nanoPerMinor('EUR')).toBe(10_000_000n);
    expect(nanoPerMinor('JPY')).toBe(1_000_000_000n);
  });

  it.each(['XXX', 'eur', '', 'EURO', 'constructor', 'toString', '__proto__', 'hasOwnProperty'])(
    'refuses the unsupported currency %j, naming the field',
    (currency) => {
      expect(() => minorDigits(currency)).toThrow(RangeError);
      expect(() => minorDigits(currency)).toThrow(/^currency: .* is not supported/);
      expect(() => toMinorUnits(1n, currency)).toThrow(/^currency: /);
    },
  );
});

describe('toMinorUnits', () => {
  it.each([
    [12_345_678_901n, 'EUR', 1234n, 5_678_901n],
    [0n, 'EUR', 0n, 0n],
    [9_999_999n, 'EUR', 0n, 9_999_999n],
    [10_000_000n, 'EUR', 1n, 0n],
    [1_999_999_999n, 'JPY', 1n, 999_999_999n],
  ])('splits %s nano of %s into %s minor and %s carried', (amountNano, currency, minor, carriedNano) => {
    expect(toMinorUnits(amountNano, currency)).toEqual({ minor, carriedNano });
  });

  it('refuses a negative amount, naming the field', () => {
    expect(() => toMinorUnits(-1n, 'EUR')).toThrow(RangeError);
    expect(() => toMinorUnits(-1n, 'EUR')).toThrow(/^amountNano: -1 is negative/);
  });

  it('loses nothing: minor × nanoPerMinor + carried = amount, with 0 <= carried < nanoPerMinor', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 96n }), fc.constantFrom(...CURRENCIES), (amountNano, currency) => {
        const perMinor = nanoPerMinor(currency);
        const { minor, carriedNano } = toMinorUnits(amountNano, currency);
        return minor * perMinor + carriedNano === amountNano && carriedNano >= 0n && carriedNano < perMinor;
      }),
      propertyRuns(100_000),
    );
  });

  it('loses nothing across a sequence of batches that each carry their remainder into the next', () => {
    const batchTotals = fc.array(fc.bigInt({ min: 0n, max: 10n ** 15n }), { maxLength: 40 });
    fc.assert(
      fc.property(batchTotals, fc.constantFrom(...CURRENCIES), (totals, currency) => {
        const perMinor = nanoPerMinor(currency);
        let carry = 0n;
        let paidMinor = 0n;
        for (const totalNano of totals) {
          const { minor, carriedNano } = toMinorUnits(totalNano + carry, currency);
          // The identity each batch header states: total + carriedIn = amount × perMinor + carriedOut.
          if (totalNano + carry !== minor * perMinor + carriedNano) return false;
          if (carriedNano < 0n || carriedNano >= perMinor) return false;
          paidMinor += minor;
          carry = carriedNano;
        }
        const sumNano = totals.reduce((sum, total) => sum + total, 0n);
        return sumNano === paidMinor * perMinor + carry;
      }),
      propertyRuns(10_000),
    );
  });
});
