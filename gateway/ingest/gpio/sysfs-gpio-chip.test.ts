import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listGpioChips, resolveSysfsLine } from './sysfs-gpio-chip.ts';

type ChipSpec = [base: number, label: string, ngpio: number];

// gpiochip layouts as Raspberry Pi OS shows them under /sys/class/gpio.
const PI4_KERNEL_6_1: ChipSpec[] = [[0, 'pinctrl-bcm2711', 58], [504, 'raspberrypi-exp-gpio', 8]];
const PI4_KERNEL_6_6: ChipSpec[] = [[512, 'pinctrl-bcm2711', 58], [570, 'raspberrypi-exp-gpio', 8]];
const PI3_KERNEL_6_6: ChipSpec[] = [[512, 'pinctrl-bcm2835', 54], [566, 'raspberrypi-exp-gpio', 8]];
const PI5_KERNEL_6_6: ChipSpec[] = [
  [512, 'gpio-brcmstb@107d508500', 32], [544, 'gpio-brcmstb@107d508520', 4],
  [548, 'gpio-brcmstb@107d517c00', 17], [565, 'gpio-brcmstb@107d517c20', 6], [571, 'pinctrl-rp1', 54],
];

const roots: string[] = [];
afterEach(async () => {
  await Promise.all(roots.splice(0).map((root) => rm(root, { recursive: true, force: true })));
});

/** A fake /sys/class/gpio: export/unexport files and one gpiochipN directory per chip. */
async function fakeSysfs(chips: readonly ChipSpec[]): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'sysfs-gpio-'));
  roots.push(root);
  await writeFile(path.join(root, 'export'), '');
  await writeFile(path.join(root, 'unexport'), '');
  for (const [base, label, ngpio] of chips) {
    const dir = path.join(root, `gpiochip${base}`);
    await mkdir(dir);
    await writeFile(path.join(dir, 'base'), `${base}\n`);
    await writeFile(path.join(dir, 'label'), `${label}\n`);
    await writeFile(path.join(dir, 'ngpio'), `${ngpio}\n`);
  }
  return root;
}

