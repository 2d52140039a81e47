import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PulseCounter, type CounterReading, type PulseCounterOptions } from './pulse-counter.ts';
import { SimulatedPulseInput } from './simulated-pulse-input.ts';

let dir: string;
let stateFile: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pulse-counter-'));
  stateFile = path.join(dir, 'line17.json');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A counter on a simulated pin with a hand-driven clock and report timer. */
async function openCounter(options: Partial<PulseCounterOptions> = {}) {
  const input = new SimulatedPulseInput();
  const readings: CounterReading[] = [];
  const errors: unknown[] = [];
  const clock = { nowMs: 0 };
  let tick: (() => void) | undefined;
  const counter = await PulseCounter.open(input, {
    stateFile, debounceMs: 10, maxRateHz: 50, reportEveryMs: 1_000,
    onReading: (reading) => readings.push(reading), onError: (error) => errors.push(error),
    clock: () => clock.nowMs, setInterval: (callback) => (tick = callback), clearInterval: () => (tick = undefined),
    ...options,
  });
  return { input, counter, readings, errors, clock, tick: () => tick?.() };
}

const diskCount = (): bigint => BigInt((JSON.parse(readFileSync(stateFile, 'utf8')) as { count: string }).count);

describe('PulseCounter debounce', () => {
  it('counts a bouncing contact once', async () => {
    const { input, counter } = await openCounter({ debounceMs: 10 });
    for (const atMs of [100, 101.5, 103, 109.9]) input.pulse(atMs);
    expect(counter.count).toBe(1n);
    expect(counter.stats().bouncesIgnored).toBe(3);
  });

  it('counts every pulse spaced at least debounceMs apart', async () => {
    const { input, counter } = await openCounter({ debounceMs: 10 });
    for (const atMs of [100, 110, 120, 145]) input.pulse(atMs);
    expect(counter.count).toBe(4n);
    expect(counter.stats().bouncesIgnored).toBe(0);
  });

  it('judges edges afresh after the wall clock steps back, instead of calling them all bounces', async () => {
    const { input, counter } = await openCounter({ debounceMs: 10 });
    input.pulse(5_000);
    input.pulse(2_000); // NTP stepped the clock back 3 s
    input.pulse(2_005); // still a bounce of the edge at 2 000
    expect(counter.count).toBe(2n);
    expect(counter.stats().bouncesIgnored).toBe(1);
  });
});

describe('PulseCounter rate limit', () => {
  it('drops a burst beyond maxRateHz within one second and reports the drops', async () => {
    const { input, counter, readings, tick } = await openCounter({ debounceMs: 0, maxRateHz: 5 });
    for (let i = 0; i < 20; i += 1) input.pulse(1_000 + i * 10);
    expect(counter.count).toBe(5n);
    tick();
    await vi.waitFor(() => expect(readings).toHaveLength(1));
    expect(readings[0]).toMatchObject({ reading: 5n, dropped: 15 });
    expect(counter.stats().droppedTotal).toBe(15);
  });

  it('counts a steady rate at maxRateHz in full, second after second', async () => {
    const { input, counter } = await openCounter({ debounceMs: 0, maxRateHz: 5 });
    for (let i = 0; i < 15; i += 1) input.pulse(i * 200);
    expect(counter.count).toBe(15n);
    expect(counter.stats().droppedTotal).toBe(0);
  });

  it('counts again once the burst has left the sliding window', async () => {
    const { input, counter } = await openCounter({ debounceMs: 0, maxRateHz: 2 });
    for (const atMs of [0, 1, 2, 999]) input.pulse(atMs); // 2 counted, 2 dropped
    input.pulse(1_000.5); // the edge at 0 has left the window
    input.pulse(1_001.5); // so has the edge at 1
    input.pulse(1_002); // but not the one at 1 000.5 and 1 001.5
    expect(counter.count).toBe(4n);
    expect(counter.stats().droppedTotal).toBe(3);
  });
});

