/** `meterbridge mosquitto-config`: the Mosquitto config and ACL for external broker mode. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { mosquittoAcl, mosquittoConf } from '../gateway/ingest/mosquitto-config.ts';

const HELP = `Usage: meterbridge mosquitto-config --dir DIR [--gateway-user NAME] [--host H] [--port N]
                                   [--seen-at PATH] [--data-dir PATH]

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
  --seen-at PATH       where Mosquitto will see DIR, when not at DIR itself: in the
                       eclipse-mosquitto container (docker-compose.yml) /mosquitto/config
  --data-dir PATH      where Mosquitto keeps its persistent queues (default DIR/data, or
                       /mosquitto/data with --seen-at /mosquitto/config)
  -h, --help           show this help
`;

export async function mosquittoConfigCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { dir: { type: 'string' }, 'gateway-user': { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, 'seen-at': { type: 'string' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help || !values.dir) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const dir = path.resolve(values.dir);
  const gatewayUsername = values['gateway-user'] ?? 'meterbridge-gateway';
  const port = Number(values.port ?? 1883);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new RangeError(`--port: ${values.port} is not a TCP port`);
  // Paths as Mosquitto will see them (posix: they may name a container's folders).
  const seenAt = values['seen-at'] ?? dir;
  const dataDir = values['data-dir'] ?? (values['seen-at'] === '/mosquitto/config' ? '/mosquitto/data' : path.posix.join(seenAt, 'data'));
  mkdirSync(dir, { recursive: true });
  if (values['seen-at'] === undefined && values['data-dir'] === undefined) mkdirSync(path.join(dir, 'data'), { recursive: true });
  writeFileSync(path.join(dir, 'mosquitto.conf'), mosquittoConf({ host: values.host ?? '0.0.0.0', port, passwordFile: path.posix.join(seenAt, 'passwd'), aclFile: path.posix.join(seenAt, 'acl'), persistenceDir: dataDir, gatewayUsername }));
  writeFileSync(path.join(dir, 'acl'), mosquittoAcl(gatewayUsername));
  process.stdout.write(`Wrote ${path.join(dir, 'mosquitto.conf')} and ${path.join(dir, 'acl')}.\n`);
  return 0;
}
