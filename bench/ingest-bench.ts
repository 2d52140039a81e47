/**
 * Ingest benchmark. N usage messages from M devices (QoS 1, at most K unacknowledged per
 * device), either as fast as acks come back (closed loop) or at an offered rate (open
 * loop), through:
 *   - the gateway with its embedded broker (an ack means durable in the ledger);
 *   - the gateway behind a real Mosquitto (the device's ack comes from Mosquitto; the
 *     figure is how fast records become durable in the ledger);
 *   - a bare aedes broker and a bare Mosquitto: the baselines.
 * The devices run in a separate lean load generator (raw sockets, no MQTT library), so
 * the baselines measure the broker, not the client; a warm-up that is not measured comes
 * first, so the figures are steady state rather than JIT start-up.
 * Every server runs in its own child process, so its peak RSS (VmHWM) is its own; the
 * gateway runs as an esbuild bundle on plain node, so the TypeScript loader's own memory
 * is not counted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { hashPassword } from '../gateway/auth/password-hash.ts';
import { demoGatewayConfig } from '../cli/demo-setup.ts';
import { MOSQUITTO } from '../test/support/server-binaries.ts';
import { startMosquitto, type MosquittoServer } from './mosquitto-server.ts';
import type { LoadJob, LoadReport } from './load-generator.ts';

export interface IngestBenchOptions {
  messages: number;
  /** Messages sent first and not measured (JIT warm-up on both sides). */
  warmup: number;
  devices: number;
  inflight: number;
  /** Which scenarios to run; all when undefined. */
  only?: Scenario[];
  /** Offered records/s over all devices; undefined = as fast as acks allow. */
  ratePerS?: number;
  log: (line: string) => void;
}

export interface LoadResult {
  /** Records acknowledged (or, behind Mosquitto, durable in the ledger) per second. */
  recordsPerS: number;
  p50Ms: number;
  p99Ms: number;
  rssMb: number;
  elapsedMs: number;
}

export type Scenario = 'gateway_embedded' | 'gateway_mosquitto' | 'bare_aedes' | 'bare_mosquitto';

const REPO = path.resolve(import.meta.dirname, '..');
/**
 * V8 heap settings for a Pi-class gateway: a 4 MB young generation keeps peak RSS near
 * 135 MB under full load (~175 MB with Node's default) at the same throughput; 128 MB
 * old space bounds the heap with room for sealing a large batch.
 */
export const PRODUCTION_NODE_FLAGS = '--max-old-space-size=128 --max-semi-space-size=4';
/**
 * glibc gives each thread that mallocs (libuv's pool runs LevelDB's writes and reads)
 * an arena of its own, and they fragment: two arenas cut the gateway's peak RSS from
 * ~160 MB to ~140 MB at the same throughput. The Dockerfile sets the same; a value in
 * the bench's own environment wins.
 */
export const PRODUCTION_ENV = { MALLOC_ARENA_MAX: '2' };
const BUNDLE_DIR = path.join(REPO, '.bench-tmp'); // inside the repo so bare imports resolve to node_modules
const GATEWAY_BROKER_USER = { username: 'bench-gateway', password: 'bench-gateway-secret' };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Bundles a TypeScript entry into one ESM file (esbuild), the way to run the gateway on a small device without the TypeScript loader. */
export async function buildBundle(entry: string, outfile: string): Promise<void> {
  const { build } = await import('esbuild');
  await build({
    stdin: { contents: entry, resolveDir: REPO, sourcefile: 'entry.ts', loader: 'ts' },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outfile, logLevel: 'error',
  });
}

interface Child {
  child: ChildProcess;
  stdout: () => string;
}

