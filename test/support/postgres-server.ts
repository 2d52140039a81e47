/**
 * A throwaway PostgreSQL for tests, from Debian's `postgresql` package: initdb into a
 * temp folder (trust auth, no fsync: nothing here must survive a crash), a free port on
 * 127.0.0.1, the unix socket in the same folder, a fresh database. Skipped locally when
 * the binaries are missing; under CI=true a missing binary fails (server-binaries.ts).
 *
 * PostgreSQL refuses to run as root, and CI runs as root: then the server runs as
 * `nobody` through runuser, in a folder handed to that user.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { requireBinary } from './server-binaries.ts';

const run = promisify(execFile);
const DEBIAN_ROOT = '/usr/lib/postgresql';
const START_ATTEMPTS = 3;

/** Debian's versioned bin folders, newest first; a placeholder when there are none, so the CI error names where we looked. */
function binCandidates(name: string): string[] {
  let versions: string[] = [];
  try {
    versions = readdirSync(DEBIAN_ROOT).filter((entry) => /^\d+$/.test(entry)).sort((a, b) => Number(b) - Number(a));
  } catch {
    // no PostgreSQL installed
  }
  return versions.length > 0 ? versions.map((version) => path.join(DEBIAN_ROOT, version, 'bin', name)) : [path.join(DEBIAN_ROOT, '<version>', 'bin', name)];
}

export const INITDB = requireBinary('initdb', binCandidates('initdb'));
export const PG_CTL = INITDB === undefined ? undefined : requireBinary('pg_ctl', [path.join(path.dirname(INITDB), 'pg_ctl')]);
/** Whether a real PostgreSQL can be started here: `describe.skipIf(!POSTGRES_AVAILABLE)`. */
export const POSTGRES_AVAILABLE = INITDB !== undefined && PG_CTL !== undefined;

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url: string;
  port: number;
  stop(): Promise<void>;
}

const asRoot = (): boolean => process.getuid?.() === 0;

/**
 * Runs a PostgreSQL binary as ourselves, or as `nobody` when we are root, from `dir`: as
 * `nobody` the checkout (under /root in CI) may be no directory it can enter.
 */
async function runPostgresBinary(binary: string, args: string[], dir: string): Promise<void> {
  const [command, commandArgs] = asRoot() ? ['runuser', ['-u', 'nobody', '--', binary, ...args]] : [binary, args];
  await run(command, commandArgs, { cwd: dir, env: { ...process.env, LC_ALL: 'C', LANG: 'C' }, timeout: 60_000 });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface PostgresServerOptions {
  /**
   * Keep PostgreSQL's durability (fsync, synchronous commit, full page writes), as a real
   * deployment runs: for benchmarks. Tests leave it off: nothing there must survive a crash.
   */
  durable?: boolean;
}

export async function startPostgres(database = 'meterbridge_test', options: PostgresServerOptions = {}): Promise<PostgresServer> {
  if (!INITDB || !PG_CTL) throw new Error('PostgreSQL binaries are missing: install Debian\'s postgresql package');
  const pgCtl = PG_CTL;
  const dir = await mkdtemp(path.join(tmpdir(), 'mb-pg-'));
  if (asRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
    await chown(dir, uid, gid);
  }
  const dataDir = path.join(dir, 'data');
  await runPostgresBinary(INITDB, ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync'], dir);
  let port = 0;
  for (let attempt = 1; ; attempt += 1) {
    port = await freePort();
    // Durability off unless asked: a test database never needs to survive a crash, and fsync is most of a commit's cost.
    const durability = options.durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off';
    const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1${durability}`;
    try {
      await runPostgresBinary(pgCtl, ['-D', dataDir, '-o', serverOptions, '-l', path.join(dir, 'server.log'), '-w', '-t', '30', 'start'], dir);
      break;
    } catch (error) {
      // Another process took the port between freePort and the server's bind: try another.
      if (attempt >= START_ATTEMPTS) {
        await rm(dir, { recursive: true, force: true });
        throw new Error(`Cannot start PostgreSQL in ${dir}: ${(error as Error).message}`, { cause: error });
      }
    }
  }
  const stopNow = (): void => {
    try {
      const args = ['-D', dataDir, '-m', 'immediate', '-w', 'stop'];
      if (asRoot()) execFileSync('runuser', ['-u', 'nobody', '--', pgCtl, ...args], { cwd: dir, stdio: 'ignore' });
      else execFileSync(pgCtl, args, { cwd: dir, stdio: 'ignore' });
    } catch {
      // already stopped
    }
  };
  // A test run that dies must not leave a server behind.
  process.once('exit', stopNow);
  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${database}`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    port,
    stop: async () => {
      process.off('exit', stopNow);
      stopNow();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
