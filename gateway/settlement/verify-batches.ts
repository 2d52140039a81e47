/**
 * Start-up check of the stored batch headers (keys.batch): each header's signature, and
 * its record count, total and Merkle root recomputed from the journal records it covers
 * (§7: that payer's records in that currency between firstIndex and lastIndex), and its
 * chainHash against the chain. It rides along verifyChain's one pass over the journal:
 * verifyChain hands every record with its canonical text to `see`.
 */
import { toHex } from '../../protocol/hash.ts';
import type { BatchHeader, SignedBatchHeader } from '../../protocol/usage-record.ts';
import type { RecordSummary } from '../ledger/record-summary.ts';
import { keys, type LedgerDb } from '../ledger/ledger-db.ts';
import type { GatewaySignatureCheck } from '../ledger/verify-chain.ts';
import { MerkleRootBuilder } from './merkle-root-builder.ts';

/** What is kept of a stored batch while the journal streams past: no transitions, no signature. */
interface BatchUnderAudit {
  batchNo: number;
  header: Omit<BatchHeader, 'v' | 'sealedAt' | 'carriedInNano' | 'amountMinor' | 'carriedOutNano' | 'batchId' | 'gatewayId'>;
  count: number;
  firstSeen: number;
  lastSeen: number;
  totalNano: bigint;
  tree: MerkleRootBuilder;
}

/** A payer's batches in one currency, in journal order (they never overlap: §7). */
interface GroupQueue {
  batches: BatchUnderAudit[];
  next: number;
}

const DECIMAL_INTEGER = /^[0-9]+$/;

export class BatchAudit {
  readonly #byPayer = new Map<string, Map<string, GroupQueue>>();
  readonly #all: BatchUnderAudit[] = [];
  readonly #problems: string[] = [];

  /** Loads every stored batch header and checks its signature with the key it names (one Ed25519 verify a batch). */
  static async load(db: LedgerDb, verifies: GatewaySignatureCheck): Promise<BatchAudit> {
    const audit = new BatchAudit();
    for await (const value of db.values(keys.batchRange)) {
      const stored = value as { batchNo: number; header: SignedBatchHeader };
      audit.#admit(stored.batchNo, stored.header, verifies);
    }
    for (const payer of audit.#byPayer.values()) for (const group of payer.values()) group.batches.sort((a, b) => a.header.firstIndex - b.header.firstIndex);
    return audit;
  }

  get batches(): number {
    return this.#all.length;
  }

  /** Indices whose chain hash `finish` needs (each batch's chainIndex). */
  chainIndices(): number[] {
    return this.#all.map((b) => b.header.chainIndex);
  }

  #admit(batchNo: number, signed: SignedBatchHeader, verifies: GatewaySignatureCheck): void {
    const { sig, ...header } = signed;
    const failure = verifies(header, sig);
    if (failure) this.#problems.push(`batch ${batchNo}: header ${failure.text}${failure.reason === 'invalid' ? ' (header altered)' : ''}`);
    const { payer, currency, recordCount, firstIndex, lastIndex, merkleRoot, totalNano, chainIndex, chainHash } = header;
    const batch: BatchUnderAudit = {
      batchNo, header: { payer, currency, recordCount, firstIndex, lastIndex, merkleRoot, totalNano, chainIndex, chainHash },
      count: 0, firstSeen: 0, lastSeen: 0, totalNano: 0n, tree: new MerkleRootBuilder(),
    };
    this.#all.push(batch);
    let currencies = this.#byPayer.get(payer);
    if (!currencies) this.#byPayer.set(payer, (currencies = new Map()));
    let group = currencies.get(currency);
    if (!group) currencies.set(currency, (group = { batches: [], next: 0 }));
    group.batches.push(batch);
  }

  /** One journal record, in journal order, with its canonical JSON text (§5). */
  see(record: RecordSummary, canonicalText: string): void {
    const group = this.#byPayer.get(record.payer)?.get(record.currency);
    if (!group) return;
    let batch = group.batches[group.next];
    while (batch && batch.header.lastIndex < record.index) batch = group.batches[++group.next];
    if (!batch || batch.header.firstIndex > record.index) return;
    if (batch.count === 0) batch.firstSeen = record.index;
    batch.count += 1;
    batch.lastSeen = record.index;
    // An altered amount that is not a decimal integer must not stop the audit; it shows as a wrong total.
    if (DECIMAL_INTEGER.test(record.amountNano)) batch.totalNano += BigInt(record.amountNano);
    batch.tree.addCanonical(canonicalText);
  }

  /** Every problem found, each naming the batch; `chainHashAt` gives the stored hash of a journal index. */
  finish(chainHashAt: (index: number) => string | undefined): string[] {
    const problems = [...this.#problems];
    for (const batch of this.#all) {
      const { header, batchNo } = batch;
      const range = `${header.payer} ${header.currency} in ${header.firstIndex}..${header.lastIndex}`;
      if (batch.count !== header.recordCount || (batch.count > 0 && (batch.firstSeen !== header.firstIndex || batch.lastSeen !== header.lastIndex))) {
        problems.push(`batch ${batchNo}: the journal holds ${batch.count} records of ${range}, the header says ${header.recordCount}`);
      }
      const root = toHex(batch.tree.root());
      if (root !== header.merkleRoot) problems.push(`batch ${batchNo}: Merkle root does not match its records (${range}): the header says ${header.merkleRoot}, the records give ${root}`);
      if (batch.totalNano.toString() !== header.totalNano) problems.push(`batch ${batchNo}: its records add up to ${batch.totalNano} nano, the header says ${header.totalNano}`);
      const chainHash = chainHashAt(header.chainIndex);
      if (chainHash === undefined) problems.push(`batch ${batchNo}: record ${header.chainIndex}, the head it was sealed at, is missing`);
      else if (chainHash !== header.chainHash) problems.push(`batch ${batchNo}: chainHash differs from the hash of record ${header.chainIndex} (history rewritten)`);
    }
    return problems;
  }
}
