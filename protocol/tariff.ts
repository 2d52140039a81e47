/**
 * Tariffs: what a period's usage of a meter costs a payer, exactly, in nano (1e-9 of the
 * currency's major unit). Pure: no I/O, no clock; bundled into the browser verifier too,
 * so it depends only on other protocol/ files. docs/tariffs.md explains the rules.
 *
 * Charges are a function of the (payer, tariff, period) aggregate quantity, never of one
 * record: a record is priced at its marginal charge, charge(before + q) − charge(before),
 * so a period's records telescope to exactly the charge of its total. The only rounding is
 * one floor to whole nano of the aggregate's exact rational charge.
 *
 * TariffVersion objects are treated as immutable (checkTariffVersion returns frozen copies):
 * parsed prices and the hash are cached per object.
 */
import { canonicalBytes } from './canonical-json.ts';
import { sha256, toHex } from './hash.ts';
import { MINOR_DIGITS, NANO_DIGITS, parseDecimal } from './money.ts';
import { ID_PATTERN } from './usage-message.ts';

/** One tier: `upTo` is the cumulative period quantity in price units (inclusive), null only on the last. */
export interface TariffTier { upTo: string | null; unitPrice: string }
export type TariffRule =
  | { type: 'per_unit'; unitPrice: string }
  /** Each unit priced at the tier it falls in. */
  | { type: 'graduated'; tiers: TariffTier[] }
  /** All units of the period priced at the tier the period total reaches. */
  | { type: 'volume'; tiers: TariffTier[] }
  /** `blockPrice` per started block of `blockSize` price units. */
  | { type: 'package'; blockSize: string; blockPrice: string };
export interface TariffVersion {
  v: 1;
  /** `<meter>@<version>`, or `<meter>@<version>/<payer>` when a payer override applied. */
  id: string;
  meter: string;
  version: string;
  /** RFC 3339 UTC instant (`Z`, at most millisecond digits). */
  effectiveFrom: string;
  currency: string;
  /** What the meter counts in: 'm', 'cycle', 'wh', 'slot-s', 's'… */
  baseUnit: string;
  /** What prices are per: 'mile', 'km', 'kwh', 'slot-h'… converted exactly from baseUnit. */
  priceUnit: string;
  period: 'day' | 'month';
  /** IANA zone; periods are calendar days or months there. */
  timeZone: string;
  rule: TariffRule;
  /** Decimal major units; charged up to, when the period closes with usage in it. */
  minimumPerPeriod?: string;
  /** Decimal major units; the period's charge never exceeds it. */
  capPerPeriod?: string;
}
export interface TariffOverride { rule?: TariffRule; minimumPerPeriod?: string; capPerPeriod?: string }
export interface TariffSchedule {
  meter: string;
  baseUnit: string;
  versions: Array<Omit<TariffVersion, 'id' | 'meter' | 'baseUnit'> & { overrides?: Record<string, TariffOverride> }>;
}

/** Limits: configs are small, and every loop here runs per record. */
export const TARIFF_TIERS_MAX = 32;
export const TARIFF_VERSIONS_MAX = 1_000;
const DECIMAL_CHARS_MAX = 40;
const VERSION = /^[A-Za-z0-9._-]{1,32}$/;
const UNIT = /^[a-z][a-z0-9_-]{0,31}$/i;
const S = 10n ** BigInt(NANO_DIGITS); // upTo and blockSize are read at 9 decimals

// ---------------------------------------------------------------------------------------
// Units

