/**
 * When a node-cron expression next falls due in an IANA time zone, counted from any
 * instant: pure (no timers, no Date.now), so a schedule can run on an injected clock and
 * be tested across clock jumps and daylight-saving changes.
 *
 * node-cron 4 parses the expression here (its own `parse`: we accept exactly its syntax,
 * 5 or 6 fields, names, ranges, steps, L, W, #), but it offers the next run only of a
 * started task and only from the real clock, and across a daylight-saving change it
 * misses or doubles runs: 01:30 on the spring-forward day never reads back as 01:30, so
 * it is skipped, and on the fall-back day both 01:30s match. The rules here:
 *   - a wall-clock time that does not exist (spring forward) runs once, at the first
 *     instant after the gap (01:30 Europe/London on 2026-03-29 runs at 02:00 BST);
 *   - a wall-clock time that happens twice (fall back) runs once, at its first
 *     occurrence (01:30 BST on 2026-10-25, not again at 01:30 GMT).
 * Day of month and day of week must both match, as in node-cron.
 */
import cron from 'node-cron';

const SECOND_MS = 1_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** How far ahead a next time is looked for: node-cron's own bound (a leap day can be 8 years off). */
const SEARCH_DAYS_MAX = 366 * 100;
/**
 * Wall-clock times this far before `after`'s wall clock are skipped unresolved: an offset
 * change moves a wall time's instant by at most ~2 h (tz database), so none of them can
 * be after `after`.
 */
const SKIP_SLACK_MS = 6 * HOUR_MS;

type DayToken = number | string;

