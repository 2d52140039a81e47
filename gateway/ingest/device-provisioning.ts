/**
 * The provisioning file's one editor, for `meterbridge device` and the operator page: a
 * new or rotated password is random, returned once, and stored only as a scrypt hash.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ID_PATTERN, rejectionTopic, usageTopic } from '../../protocol/usage-message.ts';
import { generateSecret, hashPassword, UNUSABLE_PASSWORD_HASH } from '../auth/password-hash.ts';
import type { DevicesFile } from './device-registry.ts';

export function readDevices(file: string): DevicesFile {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DevicesFile) : { devices: [] };
}

/** Write-then-rename, 0600: a crash never leaves half a provisioning file. */
function writeDevices(file: string, devices: DevicesFile): void {
  const temp = `${file}.tmp-${process.pid}`;
  writeFileSync(temp, `${JSON.stringify(devices, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

function checkId(field: string, value: string): void {
  if (!ID_PATTERN.test(value)) throw new RangeError(`${field}: ${JSON.stringify(value)} must be 1-63 of a-z 0-9 . _ -`);
}

export interface AddDeviceInput {
  id: string;
  payer: string;
  meters: string[];
  description?: string;
  publicKey?: string;
  sparkplug?: { group: string; node: string };
}

export async function addDevice(file: string, device: AddDeviceInput): Promise<string> {
  checkId('id', device.id);
  checkId('payer', device.payer);
  for (const meter of device.meters) checkId('meters', meter);
  if (device.publicKey !== undefined && !/^[0-9a-f]{64}$/.test(device.publicKey)) throw new RangeError('public-key: must be 64 lower-case hex digits (Ed25519)');
  const existing = readDevices(file);
  if (existing.devices.some((d) => d.id === device.id)) throw new Error(`Cannot add device ${device.id}: it is already in ${file} (use rotate for a new password)`);
  const password = generateSecret();
  existing.devices.push({ ...device, passwordHash: await hashPassword(password) });
  writeDevices(file, existing);
  return password;
}

export async function rotateDevice(file: string, id: string): Promise<string> {
  const existing = readDevices(file);
  const device = existing.devices.find((d) => d.id === id);
  if (!device) throw new Error(`Cannot rotate ${id}: no such device in ${file}`);
  const password = generateSecret();
  device.passwordHash = await hashPassword(password);
  delete device.revoked;
  writeDevices(file, existing);
  return password;
}

export function revokeDevice(file: string, id: string): void {
  const existing = readDevices(file);
  const device = existing.devices.find((d) => d.id === id);
  if (!device) throw new Error(`Cannot revoke ${id}: no such device in ${file}`);
  device.revoked = true;
  // The hash goes too: a revoked device's old password must never work again, even if un-revoked by hand.
  device.passwordHash = UNUSABLE_PASSWORD_HASH;
  writeDevices(file, existing);
}

export function flashSheet(id: string, password: string, signed: boolean, restartNote = true): string {
  return `Flash onto ${id} (the password is shown only now):
  MQTT client id   ${id}
  MQTT username    ${id}
  MQTT password    ${password}
  publish (QoS 1)  ${usageTopic(id)}
  subscribe        ${rejectionTopic(id)}${signed ? '\n  sign each message with the device key (docs/protocol.md, "sig")' : ''}
${restartNote ? 'Restart the gateway to load the change.\n' : ''}`;
}

