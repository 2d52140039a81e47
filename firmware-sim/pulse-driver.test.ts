import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PulseCounter, type PulseCounterOptions } from '../gateway/ingest/gpio/pulse-counter.ts';
import { SimulatedPulseInput } from '../gateway/ingest/gpio/simulated-pulse-input.ts';
import { drivePulses, PulsePlan, startPulseDriver, type PlannedEdge, type PulsePlanOptions } from './pulse-driver.ts';

const SEED = 20_261_127;

describe('PulsePlan', () => {
  it('plans exactly rateHz pulses a second without jitter', () => {
    const edges = new PulsePlan({ rateHz: 4, seed: SEED }).until(10_000);
    expect(edges.map((e) => e.atMs).slice(0, 3)).toEqual([250, 500, 750]);
    expect(edges).toHaveLength(39); // 250 … 9 750; the pulse at 10 000 is outside [0, 10 000)
  });

  it('plans the same edges however the time is sliced, and other edges for another seed', () => {
    const options: PulsePlanOptions = { rateHz: 7, seed: SEED, jitterRatio: 0.2, bounce: { probability: 0.5, edgesMax: 3, withinMs: 4 }, noise: { burstsPerMinute: 6, edgesPerBurst: 50, burstMs: 300 } };
    const whole = new PulsePlan(options).until(60_000);
    const sliced = new PulsePlan(options);
    const pieces: PlannedEdge[] = [];
    for (let endMs = 37; endMs <= 60_000; endMs += 37) pieces.push(...sliced.until(endMs));
    pieces.push(...sliced.until(60_000));
    expect(pieces, `seed ${SEED}`).toEqual(whole);
    expect(new PulsePlan({ ...options, seed: SEED + 1 }).until(60_000)).not.toEqual(whole);
  });

  it('puts bounce edges within withinMs after their pulse, and none when bounce is off', () => {
    const edges = new PulsePlan({ rateHz: 10, seed: SEED, bounce: { probability: 1, edgesMax: 4, withinMs: 3 } }).until(5_000);
    let lastPulseMs = 0;
    for (const edge of edges) {
      if (edge.kind === 'pulse') lastPulseMs = edge.atMs;
      else expect(edge.atMs - lastPulseMs, `seed ${SEED}`).toBeGreaterThan(0);
      if (edge.kind === 'bounce') expect(edge.atMs - lastPulseMs, `seed ${SEED}`).toBeLessThanOrEqual(3);
    }
    expect(edges.filter((e) => e.kind === 'bounce').length).toBeGreaterThanOrEqual(49);
    expect(new PulsePlan({ rateHz: 10, seed: SEED }).until(5_000).every((e) => e.kind === 'pulse')).toBe(true);
  });

  it.each([
    [{ rateHz: 0 }, /option rateHz must be a number in \(0, 1000\], got 0/],
    [{ rateHz: 5, jitterRatio: 0.9 }, /option jitterRatio/],
    [{ rateHz: 5, seed: -1 }, /option seed must be an integer/],
    [{ rateHz: 5, bounce: { probability: 2, edgesMax: 1, withinMs: 1 } }, /option bounce.probability/],
    [{ rateHz: 5, bounce: { probability: 1, edgesMax: 1.5, withinMs: 1 } }, /option bounce.edgesMax must be an integer/],
    [{ rateHz: 5, noise: { burstsPerMinute: 1, edgesPerBurst: 10, burstMs: 0 } }, /option noise.burstMs/],
  ] as const)('refuses %o, naming the option', (options, message) => {
    expect(() => new PulsePlan(options)).toThrow(RangeError);
    expect(() => new PulsePlan(options)).toThrow(message);
  });
});