/** A cron expression compiled for one time zone. */
export interface CronSchedule {
  readonly expression: string;
  readonly timeZone: string;
  readonly seconds: readonly number[];
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  readonly daysOfMonth: readonly DayToken[];
  readonly months: ReadonlySet<number>;
  readonly daysOfWeek: readonly DayToken[];
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Whether Intl knows the IANA zone (`Europe/London`, `UTC`). */
export function isTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The zone's offset from UTC at an instant, in ms (wall clock minus UTC). */
export function offsetMsAt(instantMs: number, timeZone: string): number {
  let year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  for (const part of formatterFor(timeZone).formatToParts(instantMs)) {
    const value = Number(part.value);
    if (part.type === 'year') year = value;
    else if (part.type === 'month') month = value;
    else if (part.type === 'day') day = value;
    else if (part.type === 'hour') hour = value;
    else if (part.type === 'minute') minute = value;
    else if (part.type === 'second') second = value;
  }
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  return wall - (instantMs - (((instantMs % SECOND_MS) + SECOND_MS) % SECOND_MS));
}

/**
 * The instant a wall-clock time (as ms of a UTC calendar: `Date.UTC(y, m - 1, d, h, mi, s)`)
 * has in the zone: its first occurrence if it happens twice, the end of the gap if it
 * does not exist. Assumes at most one offset change within a day either side (tz database).
 */
export function instantOfWallTime(wallMs: number, timeZone: string): number {
  const offsetBefore = offsetMsAt(wallMs - DAY_MS, timeZone);
  const offsetAfter = offsetMsAt(wallMs + DAY_MS, timeZone);
  const early = wallMs - Math.max(offsetBefore, offsetAfter);
  const late = wallMs - Math.min(offsetBefore, offsetAfter);
  if (early + offsetMsAt(early, timeZone) === wallMs) return early;
  if (late + offsetMsAt(late, timeZone) === wallMs) return late;
  // A gap (spring forward): `early` reads before it, `late` after; the change lies between.
  let before = early;
  let after = late;
  const offsetInGapStart = offsetMsAt(before, timeZone);
  while (after - before > SECOND_MS) {
    const middle = before + Math.floor((after - before) / 2 / SECOND_MS) * SECOND_MS;
    if (offsetMsAt(middle, timeZone) === offsetInGapStart) before = middle;
    else after = middle;
  }
  return after;
}

/** Compiles a node-cron expression for a time zone; throws RangeError naming `field`. */
export function compileCron(expression: string, timeZone: string, field = 'cron'): CronSchedule {
  if (!isTimeZone(timeZone)) throw new RangeError(`${field}: time zone ${JSON.stringify(timeZone)} is not an IANA time zone like "Europe/London"`);
  if (!cron.validate(expression)) throw new RangeError(`${field}: ${JSON.stringify(expression)} is not a node-cron expression (5 or 6 fields), like "30 1 * * *"`);
  const parsed = cron.parse(expression);
  const ascending = (values: ReadonlyArray<number | string>): number[] => [...new Set(values.map(Number))].sort((a, b) => a - b);
  return Object.freeze({
    expression, timeZone,
    seconds: ascending(parsed.second), minutes: ascending(parsed.minute), hours: ascending(parsed.hour),
    daysOfMonth: parsed.dayOfMonth, months: new Set(parsed.month), daysOfWeek: parsed.dayOfWeek,
  });
}

const lastDayOfMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();

/** `nW`/`LW`: the weekday nearest day n (or the last day) within the month. */
function nearestWeekday(year: number, month: number, target: number): number {
  const last = lastDayOfMonth(year, month);
  if (target < 1 || target > last) return -1;
  const weekday = new Date(Date.UTC(year, month - 1, target)).getUTCDay();
  if (weekday === 6) return target === 1 ? 3 : target - 1;
  if (weekday === 0) return target === last ? target - 2 : target + 1;
  return target;
}

function dayOfMonthMatches(tokens: readonly DayToken[], year: number, month: number, day: number): boolean {
  const last = lastDayOfMonth(year, month);
  return tokens.some((token) => {
    if (typeof token === 'number') return token === day;
    if (token === 'L') return day === last;
    const weekday = /^(\d{1,2}|L)W$/.exec(token);
    if (weekday) return nearestWeekday(year, month, weekday[1] === 'L' ? last : Number(weekday[1])) === day;
    const fromLast = /^L-(\d{1,2})$/.exec(token);
    return fromLast !== null && last - Number(fromLast[1]) === day;
  });
}

function dayOfWeekMatches(tokens: readonly DayToken[], year: number, month: number, day: number, weekday: number): boolean {
  return tokens.some((token) => {
    if (typeof token === 'number') return token % 7 === weekday;
    const lastOf = /^([0-7])L$/i.exec(token);
    if (lastOf) return Number(lastOf[1]) % 7 === weekday && day + 7 > lastDayOfMonth(year, month);
    const nth = /^([0-7])#([1-5])$/.exec(token);
    return nth !== null && Number(nth[1]) % 7 === weekday && Math.ceil(day / 7) === Number(nth[2]);
  });
}

/**
 * The first instant strictly after `after` at which the schedule falls due. Wall times
 * map to instants in order (a gap's times all to its end, a repeated time to its first
 * occurrence), so the first wall time whose instant is after `after` is the answer.
 */
export function nextCronTime(schedule: CronSchedule, after: Date): Date {
  const afterMs = after.getTime();
  if (!Number.isFinite(afterMs)) throw new RangeError('after: not a valid date');
  const { timeZone } = schedule;
  const offsetMs = offsetMsAt(afterMs, timeZone);
  const afterWallMs = afterMs + offsetMs;
  // The usual case: no offset change within two days of `after` (the tz database has none
  // closer together), so near it a wall time's instant is plain subtraction.
  const steady = offsetMsAt(afterMs - 2 * DAY_MS, timeZone) === offsetMs && offsetMsAt(afterMs + 2 * DAY_MS, timeZone) === offsetMs;
  const near: WallClock = {
    afterMs,
    skipBeforeWallMs: steady ? afterWallMs + 1 : afterWallMs - SKIP_SLACK_MS,
    instantOf: (wallMs) => (steady && Math.abs(wallMs - afterWallMs) < DAY_MS ? wallMs - offsetMs : instantOfWallTime(wallMs, timeZone)),
  };
  const start = new Date(afterWallMs - DAY_MS);
  for (let i = 0; i < SEARCH_DAYS_MAX; i++) {
    const dayMs = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate() + i);
    const date = new Date(dayMs);
    const [year, month, day] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
    if (!schedule.months.has(month) || !dayOfMonthMatches(schedule.daysOfMonth, year, month, day) || !dayOfWeekMatches(schedule.daysOfWeek, year, month, day, date.getUTCDay())) continue;
    const found = firstOnDay(schedule, dayMs, near);
    if (found !== undefined) return new Date(found);
  }
  throw new RangeError(`Cannot schedule ${JSON.stringify(schedule.expression)}: it does not fall due within ${SEARCH_DAYS_MAX} days of ${after.toISOString()}`);
}

interface WallClock {
  afterMs: number;
  /** Wall times before this cannot fall after `afterMs`: skipped without resolving them. */
  skipBeforeWallMs: number;
  instantOf(wallMs: number): number;
}

function firstOnDay(schedule: CronSchedule, dayMs: number, near: WallClock): number | undefined {
  const { skipBeforeWallMs } = near;
  for (const hour of schedule.hours) {
    const hourMs = dayMs + hour * HOUR_MS;
    if (hourMs + HOUR_MS <= skipBeforeWallMs) continue;
    for (const minute of schedule.minutes) {
      const minuteMs = hourMs + minute * 60_000;
      if (minuteMs + 60_000 <= skipBeforeWallMs) continue;
      for (const second of schedule.seconds) {
        const wallMs = minuteMs + second * SECOND_MS;
        if (wallMs < skipBeforeWallMs) continue;
        const instant = near.instantOf(wallMs);
        if (instant > near.afterMs) return instant;
      }
    }
  }
  return undefined;
}
