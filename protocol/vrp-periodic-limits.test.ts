import { describe, expect, it } from 'vitest';
import { checkPeriodicLimit, periodWindow, type PeriodicLimit } from './vrp-periodic-limits.ts';

const utc = (text: string): number => Date.parse(`${text}T00:00:00Z`);
const iso = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

// OBIE VRP 4.0 domestic-vrp-consents "Examples of Periodic Limits" 1-4. End dates here are
// exclusive. Example 3 in the spec says "created on 05-Jun" but computes 209 days, which is
// from 06-Jun: we take 06-Jun so that the spec's own arithmetic holds.
const SPEC_VECTORS: {
  name: string;
  limit: PeriodicLimit;
  created: string;
  periods: { at: string; start: string; end: string; limitMinor: bigint }[];
}[] = [
  {
    name: 'example 1: Month, Calendar, pro-rated first month',
    limit: { periodType: 'Month', periodAlignment: 'Calendar', amountMinor: 300_00n },
    created: '2021-06-06',
    periods: [
      { at: '2021-06-06', start: '2021-06-01', end: '2021-07-01', limitMinor: 250_00n },
      { at: '2021-07-15', start: '2021-07-01', end: '2021-08-01', limitMinor: 300_00n },
      { at: '2021-08-31', start: '2021-08-01', end: '2021-09-01', limitMinor: 300_00n },
    ],
  },
  {
    name: 'example 2: Month, Consent',
    limit: { periodType: 'Month', periodAlignment: 'Consent', amountMinor: 500_00n },
    created: '2021-06-05',
    periods: [
      { at: '2021-07-04', start: '2021-06-05', end: '2021-07-05', limitMinor: 500_00n },
      { at: '2021-07-05', start: '2021-07-05', end: '2021-08-05', limitMinor: 500_00n },
      { at: '2021-08-20', start: '2021-08-05', end: '2021-09-05', limitMinor: 500_00n },
    ],
  },
  {
    name: 'example 3: Year, Calendar, pro-rated first year',
    limit: { periodType: 'Year', periodAlignment: 'Calendar', amountMinor: 500_00n },
    created: '2021-06-06',
    periods: [
      { at: '2021-12-31', start: '2021-01-01', end: '2022-01-01', limitMinor: 286_30n },
      { at: '2022-01-01', start: '2022-01-01', end: '2023-01-01', limitMinor: 500_00n },
    ],
  },
  {
    name: 'example 4: Year, Consent',
    limit: { periodType: 'Year', periodAlignment: 'Consent', amountMinor: 500_00n },
    created: '2021-06-05',
    periods: [
      { at: '2022-06-04', start: '2021-06-05', end: '2022-06-05', limitMinor: 500_00n },
      { at: '2022-06-05', start: '2022-06-05', end: '2023-06-05', limitMinor: 500_00n },
    ],
  },
];

describe('periodWindow', () => {
  for (const vector of SPEC_VECTORS) {
    it(`matches the spec's ${vector.name}`, () => {
      for (const period of vector.periods) {
        const window = periodWindow(vector.limit, utc(vector.created), utc(period.at) + 3_600_000);
        expect({ start: iso(window.startMs), end: iso(window.endMs), limitMinor: window.limitMinor }).toEqual({
          start: period.start,
          end: period.end,
          limitMinor: period.limitMinor,
        });
      }
    });
  }

  it('clamps a consent-aligned month that starts on the 31st to the end of shorter months', () => {
    const limit: PeriodicLimit = { periodType: 'Month', periodAlignment: 'Consent', amountMinor: 1n };
    const window = periodWindow(limit, utc('2024-01-31'), utc('2024-02-28'));
    expect([iso(window.startMs), iso(window.endMs)]).toEqual(['2024-01-31', '2024-02-29']);
    const next = periodWindow(limit, utc('2024-01-31'), utc('2024-03-01'));
    expect([iso(next.startMs), iso(next.endMs)]).toEqual(['2024-02-29', '2024-03-31']);
  });

  it('starts calendar weeks on Monday', () => {
    const limit: PeriodicLimit = { periodType: 'Week', periodAlignment: 'Calendar', amountMinor: 7_00n };
    const window = periodWindow(limit, utc('2024-01-01'), utc('2024-01-07')); // a Sunday
    expect([iso(window.startMs), iso(window.endMs), window.limitMinor]).toEqual(['2024-01-01', '2024-01-08', 7_00n]);
  });

  it('counts consent-aligned fortnights from the day of consent', () => {
    const limit: PeriodicLimit = { periodType: 'Fortnight', periodAlignment: 'Consent', amountMinor: 1n };
    const window = periodWindow(limit, utc('2024-01-03'), utc('2024-01-20'));
    expect([iso(window.startMs), iso(window.endMs)]).toEqual(['2024-01-17', '2024-01-31']);
  });

  it('refuses a calendar-aligned fortnight, which the spec forbids', () => {
    const limit: PeriodicLimit = { periodType: 'Fortnight', periodAlignment: 'Calendar', amountMinor: 1n };
    expect(() => checkPeriodicLimit(limit)).toThrow(/PeriodAlignment/);
    expect(() => periodWindow(limit, 0, 0)).toThrow(RangeError);
  });

  it('refuses a limit that is not positive', () => {
    expect(() => checkPeriodicLimit({ periodType: 'Day', periodAlignment: 'Consent', amountMinor: 0n })).toThrow(/Amount/);
  });
});
