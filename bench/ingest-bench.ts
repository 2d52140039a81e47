/**
 * Ingest benchmark: N usage messages from M devices (QoS 1, a window of K in flight per
 * device) through the real broker into the gateway, and the same load against a bare
 * aedes broker in the same run. Each broker runs in its own child process so its peak
 * RSS (VmHWM) is its own. Prints a table and writes bench-results.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { usageTopic } from '../protocol/usage-message.ts';
import { hashPassword } from '../gateway/auth/password-hash.ts';
import { demoGatewayConfig } from '../cli/demo-setup.ts';

export interface IngestBenchOptions {
  messages: number;
  devices: number;
  inflight: number;
  log: (line: string) => void;
}

export interface LoadResult {
  recordsPerS: number;
  p50Ms: number;
  p99Ms: number;
  rssMb: number;
  elapsedMs: number;
}

const REPO = path.resolve(import.meta.dirname, '..');

function spawnBroker(args: string[], env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /mqtt:\/\/[0-9.]+:(\d+)/.exec(out);
      if (match) resolve({ child, url: `mqtt://127.0.0.1:${match[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`broker exited with ${code} before listening: ${out}`)));
  });
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function runLoad(url: string, creds: Array<{ id: string; password: string }>, options: IngestBenchOptions): Promise<Omit<LoadResult, 'rssMb'>> {
  const clients: MqttClient[] = await Promise.all(creds.map((c) => mqtt.connectAsync(url, { clientId: c.id, username: c.id, password: c.password, protocolVersion: 4, reconnectPeriod: 0 })));
  const perDevice = Math.ceil(options.messages / clients.length);
  const latencies: number[] = [];
  const startedMs = performance.now();
  let lastReportMs = startedMs;
  const sendAll = async (client: MqttClient, deviceId: string): Promise<void> => {
    let seq = 0;
    const worker = async (): Promise<void> => {
      while (seq < perDevice) {
        seq += 1;
        const payload = JSON.stringify({ v: 1, deviceId, seq, meter: 'cycles', quantity: '1', unit: 'cycle', time: new Date().toISOString() });
        const sentMs = performance.now();
        await client.publishAsync(usageTopic(deviceId), payload, { qos: 1 });
        latencies.push(performance.now() - sentMs);
        if (performance.now() - lastReportMs > 2_000) {
          lastReportMs = performance.now();
          options.log(`    … ${latencies.length} / ${perDevice * clients.length} acknowledged`);
        }
      }
    };
    await Promise.all(Array.from({ length: options.inflight }, worker));
  };
  await Promise.all(clients.map((client, i) => sendAll(client, creds[i]!.id)));
  const elapsedMs = performance.now() - startedMs;
  await Promise.all(clients.map((c) => c.endAsync()));
  latencies.sort((a, b) => a - b);
  return { recordsPerS: Math.round(latencies.length / (elapsedMs / 1000)), p50Ms: round2(percentile(latencies, 50)), p99Ms: round2(percentile(latencies, 99)), elapsedMs: Math.round(elapsedMs) };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** The same bundle `npm run build` makes, written to `outfile`. */
export async function buildBundle(outfile: string): Promise<void> {
  const { build } = await import('esbuild');
  await build({
    stdin: { contents: "import { main } from './cli/main.ts';\nprocess.exit(await main(process.argv.slice(2)));\n", resolveDir: REPO, sourcefile: 'entry.ts', loader: 'ts' },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outfile, logLevel: 'error',
    // The bundle lives outside the repo: let it find node_modules through NODE_PATH-free absolute imports.
    nodePaths: [path.join(REPO, 'node_modules')],
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

export async function runIngestBench(options: IngestBenchOptions): Promise<{ gateway: LoadResult; bare: LoadResult }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-bench-'));
  try {
    options.log(`provisioning ${options.devices} devices…`);
    const creds = Array.from({ length: options.devices }, (_, i) => ({ id: `bench-${i + 1}`, password: `bench-secret-${i + 1}` }));
    const devices = await Promise.all(creds.map(async (c) => ({ id: c.id, payer: 'acme-plant', meters: ['cycles'], passwordHash: await hashPassword(c.password) })));
    await writeFile(path.join(dir, 'devices.json'), JSON.stringify({ devices }));
    const config = { ...demoGatewayConfig({ mqtt: 0, http: 0, bank: 9 }, '0 0 1 1 *'), logLevel: 'warn', settlement: { sealCron: '0 0 1 1 *', bank: { url: 'http://127.0.0.1:9/open-banking/v4.0/pisp', token: 'unused-in-bench' } } };
    await writeFile(path.join(dir, 'gateway.json'), JSON.stringify(config));

    // Measure what production runs: one bundled JS file on plain node (as the Dockerfile
    // builds it), not the TypeScript loader, whose own memory would be counted otherwise.
    // Inside the repository, so its bare imports resolve to our node_modules.
    const bundle = path.join(REPO, '.bench-tmp', 'meterbridge.mjs');
    await buildBundle(bundle);
    options.log(`gateway: ${options.messages} messages from ${options.devices} devices, ${options.inflight} in flight each…`);
    const gw = await spawnBroker([...(process.env.MB_BENCH_NODE_FLAGS ? process.env.MB_BENCH_NODE_FLAGS.split(' ') : []), ...(process.env.MB_BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.MB_BENCH_PROFILE] : []), bundle, 'gateway', '--config', path.join(dir, 'gateway.json')], {});
    const gatewayLoad = await runLoad(gw.url, creds, options);
    const gateway = { ...gatewayLoad, rssMb: peakRssMb(gw.child.pid!) };
    await stop(gw.child);

    options.log('bare aedes broker, same load…');
    const bareBroker = await spawnBroker(['--import', 'tsx', 'bench/bare-broker.ts'], {});
    const bareLoad = await runLoad(bareBroker.url, creds, options);
    const bare = { ...bareLoad, rssMb: peakRssMb(bareBroker.child.pid!) };
    await stop(bareBroker.child);
    return { gateway, bare };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function writeBenchResults(file: string, figures: Record<string, unknown>): void {
  let existing: Record<string, unknown> = {};
  try {
    existing = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    existing = {};
  }
  writeFileSync(file, `${JSON.stringify({ ...existing, ...figures, measured_at: new Date().toISOString() }, null, 2)}\n`);
}
