/**
 * Simulated machines: what each kind reports per tick. Pure given a random source, so
 * runs can be replayed from a seed.
 */
export type MachineKind = 'cnc' | 'truck' | 'yard' | 'compressor';

export interface MachineProfile {
  meter: string;
  unit: string;
  /** event: each message carries the quantity used; counter: each carries the register's running total. */
  kind: 'event' | 'counter';
  /** Milliseconds between reports at speed 1. */
  intervalMs: number;
  /** Quantity for one report, a positive integer in base units. */
  quantity(random: () => number): bigint;
}

const between = (random: () => number, low: number, high: number): number => low + Math.floor(random() * (high - low + 1));

export const MACHINES: Readonly<Record<MachineKind, MachineProfile>> = Object.freeze({
  /** A CNC machine billed per cycle: one message per finished cycle. */
  cnc: { meter: 'cycles', unit: 'cycle', kind: 'event', intervalMs: 1_000, quantity: () => 1n },
  /** A truck billed per distance: metres driven since the last report. */
  truck: { meter: 'distance', unit: 'm', kind: 'event', intervalMs: 2_000, quantity: (random) => BigInt(between(random, 20, 60)) },
  /** A container yard billed per slot-time: occupied slots × seconds since the last report. */
  yard: { meter: 'slot-time', unit: 'slot-s', kind: 'event', intervalMs: 5_000, quantity: (random) => BigInt(between(random, 30, 60) * 5) },
  /** An air compressor with an energy register: reports its watt-hour counter, not deltas. */
  compressor: { meter: 'energy', unit: 'wh', kind: 'counter', intervalMs: 3_000, quantity: (random) => BigInt(between(random, 5, 15)) },
});

/** Mulberry32: small, fast, seedable; not for secrets. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
