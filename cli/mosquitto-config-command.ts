/** `meterbridge mosquitto-config`: the Mosquitto config and ACL for external broker mode. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { mosquittoAcl, mosquittoConf } from '../gateway/ingest/mosquitto-config.ts';

const HELP = `Usage: meterbridge mosquitto-config --dir DIR [--gateway-user NAME] [--host H] [--port N]

Writes DIR/mosquitto.conf and DIR/acl for running the gateway in external broker mode
(mqtt.mode "external"): no anonymous access, client id bound to the username, each
device confined to its own topics, the gateway reading all usage, and queues that do
not drop usage while the gateway is away. Add users with
'meterbridge device add --mosquitto-passwd DIR/passwd …' and the gateway's own user with
'mosquitto_passwd DIR/passwd NAME'.

Options:
  --dir DIR            where to write (and where the password file is expected)
  --gateway-user NAME  the gateway's broker username (default meterbridge-gateway)
  --host H             listener address (default 0.0.0.0)
  --port N             listener port (default 1883)
  -h, --help           show this help
`;

export async function mosquittoConfigCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { dir: { type: 'string' }, 'gateway-user': { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help || !values.dir) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const dir = path.resolve(values.dir);
  const gatewayUsername = values['gateway-user'] ?? 'meterbridge-gateway';
  const port = Number(values.port ?? 1883);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new RangeError(`--port: ${values.port} is not a TCP port`);
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  writeFileSync(path.join(dir, 'mosquitto.conf'), mosquittoConf({ host: values.host ?? '0.0.0.0', port, passwordFile: path.join(dir, 'passwd'), aclFile: path.join(dir, 'acl'), persistenceDir: path.join(dir, 'data'), gatewayUsername }));
  writeFileSync(path.join(dir, 'acl'), mosquittoAcl(gatewayUsername));
  process.stdout.write(`Wrote ${path.join(dir, 'mosquitto.conf')} and ${path.join(dir, 'acl')}.\n`);
  return 0;
}
