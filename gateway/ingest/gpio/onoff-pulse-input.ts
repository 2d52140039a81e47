/**
 * A real GPIO pin as a PulseInput, through onoff (sysfs GPIO + epoll interrupts).
 *
 * onoff takes sysfs GPIO numbers, not BCM line numbers; the line is translated with the
 * gpiochip base first (see sysfs-gpio-chip.ts: kernel 6.6+ and Pi 5 offsets). The Gpio
 * class is injectable so that this adapter's wiring is tested without hardware.
 */
import { GpioError } from './gpio-error.ts';
import { checkInteger, type IntegerBound } from './option-bounds.ts';
import type { PulseInput } from './pulse-input.ts';
import { resolveSysfsLine, type SysfsLineOptions } from './sysfs-gpio-chip.ts';

export type GpioEdge = 'rising' | 'falling';

/** The part of onoff's Gpio instance this adapter uses. */
export interface GpioLine {
  watch(callback: (error: Error | null | undefined, value: 0 | 1) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

/** The part of onoff's Gpio class this adapter uses; onoff's own Gpio satisfies it. */
export interface GpioClass {
  new (gpio: number, direction: 'in', edge: GpioEdge, options: { debounceTimeout: number }): GpioLine;
  readonly accessible: boolean;
}

export interface OnoffPulseInputOptions extends SysfsLineOptions {
  /** Which transition is one pulse. Default 'rising'. */
  edge?: GpioEdge;
  /**
   * onoff's own debounce (0 = off, the default). It is trailing: each edge is reported this
   * long after the line settles, and pulses closer than this merge into one. Prefer the
   * counter's debounceMs; use this only for contacts that chatter for long.
   */
  debounceTimeoutMs?: number;
  /** Default: onoff's Gpio, loaded on first use so that machines without epoll can still test. */
  Gpio?: GpioClass;
  /** Timestamp of an edge; sysfs gives none of its own. Default Date.now. */
  clock?: () => number;
  /** A failed read of the line's value after an interrupt; that edge is not counted. */
  onError?: (error: Error) => void;
}

export const ONOFF_PULSE_INPUT_BOUNDS = Object.freeze({
  debounceTimeoutMs: Object.freeze({ min: 0, max: 1_000, default: 0 }) satisfies IntegerBound,
});

const EDGES: readonly GpioEdge[] = ['rising', 'falling'];

/**
 * Exports the BCM `line` as an input watching `edge` and returns it as a PulseInput.
 * @throws GpioError MB_GPIO_INACCESSIBLE when there is no usable sysfs GPIO here,
 *   MB_GPIO_NO_CHIP / MB_GPIO_NO_LINE when the line cannot be mapped, MB_GPIO_EXPORT_FAILED
 *   when onoff cannot export it; RangeError for a bad option.
 */
export async function openOnoffPulseInput(line: number, options: OnoffPulseInputOptions = {}): Promise<OnoffPulseInput> {
  const edge = options.edge ?? 'rising';
  if (!EDGES.includes(edge)) throw new RangeError(`Cannot create OnoffPulseInput: option edge must be 'rising' or 'falling', got ${String(edge)}`);
  const debounceTimeout = checkInteger('OnoffPulseInput', 'debounceTimeoutMs', options.debounceTimeoutMs, ONOFF_PULSE_INPUT_BOUNDS.debounceTimeoutMs);
  const Gpio = options.Gpio ?? (await loadOnoff(line));
  if (!Gpio.accessible) {
    throw new GpioError(
      `Cannot open GPIO${line} for pulse counting: sysfs GPIO is not accessible (/sys/class/gpio/export is missing or not writable: ` +
        'no GPIO hardware, the sysfs GPIO interface is disabled in this kernel, or this user is not in the gpio group)',
      'MB_GPIO_INACCESSIBLE',
    );
  }
  const resolved = await resolveSysfsLine(line, options);
  let pin: GpioLine;
  try {
    pin = new Gpio(resolved.sysfsNumber, 'in', edge, { debounceTimeout });
  } catch (error) {
    // EINVAL here almost always means a wrong number (base not applied); EBUSY a kernel driver owns it.
    const reason = error instanceof Error ? error.message : String(error);
    throw new GpioError(`Cannot export ${resolved.description} as an input: ${reason}`, 'MB_GPIO_EXPORT_FAILED', error);
  }
  return new OnoffPulseInput(pin, `${resolved.description}, ${edge} edge`, options);
}

async function loadOnoff(line: number): Promise<GpioClass> {
  try {
    const { Gpio } = await import('onoff');
    return Gpio;
  } catch (error) {
    // onoff needs its native epoll addon; a failed build shows up only here.
    throw new GpioError(`Cannot open GPIO${line} for pulse counting: onoff could not be loaded`, 'MB_GPIO_INACCESSIBLE', error);
  }
}

/** Build with openOnoffPulseInput, which maps the line and exports the pin first. */
export class OnoffPulseInput implements PulseInput {
  readonly description: string;
  readonly #pin: GpioLine;
  readonly #clock: () => number;
  readonly #onError: ((error: Error) => void) | undefined;
  #watching = false;
  #closed = false;

  constructor(pin: GpioLine, description: string, options: Pick<OnoffPulseInputOptions, 'clock' | 'onError'> = {}) {
    this.#pin = pin;
    this.description = description;
    this.#clock = options.clock ?? Date.now;
    this.#onError = options.onError;
  }

  watch(onEdge: (atMs: number) => void): void {
    if (this.#closed) throw new Error(`Cannot watch ${this.description}: it is closed`);
    if (this.#watching) throw new Error(`Cannot watch ${this.description} twice: one counter per pin`);
    this.#watching = true;
    // onoff already filters by the configured edge, so every callback without error is one pulse.
    this.#pin.watch((error) => {
      if (this.#closed) return;
      if (error) this.#onError?.(error);
      else onEdge(this.#clock());
    });
  }

  /** Stops watching and unexports the line, so a restart can export it again. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pin.unwatchAll();
    this.#pin.unexport();
  }
}
