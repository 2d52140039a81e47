/**
 * Maps a BCM line number (what the Pi's pinout calls GPIO17) to its sysfs GPIO number.
 *
 * The sysfs number is the gpiochip's base plus the line. Raspberry Pi kernels before 6.6
 * gave the main chip base 0, so BCM numbers worked as sysfs numbers. From 6.6 on the
 * kernel no longer pins bases to 0 (512 on a Pi 4, 571 for the Pi 5's pinctrl-rp1), and
 * writing a bare BCM number to /sys/class/gpio/export fails with EINVAL or exports the
 * wrong pin (fivdi/onoff issues 197 and 199). So the base is read, never assumed.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { GpioError } from './gpio-error.ts';

export const DEFAULT_SYSFS_GPIO_ROOT = '/sys/class/gpio';

/**
 * Labels of the chip that carries the 40-pin header, most specific first. A Pi 5 also has
 * gpio-brcmstb chips with lower bases, so "lowest base" would pick the wrong one.
 */
export const MAIN_GPIO_CHIP_LABELS: readonly string[] = Object.freeze(['pinctrl-rp1', 'pinctrl-bcm2711', 'pinctrl-bcm2835']);

/** Sysfs GPIO numbers are small; a base or line beyond these is a typo, not a chip. */
export const SYSFS_BASE_MAX = 65_535;
export const GPIO_LINE_MAX = 1_023;

export interface GpioChip {
  /** Directory name, e.g. `gpiochip512`. */
  name: string;
  base: number;
  label: string;
  ngpio: number;
}

export interface SysfsLineOptions {
  /** Where the gpiochip* directories are; tests point it at a temp directory. */
  sysfsRoot?: string;
  /** Use the chip with exactly this label instead of the known Raspberry Pi ones. */
  chipLabel?: string;
  /** Skip discovery and use this base: for boards whose chips are not recognised. */
  sysfsBase?: number;
}

export interface SysfsLine {
  line: number;
  sysfsNumber: number;
  /** The chip the base came from; absent when `sysfsBase` was given. */
  chip?: GpioChip;
  /** For logs and the operator page: `GPIO17 (sysfs gpio529, chip pinctrl-bcm2711 base 512)`. */
  description: string;
}

/** Reads every `gpiochipN/{base,label,ngpio}` under the root, sorted by base. */
export async function listGpioChips(sysfsRoot: string = DEFAULT_SYSFS_GPIO_ROOT): Promise<GpioChip[]> {
  let names: string[];
  try {
    names = (await readdir(sysfsRoot)).filter((name) => /^gpiochip\d+$/.test(name));
  } catch (error) {
    throw new GpioError(`Cannot list GPIO chips: ${sysfsRoot} is not readable (no sysfs GPIO on this machine?)`, 'MB_GPIO_NO_CHIP', error);
  }
  const chips = await Promise.all(names.map((name) => readChip(sysfsRoot, name)));
  return chips.sort((a, b) => a.base - b.base);
}

async function readChip(sysfsRoot: string, name: string): Promise<GpioChip> {
  const field = async (file: string): Promise<string> => {
    try {
      return (await readFile(path.join(sysfsRoot, name, file), 'utf8')).trim();
    } catch (error) {
      throw new GpioError(`Cannot read GPIO chip ${name}: ${file} is not readable`, 'MB_GPIO_NO_CHIP', error);
    }
  };
  const [base, label, ngpio] = [Number(await field('base')), await field('label'), Number(await field('ngpio'))];
  if (!Number.isSafeInteger(base) || base < 0 || !Number.isSafeInteger(ngpio) || ngpio < 1) {
    throw new GpioError(`Cannot read GPIO chip ${name}: base and ngpio must be integers, got ${String(base)} and ${String(ngpio)}`, 'MB_GPIO_NO_CHIP');
  }
  return { name, base, label, ngpio };
}

/**
 * Resolves a BCM line to its sysfs number: `sysfsBase` if given, else the chip labelled
 * `chipLabel`, else the first of MAIN_GPIO_CHIP_LABELS present.
 * @throws GpioError (MB_GPIO_NO_CHIP, MB_GPIO_NO_LINE) naming the line and what was found.
 */
export async function resolveSysfsLine(line: number, options: SysfsLineOptions = {}): Promise<SysfsLine> {
  if (!Number.isSafeInteger(line) || line < 0 || line > GPIO_LINE_MAX) {
    throw new RangeError(`Cannot resolve GPIO line: line must be an integer in 0..${GPIO_LINE_MAX}, got ${String(line)}`);
  }
  if (options.sysfsBase !== undefined) return fromExplicitBase(line, options.sysfsBase);
  const chips = await listGpioChips(options.sysfsRoot ?? DEFAULT_SYSFS_GPIO_ROOT);
  const chip = pickChip(line, chips, options.chipLabel);
  if (line >= chip.ngpio) {
    throw new GpioError(`Cannot resolve GPIO${line}: chip ${chip.label} (${chip.name}) has only ${chip.ngpio} lines`, 'MB_GPIO_NO_LINE');
  }
  const sysfsNumber = chip.base + line;
  return { line, sysfsNumber, chip, description: `GPIO${line} (sysfs gpio${sysfsNumber}, chip ${chip.label} base ${chip.base})` };
}

function fromExplicitBase(line: number, sysfsBase: number): SysfsLine {
  if (!Number.isSafeInteger(sysfsBase) || sysfsBase < 0 || sysfsBase > SYSFS_BASE_MAX) {
    throw new RangeError(`Cannot resolve GPIO${line}: option sysfsBase must be an integer in 0..${SYSFS_BASE_MAX}, got ${String(sysfsBase)}`);
  }
  const sysfsNumber = sysfsBase + line;
  return { line, sysfsNumber, description: `GPIO${line} (sysfs gpio${sysfsNumber}, base ${sysfsBase} from config)` };
}

function pickChip(line: number, chips: readonly GpioChip[], chipLabel: string | undefined): GpioChip {
  const found = chips.map((c) => `${c.name} "${c.label}" base ${c.base}`).join(', ') || 'no gpiochip at all';
  const wanted = chipLabel === undefined ? MAIN_GPIO_CHIP_LABELS : [chipLabel];
  for (const label of wanted) {
    const matches = chips.filter((c) => c.label === label);
    if (matches.length > 1) {
      throw new GpioError(`Cannot resolve GPIO${line}: ${matches.length} chips are labelled "${label}" (${found}); set sysfsBase`, 'MB_GPIO_NO_CHIP');
    }
    if (matches[0]) return matches[0];
  }
  const hint = chipLabel === undefined ? `none is labelled ${wanted.join(', ')}; set chipLabel or sysfsBase` : `none is labelled "${chipLabel}"`;
  throw new GpioError(`Cannot resolve GPIO${line}: found ${found}, but ${hint}`, 'MB_GPIO_NO_CHIP');
}
