import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openOnoffPulseInput, type GpioClass, type GpioEdge, type GpioLine } from './onoff-pulse-input.ts';

type WatchCallback = Parameters<GpioLine['watch']>[0];

/** Stands in for onoff's Gpio: records how it was built and lets a test fire interrupts. */
function fakeGpio(behaviour: { accessible?: boolean; throwOnExport?: Error } = {}) {
  const pins: FakePin[] = [];
  class FakePin implements GpioLine {
    static readonly accessible = behaviour.accessible ?? true;
    callbacks: WatchCallback[] = [];
    unexportCount = 0;
    constructor(readonly gpio: number, readonly direction: 'in', readonly edge: GpioEdge, readonly options: { debounceTimeout: number }) {
      if (behaviour.throwOnExport) throw behaviour.throwOnExport;
      pins.push(this);
    }
    watch(callback: WatchCallback): void {
      this.callbacks.push(callback);
    }
    unwatchAll(): void {
      this.callbacks = [];
    }
    unexport(): void {
      this.unexportCount += 1;
    }
    interrupt(error?: Error): void {
      for (const callback of this.callbacks) callback(error ?? null, 1);
    }
  }
  const Gpio: GpioClass = FakePin;
  return { Gpio, pins };
}

describe('openOnoffPulseInput', () => {
  let sysfsRoot: string;
  beforeAll(async () => {
    // A Pi 4 on kernel 6.6: main chip at base 512.
    sysfsRoot = await mkdtemp(path.join(tmpdir(), 'onoff-sysfs-'));
    await mkdir(path.join(sysfsRoot, 'gpiochip512'));
    for (const [file, text] of [['base', '512'], ['label', 'pinctrl-bcm2711'], ['ngpio', '58']]) {
      await writeFile(path.join(sysfsRoot, 'gpiochip512', file!), `${text}\n`);
    }
  });
  afterAll(async () => {
    await rm(sysfsRoot, { recursive: true, force: true });
  });

  it('exports the offset sysfs number as an input on the rising edge by default', async () => {
    const { Gpio, pins } = fakeGpio();
    const input = await openOnoffPulseInput(17, { Gpio, sysfsRoot });
    expect(pins.map((p) => [p.gpio, p.direction, p.edge, p.options])).toEqual([[529, 'in', 'rising', { debounceTimeout: 0 }]]);
    expect(input.description).toBe('GPIO17 (sysfs gpio529, chip pinctrl-bcm2711 base 512), rising edge');
  });

  it('passes the falling edge and onoff debounce through when configured', async () => {
    const { Gpio, pins } = fakeGpio();
    await openOnoffPulseInput(4, { Gpio, sysfsRoot, edge: 'falling', debounceTimeoutMs: 20 });
    expect(pins.map((p) => [p.gpio, p.edge, p.options])).toEqual([[516, 'falling', { debounceTimeout: 20 }]]);
  });

  it('refuses an unknown edge or an out-of-bounds debounceTimeoutMs, naming the option', async () => {
    const { Gpio, pins } = fakeGpio();
    await expect(openOnoffPulseInput(17, { Gpio, sysfsRoot, edge: 'both' as GpioEdge })).rejects.toThrow(/option edge must be 'rising' or 'falling'/);
    await expect(openOnoffPulseInput(17, { Gpio, sysfsRoot, debounceTimeoutMs: 5_000 })).rejects.toThrow(/option debounceTimeoutMs must be an integer in 0..1000, got 5000/);
    expect(pins).toHaveLength(0);
  });

  it('forwards each interrupt as an edge stamped by the clock', async () => {
    const { Gpio, pins } = fakeGpio();
    let now = 1_000;
    const input = await openOnoffPulseInput(17, { Gpio, sysfsRoot, clock: () => now });
    const edges: number[] = [];
    input.watch((atMs) => edges.push(atMs));
    pins[0]!.interrupt();
    now = 1_250;
    pins[0]!.interrupt();
    expect(edges).toEqual([1_000, 1_250]);
  });

  it('does not count an interrupt whose value could not be read, and reports the error instead', async () => {
    const { Gpio, pins } = fakeGpio();
    const errors: Error[] = [];
    const input = await openOnoffPulseInput(17, { Gpio, sysfsRoot, onError: (error) => errors.push(error) });
    const edges: number[] = [];
    input.watch((atMs) => edges.push(atMs));
    pins[0]!.interrupt(new Error('EIO: read failed'));
    expect(edges).toEqual([]);
    expect(errors.map((e) => e.message)).toEqual(['EIO: read failed']);
  });

  it('unwatches and unexports the line on close, once, and forwards nothing after', async () => {
    const { Gpio, pins } = fakeGpio();
    const input = await openOnoffPulseInput(17, { Gpio, sysfsRoot });
    const edges: number[] = [];
    input.watch((atMs) => edges.push(atMs));
    const pin = pins[0]!;
    const late = pin.callbacks[0]!;
    await input.close();
    await input.close();
    late(null, 1); // an interrupt already queued when close ran
    expect(pin.unexportCount).toBe(1);
    expect(pin.callbacks).toHaveLength(0);
    expect(edges).toEqual([]);
  });

  it('refuses to be watched twice, since two counters on one pin would bill twice', async () => {
    const { Gpio } = fakeGpio();
    const input = await openOnoffPulseInput(17, { Gpio, sysfsRoot });
    input.watch(() => {});
    expect(() => input.watch(() => {})).toThrow(/twice/);
  });

  it('fails with a clear error naming the line when sysfs GPIO is not accessible, exporting nothing', async () => {
    const { Gpio, pins } = fakeGpio({ accessible: false });
    await expect(openOnoffPulseInput(17, { Gpio, sysfsRoot })).rejects.toMatchObject({
      name: 'GpioError', code: 'MB_GPIO_INACCESSIBLE',
      message: expect.stringMatching(/^Cannot open GPIO17 for pulse counting: sysfs GPIO is not accessible \(\/sys\/class\/gpio\/export/),
    });
    expect(pins).toHaveLength(0);
  });

  it('wraps an export failure with the resolved sysfs number and the cause', async () => {
    const cause = Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL' });
    const { Gpio } = fakeGpio({ throwOnExport: cause });
    await expect(openOnoffPulseInput(17, { Gpio, sysfsRoot })).rejects.toMatchObject({
      code: 'MB_GPIO_EXPORT_FAILED', cause, message: 'Cannot export GPIO17 (sysfs gpio529, chip pinctrl-bcm2711 base 512) as an input: EINVAL: invalid argument, write',
    });
  });

  it('fails before touching onoff when the line is not on the chip', async () => {
    const { Gpio, pins } = fakeGpio();
    await expect(openOnoffPulseInput(58, { Gpio, sysfsRoot })).rejects.toMatchObject({ code: 'MB_GPIO_NO_LINE' });
    expect(pins).toHaveLength(0);
  });
});

// The real onoff is loaded by default; on machines without GPIO (CI, laptops) it must say why.
const { Gpio: RealGpio } = await import('onoff');

describe('openOnoffPulseInput with the real onoff', () => {
  it.runIf(!RealGpio.accessible)('reports that this machine has no accessible sysfs GPIO', async () => {
    await expect(openOnoffPulseInput(17)).rejects.toMatchObject({ code: 'MB_GPIO_INACCESSIBLE', message: expect.stringContaining('GPIO17') });
  });
});
