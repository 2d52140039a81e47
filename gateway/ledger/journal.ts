/**
 * The hash-chained usage journal. Appends are queued and written in groups: one
 * LevelDB batch with fsync per group, so a device's ack (which waits for `append`)
 * always follows a durable write, at ~batch cost rather than per-record fsync cost.
 */
import { ZERO_HASH_HEX } from '../../protocol/hash.ts';
import { signPayload, type SigningKey } from '../../protocol/signing.ts';
import { chainHash, type Checkpoint, type SignedCheckpoint, type UsageRecord } from '../../protocol/usage-record.ts';
import { keys, writeDurably, type LedgerDb, type LedgerOp } from './ledger-db.ts';

/** A priced record before the journal gives it a place. */
export type RecordDraft = Omit<UsageRecord, 'index' | 'gatewayId' | 'receivedAt'>;

export type AppendResult =
  | { status: 'accepted'; index: number }
  | { status: 'duplicate'; index: number }
  | { status: 'conflict'; index: number };

export interface JournalEntry {
  record: UsageRecord;
  prevHash: string;
  hash: string;
}

export interface ChainHead {
  index: number;
  hash: string;
}

interface DedupEntry {
  index: number;
  messageHash: string;
}

export class JournalFullError extends Error {
  readonly code = 'MB_JOURNAL_FULL';
}

export interface JournalOptions {
  gatewayId: string;
  signingKey: SigningKey;
  clock: () => Date;
  queueMax: number;
  batchMax: number;
  checkpointEveryRecords: number;
  checkpointIntervalMs: number;
  /** Test seam: awaited before each durable write, to prove acks wait for it. */
  beforeWrite?: () => Promise<void>;
}

interface Pending {
  draft: RecordDraft;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

export class Journal {
  readonly #db: LedgerDb;
  readonly #options: JournalOptions;
  #head: ChainHead;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #lastCheckpoint: { index: number; atMs: number };
  #latestCheckpoint: SignedCheckpoint | undefined;

  private constructor(db: LedgerDb, options: JournalOptions, head: ChainHead, checkpoint: SignedCheckpoint | undefined) {
    this.#db = db;
    this.#options = options;
    this.#head = head;
    this.#latestCheckpoint = checkpoint;
    this.#lastCheckpoint = { index: checkpoint?.index ?? 0, atMs: options.clock().getTime() };
  }

  static async open(db: LedgerDb, options: JournalOptions): Promise<Journal> {
    const head = ((await db.get(keys.head)) as ChainHead | undefined) ?? { index: 0, hash: ZERO_HASH_HEX };
    let checkpoint: SignedCheckpoint | undefined;
    for await (const value of db.values({ ...keys.checkpointRange, reverse: true, limit: 1 })) checkpoint = value as SignedCheckpoint;
    return new Journal(db, options, head, checkpoint);
  }