/** Each unit as an exact rational multiple of its dimension's reference unit. */
const UNITS: Readonly<Record<string, { dimension: string; num: bigint; den: bigint }>> = Object.freeze({
  m: { dimension: 'length', num: 1n, den: 1n },
  km: { dimension: 'length', num: 1000n, den: 1n },
  mile: { dimension: 'length', num: 1_609_344n, den: 1000n }, // international mile, exactly 1609.344 m
  wh: { dimension: 'energy', num: 1n, den: 1n },
  kwh: { dimension: 'energy', num: 1000n, den: 1n },
  mwh: { dimension: 'energy', num: 1_000_000n, den: 1n },
  cycle: { dimension: 'count', num: 1n, den: 1n },
  s: { dimension: 'time', num: 1n, den: 1n },
  min: { dimension: 'time', num: 60n, den: 1n },
  h: { dimension: 'time', num: 3600n, den: 1n },
  'slot-s': { dimension: 'slot-time', num: 1n, den: 1n },
  'slot-min': { dimension: 'slot-time', num: 60n, den: 1n },
  'slot-h': { dimension: 'slot-time', num: 3600n, den: 1n },
});

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/**
 * How many base units one price unit is, as an exact rational in lowest terms:
 * unitFactor('m', 'mile') = 201168/125 (= 1609344/1000), unitFactor('wh', 'kwh') = 1000/1.
 * Identical units are 1/1 even when not in the table (any counting meter).
 */
export function unitFactor(baseUnit: string, priceUnit: string): { num: bigint; den: bigint } {
  if (baseUnit === priceUnit) return { num: 1n, den: 1n };
  const base = Object.hasOwn(UNITS, baseUnit) ? UNITS[baseUnit] : undefined;
  const price = Object.hasOwn(UNITS, priceUnit) ? UNITS[priceUnit] : undefined;
  if (!base || !price) throw new RangeError(`Cannot convert ${JSON.stringify(baseUnit)} to ${JSON.stringify(priceUnit)}: unknown unit (known: ${Object.keys(UNITS).join(', ')})`);
  if (base.dimension !== price.dimension) throw new RangeError(`Cannot convert ${baseUnit} to ${priceUnit}: ${base.dimension} is not ${price.dimension}`);
  const num = price.num * base.den;
  const den = price.den * base.num;
  const divisor = gcd(num, den);
  return { num: num / divisor, den: den / divisor };
}

// ---------------------------------------------------------------------------------------
// Instants

const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Epoch ms of an RFC 3339 instant (sub-millisecond digits floored), or a RangeError naming `field`. */
function instantMs(text: string, field: string, utcOnly = false): number {
  const m = typeof text === 'string' ? INSTANT.exec(text) : null;
  if (!m) throw new RangeError(`${field}: ${JSON.stringify(text)} is not an RFC 3339 instant like "2026-11-01T00:00:00Z"`);
  const year = +m[1]!;
  const month = +m[2]!;
  const day = +m[3]!;
  const hour = +m[4]!;
  const minute = +m[5]!;
  const second = +m[6]!;
  const fraction = m[7] ?? '';
  const zone = m[8]!;
  const leapDay = month === 2 && (year % 4 === 0 && year % 100 !== 0 || year % 400 === 0) ? 1 : 0;
  if (year < 1000 || month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]! + leapDay || hour > 23 || minute > 59 || second > 59) {
    throw new RangeError(`${field}: ${JSON.stringify(text)} is not a valid date and time`);
  }
  if (utcOnly && (zone !== 'Z' || fraction.length > 3)) throw new RangeError(`${field}: ${JSON.stringify(text)} must be UTC ("Z") with at most millisecond digits`);
  let offsetMin = 0;
  if (zone !== 'Z') {
    const offsetHour = +zone.slice(1, 3);
    const offsetMinute = +zone.slice(4, 6);
    if (offsetHour > 23 || offsetMinute > 59) throw new RangeError(`${field}: ${JSON.stringify(text)} has an invalid offset`);
    offsetMin = (zone[0] === '-' ? -1 : 1) * (offsetHour * 60 + offsetMinute);
  }
  const ms = fraction === '' ? 0 : +fraction.slice(0, 3).padEnd(3, '0');
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
}

// ---------------------------------------------------------------------------------------
// Checking

