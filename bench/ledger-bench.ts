/**
 * Ledger benchmarks:
 *   - ledger_verify: start-up verification (verifyChain) of a journal of N records, built
 *     straight into LevelDB in big batches with a valid chain, a signed checkpoint every
 *     1000 records and a trusted head file; timed bare and with the visitor start-up uses.
 *   - ledger_seal: sealBatches over N records of one payer (Merkle root, total, signature).
 * Targets on the 2-core reference machine: verify 10^6 in ≤ 5 s, seal 10^6 in ≤ 2 s.
 */
import { hash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { canonicalRecordJson } from '../protocol/canonical-usage.ts';
import { ZERO_HASH_HEX } from '../protocol/hash.ts';
import { generateSigningKey, signPayload, type SigningKey } from '../protocol/signing.ts';
import type { Checkpoint, UsageRecord } from '../protocol/usage-record.ts';
import { keys, openLedgerDb, type LedgerDb } from '../gateway/ledger/ledger-db.ts';
import { TRUSTED_HEAD_FILE, writeFileAtomically } from '../gateway/ledger/trusted-head.ts';
import { verifyChain } from '../gateway/ledger/verify-chain.ts';
import { sealBatches } from '../gateway/settlement/seal-batches.ts';

export type LedgerScenario = 'ledger_verify' | 'ledger_seal';
export const LEDGER_SCENARIOS: readonly LedgerScenario[] = ['ledger_verify', 'ledger_seal'];

export interface LedgerBenchOptions {
  records: number;
  only?: readonly LedgerScenario[];
  log: (line: string) => void;
}

const CHECKPOINT_EVERY_RECORDS = 1_000;
const WRITE_BATCH_OPS = 20_000;
const PROGRESS_EVERY_RECORDS = 100_000;
const GATEWAY_ID = 'bench-gateway';

/** A record as priceUsage and the journal make it; 50 devices, one payer. */
function benchRecord(index: number): UsageRecord {
  return {
    v: 1, index, gatewayId: GATEWAY_ID, deviceId: `cnc-${index % 50}`, seq: Math.ceil(index / 50), meter: 'cycles', quantity: '1200', unit: 'cycle',
    deviceTime: '2026-11-27T15:00:00.000Z', receivedAt: '2026-11-27T15:00:00.120Z', payer: 'acme-plant', tariff: 'cycles@1', unitPrice: '0.0003',
    currency: 'EUR', amountNano: '360000000', messageHash: hash('sha256', `message ${index}`, 'hex'),
  };
}

/** Peak heap and RSS seen while `work` runs, sampled every 20 ms (and at the end). */
async function withPeakMemory<T>(work: () => Promise<T>): Promise<{ result: T; heapMb: number; rssMb: number }> {
  let heap = 0;
  let rss = 0;
  const sample = (): void => {
    const usage = process.memoryUsage();
    heap = Math.max(heap, usage.heapUsed);
    rss = Math.max(rss, usage.rss);
  };
  const timer = setInterval(sample, 20);
  try {
    const result = await work();
    sample();
    return { result, heapMb: Math.round(heap / 1_048_576), rssMb: Math.round(rss / 1_048_576) };
  } finally {
    clearInterval(timer);
  }
}

/** Writes N journal entries exactly as the journal lays them out, with checkpoints and head. */
async function buildJournal(db: LedgerDb, dataDir: string, records: number, key: SigningKey, log: (line: string) => void): Promise<void> {
  let prevHash = ZERO_HASH_HEX;
  let ops: Array<{ type: 'put'; key: string; value: string }> = [];
  const input = Buffer.alloc(4_096);
  let checkpoint: Checkpoint | undefined;
  for (let index = 1; index <= records; index += 1) {
    const canonical = canonicalRecordJson(benchRecord(index));
    input.write(prevHash, 0, 32, 'hex');
    const bytes = input.write(canonical, 32, 'utf8');
    const chainHash = hash('sha256', input.subarray(0, 32 + bytes), 'hex');
    ops.push({ type: 'put', key: keys.record(index), value: `{"record":${canonical},"prevHash":"${prevHash}","hash":"${chainHash}"}` });
    prevHash = chainHash;
    if (index % CHECKPOINT_EVERY_RECORDS === 0 || index === records) {
      checkpoint = { v: 1, gatewayId: GATEWAY_ID, index, hash: chainHash, time: '2026-11-27T15:00:00.000Z' };
      ops.push({ type: 'put', key: keys.checkpoint(index), value: JSON.stringify({ ...checkpoint, sig: signPayload(checkpoint, key) }) });
    }
    if (ops.length >= WRITE_BATCH_OPS || index === records) {
      if (index === records) ops.push({ type: 'put', key: keys.head, value: JSON.stringify({ index, hash: chainHash }) });
      await db.batch(ops, { valueEncoding: 'utf8', sync: index === records });
      ops = [];
    }
    if (index % PROGRESS_EVERY_RECORDS === 0) log(`  built ${index} of ${records} records`);
  }
  if (checkpoint) await writeFileAtomically(path.join(dataDir, TRUSTED_HEAD_FILE), JSON.stringify({ ...checkpoint, sig: signPayload(checkpoint, key) }));
}

async function benchVerify(records: number, key: SigningKey, log: (line: string) => void): Promise<Record<string, number>> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'meterbridge-ledger-bench-'));
  try {
    let db = await openLedgerDb(path.join(dataDir, 'ledger'));
    const builtStartMs = performance.now();
    log(`ledger_verify: building a journal of ${records} records (checkpoint every ${CHECKPOINT_EVERY_RECORDS})`);
    await buildJournal(db, dataDir, records, key, log);
    // A ledger at rest has been compacted; without this LevelDB compacts the bulk load
    // in the background during the timed pass, on the same two cores.
    await (db as unknown as { compactRange(start: string, end: string): Promise<void> }).compactRange('r!', 'r!~'); // classic-level's, not in abstract-level's type
    await db.close();
    log(`  built and compacted in ${Math.round(performance.now() - builtStartMs)} ms; verifying (reopened, as at start-up)`);
    db = await openLedgerDb(path.join(dataDir, 'ledger'));
    try {
      const trustedHeadFile = path.join(dataDir, TRUSTED_HEAD_FILE);
      const bare = await withPeakMemory(() => verifyChain(db, key, { trustedHeadFile }));
      if (!bare.result.ok) throw new Error(`Cannot benchmark verification: the built chain does not verify: ${bare.result.problems.join('; ')}`);
      log(`  verifyChain: ${bare.result.durationMs} ms (${bare.result.checkpoints} checkpoints), peak heap ${bare.heapMb} MB, RSS ${bare.rssMb} MB`);
      // What start-up does: the same pass feeding the sequence-gap and highest-seq views.
      const highest = new Map<string, number>();
      const visited = await withPeakMemory(() => verifyChain(db, key, { trustedHeadFile, onRecord: (record) => highest.set(record.deviceId, Math.max(highest.get(record.deviceId) ?? 0, record.seq)) }));
      log(`  verifyChain with the start-up visitor: ${visited.result.durationMs} ms`);
      const ms = bare.result.durationMs;
      return {
        ledger_verify_records: records, ledger_verify_ms: ms, ledger_verify_1e6_ms: Math.round((ms * 1_000_000) / records),
        ledger_verify_records_per_s: Math.round((records * 1000) / Math.max(ms, 1)), ledger_verify_with_visitor_ms: visited.result.durationMs,
        ledger_verify_peak_heap_mb: Math.max(bare.heapMb, visited.heapMb), ledger_verify_peak_rss_mb: Math.max(bare.rssMb, visited.rssMb),
      };
    } finally {
      await db.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

function benchSeal(records: number, key: SigningKey, log: (line: string) => void): Promise<Record<string, number>> {
  log(`ledger_seal: making ${records} records of one payer`);
  const list: UsageRecord[] = [];
  for (let index = 1; index <= records; index += 1) list.push(benchRecord(index));
  log('  sealing');
  return withPeakMemory(async () => {
    const startedMs = performance.now();
    const sealed = sealBatches({ gatewayId: GATEWAY_ID, records: list, carries: new Map(), nextBatchNo: 1, sealedAt: '2026-11-27T16:00:00.000Z', head: { index: records, hash: ZERO_HASH_HEX }, key });
    return { ms: Math.round(performance.now() - startedMs), root: sealed.batches[0]!.header.merkleRoot };
  }).then(({ result, heapMb, rssMb }) => {
    log(`  sealBatches: ${result.ms} ms, root ${result.root.slice(0, 16)}…, peak heap ${heapMb} MB, RSS ${rssMb} MB`);
    return {
      ledger_seal_records: records, ledger_seal_ms: result.ms, ledger_seal_1e6_ms: Math.round((result.ms * 1_000_000) / records),
      ledger_seal_peak_heap_mb: heapMb, ledger_seal_peak_rss_mb: rssMb,
    };
  });
}

/** Runs the chosen ledger scenarios; returns figures for bench-results.json. */
export async function runLedgerBench(options: LedgerBenchOptions): Promise<Record<string, number>> {
  const wanted = (scenario: LedgerScenario): boolean => !options.only || options.only.includes(scenario);
  const key = generateSigningKey();
  const figures: Record<string, number> = {};
  if (wanted('ledger_verify')) Object.assign(figures, await benchVerify(options.records, key, options.log));
  if (wanted('ledger_seal')) Object.assign(figures, await benchSeal(options.records, key, options.log));
  return figures;
}
