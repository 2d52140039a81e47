/**
 * The book of batches: seals open journal records into signed batches (atomically with
 * the carried remainders and the seal mark) and records every settlement state change
 * with its time and the bank's answer.
 *
 *   sealed → submitted → pending → settled | rejected
 *   submitted → unknown → (found) pending → … | (not at the bank) submitted under a new key
 *   sealed | pending → held (a consent limit has no room yet) → submitted when it has
 *   carried: nothing to pay (under one minor unit), all of it carried forward.
 *
 * A batch over the consent's MaximumIndividualAmount is paid in parts, one payment each, one
 * after the other (`parts`); the batch's state, payment id and bank status follow the part in
 * progress, and it is settled when every part is.
 *
 * Each seal posts the batches' usage and carry entries to the accounts, and each move to
 * settled its settlement entry, in the same atomic write as the batch state itself: the
 * accounts can never disagree with the batches, even across a crash.
 */
import type { Logger } from 'pino';
import { canonicalBytes } from '../../protocol/canonical-json.ts';
import { leafHash, MerkleTree, type InclusionProof } from '../../protocol/merkle.ts';
import { formatDecimal } from '../../protocol/money.ts';
import type { SigningKey } from '../../protocol/signing.ts';
import type { SignedBatchHeader, UsageRecord } from '../../protocol/usage-record.ts';
import { Accounts, sealPostings, settlementPosting, type EntryDraft } from '../ledger/accounts.ts';
import type { Journal } from '../ledger/journal.ts';
import { keys, writeDurably, type LedgerDb, type LedgerOp } from '../ledger/ledger-db.ts';
import { BatchSealer, carryKey, sealItemOfCanonical } from './seal-batches.ts';

export const BATCH_STATES = ['sealed', 'submitted', 'pending', 'held', 'unknown', 'settled', 'rejected', 'carried'] as const;
export type BatchStateName = (typeof BATCH_STATES)[number];
export const FINAL_STATES: ReadonlySet<BatchStateName> = new Set(['settled', 'rejected', 'carried']);

export interface Transition {
  state: BatchStateName;
  at: string;
  detail?: string;
}

/**
 * One payment of a batch. Each idempotency key makes at most one payment (the bank's promise
 * for 24 h, OBIE R/W profile 4.0) and carries its own EndToEndIdentification; a part gets a
 * new key only once the bank has shown that the old one made nothing.
 *
 *   due → sent (request made, no answer yet) → pending → settled
 *   sent → unknown (24 h without an answer) → pending (found) | due (not found: new key)
 */
export interface PaymentPart {
  partNo: number;
  amountMinor: string;
  /** 0 for the part's first key, +1 for each new one. */
  keyNo: number;
  idempotencyKey: string;
  endToEndId: string;
  state: 'due' | 'sent' | 'pending' | 'settled' | 'rejected' | 'unknown';
  /** The consent the key was first sent under: the key is never sent under another. */
  consentId?: string;
  /** First and latest request with this key: the bank's idempotency window runs from the first. */
  keySentAt?: string;
  lastSentAt?: string;
  /** Remittance sent with the key: stored, so every request with the key has the same body. */
  reference: string;
  unstructured: string;
  /** Periods of `consentId` this part is counted in (consent-limits.ts). */
  countedWindows?: string[];
  paymentId?: string;
  bankStatus?: string;
  /** The part's earlier keys and what became of them (rejected, refused, or not at the bank), oldest first. */
  earlier?: Array<{ idempotencyKey: string; endToEndId: string; paymentId?: string; bankStatus?: string; outcome: string }>;
}

export interface StoredBatch {
  batchNo: number;
  header: SignedBatchHeader;
  state: BatchStateName;
  idempotencyKey: string;
  attempts: number;
  paymentId?: string;
  bankStatus?: string;
  lastError?: string;
  /** The payments the batch is made of, once planned (at its first send). */
  parts?: PaymentPart[];
  /** While held: when to look again. */
  heldUntil?: string;
  transitions: Transition[];
}

/** What a transition may change; `undefined` removes the field. */
export type BatchPatch = { [K in 'attempts' | 'paymentId' | 'bankStatus' | 'lastError' | 'parts' | 'heldUntil']?: StoredBatch[K] | undefined };

const TRANSITIONS_KEPT = 100;

interface BatchBookOptions {
  gatewayId: string;
  key: SigningKey;
  clock: () => Date;
  logger: Logger;
  /** Distinct (account, currency) pairs the accounts may hold; see Accounts. */
  accountsMax?: number;
  /** Run before each seal: books the close of tariff periods that have ended (gateway/ledger/period-close.ts). */
  closePeriods?: () => Promise<unknown>;
}