type PreparedRule =
  | { type: 'per_unit'; priceTimesDen: bigint; num: bigint }
  /** Quantities scaled to 1/(S·num) price units: qs = q·qScale; bounds[i] = upTo·S·num; charge = Σ/divisor. */
  | { type: 'graduated' | 'volume'; bounds: Array<bigint | null>; pricesNano: bigint[]; qScale: bigint; divisor: bigint }
  | { type: 'package'; blockScaled: bigint; blockPriceNano: bigint; qScale: bigint };

interface Prepared {
  version: TariffVersion;
  rule: PreparedRule;
  capNano: bigint | undefined;
  minimumNano: bigint | undefined;
  hash?: string;
}

const FIELDS = Object.freeze(['v', 'id', 'meter', 'version', 'effectiveFrom', 'currency', 'baseUnit', 'priceUnit', 'period', 'timeZone', 'rule', 'minimumPerPeriod', 'capPerPeriod']);
const RULE_FIELDS: Readonly<Record<string, readonly string[]>> = { per_unit: ['type', 'unitPrice'], graduated: ['type', 'tiers'], volume: ['type', 'tiers'], package: ['type', 'blockSize', 'blockPrice'] };

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function checkString(value: unknown, label: string, field: string, pattern: RegExp, what: string): string {
  if (typeof value !== 'string') throw new TypeError(`${label}: ${field}: must be a string, got ${value === null ? 'null' : typeof value}`);
  if (!pattern.test(value)) throw new RangeError(`${label}: ${field}: ${JSON.stringify(value)} must be ${what}`);
  return value;
}

function decimal(value: unknown, label: string, field: string): bigint {
  if (typeof value === 'string' && value.length > DECIMAL_CHARS_MAX) throw new RangeError(`${label}: ${field}: longer than ${DECIMAL_CHARS_MAX} characters`);
  return parseDecimal(value as string, NANO_DIGITS, `${label}: ${field}`);
}

function checkKeys(object: Record<string, unknown>, allowed: readonly string[], label: string, path: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw new RangeError(`${label}: ${path}${key}: is not a known field`);
  }
}

const zoneFormats = new Map<string, ZoneState>();

function checkTimeZone(value: unknown, label: string): string {
  checkString(value, label, 'timeZone', /^[A-Za-z0-9_+\-/]{1,64}$/, 'an IANA time zone like "Europe/London"');
  try {
    zoneState(value as string);
  } catch {
    throw new RangeError(`${label}: timeZone: ${JSON.stringify(value)} is not a time zone this runtime knows`);
  }
  return value as string;
}

