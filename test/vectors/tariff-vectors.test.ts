/**
 * Checks protocol/tariff.ts against the golden vectors in tariffs.json, and each vector
 * against an independent reference written here: plain fractions built from the decimal
 * strings by string surgery, the tiers walked one by one, the unit table written as
 * decimals (1 mile = 1609.344 m), so a vector cannot merely echo the code that wrote it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../protocol/canonical-json.ts';
import { chargeNano, checkTariffVersion, marginalChargeNano, minimumTopUpNano, periodOf, type TariffVersion, tariffHash, unitFactor } from '../../protocol/tariff.ts';
import { hex, nodeSha256, utf8 } from './reference.ts';

interface TariffsFile {
  about: string;
  unitFactors: { baseUnit: string; priceUnit: string; num: string; den: string }[];
  periods: { timeZone: string; period: 'day' | 'month'; at: string; expected: string }[];
  tariffs: { name: string; tariff: TariffVersion; tariffHash: string; closed: boolean; quantities: string[]; marginalNano: string[]; totalNano: string; minimumTopUpNano: string }[];
}

const file = JSON.parse(readFileSync(new URL('./tariffs.json', import.meta.url), 'utf8')) as TariffsFile;

// ---------------------------------------------------------------------------------------
// Reference: exact fractions, floored to nano once at the end.

interface Fraction { n: bigint; d: bigint }
const fraction = (n: bigint, d = 1n): Fraction => ({ n, d });
const add = (a: Fraction, b: Fraction): Fraction => fraction(a.n * b.d + b.n * a.d, a.d * b.d);
const sub = (a: Fraction, b: Fraction): Fraction => fraction(a.n * b.d - b.n * a.d, a.d * b.d);
const mul = (a: Fraction, b: Fraction): Fraction => fraction(a.n * b.n, a.d * b.d);
const div = (a: Fraction, b: Fraction): Fraction => fraction(a.n * b.d, a.d * b.n);
const lessOrEqual = (a: Fraction, b: Fraction): boolean => a.n * b.d <= b.n * a.d;
const min = (a: Fraction, b: Fraction): Fraction => (lessOrEqual(a, b) ? a : b);
const max = (a: Fraction, b: Fraction): Fraction => (lessOrEqual(a, b) ? b : a);
const floor = (a: Fraction): bigint => a.n / a.d; // non-negative here
const ceil = (a: Fraction): bigint => (a.n + a.d - 1n) / a.d;

/** "100.5" → 1005/10, by string surgery. */
function decimal(text: string): Fraction {
  const [whole, part = ''] = text.split('.');
  return fraction(BigInt(`${whole}${part}`), 10n ** BigInt(part.length));
}

/** Each unit in its dimension's reference unit, as printed in any table. */
const IN_REFERENCE_UNITS: Record<string, string> = { m: '1', km: '1000', mile: '1609.344', wh: '1', kwh: '1000', cycle: '1', s: '1', h: '3600', 'slot-s': '1', 'slot-h': '3600' };

function referenceChargeNano(t: TariffVersion, quantityBase: bigint, closed: boolean): bigint {
  const perUnit = t.baseUnit === t.priceUnit ? fraction(1n) : div(decimal(IN_REFERENCE_UNITS[t.baseUnit]!), decimal(IN_REFERENCE_UNITS[t.priceUnit]!));
  const quantity = mul(fraction(quantityBase), perUnit); // in price units
  const rule = t.rule;
  let major: Fraction;
  if (rule.type === 'per_unit') {
    major = mul(decimal(rule.unitPrice), quantity);
  } else if (rule.type === 'package') {
    major = mul(fraction(ceil(div(quantity, decimal(rule.blockSize)))), decimal(rule.blockPrice));
  } else if (rule.type === 'graduated') {
    major = fraction(0n);
    let lower = fraction(0n);
    for (const tier of rule.tiers) {
      const upper = tier.upTo === null ? quantity : min(quantity, decimal(tier.upTo));
      major = add(major, mul(decimal(tier.unitPrice), max(fraction(0n), sub(upper, lower))));
      if (tier.upTo !== null) lower = decimal(tier.upTo);
    }
  } else {
    const tier = rule.tiers.find((candidate) => candidate.upTo === null || lessOrEqual(quantity, decimal(candidate.upTo)))!;
    major = mul(decimal(tier.unitPrice), quantity);
  }
  let nano = floor(mul(major, fraction(1_000_000_000n)));
  if (t.capPerPeriod !== undefined) nano = [nano, floor(mul(decimal(t.capPerPeriod), fraction(1_000_000_000n)))].reduce((a, b) => (a < b ? a : b));
  if (closed && quantityBase > 0n && t.minimumPerPeriod !== undefined) nano = [nano, floor(mul(decimal(t.minimumPerPeriod), fraction(1_000_000_000n)))].reduce((a, b) => (a > b ? a : b));
  return nano;
}

