import { describe, expect, it } from 'vitest';
import { IngestRates, MinuteCounts, RATE_MINUTES } from './ingest-rate.ts';

const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);

describe('MinuteCounts', () => {
  it('counts per minute over the last hour, oldest first, and forgets what is older', () => {
    const counts = new MinuteCounts();
    counts.add(3, T0);
    counts.add(2, T0 + 30_000);
    counts.add(5, T0 + 60_000);
    const series = counts.series(T0 + 90_000);
    expect(series).toHaveLength(RATE_MINUTES);
    expect(series.slice(-2)).toEqual([5, 5]);
    expect(series.slice(0, -2).every((n) => n === 0)).toBe(true);
    expect(counts.series(T0 + 60 * 60_000).slice(-60, -59)).toEqual([5]);
    expect(counts.series(T0 + 3 * 60 * 60_000).every((n) => n === 0)).toBe(true);
  });
});

describe('IngestRates', () => {
  it('keeps each device usage today per meter, exactly, and starts again at midnight UTC', () => {
    const rates = new IngestRates(10);
    rates.record('cnc-1', 'cycles', '1', T0);
    rates.record('cnc-1', 'cycles', '9007199254740993', T0 + 1);
    rates.record('cnc-1', 'energy', '7', T0 + 2);
    expect(rates.today('cnc-1', T0 + 3)).toEqual({ cycles: '9007199254740994', energy: '7' });
    expect(rates.perMinute('cnc-1', T0 + 3).at(-1)).toBe(3);
    expect(rates.total.series(T0 + 3).at(-1)).toBe(3);
    expect(rates.today('cnc-1', Date.UTC(2026, 10, 28))).toEqual({});
    rates.record('cnc-1', 'cycles', '2', Date.UTC(2026, 10, 28, 0, 0, 1));
    expect(rates.today('cnc-1', Date.UTC(2026, 10, 28, 1))).toEqual({ cycles: '2' });
  });

  it('tracks at most devicesMax devices', () => {
    const rates = new IngestRates(1);
    rates.record('a', 'm', '1', T0);
    rates.record('b', 'm', '1', T0);
    expect(rates.today('b', T0)).toEqual({});
    expect(rates.total.series(T0).at(-1)).toBe(2);
  });
});