/** Checks a rule, returning a frozen copy and its parsed form (quantities scaled by `factor`). */
function checkRule(value: unknown, label: string, factor: { num: bigint; den: bigint }): { rule: TariffRule; prepared: PreparedRule } {
  if (!isObject(value)) throw new TypeError(`${label}: rule: must be an object`);
  const type = value.type;
  if (typeof type !== 'string' || !Object.hasOwn(RULE_FIELDS, type)) throw new RangeError(`${label}: rule.type: ${JSON.stringify(type)} must be one of ${Object.keys(RULE_FIELDS).join(', ')}`);
  checkKeys(value, RULE_FIELDS[type]!, label, 'rule.');
  const qScale = factor.den * S;
  if (type === 'per_unit') {
    const priceNano = decimal(value.unitPrice, label, 'rule.unitPrice');
    return { rule: Object.freeze({ type, unitPrice: value.unitPrice as string }), prepared: { type, priceTimesDen: priceNano * factor.den, num: factor.num } };
  }
  if (type === 'package') {
    const block = decimal(value.blockSize, label, 'rule.blockSize');
    if (block === 0n) throw new RangeError(`${label}: rule.blockSize: must be greater than 0`);
    const blockPriceNano = decimal(value.blockPrice, label, 'rule.blockPrice');
    const rule = Object.freeze({ type, blockSize: value.blockSize as string, blockPrice: value.blockPrice as string });
    return { rule, prepared: { type, blockScaled: block * factor.num, blockPriceNano, qScale } };
  }
  const tiered = type as 'graduated' | 'volume';
  const tiers = value.tiers;
  if (!Array.isArray(tiers) || tiers.length === 0) throw new TypeError(`${label}: rule.tiers: must be a non-empty array`);
  if (tiers.length > TARIFF_TIERS_MAX) throw new RangeError(`${label}: rule.tiers: ${tiers.length} tiers, at most ${TARIFF_TIERS_MAX}`);
  const bounds: Array<bigint | null> = [];
  const pricesNano: bigint[] = [];
  const copies: TariffTier[] = [];
  let previous: { text: string; value: bigint } | undefined;
  tiers.forEach((tier: unknown, i) => {
    const path = `rule.tiers.${i}`;
    if (!isObject(tier)) throw new TypeError(`${label}: ${path}: must be an object`);
    checkKeys(tier, ['upTo', 'unitPrice'], label, `${path}.`);
    const last = i === tiers.length - 1;
    if (tier.upTo === null || tier.upTo === undefined) {
      if (!last || tier.upTo === undefined) throw new RangeError(`${label}: ${path}.upTo: ${last ? 'must be null on the last tier' : 'must be a decimal string; only the last tier is open-ended (null)'}`);
      bounds.push(null);
    } else {
      if (last) throw new RangeError(`${label}: ${path}.upTo: must be null on the last tier, which has no upper bound`);
      const upTo = decimal(tier.upTo, label, `${path}.upTo`);
      if (upTo <= (previous?.value ?? 0n)) throw new RangeError(`${label}: ${path}.upTo: must be greater than ${previous?.text ?? '0'}`);
      previous = { text: tier.upTo as string, value: upTo };
      bounds.push(upTo * factor.num);
    }
    pricesNano.push(decimal(tier.unitPrice, label, `${path}.unitPrice`));
    copies.push(Object.freeze({ upTo: tier.upTo as string | null, unitPrice: tier.unitPrice as string }));
  });
  return { rule: Object.freeze({ type: tiered, tiers: Object.freeze(copies) as TariffTier[] }), prepared: { type: tiered, bounds, pricesNano, qScale, divisor: S * factor.num } };
}

function checkAndPrepare(t: unknown): Prepared {
  if (!isObject(t)) throw new TypeError('tariff: must be an object');
  const label = typeof t.id === 'string' && t.id.length > 0 && t.id.length <= 200 ? `tariff ${t.id}` : 'tariff';
  checkKeys(t, FIELDS, label, '');
  if (t.v !== 1) throw new RangeError(`${label}: v: must be 1`);
  const meter = checkString(t.meter, label, 'meter', ID_PATTERN, '1-63 of a-z 0-9 . _ - starting with a letter or digit');
  const version = checkString(t.version, label, 'version', VERSION, '1-32 of A-Z a-z 0-9 . _ -');
  const id = checkString(t.id, label, 'id', /^[^\s]{1,200}$/, `"${meter}@${version}" or "${meter}@${version}/<payer>"`);
  const payer = id.startsWith(`${meter}@${version}/`) ? id.slice(meter.length + version.length + 2) : undefined;
  if (id !== `${meter}@${version}` && !(payer !== undefined && ID_PATTERN.test(payer))) throw new RangeError(`${label}: id: must be "${meter}@${version}" or "${meter}@${version}/<payer>"`);
  instantMs(t.effectiveFrom as string, `${label}: effectiveFrom`, true);
  const currency = checkString(t.currency, label, 'currency', /^[A-Z]{3}$/, 'an ISO 4217 code like "EUR"');
  if (!Object.hasOwn(MINOR_DIGITS, currency)) throw new RangeError(`${label}: currency: ${currency} is not supported (one of ${Object.keys(MINOR_DIGITS).join(', ')})`);
  const baseUnit = checkString(t.baseUnit, label, 'baseUnit', UNIT, 'a unit like "m" or "wh"');
  const priceUnit = checkString(t.priceUnit, label, 'priceUnit', UNIT, 'a unit like "mile" or "kwh"');
  let factor: { num: bigint; den: bigint };
  try {
    factor = unitFactor(baseUnit, priceUnit);
  } catch (error) {
    throw new RangeError(`${label}: priceUnit: ${(error as Error).message}`);
  }
  if (t.period !== 'day' && t.period !== 'month') throw new RangeError(`${label}: period: ${JSON.stringify(t.period)} must be "day" or "month"`);
  const timeZone = checkTimeZone(t.timeZone, label);
  const { rule, prepared } = checkRule(t.rule, label, factor);
  const minimumNano = t.minimumPerPeriod === undefined ? undefined : decimal(t.minimumPerPeriod, label, 'minimumPerPeriod');
  const capNano = t.capPerPeriod === undefined ? undefined : decimal(t.capPerPeriod, label, 'capPerPeriod');
  // A minimum above the cap would make a closed period's charge exceed the cap.
  if (minimumNano !== undefined && capNano !== undefined && minimumNano > capNano) throw new RangeError(`${label}: minimumPerPeriod: must not exceed capPerPeriod ${t.capPerPeriod as string}`);
  const checked: TariffVersion = { v: 1, id, meter, version, effectiveFrom: t.effectiveFrom as string, currency, baseUnit, priceUnit, period: t.period, timeZone, rule };
  if (t.minimumPerPeriod !== undefined) checked.minimumPerPeriod = t.minimumPerPeriod as string;
  if (t.capPerPeriod !== undefined) checked.capPerPeriod = t.capPerPeriod as string;
  return { version: Object.freeze(checked), rule: prepared, capNano, minimumNano };
}

