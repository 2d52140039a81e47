/**
 * Ledger benchmarks:
 *   - ledger_verify: start-up verification (verifyChain) of a journal of N records, built
 *     straight into LevelDB in big batches with a valid chain, a signed checkpoint every
 *     1000 records and a trusted head file; timed bare and with the visitor start-up uses.
 *   - ledger_seal: sealing N records of one payer as the batch book does: streamed from the
 *     journal in LevelDB as stored text, folded into one batch (Merkle root, total), signed.
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
import { Journal } from '../gateway/ledger/journal.ts';
import { benchBundleVerify } from './bundle-bench.ts';
import { TRUSTED_HEAD_FILE } from '../gateway/ledger/trusted-head.ts';
import { writeFileAtomically } from '../gateway/atomic-file.ts';
import { verifyChain } from '../gateway/ledger/verify-chain.ts';
import { BatchSealer, sealItemOfCanonical, type SealedBatch } from '../gateway/settlement/seal-batches.ts';

export type LedgerScenario = 'ledger_verify' | 'ledger_seal' | 'bundle_verify';
export const LEDGER_SCENARIOS: readonly LedgerScenario[] = ['ledger_verify', 'ledger_seal', 'bundle_verify'];

export interface LedgerBenchOptions {
  records: number;
  /** Records in the proof bundle that bundle_verify checks. */
  bundleRecords: number;
  only?: readonly LedgerScenario[];
  log: (line: string) => void;
}

const CHECKPOINT_EVERY_RECORDS = 1_000;
const WRITE_BATCH_OPS = 20_000;
const PROGRESS_EVERY_RECORDS = 100_000;
const GATEWAY_ID = 'bench-gateway';

const TARIFF_HASH = hash('sha256', 'cycles@1', 'hex');

