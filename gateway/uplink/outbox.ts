/**
 * The uplink outbox: signed upload envelopes (protocol/upload.ts) waiting in the ledger's
 * LevelDB until cloud-sync acknowledges them. Items are numbered 1, 2, 3… with no gaps, the
 * seq the cloud orders and deduplicates by, so an item is made once and then only resent
 * byte for byte; it is deleted only after the cloud answered `accepted` or `duplicate`.
 *
 * Billing data is never evicted. The outbox has a disk budget, but reaching it does not
 * drop or refuse an item: it tells the intake to refuse NEW usage (checkRoomForUsage), so
 * what is already recorded still reaches the cloud once it is reachable again.
 *
 * Keys: `u!<seq:12>` per item, `m!outbox` for the counters (gateway/ledger/ledger-db.ts).
 * Every change of items and counters is one atomic, fsynced write, and all of them run one
 * at a time (#exclusive), so the counters in memory always match the disk after a write.
 */
import { nodeSignPayload } from '../ledger/node-signature.ts';
import assert from 'node:assert/strict';
import { UPLOAD_BYTES_MAX, UPLOAD_VERSION, type HealthUpload, type UnsignedEnvelope, type UploadBody, type UploadEnvelope } from '../../protocol/upload.ts';
import type { SigningKey } from '../../protocol/signing.ts';
import { keys, writeDurably, type LedgerDb, type LedgerOp } from '../ledger/ledger-db.ts';

const MIB = 1_048_576;
/** Default disk budget: about a week of a busy plant's batches with cloud-sync unreachable. */
export const OUTBOX_BUDGET_BYTES_DEFAULT = 256 * MIB;
export const OUTBOX_BUDGET_BYTES_MIN = MIB;
export const OUTBOX_BUDGET_BYTES_MAX = 1024 * 1024 * MIB;
/** Fill ratio from which the operator page warns. */
export const OUTBOX_WARNING_RATIO = 0.8;
/** Items in one enqueue: one atomic write must stay small enough to fsync promptly. */
export const ENQUEUE_ITEMS_MAX = 1_000;
/** Bytes in one enqueue: four full envelopes. A sealed batch is queued one part per write. */
export const ENQUEUE_BYTES_MAX = 4 * UPLOAD_BYTES_MAX;
/** Items deleted in one write when the cloud acknowledges many at once. */
const ACK_ITEMS_PER_WRITE = 1_000;
/** `,"sig":{"alg":"Ed25519","keyId":<16 hex>,"value":<128 hex>}` is 199 bytes as JSON. */
const SIG_BYTES_MAX = 256;
/** Listeners told of new items (the sender, perhaps a metrics gauge): a leak guard. */
const LISTENERS_MAX = 8;

/** `m!outbox`. Items are exactly the seqs ackedSeq+1 … nextSeq−1. */
interface Counters {
  nextSeq: number;
  ackedSeq: number;
  items: number;
  bytes: number;
  /** The seq of the health item waiting, if one is: at most one waits. */
  healthSeq?: number;
  /** When the cloud last acknowledged an item. */
  lastAckAt?: string;
}

export interface OutboxOptions {
  gatewayId: string;
  /** Signs every envelope (the key that signs the batches). */
  signingKey: SigningKey;
  /** createdAt of each item. */
  clock: () => Date;
  /** Bytes of waiting items (their JSON) from which new usage is refused. Default OUTBOX_BUDGET_BYTES_DEFAULT. */
  budgetBytes?: number;
}

export interface EnqueueOptions {
  /** Written in the same atomic batch as the items (e.g. a mark saying which batch parts are queued). */
  alongside?: LedgerOp[];
  /** Sign with this key instead: a key endorsement travels signed by the key before the new one. */
  signedBy?: SigningKey;
}