const preparedCache = new WeakMap<object, Prepared>();

/**
 * Checks a tariff version in full and returns a frozen copy, or throws a TypeError or
 * RangeError naming the field: `tariff energy@2: rule.tiers.1.upTo: must be greater than 100`.
 */
export function checkTariffVersion(t: unknown): TariffVersion {
  const cached = isObject(t) ? preparedCache.get(t) : undefined;
  if (cached) return cached.version;
  const prepared = checkAndPrepare(t);
  preparedCache.set(prepared.version, prepared);
  return prepared.version;
}

/** The parsed form of `t`, checked on first sight of this object. */
function prepared(t: TariffVersion): Prepared {
  let p = preparedCache.get(t);
  if (!p) {
    p = checkAndPrepare(t);
    preparedCache.set(t, p);
    preparedCache.set(p.version, p);
  }
  return p;
}

// ---------------------------------------------------------------------------------------
// Charges

function ruleChargeNano(rule: PreparedRule, quantityBase: bigint): bigint {
  switch (rule.type) {
    case 'per_unit':
      // price/unit × q × den/num, floored once: exact when num = 1 (no division at all).
      return rule.num === 1n ? quantityBase * rule.priceTimesDen : (quantityBase * rule.priceTimesDen) / rule.num;
    case 'graduated': {
      const qs = quantityBase * rule.qScale;
      let sum = 0n;
      let lower = 0n;
      for (let i = 0; i < rule.bounds.length; i += 1) {
        const upper = rule.bounds[i]!;
        if (upper === null || qs <= upper) return (sum + rule.pricesNano[i]! * (qs - lower)) / rule.divisor;
        sum += rule.pricesNano[i]! * (upper - lower);
        lower = upper;
      }
      throw new Error('unreachable: the last tier is open-ended');
    }
    case 'volume': {
      const qs = quantityBase * rule.qScale;
      let i = 0;
      while (rule.bounds[i] !== null && qs > rule.bounds[i]!) i += 1; // a tier covers totals up to and including upTo
      return (rule.pricesNano[i]! * qs) / rule.divisor;
    }
    case 'package': {
      const qs = quantityBase * rule.qScale;
      return ((qs + rule.blockScaled - 1n) / rule.blockScaled) * rule.blockPriceNano; // started blocks
    }
  }
}

function checkQuantity(quantityBase: bigint, field: string): void {
  if (typeof quantityBase !== 'bigint' || quantityBase < 0n) throw new RangeError(`${field}: must be a non-negative bigint in base units, got ${String(quantityBase)}`);
}

