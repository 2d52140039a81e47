/**
 * `meterbridge device add|rotate|revoke|list`: the provisioning file's one editor. A new
 * or rotated password is random, shown once with everything to flash onto the device,
 * and stored only as a scrypt hash; with --mosquitto-passwd the same credentials go into
 * an external Mosquitto's password file. Restart the gateway to load the change.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ID_PATTERN, rejectionTopic, usageTopic } from '../protocol/usage-message.ts';
import { generateSecret, hashPassword, UNUSABLE_PASSWORD_HASH } from '../gateway/auth/password-hash.ts';
import type { DeviceEntry, DevicesFile } from '../gateway/ingest/device-registry.ts';

const HELP = `Usage:
  meterbridge device add --id ID --payer PAYER --meters M1[,M2] [--public-key HEX] [--description TEXT]
  meterbridge device rotate --id ID        new password; the old one stops working
  meterbridge device revoke --id ID        the device can no longer connect; its records stay
  meterbridge device list

Options for every subcommand:
  --devices-file FILE      provisioning file (default ./devices.json, or MB_DEVICES_FILE)
  --mosquitto-passwd FILE  also set (or, on revoke, delete) the device in an external
                           Mosquitto's password file, with mosquitto_passwd
  -h, --help               show this help

add:
  --id ID              device id: 1-63 of a-z 0-9 . _ -
  --payer PAYER        payer (from the gateway config) billed for its usage
  --meters LIST        comma-separated meters it may report (from the gateway config)
  --public-key HEX     the device's Ed25519 public key: then every message must be signed
  --sparkplug-group G  with --sparkplug-node N: a Sparkplug B edge node (docs/sparkplug.md)
  --sparkplug-node N

The password is printed once and stored only as a scrypt hash. Restart the gateway to
load the change.
`;

function readDevices(file: string): DevicesFile {
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

function updateMosquitto(passwdFile: string | undefined, id: string, password: string | undefined): void {
  if (!passwdFile) return;
  const args = password === undefined ? ['-D', passwdFile, id] : ['-b', passwdFile, id, password];
  execFileSync('mosquitto_passwd', args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

function flashSheet(id: string, password: string, signed: boolean): string {
  return `Flash onto ${id} (the password is shown only now):
  MQTT client id   ${id}
  MQTT username    ${id}
  MQTT password    ${password}
  publish (QoS 1)  ${usageTopic(id)}
  subscribe        ${rejectionTopic(id)}${signed ? '\n  sign each message with the device key (docs/protocol.md, "sig")' : ''}
Restart the gateway to load the change.
`;
}

export async function deviceCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      id: { type: 'string' }, payer: { type: 'string' }, meters: { type: 'string' }, description: { type: 'string' }, 'public-key': { type: 'string' },
      'sparkplug-group': { type: 'string' }, 'sparkplug-node': { type: 'string' },
      'devices-file': { type: 'string' }, 'mosquitto-passwd': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  const action = positionals[0];
  if (values.help || !action || !['add', 'rotate', 'revoke', 'list'].includes(action)) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const file = values['devices-file'] ?? process.env.MB_DEVICES_FILE ?? './devices.json';
  if (action === 'list') {
    for (const d of readDevices(file).devices as DeviceEntry[]) {
      process.stdout.write(`${d.id.padEnd(24)} payer ${d.payer.padEnd(22)} meters ${d.meters.join(',')}${d.publicKey ? ' · signs' : ''}${d.sparkplug ? ` · sparkplug ${d.sparkplug.group}/${d.sparkplug.node}` : ''}${d.revoked ? ' · REVOKED' : ''}\n`);
    }
    return 0;
  }
  if (!values.id) {
    process.stderr.write(`meterbridge device ${action}: --id is required\n`);
    return 2;
  }
  if (action === 'revoke') {
    revokeDevice(file, values.id);
    updateMosquitto(values['mosquitto-passwd'], values.id, undefined);
    process.stdout.write(`Revoked ${values.id} in ${file}. Restart the gateway to load the change.\n`);
    return 0;
  }
  let password: string;
  if (action === 'rotate') {
    password = await rotateDevice(file, values.id);
  } else {
    if (!values.payer || !values.meters) {
      process.stderr.write('meterbridge device add: --payer and --meters are required\n');
      return 2;
    }
    const group = values['sparkplug-group'];
    const node = values['sparkplug-node'];
    if ((group === undefined) !== (node === undefined)) throw new RangeError('sparkplug: give both --sparkplug-group and --sparkplug-node');
    password = await addDevice(file, {
      id: values.id, payer: values.payer, meters: values.meters.split(',').map((m) => m.trim()),
      ...(values.description ? { description: values.description } : {}),
      ...(values['public-key'] ? { publicKey: values['public-key'] } : {}),
      ...(group && node ? { sparkplug: { group, node } } : {}),
    });
  }
  updateMosquitto(values['mosquitto-passwd'], values.id, password);
  process.stdout.write(`${action === 'add' ? 'Added' : 'Rotated'} ${values.id} in ${file}.\n${flashSheet(values.id, password, values['public-key'] !== undefined)}`);
  return 0;
}
