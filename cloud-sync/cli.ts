/** `meterbridge cloud-sync`: runs the cloud receiver until SIGINT or SIGTERM. */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { REDACT_PATHS } from '../cli/logger.ts';
import { untilSignal } from '../cli/signals.ts';
import { parseCloudSyncConfig, type CloudSyncConfig } from './config.ts';
import { startCloudSync } from './main.ts';

export const CLOUD_SYNC_USAGE = `Usage: meterbridge cloud-sync [options]

Receives the signed uploads of gateways (batches, settlement states, health, keys),
verifies and stores them, and serves the fleet API (docs/cloud-sync.md).

Options:
  --host <host>              address to listen on (default 127.0.0.1)
  --port <port>              port, 0 for any free one (default 8070)
  --data-dir <dir>           PGlite (embedded PostgreSQL) folder; without it and without
                             DATABASE_URL the data lives in memory only
  --admin-token-file <file>  file holding the admin bearer token (registration, fleet API)
  --log-level <level>        fatal, error, warn, info (default), debug, trace, silent
  -h, --help                 show this text

Environment:
  DATABASE_URL               postgres://user:password@host:port/db: a real PostgreSQL
                             (same schema; several instances may share it)
  CLOUD_ADMIN_TOKEN          the admin token, when no --admin-token-file is given.
                             There is no default: cloud-sync will not start without one
                             (make one with: openssl rand -hex 32)
`;

export interface CloudSyncCommandOptions {
  env?: Readonly<Record<string, string | undefined>>;
  stdout?: { write(text: string): unknown };
  stderr?: { write(text: string): unknown };
  /** Resolves to stop the service (tests); default: SIGINT or SIGTERM. */
  until?: Promise<unknown>;
}

function parsePort(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,5}$/.test(text)) throw new RangeError(`--port: ${JSON.stringify(text)} must be an integer from 0 to 65535`);
  return Number(text);
}

async function readConfig(argv: string[], env: Readonly<Record<string, string | undefined>>): Promise<CloudSyncConfig | 'help'> {
  const { values } = parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: {
      host: { type: 'string' }, port: { type: 'string' }, 'data-dir': { type: 'string' }, 'admin-token-file': { type: 'string' },
      'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const tokenFile = values['admin-token-file'];
  let adminToken = env.CLOUD_ADMIN_TOKEN;
  if (tokenFile !== undefined) {
    try {
      adminToken = (await readFile(tokenFile, 'utf8')).trim();
    } catch (error) {
      throw new Error(`--admin-token-file: cannot read ${tokenFile}: ${(error as Error).message}`, { cause: error });
    }
  }
  if (adminToken === undefined || adminToken === '') throw new RangeError('no admin token: set CLOUD_ADMIN_TOKEN or pass --admin-token-file (make one with: openssl rand -hex 32)');
  const port = parsePort(values.port);
  return parseCloudSyncConfig({
    adminToken,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(port === undefined ? {} : { port }),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
    ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
  });
}

export async function cloudSyncCommand(argv: string[], options: CloudSyncCommandOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  let config: CloudSyncConfig | 'help';
  try {
    config = await readConfig(argv, options.env ?? process.env);
  } catch (error) {
    stderr.write(`cloud-sync: ${(error as Error).message}\n\n${CLOUD_SYNC_USAGE}`);
    return 2;
  }
  if (config === 'help') {
    stdout.write(CLOUD_SYNC_USAGE);
    return 0;
  }
  const logger = pino({ name: 'cloud-sync', level: config.logLevel, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, { write: (line: string) => stderr.write(line) });
  stdout.write('cloud-sync starting (opening the database, applying migrations)…\n');
  const service = await startCloudSync(config, logger);
  stdout.write(`cloud-sync listening on ${service.url}\nstorage: ${service.storage}\n`);
  const reason = await (options.until ?? untilSignal());
  logger.info({ reason: String(reason) }, 'cloud-sync stopping');
  await service.close();
  return 0;
}
