/**
 * Start-up check of the journal: every index from 1 to the head present once, each
 * entry's hash recomputed from its record and predecessor, and every signed
 * checkpoint matching the chain. Settlement refuses to run on a broken chain.
 */
import { ZERO_HASH_HEX } from '../../protocol/hash.ts';
import { verifyPayload, type SigningKey } from '../../protocol/signing.ts';
import { chainHash, type SignedCheckpoint, type UsageRecord } from '../../protocol/usage-record.ts';
import { keys, type LedgerDb } from './ledger-db.ts';
import type { ChainHead, JournalEntry } from './journal.ts';

export interface ChainReport {
  ok: boolean;
  records: number;
  checkpoints: number;
  /** Each problem names the index and what is wrong with it. */
  problems: string[];
  durationMs: number;
}

const PROBLEMS_MAX = 20;

/** `onRecord` sees every record once, in order: start-up rebuilds its in-memory views from the same pass. */
export async function verifyChain(db: LedgerDb, key: Pick<SigningKey, 'publicKey'>, onRecord?: (record: UsageRecord) => void): Promise<ChainReport> {
  const startedMs = performance.now();
  const problems: string[] = [];
  const note = (problem: string): void => {
    if (problems.length < PROBLEMS_MAX) problems.push(problem);
  };
  const head = ((await db.get(keys.head)) as ChainHead | undefined) ?? { index: 0, hash: ZERO_HASH_HEX };
  const hashes = new Map<number, string>();
  const checkpoints: SignedCheckpoint[] = [];
  for await (const value of db.values(keys.checkpointRange)) checkpoints.push(value as SignedCheckpoint);
  const wanted = new Set(checkpoints.map((c) => c.index));

  let expectedIndex = 1;
  let prevHash = ZERO_HASH_HEX;
  for await (const value of db.values(keys.recordRange)) {
    const entry = value as JournalEntry;
    const index = entry.record.index;
    if (index !== expectedIndex) {
      note(index > expectedIndex ? `records ${expectedIndex}..${index - 1} are missing` : `record ${index} is out of order after ${expectedIndex - 1}`);
    }
    if (entry.prevHash !== prevHash) note(`record ${index}: prevHash does not match the hash of record ${index - 1}`);
    const recomputed = chainHash(entry.prevHash, entry.record);
    if (recomputed !== entry.hash) note(`record ${index}: content does not match its hash (altered)`);
    if (wanted.has(index)) hashes.set(index, entry.hash);
    onRecord?.(entry.record);
    prevHash = entry.hash;
    expectedIndex = index + 1;
  }
  const records = expectedIndex - 1;
  if (records < head.index) note(`records ${records + 1}..${head.index} are missing (the head says ${head.index}): the log tail was lost`);
  else if (records > head.index) note(`the head says ${head.index} but records run to ${records}`);
  else if (head.index > 0 && prevHash !== head.hash) note(`head hash does not match record ${head.index}`);

  for (const checkpoint of checkpoints) {
    const { sig, ...payload } = checkpoint;
    if (!verifyPayload(payload, sig, key.publicKey)) note(`checkpoint ${checkpoint.index}: signature does not verify with the gateway key`);
    const hash = hashes.get(checkpoint.index);
    if (hash === undefined) note(`checkpoint ${checkpoint.index}: record ${checkpoint.index} is missing`);
    else if (hash !== checkpoint.hash) note(`checkpoint ${checkpoint.index}: signed hash differs from the chain (history rewritten)`);
  }
  return { ok: problems.length === 0, records, checkpoints: checkpoints.length, problems, durationMs: Math.round(performance.now() - startedMs) };
}