/** A record as priceUsage and the journal make it; 50 devices, one payer. */
function benchRecord(index: number): UsageRecord {
  return {
    v: 1, index, gatewayId: GATEWAY_ID, deviceId: `cnc-${index % 50}`, seq: Math.ceil(index / 50), meter: 'cycles', quantity: '1200', unit: 'cycle',
    deviceTime: '2026-11-27T15:00:00.000Z', receivedAt: '2026-11-27T15:00:00.120Z', payer: 'acme-plant', tariff: 'cycles@1',
    tariffHash: TARIFF_HASH, period: '2026-11', periodQtyBefore: String((index - 1) * 1200), currency: 'EUR', amountNano: '360000000', messageHash: hash('sha256', `message ${index}`, 'hex'),
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
export async function buildJournal(db: LedgerDb, dataDir: string, records: number, key: SigningKey, log: (line: string) => void): Promise<void> {
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

/** Builds a journal of N records in a temp dir (bulk-loaded, then compacted as a ledger at rest is), runs `work` on it reopened. */
async function withJournal<T>(records: number, key: SigningKey, log: (line: string) => void, work: (db: LedgerDb, dataDir: string) => Promise<T>): Promise<T> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'meterbridge-ledger-bench-'));
  try {
    let db = await openLedgerDb(path.join(dataDir, 'ledger'));
    const builtStartMs = performance.now();
    log(`building a journal of ${records} records (checkpoint every ${CHECKPOINT_EVERY_RECORDS})`);
    await buildJournal(db, dataDir, records, key, log);
    // A ledger at rest has been compacted; without this LevelDB compacts the bulk load
    // in the background during the timed pass, on the same two cores.
    await (db as unknown as { compactRange(start: string, end: string): Promise<void> }).compactRange('r!', 'r!~'); // classic-level's, not in abstract-level's type
    await db.close();
    log(`  built and compacted in ${Math.round(performance.now() - builtStartMs)} ms`);
    db = await openLedgerDb(path.join(dataDir, 'ledger'));
    try {
      return await work(db, dataDir);
    } finally {
      await db.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function benchVerify(db: LedgerDb, dataDir: string, records: number, key: SigningKey, log: (line: string) => void): Promise<Record<string, number>> {
  log('ledger_verify: verifying the journal (reopened, as at start-up)');
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
}

/** Folds canonical record texts into one batch with its Merkle root and signs it, as the batch book does. */
function sealTexts(texts: Iterable<string>, head: { index: number; hash: string }, key: SigningKey): SealedBatch['header'] {
  const sealer = new BatchSealer();
  for (const canonical of texts) sealer.add(sealItemOfCanonical(canonical));
  return sealer.seal({ gatewayId: GATEWAY_ID, carries: new Map(), nextBatchNo: 1, sealedAt: '2026-11-27T16:00:00.000Z', head, key }).batches[0]!.header;
}

/**
 * Sealing N records of one payer, timed two ways: the fold itself (canonical texts in
 * memory → total, Merkle root, signed header), and what the batch book does end to end,
 * streaming the records from LevelDB (where reading 10^6 stored entries alone takes
 * about as long as verifying them).
 */
async function benchSeal(db: LedgerDb, records: number, key: SigningKey, log: (line: string) => void): Promise<Record<string, number>> {
  log(`ledger_seal: sealing ${records} records of one payer`);
  const journal = await Journal.open(db, { gatewayId: GATEWAY_ID, signingKey: key, clock: () => new Date(), queueMax: 1, batchMax: 1, checkpointEveryRecords: 1_000_000, checkpointIntervalMs: 3_600_000 });
  const streamed = await withPeakMemory(async () => {
    const startedMs = performance.now();
    const sealer = new BatchSealer();
    for await (const chunk of journal.canonicalRecords(1, records)) for (const canonical of chunk) sealer.add(sealItemOfCanonical(canonical));
    const header = sealer.seal({ gatewayId: GATEWAY_ID, carries: new Map(), nextBatchNo: 1, sealedAt: '2026-11-27T16:00:00.000Z', head: journal.head, key }).batches[0]!.header;
    return { ms: Math.round(performance.now() - startedMs), header };
  });
  log(`  streamed from LevelDB (the gateway's path): ${streamed.result.ms} ms, peak heap ${streamed.heapMb} MB`);
  const texts: string[] = [];
  for await (const chunk of journal.canonicalRecords(1, records)) texts.push(...chunk);
  const folded = await withPeakMemory(async () => {
    const startedMs = performance.now();
    const header = sealTexts(texts, journal.head, key);
    return { ms: Math.round(performance.now() - startedMs), header };
  });
  if (folded.result.header.merkleRoot !== streamed.result.header.merkleRoot || folded.result.header.recordCount !== records) throw new Error('Cannot benchmark sealing: the two ways disagree');
  log(`  records in memory: ${folded.result.ms} ms, root ${folded.result.header.merkleRoot.slice(0, 16)}…, total ${folded.result.header.totalNano} nano`);
  return {
    ledger_seal_records: records, ledger_seal_ms: folded.result.ms, ledger_seal_1e6_ms: Math.round((folded.result.ms * 1_000_000) / records),
    ledger_seal_from_disk_ms: streamed.result.ms, ledger_seal_from_disk_1e6_ms: Math.round((streamed.result.ms * 1_000_000) / records), ledger_seal_from_disk_peak_heap_mb: streamed.heapMb,
  };
}

/** Runs the chosen ledger scenarios; returns figures for bench-results.json. */
export async function runLedgerBench(options: LedgerBenchOptions): Promise<Record<string, number>> {
  const wanted = (scenario: LedgerScenario): boolean => !options.only || options.only.includes(scenario);
  const key = generateSigningKey();
  const figures: Record<string, number> = {};
  if (wanted('bundle_verify')) Object.assign(figures, await benchBundleVerify(options.bundleRecords, options.log));
  if (!wanted('ledger_verify') && !wanted('ledger_seal')) return figures;
  await withJournal(options.records, key, options.log, async (db, dataDir) => {
    if (wanted('ledger_verify')) Object.assign(figures, await benchVerify(db, dataDir, options.records, key, options.log));
    if (wanted('ledger_seal')) Object.assign(figures, await benchSeal(db, options.records, key, options.log));
  });
  return figures;
}