export interface SealOptions {
  /** Seal only these payers' records (each on its own schedule: gateway/settlement/schedule.ts); the rest stay open. Default: every payer. */
  payers?: ReadonlySet<string>;
}

/** Batches whose missing postings are written in one go when an older ledger is first opened. */
const BACKFILL_BATCHES_PER_WRITE = 256;

export class BatchBook {
  readonly #db: LedgerDb;
  readonly #journal: Journal;
  readonly #options: BatchBookOptions;
  readonly #open = new Map<number, StoredBatch>();
  readonly #countByState = new Map<BatchStateName, number>();
  readonly #settledMinor = new Map<string, bigint>();
  #sealedThrough = 0;
  #batchNo = 0;
  /**
   * Per carryKey(payer, currency), where it is above #sealedThrough: the journal index the
   * group's latest batch was sealed at (a payer sealed on its own schedule). Rebuilt from
   * the batch headers (chainIndex) at open, so it needs no key of its own.
   */
  readonly #groupSealedThrough = new Map<string, number>();
  #sealing: Promise<StoredBatch[]> | undefined;
  #sealingAll = false;
  /** The double-entry accounts the batches post to (balances for the operator page). */
  readonly accounts: Accounts;

  private constructor(db: LedgerDb, journal: Journal, options: BatchBookOptions, accounts: Accounts) {
    this.#db = db;
    this.#journal = journal;
    this.#options = options;
    this.accounts = accounts;
  }

  static async open(db: LedgerDb, journal: Journal, options: BatchBookOptions): Promise<BatchBook> {
    const accounts = await Accounts.open(db, { clock: options.clock, ...(options.accountsMax === undefined ? {} : { accountsMax: options.accountsMax }) });
    const book = new BatchBook(db, journal, options, accounts);
    book.#sealedThrough = ((await db.get(keys.sealedThrough)) as number | undefined) ?? 0;
    book.#batchNo = ((await db.get(keys.batchNo)) as number | undefined) ?? 0;
    for await (const value of db.values(keys.batchRange)) {
      book.#count(value as StoredBatch, +1);
      book.#noteSealed((value as StoredBatch).header);
    }
    await book.#backfillPostings();
    return book;
  }

