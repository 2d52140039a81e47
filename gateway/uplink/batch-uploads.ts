/**
 * What the outbox carries for the settlement side: each sealed batch as `batch` uploads
 * (its signed header and its records' canonical texts, in parts), and each settlement
 * state change as a `settlement` upload (protocol/upload.ts).
 *
 * Batches go into the outbox in batch-number order, each exactly once, whatever path sealed
 * them (the schedule, the operator, a restart after a crash between seal and queue):
 * `m!uplinkBatches` says which batch was queued last, and which parts of a batch too big
 * for one write are queued already. BatchUplink.catchUp() queues whatever was sealed since.
 */
import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import { toHex } from '../../protocol/hash.ts';
import { UPLOAD_BYTES_MAX, UPLOAD_RECORDS_MAX, type BatchUpload, type SettlementUpload, type UploadBody } from '../../protocol/upload.ts';
import type { SignedBatchHeader } from '../../protocol/usage-record.ts';
import type { Journal } from '../ledger/journal.ts';
import { keys, type LedgerDb } from '../ledger/ledger-db.ts';
import type { BatchBook, StoredBatch } from '../settlement/batch-book.ts';
import { MerkleRootBuilder } from '../settlement/merkle-root-builder.ts';
import { sealItemOfCanonical } from '../settlement/seal-batches.ts';
import type { Outbox } from './outbox.ts';

/** Record text in one part, as JSON strings: the envelope, header and signature fit in what is left of UPLOAD_BYTES_MAX. */
export const PART_RECORD_BYTES_MAX = UPLOAD_BYTES_MAX - 64 * 1024;

/**
 * Whether a journal record belongs to a batch, given its journal index: the batch holds
 * every record of its payer in its currency from firstIndex to lastIndex, and its Merkle
 * root covers exactly those, in journal order (BatchBook.records, BatchSealer's groups).
 */
export function isRecordOfBatch(header: Pick<SignedBatchHeader, 'payer' | 'currency'>, item: { payer: string; currency: string }): boolean {
  return item.payer === header.payer && item.currency === header.currency;
}

/** Cuts a batch's records into parts of at most UPLOAD_RECORDS_MAX records and PART_RECORD_BYTES_MAX bytes of record text. */
export class PartPlanner {
  /** Records in each part so far; the last one is still filling. */
  readonly counts: number[] = [];
  #bytes = 0;

  add(canonical: string): void {
    // As it will sit in the envelope: a JSON string (quotes escaped) and a comma.
    const bytes = Buffer.byteLength(JSON.stringify(canonical)) + 1;
    if (bytes > PART_RECORD_BYTES_MAX) throw new RangeError(`Cannot upload a record of ${bytes} bytes: a part holds at most ${PART_RECORD_BYTES_MAX}`);
    const last = this.counts.length - 1;
    if (last < 0 || this.counts[last] === UPLOAD_RECORDS_MAX || this.#bytes + bytes > PART_RECORD_BYTES_MAX) {
      this.counts.push(1);
      this.#bytes = bytes;
      return;
    }
    this.counts[last]! += 1;
    this.#bytes += bytes;
  }
}

/** A sealed batch as `batch` upload bodies, part k of n, each part's records in journal order. */
export function batchUploads(header: SignedBatchHeader, records: string[]): UploadBody[] {
  const planner = new PartPlanner();
  for (const record of records) planner.add(record);
  const counts = planner.counts.length === 0 ? [0] : planner.counts;
  const bodies: UploadBody[] = [];
  let firstRecord = 0;
  counts.forEach((count, i) => {
    bodies.push({ kind: 'batch', batch: { header, part: i + 1, parts: counts.length, firstRecord, records: records.slice(firstRecord, firstRecord + count) } });
    firstRecord += count;
  });
  return bodies;
}

