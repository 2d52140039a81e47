/**
 * kill -9 at random moments: a gateway child process takes QoS 1 usage from several
 * devices and is SIGKILLed and restarted over and over. Afterwards every acknowledged
 * message is in the ledger exactly once and the chain verifies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../firmware-sim/machines.ts';
import { hashPassword } from '../gateway/auth/password-hash.ts';
import { verifyChain } from '../gateway/ledger/verify-chain.ts';
import { openLedgerDb } from '../gateway/ledger/ledger-db.ts';
import { loadOrCreateGatewayKey } from '../gateway/ledger/gateway-key.ts';
import { usageTopic } from '../protocol/usage-message.ts';
import { demoGatewayConfig } from '../cli/demo-setup.ts';
import { freePort } from '../bench/mosquitto-server.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const CYCLES = Number(process.env.MB_CRASH_CYCLES ?? 20);
const DEVICES = ['cnc-1', 'cnc-2', 'truck-1', 'yard-1'];
const METERS: Record<string, [string, string]> = { 'cnc-1': ['cycles', 'cycle'], 'cnc-2': ['cycles', 'cycle'], 'truck-1': ['distance', 'm'], 'yard-1': ['slot-time', 'slot-s'] };
const PAYERS: Record<string, string> = { 'cnc-1': 'acme-plant', 'cnc-2': 'acme-plant', 'truck-1': 'northline-logistics', 'yard-1': 'harbour-yard' };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function startGatewayProcess(configFile: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['bin/meterbridge.mjs', 'gateway', '--config', configFile], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out = (out + chunk.toString()).slice(-4_000)));
  const deadline = Date.now() + 20_000;
  while (!out.includes(`:${port}`)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`gateway did not start: ${out}`);
    await sleep(20);
  }
  return child;
}

describe('crash safety', () => {
  const dirs: string[] = [];
  const children = new Set<ChildProcess>();
  afterAll(async () => {
    // A failed or timed-out run must not leave a gateway behind.
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it(`loses and duplicates nothing acknowledged across ${CYCLES} SIGKILLs at random moments`, async () => {
    const seed = Number(process.env.MB_CRASH_SEED ?? Date.now() % 2 ** 31);
    process.stdout.write(`crash test seed ${seed} (MB_CRASH_SEED=${seed} to replay)\n`);
    const random = seededRandom(seed);
    const dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-crash-'));
    dirs.push(dir);
    const port = await freePort();
    const devices = await Promise.all(DEVICES.map(async (id) => ({ id, payer: PAYERS[id]!, meters: [METERS[id]![0]], passwordHash: await hashPassword(`${id}-pw`) })));
    await writeFile(path.join(dir, 'devices.json'), JSON.stringify({ devices }));
    const config = { ...demoGatewayConfig({ mqtt: port, http: 0, bank: 9 }, '0 0 1 1 *'), logLevel: 'error', settlement: { sealCron: '0 0 1 1 *', bank: { url: 'http://127.0.0.1:9/', token: 'unused' } } };
    const configFile = path.join(dir, 'gateway.json');
    await writeFile(configFile, JSON.stringify(config));

    const start = async (): Promise<ChildProcess> => {
      const started = await startGatewayProcess(configFile, port);
      children.add(started);
      return started;
    };
    let child = await start();
    const acked = new Set<string>();
    const clients: MqttClient[] = [];
    let publishing = true;
    const pending: Array<Promise<void>> = [];
    for (const id of DEVICES) {
      const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: id, username: id, password: `${id}-pw`, reconnectPeriod: 50, connectTimeout: 2_000, protocolVersion: 4 });
      client.on('error', () => {});
      clients.push(client);
      const [meter, unit] = METERS[id]!;
      pending.push((async () => {
        let seq = 0;
        while (publishing) {
          // A window of 20 in flight per device, like firmware with a small outbox.
          const batch = Array.from({ length: 20 }, () => ++seq).map((s) => {
            const payload = JSON.stringify({ v: 1, deviceId: id, seq: s, meter, quantity: '3', unit, time: new Date().toISOString() });
            return client.publishAsync(usageTopic(id), payload, { qos: 1 }).then(() => void acked.add(`${id}#${s}`), () => {});
          });
          await Promise.race([Promise.all(batch), sleep(2_000)]);
        }
      })());
    }

    const log = (line: string): void => void (process.env.MB_CRASH_VERBOSE && process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`));
    for (let cycle = 1; cycle <= CYCLES; cycle += 1) {
      log(`cycle ${cycle}, acked ${acked.size}`);
      await sleep(200 + Math.floor(random() * 1_000));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      child = await start();
    }
    await sleep(1_000);
    publishing = false;
    log('stop publishing');
    await Promise.all(pending);
    log('publishers done');
    // Let the clients' resends of anything still unacknowledged go through.
    await sleep(1_500);
    await Promise.all(clients.map((c) => Promise.race([c.endAsync(false).catch(() => {}), sleep(3_000).then(() => c.endAsync(true))])));
    log('clients ended');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;

    const db = await openLedgerDb(path.join(dir, 'gateway-data', 'ledger'));
    try {
      const { key } = await loadOrCreateGatewayKey(path.join(dir, 'gateway-data'));
      const seen = new Map<string, number>();
      const report = await verifyChain(db, key, (record) => {
        const id = `${record.deviceId}#${record.seq}`;
        seen.set(id, (seen.get(id) ?? 0) + 1);
      });
      expect(report.problems, `seed ${seed}`).toEqual([]);
      expect(acked.size, `seed ${seed}: enough traffic to mean something`).toBeGreaterThan(200);
      const missing = [...acked].filter((id) => seen.get(id) !== 1);
      expect(missing, `seed ${seed}: acknowledged but not in the ledger exactly once`).toEqual([]);
      expect([...seen.values()].every((n) => n === 1), `seed ${seed}: a (device, seq) recorded twice`).toBe(true);
    } finally {
      await db.close();
    }
  }, 180_000);
});
