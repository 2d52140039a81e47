/**
 * Counts pulse edges into a cumulative, durable counter reading.
 *
 * An edge is (in this order) ignored as a bounce when it follows the last counted edge by
 * less than debounceMs, dropped when maxRateHz edges were already counted in the last
 * second (noise or a fault: never billed, reported as `dropped`), or else counted.
 * Readings are cumulative within an epoch; the intake bills the delta between consecutive
 * readings. The count is written to disk before any reading carries it, so after a crash
 * the count on disk is never below a reading that was sent: the counter never runs back.
 */
import { checkInteger, type IntegerBound } from './option-bounds.ts';
import { loadPulseCounterState, savePulseCounterState } from './pulse-counter-state.ts';
import type { PulseInput } from './pulse-input.ts';

export interface CounterReading {
  /** Edges counted in this epoch, from 0; never decreases within an epoch. */
  reading: bigint;
  epoch: string;
  /** When the reading was taken (the counter's clock). */
  atMs: number;
  /** Edges refused by the rate limit since the previous reading. */
  dropped: number;
}

export interface PulseCounterStats {
  epoch: string;
  count: bigint;
  /** The count on disk; `count` minus this is what a crash now would lose. */
  persistedCount: bigint;
  bouncesIgnored: number;
  droppedTotal: number;
}

export type TimerHandle = unknown;

export interface PulseCounterOptions {
  /** JSON state file (count + epoch); its directory is created if missing. */
  stateFile: string;
  /** Called with each reading, after its count is on disk. */
  onReading: (reading: CounterReading) => void;
  /** A periodic report failed (e.g. disk full); the count is kept and retried next period. */
  onError: (error: unknown) => void;
  /** Edges closer than this to the last counted one are contact bounce. Default 10. */
  debounceMs?: number;
  /** Counted edges allowed in any 1 s window; the rest are dropped. Default 50. */
  maxRateHz?: number;
  /** How often a reading is emitted (only when something changed). Default 10 000. */
  reportEveryMs?: number;
  clock?: () => number;
  setInterval?: (callback: () => void, ms: number) => TimerHandle;
  clearInterval?: (handle: TimerHandle) => void;
}

export const PULSE_COUNTER_BOUNDS = Object.freeze({
  debounceMs: Object.freeze({ min: 0, max: 10_000, default: 10 }) satisfies IntegerBound,
  maxRateHz: Object.freeze({ min: 1, max: 1_000, default: 50 }) satisfies IntegerBound,
  reportEveryMs: Object.freeze({ min: 100, max: 3_600_000, default: 10_000 }) satisfies IntegerBound,
});

const RATE_WINDOW_MS = 1_000;

/** Timestamps of the counted edges still inside the rate window; at most maxRateHz of them. */
class RateWindow {
  readonly #times: Float64Array;
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    this.#times = new Float64Array(capacity);
  }

  /** True when `atMs` may be counted, after forgetting edges that left the window. */
  admits(atMs: number): boolean {
    while (this.#size > 0 && this.#times[this.#head]! <= atMs - RATE_WINDOW_MS) {
      this.#head = (this.#head + 1) % this.#times.length;
      this.#size -= 1;
    }
    return this.#size < this.#times.length;
  }

  add(atMs: number): void {
    this.#times[(this.#head + this.#size) % this.#times.length] = atMs;
    this.#size += 1;
  }

  clear(): void {
    this.#size = 0;
  }
}

export class PulseCounter {
  readonly #input: PulseInput;
  readonly #options: PulseCounterOptions;
  readonly #debounceMs: number;
  readonly #window: RateWindow;
  readonly #clock: () => number;
  readonly #epoch: string;
  #count: bigint;
  #persistedCount: bigint;
  #reportedCount: bigint;
  #lastCountedMs: number | undefined;
  #bouncesIgnored = 0;
  #droppedTotal = 0;
  #droppedSinceReport = 0;
  #reporting: Promise<unknown> = Promise.resolve();
  #timer: TimerHandle = undefined;
  #tickQueued = false;
  #closing: Promise<void> | undefined;
  #closed = false;

