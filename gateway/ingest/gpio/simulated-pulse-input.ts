/**
 * A pin without hardware: each `pulse()` is one edge, as the GPIO adapter would report
 * it. Used by firmware-sim's pulse driver, the demo and the tests.
 */
import type { PulseInput } from './pulse-input.ts';

export interface SimulatedPulseInputOptions {
  description?: string;
  /** Timestamp of a pulse given without one. Default Date.now. */
  clock?: () => number;
}

export class SimulatedPulseInput implements PulseInput {
  readonly description: string;
  readonly #clock: () => number;
  #onEdge: ((atMs: number) => void) | undefined;
  #closed = false;
  /** Edges offered, including those nobody was watching (lost, as on a real pin). */
  edgesSent = 0;

  constructor(options: SimulatedPulseInputOptions = {}) {
    this.description = options.description ?? 'simulated pulse input';
    this.#clock = options.clock ?? Date.now;
  }

  watch(onEdge: (atMs: number) => void): void {
    if (this.#closed) throw new Error(`Cannot watch ${this.description}: it is closed`);
    if (this.#onEdge) throw new Error(`Cannot watch ${this.description} twice: one counter per pin`);
    this.#onEdge = onEdge;
  }

  /** One edge at `atMs` (default: the clock now). Before watch() or after close() it is lost. */
  pulse(atMs: number = this.#clock()): void {
    this.edgesSent += 1;
    if (!this.#closed) this.#onEdge?.(atMs);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  get closed(): boolean {
    return this.#closed;
  }
}
