/**
 * Drives a simulated pulse input like a machine's cycle output or a wheel sensor: pulses
 * at a set rate, optionally with contact bounce (extra edges a few ms after a pulse) and
 * noise bursts (a run of evenly spaced edges, e.g. a motor starting next to the cable).
 *
 * Pure given a seed: pulses and noise draw from separate seeded streams, so the planned
 * edges are the same however the time is sliced, and a failing run can be replayed.
 */
import { seededRandom } from './machines.ts';

export interface BounceOptions {
  /** Chance that a pulse bounces, 0..1. */
  probability: number;
  /** Extra edges of one bounce, 1..20 (drawn uniformly from 1..edgesMax). */
  edgesMax: number;
  /** The extra edges fall within this long after the pulse, (0, 100] ms. */
  withinMs: number;
}

export interface NoiseOptions {
  /** Mean rate of bursts (Poisson), (0, 600]. */
  burstsPerMinute: number;
  /** Edges in one burst, 1..10 000. */
  edgesPerBurst: number;
  /** The burst's edges are evenly spaced over this long, (0, 60 000] ms. */
  burstMs: number;
}

export interface PulsePlanOptions {
  /** True pulses per second, (0, 1000]. */
  rateHz: number;
  /** Default 1; print it with any failure. */
  seed?: number;
  /** Each period varies by up to ± this fraction, 0..0.5. Default 0 (exact rate). */
  jitterRatio?: number;
  bounce?: BounceOptions;
  noise?: NoiseOptions;
}

export type PulseEdgeKind = 'pulse' | 'bounce' | 'noise';

export interface PlannedEdge {
  /** Milliseconds since the start of the plan. */
  atMs: number;
  kind: PulseEdgeKind;
}

export interface DriveSummary {
  /** True pulses: what an ideal counter would count. */
  pulses: number;
  bounces: number;
  noise: number;
  edges: number;
}

/** The only thing a driver needs of a pin: SimulatedPulseInput has it. */
export interface PulseSink {
  pulse(atMs: number): void;
}

function checkRange(name: string, value: number, min: number, max: number, options: { integer?: boolean; minExclusive?: boolean } = {}): void {
  const belowMin = options.minExclusive ? value <= min : value < min;
  if (!Number.isFinite(value) || belowMin || value > max || (options.integer && !Number.isInteger(value))) {
    const range = `${options.minExclusive ? '(' : '['}${min}, ${max}]`;
    throw new RangeError(`Cannot plan pulses: option ${name} must be ${options.integer ? 'an integer' : 'a number'} in ${range}, got ${String(value)}`);
  }
}

function checkPlanOptions(options: PulsePlanOptions): void {
  checkRange('rateHz', options.rateHz, 0, 1_000, { minExclusive: true });
  checkRange('seed', options.seed ?? 1, 0, 2 ** 32 - 1, { integer: true });
  checkRange('jitterRatio', options.jitterRatio ?? 0, 0, 0.5);
  if (options.bounce) {
    checkRange('bounce.probability', options.bounce.probability, 0, 1);
    checkRange('bounce.edgesMax', options.bounce.edgesMax, 1, 20, { integer: true });
    checkRange('bounce.withinMs', options.bounce.withinMs, 0, 100, { minExclusive: true });
  }
  if (options.noise) {
    checkRange('noise.burstsPerMinute', options.noise.burstsPerMinute, 0, 600, { minExclusive: true });
    checkRange('noise.edgesPerBurst', options.noise.edgesPerBurst, 1, 10_000, { integer: true });
    checkRange('noise.burstMs', options.noise.burstMs, 0, 60_000, { minExclusive: true });
  }
}

/** Plans edges lazily, slice by slice, so a long run never holds more than a slice. */
export class PulsePlan {
  readonly #options: PulsePlanOptions;
  readonly #pulseRandom: () => number;
  readonly #noiseRandom: () => number;
  readonly #periodMs: number;
  #nextPulseMs: number;
  #nextBurstMs: number;
  /** Planned but not yet handed out; bounces and burst tails can run past a slice. */
  #pending: PlannedEdge[] = [];

  constructor(options: PulsePlanOptions) {
    checkPlanOptions(options);
    this.#options = options;
    const seed = options.seed ?? 1;
    this.#pulseRandom = seededRandom(seed);
    this.#noiseRandom = seededRandom((seed ^ 0x9e3779b9) >>> 0);
    this.#periodMs = 1_000 / options.rateHz;
    this.#nextPulseMs = this.#nextPeriodMs();
    this.#nextBurstMs = options.noise ? this.#nextBurstGapMs() : Number.POSITIVE_INFINITY;
  }

