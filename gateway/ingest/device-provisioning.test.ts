import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeviceRegistry } from './device-registry.ts';
import { addDevice, revokeDevice, rotateDevice } from './device-provisioning.ts';

const known = { meterCurrencies: { cycles: 'EUR' }, payerCurrencies: { acme: 'EUR' }, devicesMax: 10 };

describe('device provisioning', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'devices-'));
    file = path.join(dir, 'devices.json');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('adds a device whose printed password works and is stored only hashed', async () => {
    const password = await addDevice(file, { id: 'press-7', payer: 'acme', meters: ['cycles'] });
    expect(await readFile(file, 'utf8')).not.toContain(password);
    expect((await DeviceRegistry.load(file, known).authenticate('press-7', password))?.id).toBe('press-7');
    await expect(addDevice(file, { id: 'press-7', payer: 'acme', meters: ['cycles'] })).rejects.toThrow(/already in/);
  });

  it('rotates: the new password works and the old one no longer does', async () => {
    const old = await addDevice(file, { id: 'press-7', payer: 'acme', meters: ['cycles'] });
    const fresh = await rotateDevice(file, 'press-7');
    const registry = DeviceRegistry.load(file, known);
    expect(await registry.authenticate('press-7', old)).toBeUndefined();
    expect((await registry.authenticate('press-7', fresh))?.id).toBe('press-7');
  });

  it('revokes: the device can no longer log in, and stays listed for its records', async () => {
    const password = await addDevice(file, { id: 'press-7', payer: 'acme', meters: ['cycles'] });
    revokeDevice(file, 'press-7');
    const registry = DeviceRegistry.load(file, known);
    expect(await registry.authenticate('press-7', password)).toBeUndefined();
    expect(registry.get('press-7')?.revoked).toBe(true);
  });

  it('refuses bad ids and keys, naming the field', async () => {
    await expect(addDevice(file, { id: 'Press 7', payer: 'acme', meters: ['cycles'] })).rejects.toThrow(/^id:/);
    await expect(addDevice(file, { id: 'p', payer: 'acme', meters: ['cycles'], publicKey: 'xyz' })).rejects.toThrow(/public-key/);
  });
});
