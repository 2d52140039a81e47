/**
 * `meterbridge device add|rotate|revoke|list`: the provisioning file's one editor. A new
 * or rotated password is random, shown once with everything to flash onto the device,
 * and stored only as a scrypt hash; with --mosquitto-passwd the same credentials go into
 * an external Mosquitto's password file. Restart the gateway to load the change (the
 * operator page's provisioning, gateway/web/action-routes.ts, takes effect at once).
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { addDevice, flashSheet, readDevices, revokeDevice, rotateDevice } from '../gateway/ingest/device-provisioning.ts';
import type { DeviceEntry } from '../gateway/ingest/device-registry.ts';

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

function updateMosquitto(passwdFile: string | undefined, id: string, password: string | undefined): void {
  if (!passwdFile) return;
  const args = password === undefined ? ['-D', passwdFile, id] : ['-b', passwdFile, id, password];
  execFileSync('mosquitto_passwd', args, { stdio: ['ignore', 'ignore', 'inherit'] });
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
