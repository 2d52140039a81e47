/**
 * The config of one GPIO pulse input, for the gateway's one schema (gateway/config.ts) to
 * embed. Defaults and bounds come from the parts themselves, so the schema and the
 * RangeErrors of PulseCounter and openOnoffPulseInput can never disagree.
 */
import { z } from 'zod';
import { ONOFF_PULSE_INPUT_BOUNDS } from './onoff-pulse-input.ts';
import type { IntegerBound } from './option-bounds.ts';
import { PULSE_COUNTER_BOUNDS } from './pulse-counter.ts';
import { GPIO_LINE_MAX, SYSFS_BASE_MAX } from './sysfs-gpio-chip.ts';

const bounded = (bound: IntegerBound) => z.number().int().min(bound.min).max(bound.max).default(bound.default);

export const gpioPulseInputSchema = z.strictObject({
  /** BCM line number, as on the Pi's pinout (GPIO17 = 17), not the sysfs number. */
  line: z.number().int().min(0).max(GPIO_LINE_MAX),
  edge: z.enum(['rising', 'falling']).default('rising'),
  /** onoff's trailing debounce; 0 = off. Prefer debounceMs. */
  debounceTimeoutMs: bounded(ONOFF_PULSE_INPUT_BOUNDS.debounceTimeoutMs),
  /** Pick the gpiochip by label on boards that are not a Raspberry Pi. */
  chipLabel: z.string().min(1).max(64).optional(),
  /** Skip chip discovery and use this base (sysfs number = base + line). */
  sysfsBase: z.number().int().min(0).max(SYSFS_BASE_MAX).optional(),
  /** Where gpiochip* are read from; only tests and unusual mounts change it. */
  sysfsRoot: z.string().min(1).default('/sys/class/gpio'),
  /** Count and epoch; relative to dataDir is the natural place. One file per input. */
  stateFile: z.string().min(1),
  debounceMs: bounded(PULSE_COUNTER_BOUNDS.debounceMs),
  maxRateHz: bounded(PULSE_COUNTER_BOUNDS.maxRateHz),
  reportEveryMs: bounded(PULSE_COUNTER_BOUNDS.reportEveryMs),
});

export type GpioPulseInputConfig = z.infer<typeof gpioPulseInputSchema>;