/**
 * The exact charge in nano of a period's cumulative `quantityBase` (base units): the rule
 * on the exactly converted quantity, floored once to whole nano, then at most the cap and,
 * when `closed` and the period had usage, at least the minimum. chargeNano(t, 0n, _) = 0n.
 */
export function chargeNano(t: TariffVersion, quantityBase: bigint, closed: boolean): bigint {
  checkQuantity(quantityBase, 'quantityBase');
  const p = prepared(t);
  let charge = ruleChargeNano(p.rule, quantityBase);
  if (p.capNano !== undefined && charge > p.capNano) charge = p.capNano;
  if (closed && p.minimumNano !== undefined && quantityBase > 0n && charge < p.minimumNano) charge = p.minimumNano;
  return charge;
}

/**
 * What one record of `quantityBase` adds to its period aggregate that stood at
 * `quantityBeforeBase`: chargeNano(before + q) − chargeNano(before). The records of one
 * (payer, tariff, period) thus sum exactly to the charge of their total. Negative when a
 * volume rule reaches a cheaper tier (the record is a credit).
 */
export function marginalChargeNano(t: TariffVersion, quantityBeforeBase: bigint, quantityBase: bigint, closed: boolean): bigint {
  checkQuantity(quantityBeforeBase, 'quantityBeforeBase');
  checkQuantity(quantityBase, 'quantityBase');
  return chargeNano(t, quantityBeforeBase + quantityBase, closed) - chargeNano(t, quantityBeforeBase, closed);
}

/** What closing a period with `quantityBase` in it adds: the shortfall below the minimum (>= 0). */
export function minimumTopUpNano(t: TariffVersion, quantityBase: bigint): bigint {
  return chargeNano(t, quantityBase, true) - chargeNano(t, quantityBase, false);
}

/** Hex SHA-256 of the RFC 8785 canonical JSON of the (checked) version; records commit to it. */
export function tariffHash(t: TariffVersion): string {
  const p = prepared(t);
  p.hash ??= toHex(sha256(canonicalBytes(p.version)));
  return p.hash;
}

// ---------------------------------------------------------------------------------------
// Schedules

interface PreparedSchedule { starts: Array<{ fromMs: number; byPayer: Map<string, TariffVersion>; base: TariffVersion }> }

const scheduleCache = new WeakMap<object, PreparedSchedule>();

function prepareSchedule(schedule: TariffSchedule): PreparedSchedule {
  if (!isObject(schedule)) throw new TypeError('tariff schedule: must be an object');
  const label = `tariff schedule ${String(schedule.meter)}`;
  checkKeys(schedule as unknown as Record<string, unknown>, ['meter', 'baseUnit', 'versions'], label, '');
  if (!Array.isArray(schedule.versions) || schedule.versions.length === 0) throw new TypeError(`${label}: versions: must be a non-empty array`);
  if (schedule.versions.length > TARIFF_VERSIONS_MAX) throw new RangeError(`${label}: versions: at most ${TARIFF_VERSIONS_MAX}`);
  const starts = schedule.versions.map((entry, i) => {
    if (!isObject(entry)) throw new TypeError(`${label}: versions.${i}: must be an object`);
    const { overrides = {}, ...rest } = entry;
    const base = checkTariffVersion({ ...rest, id: `${schedule.meter}@${String(rest.version)}`, meter: schedule.meter, baseUnit: schedule.baseUnit });
    if (!isObject(overrides)) throw new TypeError(`tariff ${base.id}: overrides: must be an object`);
    const byPayer = new Map<string, TariffVersion>();
    for (const [payer, override] of Object.entries(overrides)) {
      if (!isObject(override)) throw new TypeError(`tariff ${base.id}: overrides.${payer}: must be an object`);
      checkKeys(override, ['rule', 'minimumPerPeriod', 'capPerPeriod'], `tariff ${base.id}`, `overrides.${payer}.`);
      byPayer.set(payer, checkTariffVersion({ ...base, ...override, id: `${base.id}/${payer}` }));
    }
    return { fromMs: instantMs(base.effectiveFrom, `tariff ${base.id}: effectiveFrom`), byPayer, base };
  });
  starts.sort((a, b) => a.fromMs - b.fromMs);
  for (let i = 1; i < starts.length; i += 1) {
    const [a, b] = [starts[i - 1]!.base, starts[i]!.base];
    if (starts[i - 1]!.fromMs === starts[i]!.fromMs) throw new RangeError(`tariff ${b.id}: effectiveFrom: ${a.id} takes effect at the same instant`);
  }
  if (new Set(starts.map((s) => s.base.version)).size !== starts.length) throw new RangeError(`${label}: versions: two versions share a version name`);
  return { starts };
}