export interface OutboxFill {
  items: number;
  bytes: number;
  budgetBytes: number;
  /** bytes / budgetBytes; may pass 1: billing items are stored over the budget rather than lost. */
  ratio: number;
  /** At or over OUTBOX_WARNING_RATIO: the operator page warns. */
  warning: boolean;
  /** At or over the budget: new usage is refused. */
  full: boolean;
  /** Since when items wait unacknowledged (absent while the outbox is empty). */
  stalledSince?: string;
}

/** New usage is refused because the outbox is at its budget; the device keeps its message and retries. */
export class OutboxFullError extends Error {
  readonly code = 'MB_OUTBOX_FULL';
}

export class Outbox {
  readonly #db: LedgerDb;
  readonly #options: Required<OutboxOptions>;
  #counters: Counters;
  /** createdAt of the first waiting item. */
  #firstWaitingAt: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #listeners = new Set<() => void>();

  private constructor(db: LedgerDb, options: Required<OutboxOptions>, counters: Counters, firstWaitingAt: string | undefined) {
    this.#db = db;
    this.#options = options;
    this.#counters = counters;
    this.#firstWaitingAt = firstWaitingAt;
  }

  /** Reads the counters back (resuming after a restart) and checks them against the stored items. */
  static async open(db: LedgerDb, options: OutboxOptions): Promise<Outbox> {
    const budgetBytes = options.budgetBytes ?? OUTBOX_BUDGET_BYTES_DEFAULT;
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes < OUTBOX_BUDGET_BYTES_MIN || budgetBytes > OUTBOX_BUDGET_BYTES_MAX) {
      throw new RangeError(`budgetBytes: expected an integer from ${OUTBOX_BUDGET_BYTES_MIN} to ${OUTBOX_BUDGET_BYTES_MAX}, got ${budgetBytes}`);
    }
    const counters = ((await db.get(keys.outboxCounters)) as Counters | undefined) ?? { nextSeq: 1, ackedSeq: 0, items: 0, bytes: 0 };
    // A mismatch is a bug or a damaged ledger: better to stop than to renumber what the cloud may hold.
    assert.equal(counters.items, counters.nextSeq - 1 - counters.ackedSeq, 'outbox counters disagree on the number of items');
    const [first] = await db.keys({ ...keys.outboxRange, limit: 1 }).all();
    const [last] = await db.keys({ ...keys.outboxRange, limit: 1, reverse: true }).all();
    assert.equal(first, counters.items === 0 ? undefined : keys.outboxItem(counters.ackedSeq + 1), 'outbox items do not start after the acknowledged seq');
    assert.equal(last, counters.items === 0 ? undefined : keys.outboxItem(counters.nextSeq - 1), 'outbox items do not end before the next seq');
    const head = first === undefined ? undefined : ((await db.get(first)) as UploadEnvelope);
    return new Outbox(db, { ...options, budgetBytes }, counters, head?.createdAt);
  }

  /** The highest seq the cloud has acknowledged; every item at or below it is gone. */
  get ackedSeq(): number {
    return this.#counters.ackedSeq;
  }

  /** The seq the next item gets. */
  get nextSeq(): number {
    return this.#counters.nextSeq;
  }

  /** When cloud-sync last acknowledged an item (kept across restarts). */
  get lastAckAt(): string | undefined {
    return this.#counters.lastAckAt;
  }

  get waiting(): number {
    return this.#counters.items;
  }

  fill(): OutboxFill {
    const { items, bytes } = this.#counters;
    const budgetBytes = this.#options.budgetBytes;
    const ratio = bytes / budgetBytes;
    const stalledSince = this.#stalledSince();
    return { items, bytes, budgetBytes, ratio, warning: ratio >= OUTBOX_WARNING_RATIO, full: ratio >= 1, ...(stalledSince === undefined ? {} : { stalledSince }) };
  }

  /**
   * For the intake, beside StorageGuard.check(): throws OutboxFullError while the outbox is
   * at its budget. Synchronous and allocation-free when there is room: it runs per message.
   */
  checkRoomForUsage(): void {
    const { bytes } = this.#counters;
    const budgetBytes = this.#options.budgetBytes;
    if (bytes < budgetBytes) return;
    const since = this.#stalledSince();
    throw new OutboxFullError(`Cannot accept usage: the uplink outbox holds ${mib(bytes)} MiB of its ${mib(budgetBytes)} MiB budget (cloud-sync has acknowledged nothing since ${since ?? 'the gateway started'})`);
  }

  /** Calls `listener` after each enqueue (e.g. UplinkSender.kick). Returns the unsubscribe function. */
  onEnqueue(listener: () => void): () => void {
    assert.ok(this.#listeners.size < LISTENERS_MAX, 'too many outbox listeners: one is not unsubscribed');
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Signs and stores `items` with the next seqs, in one atomic write with `options.alongside`. */
  async enqueue(items: UploadBody[], options: EnqueueOptions = {}): Promise<UploadEnvelope[]> {
    const alongside = options.alongside ?? [];
    const { envelopes } = await this.enqueueWith(items, (ops) => writeDurably(this.#db, [...ops, ...alongside]), options);
    return envelopes;
  }

  /**
   * Like enqueue, but `write` makes the durable write: it must write `ops` atomically with
   * its own (e.g. `(ops) => book.transition(n, state, patch, detail, ops)`), so a state
   * change and its upload are stored together or not at all. No other outbox write runs
   * until it settles; when it throws, nothing was queued.
   */
  enqueueWith<T>(items: UploadBody[], write: (ops: LedgerOp[]) => Promise<T>, options: Pick<EnqueueOptions, 'signedBy'> = {}): Promise<{ envelopes: UploadEnvelope[]; result: T }> {
    if (items.length === 0 || items.length > ENQUEUE_ITEMS_MAX) return Promise.reject(new RangeError(`items: expected 1 to ${ENQUEUE_ITEMS_MAX} upload bodies, got ${items.length}`));
    return this.#exclusive(() => this.#append(items, write, options.signedBy));
  }

  /**
   * Queues a health report unless one is still waiting: reports replace each other, and an
   * item may already be on its way under its seq, so a newer one waits for the older's ack
   * instead of replacing it. Returns undefined when it was skipped.
   */
  enqueueHealth(health: HealthUpload): Promise<UploadEnvelope | undefined> {
    return this.#exclusive(async () => {
      if (this.#counters.healthSeq !== undefined) return undefined;
      const { envelopes } = await this.#append([{ kind: 'health', health }], (ops) => writeDurably(this.#db, ops), undefined);
      return envelopes[0];
    });
  }

  /** The first waiting item: the one to send next. */
  async first(): Promise<UploadEnvelope | undefined> {
    if (this.#counters.items === 0) return undefined;
    const seq = this.#counters.ackedSeq + 1;
    const envelope = (await this.#db.get(keys.outboxItem(seq))) as UploadEnvelope | undefined;
    assert.ok(envelope !== undefined, `outbox item ${seq} is missing`);
    return envelope;
  }

  /**
   * The cloud holds every item up to `seq`: deletes them (in writes of at most
   * ACK_ITEMS_PER_WRITE items) and records the acknowledged seq. Returns how many went.
   */
  ackThrough(seq: number): Promise<number> {
    if (!Number.isSafeInteger(seq) || seq < 0) return Promise.reject(new RangeError(`seq: expected a non-negative integer, got ${seq}`));
    return this.#exclusive(async () => {
      if (seq >= this.#counters.nextSeq) throw new RangeError(`Cannot acknowledge outbox item ${seq}: the last item made is ${this.#counters.nextSeq - 1}`);
      let acked = 0;
      while (this.#counters.ackedSeq < seq) acked += await this.#ackSome(Math.min(seq, this.#counters.ackedSeq + ACK_ITEMS_PER_WRITE));
      return acked;
    });
  }

  async #ackSome(through: number): Promise<number> {
    const from = this.#counters.ackedSeq + 1;
    const ops: LedgerOp[] = [];
    let bytes = 0;
    let healthAcked = false;
    for await (const [key, value] of this.#db.iterator({ gte: keys.outboxItem(from), lte: keys.outboxItem(through) })) {
      const envelope = value as UploadEnvelope;
      bytes += itemBytes(key, envelope);
      healthAcked ||= envelope.seq === this.#counters.healthSeq;
      ops.push({ type: 'del', key });
    }
    const count = through - from + 1;
    assert.equal(ops.length, count, `outbox items ${from}–${through} are not all stored`);
    const { healthSeq: _healthSeq, ...rest } = this.#counters;
    const next: Counters = {
      ...(healthAcked ? rest : this.#counters),
      ackedSeq: through, items: this.#counters.items - count, bytes: this.#counters.bytes - bytes, lastAckAt: this.#options.clock().toISOString(),
    };
    await writeDurably(this.#db, [...ops, { type: 'put', key: keys.outboxCounters, value: next }]);
    this.#counters = next;
    const head = next.items === 0 ? undefined : ((await this.#db.get(keys.outboxItem(through + 1))) as UploadEnvelope | undefined);
    this.#firstWaitingAt = head?.createdAt;
    return count;
  }

  async #append<T>(items: UploadBody[], write: (ops: LedgerOp[]) => Promise<T>, signedBy: SigningKey | undefined): Promise<{ envelopes: UploadEnvelope[]; result: T }> {
    const createdAt = this.#options.clock().toISOString();
    const key = signedBy ?? this.#options.signingKey;
    const counters = { ...this.#counters };
    const envelopes: UploadEnvelope[] = [];
    const ops: LedgerOp[] = [];
    for (const body of items) {
      const unsigned: UnsignedEnvelope = { v: UPLOAD_VERSION, gatewayId: this.#options.gatewayId, seq: counters.nextSeq, createdAt, ...body };
      // Checked before signing, which costs ~50 ms a MiB: the batch splitter and the callers
      // keep items under the cloud's limit, so over it is a bug.
      const unsignedBytes = Buffer.byteLength(JSON.stringify(unsigned));
      if (unsignedBytes + SIG_BYTES_MAX > UPLOAD_BYTES_MAX) throw new RangeError(`Cannot queue a ${body.kind} upload of ${unsignedBytes} bytes: the cloud takes at most ${UPLOAD_BYTES_MAX}`);
      // node:crypto: a full part is ~0.1 s of this thread instead of ~0.45 s with @noble.
      const envelope: UploadEnvelope = { ...unsigned, sig: nodeSignPayload(unsigned, key) };
      const itemKey = keys.outboxItem(envelope.seq);
      const bytes = itemBytes(itemKey, envelope);
      if (body.kind === 'health') counters.healthSeq = envelope.seq;
      counters.nextSeq += 1;
      counters.items += 1;
      counters.bytes += bytes;
      envelopes.push(envelope);
      ops.push({ type: 'put', key: itemKey, value: envelope });
    }
    if (counters.bytes - this.#counters.bytes > ENQUEUE_BYTES_MAX) throw new RangeError(`Cannot queue ${items.length} uploads of ${counters.bytes - this.#counters.bytes} bytes in one write: at most ${ENQUEUE_BYTES_MAX}`);
    ops.push({ type: 'put', key: keys.outboxCounters, value: counters });
    const result = await write(ops);
    if (this.#counters.items === 0) this.#firstWaitingAt = createdAt;
    this.#counters = counters;
    for (const listener of this.#listeners) listener();
    return { envelopes, result };
  }

  /** Runs `work` after every write queued before it: seqs and counters change one write at a time. */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #stalledSince(): string | undefined {
    const waiting = this.#firstWaitingAt;
    if (waiting === undefined) return undefined;
    const acked = this.#counters.lastAckAt;
    return acked !== undefined && acked > waiting ? acked : waiting;
  }
}

/** What an item costs on disk, near enough: its key and its value as JSON. */
function itemBytes(key: string, envelope: UploadEnvelope): number {
  return key.length + Buffer.byteLength(JSON.stringify(envelope));
}

const mib = (bytes: number): string => (bytes / MIB).toFixed(1);
