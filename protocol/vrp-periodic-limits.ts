/**
 * VRP periodic limits: which period a payment falls in and how much may be paid in it. Shared
 * by the bank sandbox (which enforces a consent's limits) and the gateway's settler (which
 * checks them before it asks the bank, so it never sends a payment the consent forbids).
 *
 * OBIE VRP 4.0, OBDomesticVRPControlParameters.PeriodicLimits: `Consent` periods start on the
 * day the consent was created; `Calendar` periods line up with the calendar and the first one
 * is pro-rated to the days remaining; `Fortnight` must use `Consent` alignment.
 *
 * Pure: takes instants in epoch milliseconds, does no I/O. Days are UTC days (a real UK bank
 * would use Europe/London; the sandbox keeps it simple and says so, and the settler leaves a
 * margin at period boundaries for that and for clock skew).
 */

export const PERIOD_TYPES = ['Day', 'Week', 'Fortnight', 'Month', 'Half-year', 'Year'] as const;
export type PeriodType = (typeof PERIOD_TYPES)[number];
export const PERIOD_ALIGNMENTS = ['Consent', 'Calendar'] as const;
export type PeriodAlignment = (typeof PERIOD_ALIGNMENTS)[number];

export interface PeriodicLimit {
  periodType: PeriodType;
  periodAlignment: PeriodAlignment;
  amountMinor: bigint;
}

/** A period `[startMs, endMs)` and the limit that applies to it. */
export interface PeriodWindow {
  startMs: number;
  endMs: number;
  limitMinor: bigint;
}

const DAY_MS = 86_400_000;
const DAYS_OF: Partial<Record<PeriodType, number>> = { Day: 1, Week: 7, Fortnight: 14 };
const MONTHS_OF: Partial<Record<PeriodType, number>> = { Month: 1, 'Half-year': 6, Year: 12 };

function startOfUtcDay(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** `months` after the UTC day `anchorMs`, clamping the day to the month's end (31 Jan -> 28 Feb). */
function addMonthsClamped(anchorMs: number, months: number): number {
  const anchor = new Date(anchorMs);
  const monthIndex = anchor.getUTCMonth() + months;
  const year = anchor.getUTCFullYear() + Math.floor(monthIndex / 12);
  const month = ((monthIndex % 12) + 12) % 12;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return Date.UTC(year, month, Math.min(anchor.getUTCDate(), lastDay));
}

function consentAlignedWindow(type: PeriodType, createdMs: number, atMs: number): { startMs: number; endMs: number } {
  const anchorMs = startOfUtcDay(createdMs);
  const days = DAYS_OF[type];
  if (days !== undefined) {
    const lengthMs = days * DAY_MS;
    const index = Math.max(0, Math.floor((atMs - anchorMs) / lengthMs));
    return { startMs: anchorMs + index * lengthMs, endMs: anchorMs + (index + 1) * lengthMs };
  }
  const months = MONTHS_OF[type] ?? 12;
  const at = new Date(atMs);
  const anchor = new Date(anchorMs);
  const monthsApart = (at.getUTCFullYear() - anchor.getUTCFullYear()) * 12 + at.getUTCMonth() - anchor.getUTCMonth();
  let index = Math.max(0, Math.floor(monthsApart / months));
  if (addMonthsClamped(anchorMs, index * months) > atMs && index > 0) index -= 1;
  return { startMs: addMonthsClamped(anchorMs, index * months), endMs: addMonthsClamped(anchorMs, (index + 1) * months) };
}

function calendarWindow(type: PeriodType, atMs: number): { startMs: number; endMs: number } {
  const dayMs = startOfUtcDay(atMs);
  const at = new Date(atMs);
  const year = at.getUTCFullYear();
  switch (type) {
    case 'Day':
      return { startMs: dayMs, endMs: dayMs + DAY_MS };
    case 'Week': {
      const sinceMonday = (at.getUTCDay() + 6) % 7; // ISO 8601 weeks start on Monday
      const startMs = dayMs - sinceMonday * DAY_MS;
      return { startMs, endMs: startMs + 7 * DAY_MS };
    }
    case 'Month':
      return { startMs: Date.UTC(year, at.getUTCMonth(), 1), endMs: Date.UTC(year, at.getUTCMonth() + 1, 1) };
    case 'Half-year': {
      const firstMonth = at.getUTCMonth() < 6 ? 0 : 6;
      return { startMs: Date.UTC(year, firstMonth, 1), endMs: Date.UTC(year, firstMonth + 6, 1) };
    }
    case 'Year':
      return { startMs: Date.UTC(year, 0, 1), endMs: Date.UTC(year + 1, 0, 1) };
    case 'Fortnight':
      throw new RangeError('PeriodAlignment: Fortnight periods must be Consent aligned');
  }
}

/** Throws RangeError naming the field when a limit breaks a rule of the spec. */
export function checkPeriodicLimit(limit: PeriodicLimit): void {
  if (limit.periodType === 'Fortnight' && limit.periodAlignment === 'Calendar') {
    throw new RangeError('PeriodAlignment: a Fortnight period must be Consent aligned, not Calendar');
  }
  if (limit.amountMinor <= 0n) throw new RangeError(`Amount: ${limit.amountMinor} must be positive`);
}

/** The period containing `atMs` for a consent created at `createdMs`, with its limit. */
export function periodWindow(limit: PeriodicLimit, createdMs: number, atMs: number): PeriodWindow {
  checkPeriodicLimit(limit);
  if (limit.periodAlignment === 'Consent') {
    return { ...consentAlignedWindow(limit.periodType, createdMs, atMs), limitMinor: limit.amountMinor };
  }
  const window = calendarWindow(limit.periodType, atMs);
  const createdDayMs = startOfUtcDay(createdMs);
  if (createdDayMs <= window.startMs) return { ...window, limitMinor: limit.amountMinor };
  // OBIE VRP 4.0: a Calendar limit is pro-rated in the first period to the remaining days,
  // counting the day of creation (spec example: 300.00 a month from 6 June -> 250.00).
  const totalDays = BigInt(Math.round((window.endMs - window.startMs) / DAY_MS));
  const remainingDays = BigInt(Math.round((window.endMs - createdDayMs) / DAY_MS));
  return { ...window, limitMinor: (limit.amountMinor * remainingDays) / totalDays };
}
