import fc from 'fast-check';
import cron from 'node-cron';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { propertyRuns } from '../../test/vectors/property-seed.ts';
import { compileCron, instantOfWallTime, nextCronTime } from './cron-next.ts';

/** The first `count` due times after `from`, as ISO strings. */
function dueTimes(expression: string, timeZone: string, from: string, count: number): string[] {
  const schedule = compileCron(expression, timeZone);
  const out: string[] = [];
  let at = new Date(from);
  for (let i = 0; i < count; i++) {
    at = nextCronTime(schedule, at);
    out.push(at.toISOString());
  }
  return out;
}

describe('nextCronTime', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('counts strictly after the given instant, to the second', () => {
    expect(dueTimes('0 * * * *', 'UTC', '2026-05-01T12:00:00.000Z', 2)).toEqual(['2026-05-01T13:00:00.000Z', '2026-05-01T14:00:00.000Z']);
    expect(dueTimes('0 * * * *', 'UTC', '2026-05-01T11:59:59.999Z', 1)).toEqual(['2026-05-01T12:00:00.000Z']);
    expect(dueTimes('*/2 * * * * *', 'UTC', '2026-05-01T12:00:00.500Z', 2)).toEqual(['2026-05-01T12:00:02.000Z', '2026-05-01T12:00:04.000Z']);
  });

  it('reads the wall clock of the time zone', () => {
    expect(dueTimes('30 1 * * *', 'Europe/London', '2026-07-01T12:00:00Z', 1)).toEqual(['2026-07-02T00:30:00.000Z']);
    expect(dueTimes('0 9 * * mon-fri', 'America/New_York', '2026-05-01T14:00:00Z', 2)).toEqual(['2026-05-04T13:00:00.000Z', '2026-05-05T13:00:00.000Z']);
    expect(dueTimes('0 0 1 * *', 'Asia/Kolkata', '2026-01-15T00:00:00Z', 2)).toEqual(['2026-01-31T18:30:00.000Z', '2026-02-28T18:30:00.000Z']);
  });

  it('runs a wall-clock time skipped by spring forward once, at the end of the gap', () => {
    // Europe/London 2026-03-29: 01:00 GMT becomes 02:00 BST; 01:30 does not exist that day.
    expect(dueTimes('30 1 * * *', 'Europe/London', '2026-03-27T12:00:00Z', 3)).toEqual(['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
    // Every 15 minutes: 01:00, 01:15, 01:30 and 01:45 GMT do not exist; they and 02:00 BST run once.
    expect(dueTimes('*/15 * * * *', 'Europe/London', '2026-03-29T00:40:00Z', 3)).toEqual(['2026-03-29T00:45:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T01:15:00.000Z']);
    // America/New_York 2026-03-08: 02:30 does not exist; 03:00 EDT is 07:00Z.
    expect(dueTimes('30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', 2)).toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']);
  });

  it('runs a wall-clock time repeated by fall back once, at its first occurrence', () => {
    // Europe/London 2026-10-25: 02:00 BST becomes 01:00 GMT; 01:30 happens at 00:30Z and 01:30Z.
    expect(dueTimes('30 1 * * *', 'Europe/London', '2026-10-24T12:00:00Z', 2)).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
    // Hourly: the repeated 01:00 (01:00Z) is not run a second time.
    expect(dueTimes('0 * * * *', 'Europe/London', '2026-10-24T23:30:00Z', 3)).toEqual(['2026-10-25T00:00:00.000Z', '2026-10-25T02:00:00.000Z', '2026-10-25T03:00:00.000Z']);
  });

  it('resolves wall times: normal, repeated (first), missing (end of gap)', () => {
    expect(new Date(instantOfWallTime(Date.UTC(2026, 6, 1, 12, 0, 0), 'Europe/London')).toISOString()).toBe('2026-07-01T11:00:00.000Z');
    expect(new Date(instantOfWallTime(Date.UTC(2026, 9, 25, 1, 30, 0), 'Europe/London')).toISOString()).toBe('2026-10-25T00:30:00.000Z');
    expect(new Date(instantOfWallTime(Date.UTC(2026, 2, 29, 1, 30, 0), 'Europe/London')).toISOString()).toBe('2026-03-29T01:00:00.000Z');
    // Lord Howe moves by 30 minutes.
    expect(new Date(instantOfWallTime(Date.UTC(2026, 9, 4, 2, 15, 0), 'Australia/Lord_Howe')).toISOString()).toBe('2026-10-03T15:30:00.000Z');
  });

  it('understands node-cron\'s L, W, # and names', () => {
    expect(dueTimes('0 0 L * *', 'UTC', '2026-02-01T00:00:00Z', 2)).toEqual(['2026-02-28T00:00:00.000Z', '2026-03-31T00:00:00.000Z']);
    expect(dueTimes('0 0 * * 5L', 'UTC', '2026-05-01T00:00:00Z', 1)).toEqual(['2026-05-29T00:00:00.000Z']);
    expect(dueTimes('0 0 * * 1#2', 'UTC', '2026-05-01T00:00:00Z', 1)).toEqual(['2026-05-11T00:00:00.000Z']);
    expect(dueTimes('0 0 15W * *', 'UTC', '2026-08-01T00:00:00Z', 1)).toEqual(['2026-08-14T00:00:00.000Z']); // the 15th is a Saturday
    expect(dueTimes('0 0 L-2 * *', 'UTC', '2026-04-01T00:00:00Z', 1)).toEqual(['2026-04-28T00:00:00.000Z']);
    expect(dueTimes('@daily', 'UTC', '2026-04-01T10:00:00Z', 1)).toEqual(['2026-04-02T00:00:00.000Z']);
    expect(dueTimes('0 12 29 feb *', 'UTC', '2026-03-01T00:00:00Z', 1)).toEqual(['2028-02-29T12:00:00.000Z']);
  });

  it('refuses a bad expression or zone, naming the field', () => {
    expect(() => compileCron('every minute', 'UTC', 'payers.acme.settlement.cron')).toThrow(/payers\.acme\.settlement\.cron: "every minute" is not a node-cron expression/);
    expect(() => compileCron('0 0 * * *', 'Europe/Atlantis', 'payers.acme.settlement.timeZone')).toThrow(/payers\.acme\.settlement\.timeZone: time zone "Europe\/Atlantis"/);
    expect(() => nextCronTime(compileCron('0 0 * * *', 'UTC'), new Date(Number.NaN))).toThrow(RangeError);
  });

  it('agrees with node-cron\'s own next runs in zones without daylight saving', () => {
    const expressions = ['* * * * *', '*/7 * * * *', '15 3 * * *', '0 0 1,15 * *', '0 9-17 * * mon-fri', '30 */4 * * 0', '0 0 L * *', '0 12 * * 3#2', '*/20 * * * * *', '0 0 29 2 *'];
    const zones = ['UTC', 'Asia/Tokyo', 'Asia/Kolkata'];
    fc.assert(fc.property(
      fc.constantFrom(...expressions), fc.constantFrom(...zones), fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2030, 0, 1) }),
      (expression, timeZone, fromMs) => {
        vi.useFakeTimers({ now: fromMs, toFake: ['Date'] });
        const task = cron.createTask(expression, () => {}, { timezone: timeZone });
        try {
          const theirs = task.getNextRuns(3).map((d) => d.toISOString());
          expect(dueTimes(expression, timeZone, new Date(fromMs).toISOString(), 3)).toEqual(theirs);
        } finally {
          void task.destroy();
          vi.useRealTimers();
        }
      },
    ), propertyRuns(300));
  });
});