  #nextPeriodMs(): number {
    const jitter = this.#options.jitterRatio ?? 0;
    return this.#periodMs * (1 + jitter * (2 * this.#pulseRandom() - 1));
  }

  #nextBurstGapMs(): number {
    const meanGapMs = 60_000 / this.#options.noise!.burstsPerMinute;
    return -Math.log(1 - this.#noiseRandom()) * meanGapMs;
  }

  /** Edges before `endMs` not handed out yet, in time order. */
  until(endMs: number): PlannedEdge[] {
    while (this.#nextPulseMs < endMs) {
      this.#planPulse(this.#nextPulseMs);
      this.#nextPulseMs += this.#nextPeriodMs();
    }
    while (this.#nextBurstMs < endMs) {
      this.#planBurst(this.#nextBurstMs);
      this.#nextBurstMs += this.#nextBurstGapMs();
    }
    this.#pending.sort((a, b) => a.atMs - b.atMs);
    const cut = this.#pending.findIndex((edge) => edge.atMs >= endMs);
    return this.#pending.splice(0, cut === -1 ? this.#pending.length : cut);
  }

  #planPulse(atMs: number): void {
    this.#pending.push({ atMs, kind: 'pulse' });
    const bounce = this.#options.bounce;
    if (!bounce || this.#pulseRandom() >= bounce.probability) return;
    const extra = 1 + Math.floor(this.#pulseRandom() * bounce.edgesMax);
    for (let i = 0; i < extra; i += 1) {
      // (0, withinMs]: strictly after the pulse, as a bouncing contact is.
      this.#pending.push({ atMs: atMs + bounce.withinMs * (1 - this.#pulseRandom()), kind: 'bounce' });
    }
  }

  #planBurst(startMs: number): void {
    const { edgesPerBurst, burstMs } = this.#options.noise!;
    for (let i = 0; i < edgesPerBurst; i += 1) {
      this.#pending.push({ atMs: startMs + (i * burstMs) / edgesPerBurst, kind: 'noise' });
    }
  }
}

const DRIVE_DURATION_MAX_MS = 7 * 24 * 3_600_000;
const DRIVE_SLICE_MS = 1_000;

function emptySummary(): DriveSummary {
  return { pulses: 0, bounces: 0, noise: 0, edges: 0 };
}

function deliver(sink: PulseSink, startMs: number, edges: readonly PlannedEdge[], summary: DriveSummary): void {
  for (const edge of edges) {
    sink.pulse(startMs + edge.atMs);
    summary.edges += 1;
    if (edge.kind === 'pulse') summary.pulses += 1;
    else if (edge.kind === 'bounce') summary.bounces += 1;
    else summary.noise += 1;
  }
}

/**
 * Drives `durationMs` of virtual time into the sink at once, timestamps from `startMs`
 * (default 0): deterministic and instant, for tests and benchmarks.
 */
export function drivePulses(sink: PulseSink, durationMs: number, options: PulsePlanOptions & { startMs?: number }): DriveSummary {
  checkRange('durationMs', durationMs, 0, DRIVE_DURATION_MAX_MS);
  const plan = new PulsePlan(options);
  const summary = emptySummary();
  for (let endMs = 0; endMs < durationMs; ) {
    endMs = Math.min(endMs + DRIVE_SLICE_MS, durationMs);
    deliver(sink, options.startMs ?? 0, plan.until(endMs), summary);
  }
  return summary;
}

export interface PulseDriverOptions extends PulsePlanOptions {
  /** How often planned edges are delivered, 1..1000 ms. Default 20. */
  tickMs?: number;
  clock?: () => number;
  setInterval?: (callback: () => void, ms: number) => unknown;
  clearInterval?: (handle: unknown) => void;
}

export interface PulseDriver {
  summary(): DriveSummary;
  /** Stops delivering; returns what was delivered. */
  stop(): DriveSummary;
}

/** Drives the sink in real time (the demo): each tick delivers the edges planned so far. */
export function startPulseDriver(sink: PulseSink, options: PulseDriverOptions): PulseDriver {
  const tickMs = options.tickMs ?? 20;
  checkRange('tickMs', tickMs, 1, 1_000, { integer: true });
  const plan = new PulsePlan(options);
  const clock = options.clock ?? Date.now;
  const startMs = clock();
  const summary = emptySummary();
  const every = options.setInterval ?? ((callback, ms) => setInterval(callback, ms));
  const timer = every(() => deliver(sink, startMs, plan.until(clock() - startMs), summary), tickMs);
  const summaryCopy = (): DriveSummary => ({ ...summary });
  return {
    summary: summaryCopy,
    stop() {
      (options.clearInterval ?? ((handle) => clearInterval(handle as NodeJS.Timeout)))(timer);
      return summaryCopy();
    },
  };
}