  /**
   * A ledger written before the accounts existed has batches without entries. Since then
   * every batch gets its entries in its own seal write, and this backfill runs in batch
   * order before any new seal, so the newest batch that moves money has its usage or carry
   * entry exactly when the backfill is complete. Idempotent: a rerun after a crash skips
   * what was posted.
   */
  async #backfillPostings(): Promise<void> {
    for await (const value of this.#db.values({ ...keys.batchRange, reverse: true })) {
      const [newest] = postingsOf(value as StoredBatch);
      if (newest === undefined) continue;
      if ((await this.accounts.postedFor(newest.kind as 'usage' | 'carry', newest.ref.batchId!)) !== undefined) return;
      break;
    }
    let drafts: EntryDraft[] = [];
    let batches = 0;
    let posted = 0;
    const flush = async (): Promise<void> => {
      posted += (await this.accounts.post(drafts)).filter((r) => r.status === 'posted').length;
      drafts = [];
      batches = 0;
    };
    for await (const value of this.#db.values(keys.batchRange)) {
      drafts.push(...postingsOf(value as StoredBatch));
      batches += 1;
      if (batches === BACKFILL_BATCHES_PER_WRITE) await flush();
    }
    await flush();
    if (posted > 0) this.#options.logger.info({ entries: posted, throughEntryNo: this.accounts.lastEntryNo }, 'posted accounts entries for batches sealed before the accounts existed');
  }

  #count(batch: StoredBatch, delta: 1 | -1): void {
    this.#countByState.set(batch.state, (this.#countByState.get(batch.state) ?? 0) + delta);
    if (batch.state === 'settled') {
      const currency = batch.header.currency;
      this.#settledMinor.set(currency, (this.#settledMinor.get(currency) ?? 0n) + BigInt(delta) * BigInt(batch.header.amountMinor));
    }
    if (FINAL_STATES.has(batch.state)) this.#open.delete(batch.batchNo);
    else if (delta > 0) this.#open.set(batch.batchNo, batch);
  }

  /** Every record at or below this journal index is sealed (some above it may be too: a payer sealed on its own). */
  get sealedThrough(): number {
    return this.#sealedThrough;
  }

  /** Every record of the payer in the currency at or below this journal index is sealed. */
  sealedThroughOf(payer: string, currency: string): number {
    return Math.max(this.#sealedThrough, this.#groupSealedThrough.get(carryKey(payer, currency)) ?? 0);
  }

  #noteSealed(header: SignedBatchHeader): void {
    const group = carryKey(header.payer, header.currency);
    if (header.chainIndex > Math.max(this.#sealedThrough, this.#groupSealedThrough.get(group) ?? 0)) this.#groupSealedThrough.set(group, header.chainIndex);
  }

  countByState(): ReadonlyMap<BatchStateName, number> {
    return this.#countByState;
  }

  settledMinorByCurrency(): ReadonlyMap<string, bigint> {
    return this.#settledMinor;
  }

  /** Batches not yet final, oldest first. */
  openBatches(): StoredBatch[] {
    return [...this.#open.values()].sort((a, b) => a.batchNo - b.batchNo);
  }

  /**
   * Seals every durable record not yet in a batch, or only `payers`' records. Concurrent
   * calls for every payer share one run; other calls queue behind the run in progress.
   */
  seal(options: SealOptions = {}): Promise<StoredBatch[]> {
    const all = options.payers === undefined;
    if (all && this.#sealingAll && this.#sealing) return this.#sealing;
    const started = this.#sealing ? this.#sealing.catch(() => []).then(() => this.#seal(options)) : this.#seal(options);
    const run: Promise<StoredBatch[]> = started.finally(() => {
      if (this.#sealing === run) this.#sealing = undefined;
    });
    this.#sealing = run;
    this.#sealingAll = all;
    return run;
  }

  /** Resolves when no seal is running (for shutdown). */
  async idle(): Promise<void> {
    await this.#sealing?.catch(() => {});
  }

  async #seal(options: SealOptions): Promise<StoredBatch[]> {
    // A period's minimum top-up is a journal record: book it first so this seal pays it.
    await this.#options.closePeriods?.();
    const head = this.#journal.head;
    if (head.index <= this.#sealedThrough) return [];
    // Streamed from the stored text: memory stays flat however many records wait.
    const sealer = new BatchSealer();
    let sealedThrough = head.index;
    if (options.payers === undefined && this.#groupSealedThrough.size === 0) {
      for await (const chunk of this.#journal.canonicalRecords(this.#sealedThrough + 1, head.index)) for (const canonical of chunk) sealer.add(sealItemOfCanonical(canonical));
    } else {
      sealedThrough = await this.#addOpenRecords(sealer, head.index, options.payers);
    }
    const records = sealer.recordCount;
    const carries = new Map<string, bigint>();
    for await (const [key, value] of this.#db.iterator(keys.carryRange)) carries.set(key.slice(2), BigInt(value as string));
    const now = this.#options.clock().toISOString();
    const sealed = sealer.seal({ gatewayId: this.#options.gatewayId, carries, nextBatchNo: this.#batchNo + 1, sealedAt: now, head, key: this.#options.key });
    const stored: StoredBatch[] = sealed.batches.map(({ batchNo, header, idempotencyKey }) => {
      const state: BatchStateName = header.amountMinor === '0' ? 'carried' : 'sealed';
      const credit = header.carriedOutNano.startsWith('-');
      const detail = state !== 'carried' ? undefined : credit ? 'a credit (a volume tier lowered the period\'s price): nothing to pay, carried into the next batch' : 'less than one minor unit due: all of it carried into the next batch';
      return { batchNo, header, state, idempotencyKey, attempts: 0, transitions: [{ state, at: now, ...(detail ? { detail } : {}) }] };
    });
    const ops: LedgerOp[] = stored.map((batch) => ({ type: 'put', key: keys.batch(batch.batchNo), value: batch }));
    for (const [group, carried] of sealed.carries) {
      const [payer, currency] = group.split('!') as [string, string];
      ops.push({ type: 'put', key: keys.carry(payer, currency), value: formatDecimal(carried, 0) });
    }
    const lastBatchNo = this.#batchNo + stored.length;
    ops.push({ type: 'put', key: keys.sealedThrough, value: sealedThrough }, { type: 'put', key: keys.batchNo, value: lastBatchNo });
    await this.accounts.post(stored.flatMap((batch) => sealPostings(batch.header)), ops);
    this.#sealedThrough = sealedThrough;
    this.#batchNo = lastBatchNo;
    for (const batch of stored) {
      this.#count(batch, +1);
      this.#noteSealed(batch.header);
    }
    for (const [group, through] of this.#groupSealedThrough) if (through <= sealedThrough) this.#groupSealedThrough.delete(group);
    this.#options.logger.info({ batches: stored.length, records, through: head.index }, 'sealed batches');
    return stored;
  }

  /**
   * Adds to `sealer` the open records of `payers` (default: every payer), skipping those a
   * payer's own seal already took. Returns the new #sealedThrough: just below the first
   * record left open, so a record is never sealed twice nor skipped.
   */
  async #addOpenRecords(sealer: BatchSealer, headIndex: number, payers: ReadonlySet<string> | undefined): Promise<number> {
    let firstLeftOpen: number | undefined;
    for await (const chunk of this.#journal.canonicalRecords(this.#sealedThrough + 1, headIndex)) {
      for (const canonical of chunk) {
        const item = sealItemOfCanonical(canonical);
        if (item.index <= (this.#groupSealedThrough.get(carryKey(item.payer, item.currency)) ?? 0)) continue;
        if (payers === undefined || payers.has(item.payer)) sealer.add(item);
        else firstLeftOpen ??= item.index;
      }
    }
    return firstLeftOpen === undefined ? headIndex : firstLeftOpen - 1;
  }

  /**
   * Persists a state change (with the bank's answer) before anything acts on it, in one
   * atomic write with `alongside` (e.g. what the settler counts against the consent's limits).
   * A transition is recorded when the state changes, or when it stays with a new `detail`.
   */
  async transition(batchNo: number, state: BatchStateName, patch: BatchPatch, detail?: string, alongside: LedgerOp[] = []): Promise<StoredBatch> {
    const current = this.#open.get(batchNo) ?? ((await this.#db.get(keys.batch(batchNo))) as StoredBatch | undefined);
    if (!current) throw new Error(`Cannot change batch ${batchNo}: no such batch`);
    if (FINAL_STATES.has(current.state)) throw new Error(`Cannot change batch ${batchNo}: already ${current.state}`);
    const recorded = current.state !== state || (detail !== undefined && detail !== current.transitions.at(-1)?.detail);
    const transitions = recorded ? [...current.transitions, { state, at: this.#options.clock().toISOString(), ...(detail ? { detail } : {}) }].slice(-TRANSITIONS_KEPT) : current.transitions;
    const next = { ...current, ...patch, state, transitions } as StoredBatch & Record<string, unknown>;
    for (const [field, value] of Object.entries(patch)) if (value === undefined) delete next[field];
    const write: LedgerOp[] = [{ type: 'put', key: keys.batch(batchNo), value: next }, ...alongside];
    // Settled: the bank's money clears the receivable. Rejected posts nothing: the payer
    // still owes the batch, and it stays open in receivable until an operator corrects it.
    const settlement = state === 'settled' ? settlementOf(next) : undefined;
    if (settlement) await this.accounts.post([settlement], write);
    else await writeDurably(this.#db, write);
    this.#count(current, -1);
    this.#count(next, +1);
    return next;
  }

  async get(batchNo: number): Promise<StoredBatch | undefined> {
    return (await this.#db.get(keys.batch(batchNo))) as StoredBatch | undefined;
  }

  async latest(limit: number): Promise<StoredBatch[]> {
    const out: StoredBatch[] = [];
    for await (const value of this.#db.values({ ...keys.batchRange, reverse: true, limit })) out.push(value as StoredBatch);
    return out;
  }

  async *all(): AsyncGenerator<StoredBatch> {
    for await (const value of this.#db.values(keys.batchRange)) yield value as StoredBatch;
  }

  async carried(): Promise<Map<string, bigint>> {
    const carries = new Map<string, bigint>();
    for await (const [key, value] of this.#db.iterator(keys.carryRange)) carries.set(key.slice(2), BigInt(value as string));
    return carries;
  }

  /** The records of a batch, in journal order (others' records in its range skipped). */
  async records(header: SignedBatchHeader): Promise<UsageRecord[]> {
    const out: UsageRecord[] = [];
    for await (const entry of this.#journal.entries(header.firstIndex, header.lastIndex)) {
      if (entry.record.payer === header.payer && entry.record.currency === header.currency) out.push(entry.record);
    }
    return out;
  }

  /** Inclusion proofs for every record of a batch, keyed by journal index. */
  async proofs(header: SignedBatchHeader): Promise<Array<{ record: UsageRecord; proof: InclusionProof }>> {
    const records = await this.records(header);
    const tree = new MerkleTree(records.map((r) => leafHash(canonicalBytes(r))));
    return records.map((record, i) => ({ record, proof: tree.proof(i) }));
  }
}


function settlementOf(batch: StoredBatch): EntryDraft | undefined {
  if (batch.state !== 'settled') return undefined;
  const at = batch.transitions.findLast((t) => t.state === 'settled')?.at ?? batch.header.sealedAt;
  return settlementPosting(batch.header, { at, ...(batch.paymentId === undefined ? {} : { paymentId: batch.paymentId }) });
}

/** Every entry a batch in its current state should have posted, oldest first. */
function postingsOf(batch: StoredBatch): EntryDraft[] {
  const settlement = settlementOf(batch);
  return settlement ? [...sealPostings(batch.header), settlement] : sealPostings(batch.header);
}