  get head(): ChainHead {
    return { ...this.#head };
  }

  get queueLength(): number {
    return this.#queue.length;
  }

  get latestCheckpoint(): SignedCheckpoint | undefined {
    return this.#latestCheckpoint;
  }

  /** Resolves once the record is durable (or found to be a duplicate/conflict). */
  append(draft: RecordDraft): Promise<AppendResult> {
    if (this.#queue.length >= this.#options.queueMax) {
      return Promise.reject(new JournalFullError(`Cannot append usage from ${draft.deviceId}: ${this.#queue.length} records already wait for disk`));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ draft, resolve, reject });
      this.#flushing ??= this.#flushLoop();
    });
  }

  /** Waits until every queued append has been written or failed. */
  async drain(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #flushLoop(): Promise<void> {
    // Yield once so appends arriving in the same tick share one write.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (this.#queue.length > 0) {
        const group = this.#queue.splice(0, this.#options.batchMax);
        try {
          const results = await this.#writeGroup(group.map((p) => p.draft));
          group.forEach((pending, i) => pending.resolve(results[i]!));
        } catch (error) {
          for (const pending of group) pending.reject(error);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #writeGroup(drafts: RecordDraft[]): Promise<AppendResult[]> {
    const stored = await this.#db.getMany(drafts.map((d) => keys.dedup(d.deviceId, d.seq)));
    const seen = new Map<string, DedupEntry>();
    const ops: LedgerOp[] = [];
    const results: AppendResult[] = [];
    let head = this.#head;
    const receivedAt = this.#options.clock().toISOString();
    drafts.forEach((draft, i) => {
      const dedupKey = keys.dedup(draft.deviceId, draft.seq);
      const existing = seen.get(dedupKey) ?? (stored[i] as DedupEntry | undefined);
      if (existing) {
        results.push({ status: existing.messageHash === draft.messageHash ? 'duplicate' : 'conflict', index: existing.index });
        return;
      }
      const record: UsageRecord = { ...draft, v: 1, index: head.index + 1, gatewayId: this.#options.gatewayId, receivedAt };
      const hash = chainHash(head.hash, record);
      const entry: JournalEntry = { record, prevHash: head.hash, hash };
      ops.push({ type: 'put', key: keys.record(record.index), value: entry });
      ops.push({ type: 'put', key: dedupKey, value: { index: record.index, messageHash: draft.messageHash } satisfies DedupEntry });
      seen.set(dedupKey, { index: record.index, messageHash: draft.messageHash });
      head = { index: record.index, hash };
      results.push({ status: 'accepted', index: record.index });
    });
    if (ops.length === 0) return results;
    ops.push({ type: 'put', key: keys.head, value: head });
    const checkpoint = this.#checkpointIfDue(head);
    if (checkpoint) ops.push({ type: 'put', key: keys.checkpoint(checkpoint.index), value: checkpoint });
    if (this.#options.beforeWrite) await this.#options.beforeWrite();
    await writeDurably(this.#db, ops);
    // Only a durable write moves the in-memory head.
    this.#head = head;
    if (checkpoint) this.#noteCheckpoint(checkpoint);
    return results;
  }

  #checkpointIfDue(head: ChainHead): SignedCheckpoint | undefined {
    const nowMs = this.#options.clock().getTime();
    const dueByCount = head.index - this.#lastCheckpoint.index >= this.#options.checkpointEveryRecords;
    const dueByTime = nowMs - this.#lastCheckpoint.atMs >= this.#options.checkpointIntervalMs;
    if (!dueByCount && !dueByTime) return undefined;
    return this.signCheckpoint(head);
  }

  #noteCheckpoint(checkpoint: SignedCheckpoint): void {
    this.#latestCheckpoint = checkpoint;
    this.#lastCheckpoint = { index: checkpoint.index, atMs: Date.parse(checkpoint.time) };
  }

  signCheckpoint(head: ChainHead): SignedCheckpoint {
    const checkpoint: Checkpoint = { v: 1, gatewayId: this.#options.gatewayId, index: head.index, hash: head.hash, time: this.#options.clock().toISOString() };
    return { ...checkpoint, sig: signPayload(checkpoint, this.#options.signingKey) };
  }

  /** Signs and stores a checkpoint of the current head now (on shutdown, at seal time). */
  async checkpointNow(): Promise<SignedCheckpoint | undefined> {
    if (this.#head.index === 0 || this.#latestCheckpoint?.index === this.#head.index) return this.#latestCheckpoint;
    const checkpoint = this.signCheckpoint(this.#head);
    await writeDurably(this.#db, [{ type: 'put', key: keys.checkpoint(checkpoint.index), value: checkpoint }]);
    this.#noteCheckpoint(checkpoint);
    return checkpoint;
  }

  async get(index: number): Promise<JournalEntry | undefined> {
    return (await this.#db.get(keys.record(index))) as JournalEntry | undefined;
  }

  /** Entries with index in [from, to], in order. */
  async *entries(from: number, to: number): AsyncGenerator<JournalEntry> {
    if (to < from) return;
    for await (const value of this.#db.values({ gte: keys.record(from), lte: keys.record(to) })) yield value as JournalEntry;
  }

  async latest(limit: number): Promise<JournalEntry[]> {
    const out: JournalEntry[] = [];
    for await (const value of this.#db.values({ ...keys.recordRange, reverse: true, limit })) out.push(value as JournalEntry);
    return out;
  }
}