/** Checks every version of a schedule and every payer override merged into it; returns the schedule. */
export function checkTariffSchedule(schedule: unknown): TariffSchedule {
  const s = schedule as TariffSchedule;
  if (!scheduleCache.has(s)) scheduleCache.set(s, prepareSchedule(s));
  return s;
}

/**
 * The version in force at `atIso` (latest effectiveFrom <= at, so a change never reprices
 * past usage) with `payer`'s override merged (its id then ends in `/<payer>`); undefined
 * before the first version. Resolved objects are stable, so their parse caches stay warm.
 */
export function resolveTariff(schedule: TariffSchedule, payer: string, atIso: string): TariffVersion | undefined {
  checkTariffSchedule(schedule);
  const { starts } = scheduleCache.get(schedule)!;
  const atMs = instantMs(atIso, 'at');
  let lo = 0;
  let hi = starts.length; // first start after atMs
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid]!.fromMs <= atMs) lo = mid + 1;
    else hi = mid;
  }
  const start = starts[lo - 1];
  if (!start) return undefined;
  return start.byPayer.get(payer) ?? start.base;
}

// ---------------------------------------------------------------------------------------
// Periods

interface ZoneState { format: Intl.DateTimeFormat; bucket: number; day: string }

const ZONES_CACHED_MAX = 256;
/** A local date changes at most once within 15 minutes in every tzdb zone. */
const BUCKET_MS = 15 * 60_000;

function zoneState(timeZone: string): ZoneState {
  let state = zoneFormats.get(timeZone);
  if (!state) {
    const format = new Intl.DateTimeFormat('en-US-u-ca-gregory-nu-latn', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    state = { format, bucket: Number.NaN, day: '' };
    if (zoneFormats.size < ZONES_CACHED_MAX) zoneFormats.set(timeZone, state);
  }
  return state;
}

function localDay(format: Intl.DateTimeFormat, ms: number): string {
  let year = '';
  let month = '';
  let day = '';
  for (const part of format.formatToParts(ms)) {
    if (part.type === 'year') year = part.value.padStart(4, '0');
    else if (part.type === 'month') month = part.value;
    else if (part.type === 'day') day = part.value;
  }
  return `${year}-${month}-${day}`;
}

/**
 * The period `atIso` falls in, in the tariff's time zone: '2026-11' (month) or
 * '2026-11-27' (day). Formats at most twice per 15 minutes of time per zone. `atMs`, when
 * given, is `atIso` already parsed to epoch ms (sub-millisecond digits floored) by the caller.
 */
export function periodOf(t: TariffVersion, atIso: string, atMs?: number): string {
  const { version } = prepared(t);
  const ms = atMs ?? instantMs(atIso, 'at');
  const state = zoneState(version.timeZone);
  const bucket = Math.floor(ms / BUCKET_MS);
  let day: string;
  if (state.bucket === bucket) {
    day = state.day;
  } else {
    const first = localDay(state.format, bucket * BUCKET_MS);
    if (first === localDay(state.format, bucket * BUCKET_MS + BUCKET_MS - 1)) {
      state.bucket = bucket;
      state.day = first;
      day = first;
    } else {
      day = localDay(state.format, ms); // a midnight inside this bucket
    }
  }
  return version.period === 'month' ? day.slice(0, 7) : day;
}
