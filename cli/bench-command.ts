/** `meterbridge bench` (what `npm run bench` runs): figures, not timed tests. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runIngestBench, writeBenchResults } from '../bench/ingest-bench.ts';

const HELP = `Usage: meterbridge bench [--messages N] [--devices M] [--inflight K] [--out FILE]

Publishes N usage messages from M simulated devices (QoS 1, K in flight per device)
through the real broker into a gateway child process, then the same load against a
bare aedes broker, and prints sustained records/s, publish→ack p50/p99 and peak RSS.
Writes the figures to bench-results.json (merged with what other benches wrote).

Options:
  --messages N   total usage messages (default 20000)
  --devices M    simulated devices (default 50)
  --inflight K   unacknowledged messages per device (default 10)
  --out FILE     results file (default ./bench-results.json)
  -h, --help     show this help
`;

function positiveInt(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`--${name}: ${text} is not a positive integer`);
  return value;
}

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { messages: { type: 'string' }, devices: { type: 'string' }, inflight: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  const options = { messages: positiveInt(values.messages, 20_000, 'messages'), devices: positiveInt(values.devices, 50, 'devices'), inflight: positiveInt(values.inflight, 10, 'inflight'), log };
  const { gateway, bare } = await runIngestBench(options);
  const ratio = Math.round((gateway.recordsPerS / bare.recordsPerS) * 1000) / 1000;
  log('');
  log('ingest                     records/s   p50 ms   p99 ms   peak RSS MB');
  log(`gateway (auth+ledger)      ${String(gateway.recordsPerS).padStart(9)} ${String(gateway.p50Ms).padStart(8)} ${String(gateway.p99Ms).padStart(8)} ${String(gateway.rssMb).padStart(13)}`);
  log(`bare aedes                 ${String(bare.recordsPerS).padStart(9)} ${String(bare.p50Ms).padStart(8)} ${String(bare.p99Ms).padStart(8)} ${String(bare.rssMb).padStart(13)}`);
  log(`gateway / bare throughput: ${ratio}`);
  const out = path.resolve(values.out ?? 'bench-results.json');
  writeBenchResults(out, {
    records_per_s: gateway.recordsPerS, bare_broker_per_s: bare.recordsPerS, gateway_to_bare_ratio: ratio,
    p50_ms: gateway.p50Ms, p99_ms: gateway.p99Ms, rss_mb: gateway.rssMb,
    bare_p50_ms: bare.p50Ms, bare_p99_ms: bare.p99Ms, bare_rss_mb: bare.rssMb,
    bench_messages: options.messages, bench_devices: options.devices, bench_inflight: options.inflight,
  });
  log(`figures written to ${out}`);
  return 0;
}
