/** `meterbridge device add`: provision a device and print what to flash onto it. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ID_PATTERN, rejectionTopic, usageTopic } from '../protocol/usage-message.ts';
import { generateSecret, hashPassword } from '../gateway/auth/password-hash.ts';
import type { DevicesFile } from '../gateway/ingest/device-registry.ts';

const HELP = `Usage: meterbridge device add --id ID --payer PAYER --meters M1[,M2] [--devices-file FILE]

Adds a device to the provisioning file (default ./devices.json, or MB_DEVICES_FILE) with a
new random password, stores only its scrypt hash, and prints the credentials to flash onto
the device. Restart the gateway to load it.

Options:
  --id ID              device id: 1-63 of a-z 0-9 . _ -
  --payer PAYER        payer (from the gateway config) billed for its usage
  --meters LIST        comma-separated meters it may report (from the gateway config)
  --description TEXT   free text for the operator
  --devices-file FILE  provisioning file to update
  -h, --help           show this help
`;

export async function addDevice(file: string, device: { id: string; payer: string; meters: string[]; description?: string }): Promise<string> {
  for (const [field, value] of [['id', device.id], ['payer', device.payer], ...device.meters.map((m) => ['meters', m])] as const) {
    if (!ID_PATTERN.test(value)) throw new RangeError(`${field}: ${JSON.stringify(value)} must be 1-63 of a-z 0-9 . _ -`);
  }
  const existing: DevicesFile = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DevicesFile) : { devices: [] };
  if (existing.devices.some((d) => d.id === device.id)) throw new Error(`Cannot add device ${device.id}: it is already in ${file}`);
  const password = generateSecret();
  existing.devices.push({ ...device, passwordHash: await hashPassword(password) });
  writeFileSync(file, `${JSON.stringify(existing, null, 2)}\n`, { mode: 0o600 });
  return password;
}

export async function deviceCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { id: { type: 'string' }, payer: { type: 'string' }, meters: { type: 'string' }, description: { type: 'string' }, 'devices-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals[0] !== 'add') {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  if (!values.id || !values.payer || !values.meters) {
    process.stderr.write('meterbridge device add: --id, --payer and --meters are required\n');
    return 2;
  }
  const file = values['devices-file'] ?? process.env.MB_DEVICES_FILE ?? './devices.json';
  const password = await addDevice(file, {
    id: values.id, payer: values.payer, meters: values.meters.split(',').map((m) => m.trim()),
    ...(values.description ? { description: values.description } : {}),
  });
  process.stdout.write(`Added ${values.id} to ${file}. Flash onto the device (the password is shown only now):
  MQTT client id   ${values.id}
  MQTT username    ${values.id}
  MQTT password    ${password}
  publish (QoS 1)  ${usageTopic(values.id)}
  subscribe        ${rejectionTopic(values.id)}
Restart the gateway to load the new device.
`);
  return 0;
}
