import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../auth/password-hash.ts';
import { DeviceRegistry } from './device-registry.ts';

const known = { meterCurrencies: { cycles: 'EUR', distance: 'GBP' }, payerCurrencies: { acme: 'EUR' }, devicesMax: 10 };

describe('DeviceRegistry', () => {
  let dir: string;
  let hash: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'registry-'));
    hash = await hashPassword('right-password');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const load = async (devices: unknown[]): Promise<DeviceRegistry> => {
    const file = path.join(dir, `devices-${Math.random()}.json`);
    await writeFile(file, JSON.stringify({ devices }));
    return DeviceRegistry.load(file, known);
  };

  it('authenticates a device with its password and refuses a wrong one or an unknown id', async () => {
    const registry = await load([{ id: 'cnc-1', payer: 'acme', meters: ['cycles'], passwordHash: hash }]);
    expect((await registry.authenticate('cnc-1', 'right-password'))?.id).toBe('cnc-1');
    expect(await registry.authenticate('cnc-1', 'wrong-password')).toBeUndefined();
    expect(await registry.authenticate('cnc-9', 'right-password')).toBeUndefined();
  });

  it('refuses a plain-text password in the provisioning file, naming the field', async () => {
    await expect(load([{ id: 'cnc-1', payer: 'acme', meters: ['cycles'], passwordHash: 'hunter2' }])).rejects.toThrow(/devices\.0\.passwordHash: must be a scrypt/);
  });

  it('refuses a device whose meter is priced in another currency than its payer pays in', async () => {
    await expect(load([{ id: 'truck-1', payer: 'acme', meters: ['distance'], passwordHash: hash }])).rejects.toThrow(/meter distance is priced in GBP but payer acme pays in EUR/);
  });

  it('refuses unknown payers and meters, and the same id twice', async () => {
    await expect(load([{ id: 'a', payer: 'nobody', meters: ['cycles'], passwordHash: hash }])).rejects.toThrow(/no payer named nobody/);
    await expect(load([{ id: 'a', payer: 'acme', meters: ['litres'], passwordHash: hash }])).rejects.toThrow(/no meter named litres/);
    await expect(load([{ id: 'a', payer: 'acme', meters: ['cycles'], passwordHash: hash }, { id: 'a', payer: 'acme', meters: ['cycles'], passwordHash: hash }])).rejects.toThrow(/appears twice/);
  });
});
