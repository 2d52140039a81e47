/** `meterbridge bench` (what `npm run bench` runs): figures, not timed tests. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runIngestBench, writeBenchResults, type LoadResult, type Scenario } from '../bench/ingest-bench.ts';
import { LEDGER_SCENARIOS, runLedgerBench, type LedgerScenario } from '../bench/ledger-bench.ts';
import { runCloudBench } from '../bench/cloud-bench.ts';
import { measureDiskFloor } from '../bench/disk-floor.ts';

const CLOUD_SCENARIO = 'cloud_ingest';

const HELP = `Usage: meterbridge bench [--messages N] [--warmup W] [--devices M] [--inflight K] [--rate R]
                        [--ledger-records L] [--bundle-records B] [--cloud-gateways G]
                        [--cloud-batches B] [--cloud-records R] [--only LIST] [--out FILE]

Publishes N usage messages from M simulated devices (QoS 1, K unacknowledged per
device) through: the gateway's embedded broker (ack = durable in the ledger), the
gateway behind a real Mosquitto (figure = records durable in the ledger per second),
a bare aedes broker and a bare Mosquitto. Prints records/s, publish→ack p50/p99 and
peak RSS of each, then runs the same at an offered rate for the latency figure.
Then the ledger: start-up verification of a journal of L records (ledger_verify) and
sealing L records of one payer into a batch with its Merkle root (ledger_seal: the fold
with the records in memory, and the gateway's path streaming them from LevelDB).
Then cloud-sync (cloud_ingest): G gateways each upload B signed batches of R records at
once over HTTP, verified and stored, on PGlite and on a real PostgreSQL (when installed).
Writes the figures to bench-results.json (merged with what other benches wrote).

Options:
  --messages N   usage messages measured per scenario (default 100000)
  --warmup W     messages sent first and not measured, so both sides' JIT is warm
                 (default 20000)
  --devices M    simulated devices (default 50)
  --inflight K   unacknowledged messages per device (default 10)
  --rate R       offered records/s for the latency run (default 10000; 0 skips it)
  --ledger-records L  records in the ledger scenarios (default 1000000)
  --bundle-records B  records in the proof bundle bundle_verify checks (default 100000)
  --cloud-gateways G  gateways in cloud_ingest (default 20)
  --cloud-batches B   batches each gateway uploads (default 5)
  --cloud-records R   records per batch (default 200)
  --only LIST    run only these scenarios (comma-separated): gateway_embedded,
                 bare_aedes, bare_mosquitto, gateway_mosquitto, ledger_verify, ledger_seal,
                 bundle_verify, cloud_ingest
  --out FILE     results file (default ./bench-results.json)
  -h, --help     show this help

Environment:
  MB_BENCH_NODE_FLAGS  node flags for the gateway child; default the production settings
                       '--max-old-space-size=128 --max-semi-space-size=4' ('' for Node's own)
  MB_BENCH_PROFILE     a folder: write a CPU profile of the gateway child there
`;

function positiveInt(text: string | undefined, fallback: number, name: string, allowZero = false): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) throw new RangeError(`--${name}: ${text} is not a ${allowZero ? 'non-negative' : 'positive'} integer`);
  return value;
}

const LABELS: Record<Scenario, string> = {
  gateway_embedded: 'gateway, embedded broker',
  gateway_mosquitto: 'gateway behind Mosquitto',
  bare_aedes: 'bare aedes',
  bare_mosquitto: 'bare Mosquitto',
};

function table(log: (line: string) => void, title: string, results: Partial<Record<Scenario, LoadResult>>): void {
  log('');
  log(`${title.padEnd(28)} records/s   p50 ms   p99 ms   peak RSS MB`);
  for (const [scenario, r] of Object.entries(results) as Array<[Scenario, LoadResult]>) {
    log(`${LABELS[scenario].padEnd(28)} ${String(r.recordsPerS).padStart(9)} ${String(r.p50Ms).padStart(8)} ${String(r.p99Ms).padStart(8)} ${String(r.rssMb || '-').padStart(13)}`);
  }
}

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { messages: { type: 'string' }, warmup: { type: 'string' }, devices: { type: 'string' }, inflight: { type: 'string' }, rate: { type: 'string' }, 'ledger-records': { type: 'string' }, 'bundle-records': { type: 'string' }, 'cloud-gateways': { type: 'string' }, 'cloud-batches': { type: 'string' }, 'cloud-records': { type: 'string' }, only: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  const options = { messages: positiveInt(values.messages, 100_000, 'messages'), warmup: positiveInt(values.warmup, 20_000, 'warmup', true), devices: positiveInt(values.devices, 50, 'devices'), inflight: positiveInt(values.inflight, 10, 'inflight'), log };
  const ledgerRecords = positiveInt(values['ledger-records'], 1_000_000, 'ledger-records');
  let ingestOnly: Scenario[] | undefined;
  let ledgerOnly: LedgerScenario[] | undefined;
  let cloud = true;
  if (values.only !== undefined) {
    const only = values.only.split(',').map((s) => s.trim());
    const known = [...Object.keys(LABELS), ...LEDGER_SCENARIOS, CLOUD_SCENARIO];
    const unknown = only.filter((s) => !known.includes(s));
    if (unknown.length > 0) throw new RangeError(`--only: unknown scenario ${unknown.join(', ')}; choose from ${known.join(', ')}`);
    ingestOnly = only.filter((s): s is Scenario => s in LABELS);
    ledgerOnly = only.filter((s): s is LedgerScenario => (LEDGER_SCENARIOS as readonly string[]).includes(s));
    cloud = only.includes(CLOUD_SCENARIO);
  }
  const figures: Record<string, unknown> = {};
  if (ingestOnly === undefined || ingestOnly.length > 0) {
    Object.assign(figures, await ingestFigures({ ...options, ...(ingestOnly ? { only: ingestOnly } : {}) }, positiveInt(values.rate, 10_000, 'rate', true)));
  }
  if (ledgerOnly === undefined || ledgerOnly.length > 0) {
    const bundleRecords = positiveInt(values['bundle-records'], 100_000, 'bundle-records');
    const ledger = await runLedgerBench({ records: ledgerRecords, bundleRecords, ...(ledgerOnly ? { only: ledgerOnly } : {}), log });
    log('');
    log(`ledger (${ledgerRecords} records)          ms    per 10^6 ms   target per 10^6`);
    if (ledger.ledger_verify_ms !== undefined) log(`start-up verification ${String(ledger.ledger_verify_ms).padStart(13)} ${String(ledger.ledger_verify_1e6_ms).padStart(13)}   ≤ 5000`);
    if (ledger.ledger_seal_ms !== undefined) log(`seal one batch        ${String(ledger.ledger_seal_ms).padStart(13)} ${String(ledger.ledger_seal_1e6_ms).padStart(13)}   ≤ 2000`);
    if (ledger.bundle_verify_ms !== undefined) log(`verify a proof bundle of ${bundleRecords} records: ${ledger.bundle_verify_ms} ms (${ledger.bundle_verify_records_per_s} records/s, ${ledger.bundle_verify_json_mb} MB of JSON, ${ledger.bundle_verify_device_signed} device signatures)`);
    if (ledger.ledger_seal_from_disk_ms !== undefined) log(`seal, read from LevelDB ${String(ledger.ledger_seal_from_disk_ms).padStart(11)} ${String(ledger.ledger_seal_from_disk_1e6_ms).padStart(13)}   (no target: the read alone is ~2.5 s)`);
    Object.assign(figures, ledger);
  }
  if (cloud) {
    const cloudOptions = { gateways: positiveInt(values['cloud-gateways'], 20, 'cloud-gateways'), batchesPerGateway: positiveInt(values['cloud-batches'], 5, 'cloud-batches'), recordsPerBatch: positiveInt(values['cloud-records'], 200, 'cloud-records'), log };
    Object.assign(figures, await runCloudBench(cloudOptions));
  }
  const out = path.resolve(values.out ?? 'bench-results.json');
  writeBenchResults(out, figures);
  log(`figures written to ${out}`);
  return 0;
}

type IngestOptions = Parameters<typeof runIngestBench>[0];

async function ingestFigures(options: IngestOptions, ratePerS: number): Promise<Record<string, unknown>> {
  const { log } = options;
  const max = await runIngestBench(options);
  table(log, 'as fast as acks come back', max);
  const figures: Record<string, unknown> = {
    records_per_s: max.gateway_embedded?.recordsPerS, bare_broker_per_s: max.bare_aedes?.recordsPerS,
    gateway_to_bare_ratio: max.gateway_embedded && max.bare_aedes ? Math.round((max.gateway_embedded.recordsPerS / max.bare_aedes.recordsPerS) * 1000) / 1000 : undefined,
    p50_ms: max.gateway_embedded?.p50Ms, p99_ms: max.gateway_embedded?.p99Ms, rss_mb: max.gateway_embedded?.rssMb,
    mosquitto_mode_records_per_s: max.gateway_mosquitto?.recordsPerS, mosquitto_mode_rss_mb: max.gateway_mosquitto?.rssMb,
    bare_mosquitto_per_s: max.bare_mosquitto?.recordsPerS, bare_rss_mb: max.bare_aedes?.rssMb, bare_p50_ms: max.bare_aedes?.p50Ms, bare_p99_ms: max.bare_aedes?.p99Ms,
    bench_messages: options.messages, bench_warmup: options.warmup, bench_devices: options.devices, bench_inflight: options.inflight,
  };
  log(`gateway / bare aedes throughput: ${String(figures.gateway_to_bare_ratio)} (target ≥ 0.5)`);
  const disk = await measureDiskFloor();
  log(`this disk, fsynced write of 100 records, nothing else running: p50 ${disk.p50Ms} ms, p99 ${disk.p99Ms} ms, max ${disk.maxMs} ms (${disk.writes} writes)`);
  log('  (after group commit a record can wait for the write in flight and then its own)');
  Object.assign(figures, { disk_write_p50_ms: disk.p50Ms, disk_write_p99_ms: disk.p99Ms, disk_write_max_ms: disk.maxMs });
  if (ratePerS > 0) {
    const offered = await runIngestBench({ ...options, ratePerS });
    table(log, `offered ${ratePerS} records/s`, offered);
    log('(targets at an offered 10000/s: gateway p99 ≤ 15 ms, peak RSS ≤ 150 MB)');
    Object.assign(figures, {
      offered_rate_per_s: ratePerS,
      offered_p50_ms: offered.gateway_embedded?.p50Ms, offered_p99_ms: offered.gateway_embedded?.p99Ms, offered_rss_mb: offered.gateway_embedded?.rssMb,
      offered_achieved_per_s: offered.gateway_embedded?.recordsPerS, offered_bare_p99_ms: offered.bare_aedes?.p99Ms,
      offered_mosquitto_mode_per_s: offered.gateway_mosquitto?.recordsPerS,
    });
  }
  return figures;
}