/** The settlement upload for a batch in its (new) state. */
export function settlementUploadOf(batch: { header: SignedBatchHeader; state: string; paymentId?: string | undefined; bankStatus?: string | undefined }, at: string): SettlementUpload {
  return {
    batchId: batch.header.batchId, state: batch.state, at, amountMinor: batch.header.amountMinor, currency: batch.header.currency,
    ...(batch.paymentId === undefined ? {} : { paymentId: batch.paymentId }), ...(batch.bankStatus === undefined ? {} : { bankStatus: batch.bankStatus }),
  };
}

/**
 * BatchBook.transition that also queues a `settlement` upload when the state changes, in
 * the same atomic write as the state (the book's `alongside`): the cloud hears of every
 * state a batch was in, even across a crash. Other transitions pass straight through.
 */
export function transitionWithUpload(book: Pick<BatchBook, 'get' | 'transition'>, options: { outbox: Outbox; clock: () => Date }): BatchBook['transition'] {
  return async (batchNo, state, patch, detail, alongside = []) => {
    const current = await book.get(batchNo);
    if (current === undefined || current.state === state) return book.transition(batchNo, state, patch, detail, alongside);
    // What the batch will be: the patch's fields over the current ones (undefined removes one).
    const settlement = settlementUploadOf({ ...current, ...patch, state }, options.clock().toISOString());
    const { result } = await options.outbox.enqueueWith([{ kind: 'settlement', settlement }], (ops) => book.transition(batchNo, state, patch, detail, [...alongside, ...ops]));
    return result;
  };
}

/** `m!uplinkBatches`. */
interface QueuedBatches {
  /** Every batch up to this number is in the outbox (or was, and is acknowledged). */
  queuedThrough: number;
  /** The next batch, when some of its parts are queued and the rest not yet. */
  partial?: { batchNo: number; counts: number[]; partsQueued: number };
}

export interface BatchUplinkOptions {
  outbox: Outbox;
  book: Pick<BatchBook, 'get'>;
  journal: Pick<Journal, 'canonicalRecords'>;
  logger: Logger;
  /** The first batch to upload when none was queued yet (a gateway that had no uplink before). Default 1: all of them. */
  firstBatchNo?: number;
}

export class BatchUplink {
  readonly #options: BatchUplinkOptions;
  #mark: QueuedBatches;
  #running: Promise<number> | undefined;
  #queued: Promise<number> | undefined;
  #lastError: string | undefined;

  private constructor(options: BatchUplinkOptions, mark: QueuedBatches) {
    this.#options = options;
    this.#mark = mark;
  }

  static async open(db: LedgerDb, options: BatchUplinkOptions): Promise<BatchUplink> {
    const firstBatchNo = options.firstBatchNo ?? 1;
    if (!Number.isSafeInteger(firstBatchNo) || firstBatchNo < 1) throw new RangeError(`firstBatchNo: expected a positive integer, got ${firstBatchNo}`);
    const mark = ((await db.get(keys.uplinkBatches)) as QueuedBatches | undefined) ?? { queuedThrough: firstBatchNo - 1 };
    return new BatchUplink(options, mark);
  }

  /** Every batch up to this number is queued. */
  get queuedThrough(): number {
    return this.#mark.queuedThrough;
  }

  /** Why the last catch-up stopped short, until one finishes. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /**
   * Queues every batch sealed since the last one queued, in order. Call it after each seal
   * and before the settler's next tick (so a batch's settlement follows its batch), and at
   * start-up. A call during a run gets the one run that follows it (shared by every such
   * call), so nothing sealed meanwhile is missed. Stops at a batch that cannot be queued
   * (its records do not match its header) and throws: later batches wait behind it.
   */
  catchUp(): Promise<number> {
    if (this.#queued) return this.#queued;
    if (!this.#running) return this.#start();
    this.#queued = this.#running.catch(() => 0).then(() => {
      this.#queued = undefined;
      return this.#start();
    });
    return this.#queued;
  }