describe('PulseCounter readings', () => {
  it('emits a reading each period only when the count or the drops changed', async () => {
    const { input, readings, tick, clock } = await openCounter();
    input.pulse(100);
    clock.nowMs = 1_000;
    tick();
    await vi.waitFor(() => expect(readings).toHaveLength(1));
    tick(); // nothing new
    clock.nowMs = 2_000;
    input.pulse(200);
    tick();
    await vi.waitFor(() => expect(readings).toHaveLength(2));
    expect(readings.map((r) => [r.reading, r.atMs, r.dropped])).toEqual([[1n, 1_000, 0], [2n, 2_000, 0]]);
  });

  it('emits on flush even when nothing changed, so the intake can learn the baseline', async () => {
    const { counter, readings } = await openCounter();
    await expect(counter.flush()).resolves.toEqual({ reading: 0n, epoch: counter.epoch, atMs: 0, dropped: 0 });
    expect(readings).toHaveLength(1);
  });

  it('never emits a reading above the count on disk', async () => {
    const behind: string[] = [];
    const { input, counter, tick } = await openCounter({
      debounceMs: 0,
      onReading: (r) => {
        if (diskCount() < r.reading) behind.push(`${r.reading} > ${diskCount()}`);
      },
    });
    for (let i = 0; i < 30; i += 1) {
      input.pulse(i * 100);
      if (i % 7 === 0) tick();
      if (i % 11 === 0) await counter.flush();
    }
    await counter.close();
    expect(behind).toEqual([]);
    expect(diskCount()).toBe(30n);
  });

  it('writes the count only when it reports, so pulses since the last report are not yet on disk', async () => {
    const { input, counter } = await openCounter();
    input.pulse(100);
    expect(counter.stats()).toMatchObject({ count: 1n, persistedCount: 0n });
    expect(diskCount()).toBe(0n);
  });

  it('emits nothing while the count cannot be written, and catches up once it can', async () => {
    const { input, readings, errors, tick } = await openCounter();
    await rm(dir, { recursive: true });
    input.pulse(100);
    tick();
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    expect(readings).toEqual([]);
    await mkdir(dir);
    input.pulse(200);
    tick();
    await vi.waitFor(() => expect(readings.map((r) => r.reading)).toEqual([2n]));
  });
});

describe('PulseCounter persistence', () => {
  it('continues the count with the same epoch after a restart', async () => {
    const first = await openCounter();
    first.input.pulse(100);
    first.input.pulse(200);
    first.input.pulse(300);
    await first.counter.close();
    const second = await openCounter();
    expect(second.counter.epoch).toBe(first.counter.epoch);
    second.input.pulse(100);
    expect((await second.counter.flush()).reading).toBe(4n);
  });

  it('starts a new epoch at 0 when the state file is lost', async () => {
    const first = await openCounter();
    first.input.pulse(100);
    await first.counter.close();
    await rm(stateFile);
    const second = await openCounter();
    expect(second.counter.epoch).not.toBe(first.counter.epoch);
    expect(second.counter.count).toBe(0n);
  });

  it('flushes on close, closes its input, and counts nothing after', async () => {
    const { input, counter, readings } = await openCounter();
    input.pulse(100);
    await counter.close();
    input.pulse(200);
    expect(input.closed).toBe(true);
    expect(readings.map((r) => r.reading)).toEqual([1n]);
    expect(counter.count).toBe(1n);
  });
});

describe('PulseCounter options', () => {
  it('opens with defaults for every limit', async () => {
    const input = new SimulatedPulseInput();
    const counter = await PulseCounter.open(input, { stateFile, onReading: () => {}, onError: () => {} });
    await counter.close();
    expect(counter.count).toBe(0n);
  });

  it.each([
    ['debounceMs', -1, /debounceMs must be an integer in 0..10000, got -1/],
    ['debounceMs', 2.5, /debounceMs must be an integer/],
    ['maxRateHz', 0, /maxRateHz must be an integer in 1..1000, got 0/],
    ['maxRateHz', 1_001, /maxRateHz must be an integer in 1..1000/],
    ['reportEveryMs', 99, /reportEveryMs must be an integer in 100..3600000, got 99/],
    ['reportEveryMs', Number.NaN, /reportEveryMs must be an integer/],
  ] as const)('refuses %s = %s, naming the option', async (name, value, message) => {
    await expect(openCounter({ [name]: value })).rejects.toThrow(RangeError);
    await expect(openCounter({ [name]: value })).rejects.toThrow(message);
  });

  it('refuses an input another counter already watches, leaving no report timer behind', async () => {
    const input = new SimulatedPulseInput();
    input.watch(() => {});
    const timers: unknown[] = [];
    const opening = PulseCounter.open(input, { stateFile, onReading: () => {}, onError: () => {}, setInterval: (callback) => timers.push(callback) });
    await expect(opening).rejects.toThrow(/twice/);
    expect(timers).toEqual([]);
  });

  it('refuses a missing state file or callback', async () => {
    await expect(openCounter({ stateFile: '' })).rejects.toThrow(/option stateFile must be a non-empty path/);
    await expect(openCounter({ onReading: undefined as never })).rejects.toThrow(/option onReading must be a function/);
  });
});
