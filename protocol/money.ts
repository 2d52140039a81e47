/**
 * Exact money. Amounts are `bigint` integers at a declared scale, never `number`.
 *
 * - `…Nano` amounts are in 1e-9 of the currency's major unit: enough for 0.0003 EUR a cycle.
 * - `…Minor` amounts are in the currency's minor unit (cents, pence, yen).
 *
 * Rounding happens once, at settlement ({@link toMinorUnits}), and the remainder is carried.
 */

export const NANO_DIGITS = 9;
export const NANO_PER_MAJOR = 1_000_000_000n;

/** ISO 4217 minor-unit digits of the currencies we settle in. */
export const MINOR_DIGITS: Readonly<Record<string, number>> = Object.freeze({
  EUR: 2,
  GBP: 2,
  USD: 2,
  CHF: 2,
  JPY: 0,
});

export function minorDigits(currency: string): number {
  // Own keys only: `MINOR_DIGITS['constructor']` is a function, not a digit count.
  const digits = Object.hasOwn(MINOR_DIGITS, currency) ? MINOR_DIGITS[currency] : undefined;
  if (digits === undefined) throw new RangeError(`currency: ${JSON.stringify(currency)} is not supported (one of ${Object.keys(MINOR_DIGITS).join(', ')})`);
  return digits;
}

export function nanoPerMinor(currency: string): bigint {
  return NANO_PER_MAJOR / 10n ** BigInt(minorDigits(currency));
}

/** Rounds down to whole minor units; the caller books `carriedNano` into the next batch. */
export function toMinorUnits(amountNano: bigint, currency: string): { minor: bigint; carriedNano: bigint } {
  if (amountNano < 0n) throw new RangeError(`amountNano: ${amountNano} is negative`);
  const perMinor = nanoPerMinor(currency);
  return { minor: amountNano / perMinor, carriedNano: amountNano % perMinor };
}

const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

/**
 * Parses a non-negative decimal string ("0.0003") into an integer at `digits` decimal places.
 * Refuses anything it cannot represent exactly, naming `field`.
 */
export function parseDecimal(text: string, digits: number, field: string): bigint {
  if (typeof text !== 'string') throw new TypeError(`${field}: must be a decimal string, got ${typeof text}`);
  const match = DECIMAL.exec(text);
  if (!match) throw new RangeError(`${field}: ${JSON.stringify(text)} is not a non-negative decimal like "0.0003"`);
  const whole = match[1] ?? '0';
  const fraction = match[2] ?? '';
  if (fraction.length > digits) {
    throw new RangeError(`${field}: ${JSON.stringify(text)} has ${fraction.length} decimal places, at most ${digits} are exact`);
  }
  return BigInt(whole) * 10n ** BigInt(digits) + BigInt(fraction.padEnd(digits, '0') || '0');
}

/** Formats an integer at `digits` decimal places as a decimal string ("12.340000000"). */
export function formatDecimal(value: bigint, digits: number): string {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const scale = 10n ** BigInt(digits);
  const whole = (abs / scale).toString();
  const sign = negative ? '-' : '';
  if (digits === 0) return sign + whole;
  return `${sign}${whole}.${(abs % scale).toString().padStart(digits, '0')}`;
}

/** Price per base unit, e.g. "0.0003" EUR per cycle, to nano per unit. */
export function parsePriceNano(text: string, field: string): bigint {
  return parseDecimal(text, NANO_DIGITS, field);
}

export function formatNano(amountNano: bigint): string {
  return formatDecimal(amountNano, NANO_DIGITS);
}

/** Minor units as the bank wants them: "12.34" for EUR, "1234" for JPY. */
export function formatMinor(amountMinor: bigint, currency: string): string {
  return formatDecimal(amountMinor, minorDigits(currency));
}

/** The inverse of {@link formatMinor}; refuses more decimals than the currency has. */
export function parseMinor(text: string, currency: string, field: string): bigint {
  return parseDecimal(text, minorDigits(currency), field);
}
