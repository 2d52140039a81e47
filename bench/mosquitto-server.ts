/** A real Mosquitto on a free port with a generated config, password file and ACL: for tests and the bench. */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import path from 'node:path';
import { mosquittoAcl, mosquittoConf } from '../gateway/ingest/mosquitto-config.ts';
import { MOSQUITTO, MOSQUITTO_PASSWD } from '../test/support/server-binaries.ts';

export interface MosquittoServer {
  url: string;
  port: number;
  /** Stops it (SIGTERM); `start()` brings it back on the same port with the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function startMosquitto(dir: string, users: ReadonlyArray<{ username: string; password: string }>, gatewayUsername: string): Promise<MosquittoServer> {
  if (!MOSQUITTO || !MOSQUITTO_PASSWD) throw new Error('mosquitto is not installed');
  await mkdir(path.join(dir, 'data'), { recursive: true });
  const port = await freePort();
  const passwordFile = path.join(dir, 'passwd');
  const aclFile = path.join(dir, 'acl');
  await writeFile(passwordFile, '');
  for (const user of users) execFileSync(MOSQUITTO_PASSWD, ['-b', passwordFile, user.username, user.password]);
  await writeFile(aclFile, mosquittoAcl(gatewayUsername));
  const confFile = path.join(dir, 'mosquitto.conf');
  // Running as root, mosquitto would switch to its own user and lose access to our temp files.
  await writeFile(confFile, `${mosquittoConf({ host: '127.0.0.1', port, passwordFile, aclFile, persistenceDir: path.join(dir, 'data'), gatewayUsername })}user root\n`);
  let child: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    child = spawn(MOSQUITTO!, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4_000)));
    await waitForPort(port, 5_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${log}`);
    });
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
    start,
  };
}