// ---------------------------------------------------------------------------------------

describe('tariffs.json', () => {
  const vectors = file.tariffs.map((vector) => [vector.name, vector] as const);

  it.each(vectors)('%s: the tariff is valid and hashes to its RFC 8785 SHA-256', (_name, vector) => {
    expect(checkTariffVersion(vector.tariff)).toEqual(vector.tariff);
    expect(tariffHash(vector.tariff)).toBe(vector.tariffHash);
    expect(hex(nodeSha256(utf8(canonicalJson(vector.tariff))))).toBe(vector.tariffHash);
  });

  it.each(vectors)('%s: each record’s marginal charge matches the code and the reference', (_name, vector) => {
    let before = 0n;
    vector.quantities.forEach((text, i) => {
      const q = BigInt(text);
      expect(marginalChargeNano(vector.tariff, before, q, vector.closed)).toBe(BigInt(vector.marginalNano[i]!));
      expect(referenceChargeNano(vector.tariff, before + q, vector.closed) - referenceChargeNano(vector.tariff, before, vector.closed)).toBe(BigInt(vector.marginalNano[i]!));
      before += q;
    });
    expect(vector.marginalNano).toHaveLength(vector.quantities.length);
  });

  it.each(vectors)('%s: the records sum to the charge of the total, and the close adds the top-up', (_name, vector) => {
    const total = vector.quantities.reduce((sum, q) => sum + BigInt(q), 0n);
    expect(vector.marginalNano.reduce((sum, m) => sum + BigInt(m), 0n)).toBe(BigInt(vector.totalNano));
    expect(chargeNano(vector.tariff, total, vector.closed)).toBe(BigInt(vector.totalNano));
    expect(referenceChargeNano(vector.tariff, total, vector.closed)).toBe(BigInt(vector.totalNano));
    expect(minimumTopUpNano(vector.tariff, total)).toBe(BigInt(vector.minimumTopUpNano));
    expect(referenceChargeNano(vector.tariff, total, true) - referenceChargeNano(vector.tariff, total, false)).toBe(BigInt(vector.minimumTopUpNano));
  });

  it('covers every rule, every unit conversion, minimum, cap, overrides and both closed states', () => {
    const tariffs = file.tariffs.map((vector) => vector.tariff);
    expect(new Set(tariffs.map((t) => t.rule.type))).toEqual(new Set(['per_unit', 'graduated', 'volume', 'package']));
    expect(new Set(tariffs.map((t) => `${t.baseUnit}->${t.priceUnit}`))).toEqual(new Set(['cycle->cycle', 'm->mile', 'm->km', 'wh->kwh', 'slot-s->slot-h', 's->h']));
    expect(new Set(tariffs.map((t) => t.currency))).toEqual(new Set(['EUR', 'GBP', 'JPY']));
    expect(tariffs.some((t) => t.minimumPerPeriod !== undefined) && tariffs.some((t) => t.capPerPeriod !== undefined) && tariffs.some((t) => t.id.includes('/'))).toBe(true);
    expect(new Set(file.tariffs.map((vector) => vector.closed))).toEqual(new Set([true, false]));
    expect(file.tariffs.some((vector) => vector.marginalNano.some((m) => m.startsWith('-')))).toBe(true);
  });

  it.each(file.unitFactors.map((vector) => [vector.baseUnit, vector.priceUnit, vector] as const))('one %s is num/den %s', (_base, _price, vector) => {
    expect(unitFactor(vector.baseUnit, vector.priceUnit)).toEqual({ num: BigInt(vector.num), den: BigInt(vector.den) });
    if (vector.baseUnit !== vector.priceUnit) {
      const reference = div(decimal(IN_REFERENCE_UNITS[vector.priceUnit]!), decimal(IN_REFERENCE_UNITS[vector.baseUnit]!));
      expect(BigInt(vector.num) * reference.d).toBe(reference.n * BigInt(vector.den));
    }
  });

  it.each(file.periods.map((vector) => [vector.at, vector.timeZone, vector] as const))('%s is in %s period %#', (_at, _zone, vector) => {
    const t = checkTariffVersion({ ...file.tariffs[0]!.tariff, timeZone: vector.timeZone, period: vector.period });
    expect(periodOf(t, vector.at)).toBe(vector.expected);
  });
});