  #start(): Promise<number> {
    const run: Promise<number> = this.#catchUp().finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  async #catchUp(): Promise<number> {
    let queued = 0;
    try {
      for (let batchNo = this.#mark.queuedThrough + 1; ; batchNo += 1) {
        const batch = await this.#options.book.get(batchNo);
        if (batch === undefined) break;
        await this.#queue(batch);
        queued += 1;
      }
      this.#lastError = undefined;
    } catch (error) {
      this.#lastError = (error as Error).message;
      throw error;
    }
    return queued;
  }

  /** Two passes over the batch's journal range: check and plan, then queue it part by part (one part in memory at a time). */
  async #queue(batch: StoredBatch): Promise<void> {
    const { header, batchNo } = batch;
    assert.equal(this.#mark.queuedThrough, batchNo - 1, 'batches are queued in order');
    const planned = await this.#plan(header, batchNo);
    // Resuming: the parts already sent were cut by the stored plan, so the rest must be too.
    const partial = this.#mark.partial?.batchNo === batchNo ? this.#mark.partial : undefined;
    const counts = partial?.counts ?? planned;
    const partsQueued = partial?.partsQueued ?? 0;
    let part = 0;
    let inPart = 0;
    let firstRecord = 0;
    let records: string[] = [];
    const queuePart = async (): Promise<void> => {
      if (part >= partsQueued) await this.#queuePart({ header, part: part + 1, parts: counts.length, firstRecord, records }, batchNo, counts);
      firstRecord += inPart;
      part += 1;
      inPart = 0;
      records = [];
    };
    for await (const chunk of this.#recordsOf(header)) {
      for (const canonical of chunk) {
        if (part >= partsQueued) records.push(canonical);
        inPart += 1;
        if (inPart === counts[part]) await queuePart();
      }
    }
    if (counts.length === 1 && counts[0] === 0) await queuePart();
    assert.equal(part, counts.length, `batch ${batchNo} was queued in ${part} of its ${counts.length} parts`);
    if (counts.length > 1) this.#options.logger.info({ batchNo, parts: counts.length, records: firstRecord }, 'queued a batch for cloud-sync in parts');
  }

  async #queuePart(upload: BatchUpload, batchNo: number, counts: number[]): Promise<void> {
    const mark: QueuedBatches = upload.part === upload.parts ? { queuedThrough: batchNo } : { queuedThrough: batchNo - 1, partial: { batchNo, counts, partsQueued: upload.part } };
    await this.#options.outbox.enqueue([{ kind: 'batch', batch: upload }], { alongside: [{ type: 'put', key: keys.uplinkBatches, value: mark }] });
    this.#mark = mark;
  }

  async #plan(header: SignedBatchHeader, batchNo: number): Promise<number[]> {
    const planner = new PartPlanner();
    const tree = new MerkleRootBuilder();
    for await (const chunk of this.#recordsOf(header)) {
      for (const canonical of chunk) {
        planner.add(canonical);
        tree.addCanonical(canonical);
      }
    }
    // The cloud would refuse such a batch (bad_batch) and it would block every item after it: stop here, with the reason.
    if (tree.size !== header.recordCount) throw new Error(`Cannot upload batch ${batchNo}: the journal holds ${tree.size} of its records from index ${header.firstIndex} to ${header.lastIndex}, its header says ${header.recordCount}`);
    if (toHex(tree.root()) !== header.merkleRoot) throw new Error(`Cannot upload batch ${batchNo}: its records in the journal do not match its Merkle root`);
    return planner.counts.length === 0 ? [0] : planner.counts;
  }

  /** The batch's records in journal order, in the journal's chunks. */
  async *#recordsOf(header: SignedBatchHeader): AsyncGenerator<string[]> {
    for await (const chunk of this.#options.journal.canonicalRecords(header.firstIndex, header.lastIndex)) {
      yield chunk.filter((canonical) => isRecordOfBatch(header, sealItemOfCanonical(canonical)));
    }
  }
}