describe('pulse driver with the pulse counter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pulse-driver-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const openCounter = (input: SimulatedPulseInput, options: Partial<PulseCounterOptions> = {}) =>
    PulseCounter.open(input, {
      stateFile: path.join(dir, 'state.json'), onReading: () => {}, onError: (error) => { throw error; },
      setInterval: () => 0, clearInterval: () => {}, ...options,
    });

  const bouncy: PulsePlanOptions = { rateHz: 10, seed: SEED, jitterRatio: 0.3, bounce: { probability: 0.4, edgesMax: 5, withinMs: 5 } };

  it('counts every true pulse once when the contact bounces within the debounce time', async () => {
    const input = new SimulatedPulseInput();
    const counter = await openCounter(input, { debounceMs: 10, maxRateHz: 50 });
    const summary = drivePulses(input, 60_000, bouncy);
    expect(summary.bounces, `seed ${SEED}`).toBeGreaterThan(100);
    expect(counter.count, `seed ${SEED}`).toBe(BigInt(summary.pulses));
    expect((await counter.flush()).dropped).toBe(0);
  });

  it('overcounts the same bouncing contact when debounce is off', async () => {
    const input = new SimulatedPulseInput();
    const counter = await openCounter(input, { debounceMs: 0, maxRateHz: 1_000 });
    const summary = drivePulses(input, 60_000, bouncy);
    expect(counter.count, `seed ${SEED}`).toBe(BigInt(summary.pulses + summary.bounces));
  });

  it('drops noise bursts above maxRateHz, bills at most maxRateHz a second of them, and loses no edge unaccounted', async () => {
    const input = new SimulatedPulseInput();
    const counter = await openCounter(input, { debounceMs: 2, maxRateHz: 20 });
    const noise = { burstsPerMinute: 2, edgesPerBurst: 200, burstMs: 1_000 };
    const summary = drivePulses(input, 300_000, { rateHz: 2, seed: SEED, noise });
    const { count, bouncesIgnored, droppedTotal } = counter.stats();
    const bursts = Math.ceil(summary.noise / noise.edgesPerBurst);
    expect(bursts, `seed ${SEED}`).toBeGreaterThan(3);
    expect(droppedTotal, `seed ${SEED}`).toBeGreaterThan(bursts * 150);
    expect(count - BigInt(summary.pulses), `seed ${SEED}`).toBeLessThanOrEqual(BigInt(bursts * 2 * 20));
    expect(count + BigInt(bouncesIgnored + droppedTotal)).toBe(BigInt(summary.edges));
  });

  it('drops nothing from the same pulses without noise', async () => {
    const input = new SimulatedPulseInput();
    const counter = await openCounter(input, { debounceMs: 2, maxRateHz: 20 });
    const summary = drivePulses(input, 300_000, { rateHz: 2, seed: SEED });
    expect(counter.stats()).toMatchObject({ count: BigInt(summary.pulses), droppedTotal: 0 });
  });

  it('reaches the true total across a gateway restart in the middle of the run', async () => {
    const first = new SimulatedPulseInput();
    const before = await openCounter(first);
    const partOne = drivePulses(first, 30_000, bouncy);
    await before.close();
    const second = new SimulatedPulseInput();
    const after = await openCounter(second);
    const partTwo = drivePulses(second, 30_000, { ...bouncy, seed: SEED + 1, startMs: 30_000 });
    const reading = await after.flush();
    expect(reading.epoch).toBe(before.epoch);
    expect(reading.reading, `seed ${SEED}`).toBe(BigInt(partOne.pulses + partTwo.pulses));
  });

  it('delivers planned edges in real time on each tick, and none after stop', () => {
    const input = new SimulatedPulseInput();
    const edges: number[] = [];
    input.watch((atMs) => edges.push(atMs));
    const clock = { nowMs: 1_000_000 };
    let tick: () => void = () => {};
    const driver = startPulseDriver(input, { rateHz: 5, seed: SEED, clock: () => clock.nowMs, setInterval: (callback) => (tick = callback), clearInterval: () => (tick = () => {}) });
    clock.nowMs += 1_000;
    tick();
    expect(edges).toEqual([1_000_200, 1_000_400, 1_000_600, 1_000_800]);
    expect(driver.stop()).toEqual({ pulses: 4, bounces: 0, noise: 0, edges: 4 });
    clock.nowMs += 1_000;
    tick();
    expect(edges).toHaveLength(4);
  });
});