async function spawnUntil(args: string[], ready: RegExp): Promise<Child & { match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'], env: { ...PRODUCTION_ENV, ...process.env } });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const match = ready.exec(out);
    if (match) return { child, stdout: () => out, match };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${args.join(' ')} did not start: ${out}`);
    await sleep(20);
  }
}

function peakRssMb(pid: number): number {
  const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return Math.round(kb / 1024);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Runs the device fleet in its own process (see load-generator.ts); `onMeasuring` is called when the warm-up is over. */
async function runLoad(loaderBundle: string, url: string, creds: Array<{ id: string; password: string }>, options: IngestBenchOptions, onMeasuring?: () => void): Promise<LoadReport> {
  const { hostname, port } = new URL(url);
  const job: LoadJob = { host: hostname, port: Number(port), devices: creds, messagesPerDevice: Math.ceil(options.messages / creds.length), warmupPerDevice: Math.ceil(options.warmup / creds.length), inflight: options.inflight, ...(options.ratePerS ? { ratePerS: options.ratePerS } : {}) };
  const child = spawn(process.execPath, [loaderBundle, JSON.stringify(job)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => {
    err += chunk.toString();
    for (const line of chunk.toString().split('\n')) {
      if (line.startsWith('    …')) options.log(line);
      if (line === 'measuring') onMeasuring?.();
    }
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`load generator failed (exit ${String(code)}): ${err.trim()}`);
  return JSON.parse(out) as LoadReport;
}

function summarise(load: LoadReport, records: number, elapsedMs: number, rssMb: number): LoadResult {
  return { recordsPerS: Math.round(records / (elapsedMs / 1000)), p50Ms: load.p50Ms, p99Ms: load.p99Ms, rssMb, elapsedMs: Math.round(elapsedMs) };
}

async function ledgerRecords(httpUrl: string): Promise<number> {
  const health = (await (await fetch(`${httpUrl}/healthz`)).json()) as { records: number };
  return health.records;
}

export async function runIngestBench(options: IngestBenchOptions): Promise<Partial<Record<Scenario, LoadResult>>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-bench-'));
  const results: Partial<Record<Scenario, LoadResult>> = {};
  let mosquitto: MosquittoServer | undefined;
  try {
    options.log(`provisioning ${options.devices} devices…`);
    const creds = Array.from({ length: options.devices }, (_, i) => ({ id: `bench-${i + 1}`, password: `bench-secret-${i + 1}` }));
    const devices = await Promise.all(creds.map(async (c) => ({ id: c.id, payer: 'acme-plant', meters: ['cycles'], passwordHash: await hashPassword(c.password) })));
    await writeFile(path.join(dir, 'devices.json'), JSON.stringify({ devices }));
    const base = { ...demoGatewayConfig({ mqtt: 0, http: 0, bank: 9 }, '0 0 1 1 *'), logLevel: 'error', settlement: { sealCron: '0 0 1 1 *', bank: { url: 'http://127.0.0.1:9/open-banking/v4.0/pisp', token: 'unused-in-bench' } } };
    // The bench measures the pipeline, not the per-device rate limit.
    const mqttLimits = { deviceRatePerSMax: 100_000, deviceInflightMax: 10_000 };
    const gatewayBundle = path.join(BUNDLE_DIR, 'meterbridge.mjs');
    const bareBundle = path.join(BUNDLE_DIR, 'bare-broker.mjs');
    await buildBundle("import { main } from './cli/main.ts';\nprocess.exit(await main(process.argv.slice(2)));\n", gatewayBundle);
    await buildBundle("import './bench/bare-broker.ts';\n", bareBundle);
    const loaderBundle = path.join(BUNDLE_DIR, 'load-generator.mjs');
    await buildBundle("import './bench/load-generator.ts';\n", loaderBundle);
    // The production memory settings (Dockerfile NODE_OPTIONS), unless MB_BENCH_NODE_FLAGS says otherwise.
    const flagText = process.env.MB_BENCH_NODE_FLAGS ?? PRODUCTION_NODE_FLAGS;
    const nodeFlags = [...flagText.split(' ').filter(Boolean), ...(process.env.MB_BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.MB_BENCH_PROFILE] : [])];
    const what = `${options.messages} messages from ${options.devices} devices, ${options.inflight} in flight each${options.ratePerS ? `, offered ${options.ratePerS}/s` : ''}`;

    const wanted = (scenario: Scenario): boolean => !options.only || options.only.includes(scenario);
    const load = (url: string, onMeasuring?: () => void): Promise<LoadReport> => runLoad(loaderBundle, url, creds, options, onMeasuring);

    if (wanted('gateway_embedded')) {
      options.log(`gateway, embedded broker: ${what}…`);
      await writeFile(path.join(dir, 'embedded.json'), JSON.stringify({ ...base, dataDir: './embedded-data', mqtt: { port: 0, host: '127.0.0.1', ...mqttLimits } }));
      const embedded = await spawnUntil([...nodeFlags, gatewayBundle, 'gateway', '--config', path.join(dir, 'embedded.json')], /mqtt:\/\/[0-9.]+:(\d+)[\s\S]*dashboard/);
      const report = await load(`mqtt://127.0.0.1:${embedded.match[1]}`);
      results.gateway_embedded = summarise(report, report.acknowledged, report.elapsedMs, peakRssMb(embedded.child.pid!));
      await stop(embedded.child);
    }
    if (wanted('bare_aedes')) {
      options.log(`bare aedes broker: ${what}…`);
      const bare = await spawnUntil([bareBundle], /mqtt:\/\/[0-9.]+:(\d+)/);
      const report = await load(`mqtt://127.0.0.1:${bare.match[1]}`);
      results.bare_aedes = summarise(report, report.acknowledged, report.elapsedMs, peakRssMb(bare.child.pid!));
      await stop(bare.child);
    }
    if (!wanted('bare_mosquitto') && !wanted('gateway_mosquitto')) return results;
    if (!MOSQUITTO) {
      options.log('mosquitto is not installed: skipping the Mosquitto scenarios (apt-get install mosquitto)');
      return results;
    }
    mosquitto = await startMosquitto(path.join(dir, 'mosquitto'), [...creds.map((c) => ({ username: c.id, password: c.password })), GATEWAY_BROKER_USER], GATEWAY_BROKER_USER.username);
    if (wanted('bare_mosquitto')) {
      options.log(`bare Mosquitto (nobody subscribed): ${what}…`);
      const report = await load(mosquitto.url);
      results.bare_mosquitto = summarise(report, report.acknowledged, report.elapsedMs, 0);
    }
    if (wanted('gateway_mosquitto')) {
      options.log(`gateway behind Mosquitto: ${what}…`);
      await writeFile(path.join(dir, 'external.json'), JSON.stringify({ ...base, dataDir: './external-data', mqtt: { mode: 'external', external: { url: mosquitto.url, ...GATEWAY_BROKER_USER } } }));
      const external = await spawnUntil([...nodeFlags, gatewayBundle, 'gateway', '--config', path.join(dir, 'external.json')], /dashboard (http:\/\/\S+?)\/?\n/);
      const httpUrl = external.match[1]!;
      while (!((await (await fetch(`${httpUrl}/healthz`)).json()) as { brokerConnected: boolean }).brokerConnected) await sleep(50);
      // The figure: records that became durable in the ledger between the end of the
      // warm-up and the last one, over that time.
      let atMeasuring: Promise<{ records: number; atMs: number }> = Promise.resolve({ records: 0, atMs: performance.now() });
      const report = await load(mosquitto.url, () => {
        const atMs = performance.now();
        atMeasuring = ledgerRecords(httpUrl).then((records) => ({ records, atMs }));
      });
      const expected = (Math.ceil(options.messages / options.devices) + Math.ceil(options.warmup / options.devices)) * options.devices;
      while ((await ledgerRecords(httpUrl)) < expected) await sleep(20);
      const durableAtMs = performance.now();
      const from = await atMeasuring;
      results.gateway_mosquitto = summarise(report, expected - from.records, durableAtMs - from.atMs, peakRssMb(external.child.pid!));
      await stop(external.child);
    }
    return results;
  } finally {
    await mosquitto?.stop();
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