  /**
   * Loads (or creates) the state file, then watches the input and reports periodically.
   * @throws RangeError/TypeError naming a bad option; GpioError MB_PULSE_STATE_INVALID.
   */
  static async open(input: PulseInput, options: PulseCounterOptions): Promise<PulseCounter> {
    const limits = checkOptions(options);
    const { state } = await loadPulseCounterState(options.stateFile);
    const counter = new PulseCounter(input, options, limits, state.epoch, state.count);
    input.watch((atMs) => counter.#onEdge(atMs));
    // Only once watching worked: a failed open must not leave a timer behind.
    const every = options.setInterval ?? ((callback, ms) => setInterval(callback, ms));
    counter.#timer = every(() => counter.#tick(), limits.reportEveryMs);
    return counter;
  }

  private constructor(input: PulseInput, options: PulseCounterOptions, limits: Limits, epoch: string, count: bigint) {
    this.#input = input;
    this.#options = options;
    this.#debounceMs = limits.debounceMs;
    this.#window = new RateWindow(limits.maxRateHz);
    this.#clock = options.clock ?? Date.now;
    this.#epoch = epoch;
    this.#count = this.#persistedCount = this.#reportedCount = count;
  }

  get epoch(): string {
    return this.#epoch;
  }

  get count(): bigint {
    return this.#count;
  }

  stats(): PulseCounterStats {
    return {
      epoch: this.#epoch, count: this.#count, persistedCount: this.#persistedCount,
      bouncesIgnored: this.#bouncesIgnored, droppedTotal: this.#droppedTotal,
    };
  }

  #onEdge(atMs: number): void {
    if (this.#closed) return;
    if (this.#lastCountedMs !== undefined && atMs < this.#lastCountedMs) {
      // The wall clock stepped back (NTP): spacing across the step means nothing, so judge
      // this edge afresh rather than treat every edge as a bounce until time catches up.
      this.#lastCountedMs = undefined;
      this.#window.clear();
    }
    if (this.#lastCountedMs !== undefined && atMs - this.#lastCountedMs < this.#debounceMs) {
      this.#bouncesIgnored += 1;
      return;
    }
    if (!this.#window.admits(atMs)) {
      this.#droppedTotal += 1;
      this.#droppedSinceReport += 1;
      return;
    }
    this.#window.add(atMs);
    this.#lastCountedMs = atMs;
    this.#count += 1n;
  }

  #tick(): void {
    // One periodic report in the queue at most: a hung disk must not pile up a report per period.
    if (this.#tickQueued || (this.#count === this.#reportedCount && this.#droppedSinceReport === 0)) return;
    this.#tickQueued = true;
    this.#enqueue(false)
      .catch((error: unknown) => this.#options.onError(error))
      .finally(() => (this.#tickQueued = false));
  }

  /** Writes the count to disk and emits a reading now, even if nothing changed. */
  flush(): Promise<CounterReading> {
    return this.#enqueue(true) as Promise<CounterReading>;
  }

  /** One report at a time: two concurrent writes of the same temp file would race. */
  #enqueue(force: boolean): Promise<CounterReading | undefined> {
    const report = this.#reporting.then(() => this.#report(force));
    this.#reporting = report.catch(() => {});
    return report;
  }

  async #report(force: boolean): Promise<CounterReading | undefined> {
    const count = this.#count;
    const dropped = this.#droppedSinceReport;
    if (!force && count === this.#reportedCount && dropped === 0) return undefined;
    if (count !== this.#persistedCount) {
      await savePulseCounterState(this.#options.stateFile, { epoch: this.#epoch, count });
      this.#persistedCount = count;
    }
    // Subtract rather than reset: edges may have been dropped while the write was on disk.
    this.#droppedSinceReport -= dropped;
    this.#reportedCount = count;
    const reading: CounterReading = { reading: count, epoch: this.#epoch, atMs: this.#clock(), dropped };
    this.#options.onReading(reading);
    return reading;
  }

  /** Stops the timer, closes the input (no edge is lost after the last write), then flushes. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      (this.#options.clearInterval ?? ((handle) => clearInterval(handle as NodeJS.Timeout)))(this.#timer);
      try {
        await this.#input.close();
      } finally {
        this.#closed = true;
        await this.flush();
      }
    })();
    return this.#closing;
  }
}

interface Limits {
  debounceMs: number;
  maxRateHz: number;
  reportEveryMs: number;
}

function checkOptions(options: PulseCounterOptions): Limits {
  if (typeof options.stateFile !== 'string' || options.stateFile.length === 0) {
    throw new TypeError('Cannot create PulseCounter: option stateFile must be a non-empty path');
  }
  for (const name of ['onReading', 'onError'] as const) {
    if (typeof options[name] !== 'function') throw new TypeError(`Cannot create PulseCounter: option ${name} must be a function`);
  }
  return {
    debounceMs: checkInteger('PulseCounter', 'debounceMs', options.debounceMs, PULSE_COUNTER_BOUNDS.debounceMs),
    maxRateHz: checkInteger('PulseCounter', 'maxRateHz', options.maxRateHz, PULSE_COUNTER_BOUNDS.maxRateHz),
    reportEveryMs: checkInteger('PulseCounter', 'reportEveryMs', options.reportEveryMs, PULSE_COUNTER_BOUNDS.reportEveryMs),
  };
}