describe('resolveSysfsLine', () => {
  it('maps GPIO17 to sysfs 17 on a Pi 4 with kernel 6.1, whose main chip has base 0', async () => {
    const line = await resolveSysfsLine(17, { sysfsRoot: await fakeSysfs(PI4_KERNEL_6_1) });
    expect(line.sysfsNumber).toBe(17);
    expect(line.description).toBe('GPIO17 (sysfs gpio17, chip pinctrl-bcm2711 base 0)');
  });

  it('maps GPIO17 to sysfs 529 on a Pi 4 with kernel 6.6, where the main chip moved to base 512', async () => {
    const line = await resolveSysfsLine(17, { sysfsRoot: await fakeSysfs(PI4_KERNEL_6_6) });
    expect(line.sysfsNumber).toBe(529);
    expect(line.chip?.label).toBe('pinctrl-bcm2711');
  });

  it('maps GPIO17 to sysfs 529 on a Pi 3 with kernel 6.6 (pinctrl-bcm2835)', async () => {
    expect((await resolveSysfsLine(17, { sysfsRoot: await fakeSysfs(PI3_KERNEL_6_6) })).sysfsNumber).toBe(529);
  });

  it('maps GPIO17 to sysfs 588 on a Pi 5, using pinctrl-rp1 at base 571 and not the lower brcmstb chips', async () => {
    const line = await resolveSysfsLine(17, { sysfsRoot: await fakeSysfs(PI5_KERNEL_6_6) });
    expect(line.sysfsNumber).toBe(588);
    expect(line.sysfsNumber).not.toBe(512 + 17);
    expect(line.description).toBe('GPIO17 (sysfs gpio588, chip pinctrl-rp1 base 571)');
  });

  it('uses an explicit sysfsBase without reading sysfs at all', async () => {
    const line = await resolveSysfsLine(17, { sysfsBase: 400, sysfsRoot: '/nonexistent/sysfs' });
    expect(line).toEqual({ line: 17, sysfsNumber: 417, description: 'GPIO17 (sysfs gpio417, base 400 from config)' });
  });

  it('refuses an explicit sysfsBase that is negative or not an integer, naming the option', async () => {
    await expect(resolveSysfsLine(17, { sysfsBase: -1 })).rejects.toThrow(/option sysfsBase must be an integer/);
    await expect(resolveSysfsLine(17, { sysfsBase: 512.5 })).rejects.toThrow(RangeError);
  });

  it('uses the chip named by chipLabel on a board it does not know', async () => {
    const root = await fakeSysfs([[0, 'gpio-mockup-A', 32], [100, 'sunxi-pinctrl', 224]]);
    expect((await resolveSysfsLine(17, { sysfsRoot: root, chipLabel: 'sunxi-pinctrl' })).sysfsNumber).toBe(117);
  });

  it('refuses a chipLabel that no chip has, listing the chips it found', async () => {
    const root = await fakeSysfs(PI4_KERNEL_6_6);
    await expect(resolveSysfsLine(17, { sysfsRoot: root, chipLabel: 'pinctrl-rp1' })).rejects.toMatchObject({
      code: 'MB_GPIO_NO_CHIP',
      message: expect.stringMatching(/GPIO17: found gpiochip512 "pinctrl-bcm2711" base 512, gpiochip570 .* none is labelled "pinctrl-rp1"/),
    });
  });

  it('refuses a board with no known main chip, saying to set chipLabel or sysfsBase', async () => {
    const root = await fakeSysfs([[0, 'gpio-mockup-A', 32]]);
    await expect(resolveSysfsLine(17, { sysfsRoot: root })).rejects.toMatchObject({
      code: 'MB_GPIO_NO_CHIP', message: expect.stringMatching(/GPIO17: found gpiochip0 "gpio-mockup-A" base 0, but none .* set chipLabel or sysfsBase/),
    });
  });

  it('refuses when the sysfs GPIO directory does not exist, as on a machine without GPIO', async () => {
    await expect(resolveSysfsLine(17, { sysfsRoot: '/nonexistent/sysfs/gpio' })).rejects.toMatchObject({
      code: 'MB_GPIO_NO_CHIP', message: expect.stringContaining('/nonexistent/sysfs/gpio is not readable'),
    });
  });

  it('refuses a line the chip does not have, and accepts its last line', async () => {
    const root = await fakeSysfs(PI5_KERNEL_6_6);
    await expect(resolveSysfsLine(54, { sysfsRoot: root })).rejects.toMatchObject({ code: 'MB_GPIO_NO_LINE', message: expect.stringContaining('has only 54 lines') });
    expect((await resolveSysfsLine(53, { sysfsRoot: root })).sysfsNumber).toBe(624);
  });

  it('refuses a line number that is not a non-negative integer', async () => {
    await expect(resolveSysfsLine(-1)).rejects.toThrow(RangeError);
    await expect(resolveSysfsLine(1.5)).rejects.toThrow(/line must be an integer/);
  });

  it('refuses to guess when two chips carry the same main label', async () => {
    const root = await fakeSysfs([[0, 'pinctrl-bcm2711', 58], [512, 'pinctrl-bcm2711', 58]]);
    await expect(resolveSysfsLine(17, { sysfsRoot: root })).rejects.toThrow(/2 chips are labelled "pinctrl-bcm2711".*set sysfsBase/);
  });
});

describe('listGpioChips', () => {
  it('lists only gpiochip directories, sorted by base', async () => {
    const chips = await listGpioChips(await fakeSysfs([...PI5_KERNEL_6_6].reverse()));
    expect(chips.map((c) => c.base)).toEqual([512, 544, 548, 565, 571]);
  });

  it('refuses a chip whose base is not a number', async () => {
    const root = await fakeSysfs(PI4_KERNEL_6_6);
    await writeFile(path.join(root, 'gpiochip512', 'base'), 'five hundred\n');
    await expect(listGpioChips(root)).rejects.toThrow(/Cannot read GPIO chip gpiochip512: base and ngpio must be integers/);
  });
});
