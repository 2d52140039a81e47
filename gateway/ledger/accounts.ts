/**
 * Double-entry accounts: an append-only book of balanced entries in the ledger's LevelDB,
 * so a batch's postings go to disk in the same atomic write as the batch itself. Entries
 * are never edited; a mistake is fixed by a new entry that names the entry it corrects,
 * the operator who made it and why.
 *
 * Balances are debit-positive (debits − credits), in nano, per account and currency:
 *   receivable:<payer>  what the payer owes and has not paid
 *   carried:<payer>     remainders below one minor unit, carried into the payer's next batch
 *   revenue             the payee's earned usage (a credit, so negative)
 *   bank                money received
 *   refunds             money paid back (contra-revenue)
 * Every entry balances per currency, so per currency all balances sum to zero.
 *
 * Postings of a batch (docs/protocol.md §7, the money identity):
 *   sealed    usage:       Dr receivable:payer  Cr revenue           totalNano
 *             carry:       Dr receivable:payer  Cr carried:payer     carriedInNano
 *                          Dr carried:payer     Cr receivable:payer  carriedOutNano
 *             which leaves exactly amountMinor × nanoPerMinor of the batch in receivable.
 *   settled   settlement:  Dr bank              Cr receivable:payer  amountMinor × nanoPerMinor
 *   rejected  nothing moves: the payer still owes it, and it stays open in receivable
 *             until an operator settles the matter with a correction.
 */
import assert from 'node:assert/strict';
import { formatDecimal, minorDigits, nanoPerMinor } from '../../protocol/money.ts';
import type { BatchHeader } from '../../protocol/usage-record.ts';
import { keys, writeDurably, type LedgerDb, type LedgerOp } from './ledger-db.ts';

export const ENTRY_KINDS = ['usage', 'settlement', 'carry', 'correction', 'refund', 'reversal'] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];

/** A line as stored: one side only, a positive integer of nano as a decimal string. */
export type StoredLine = { account: string; debitNano: string } | { account: string; creditNano: string };
/** A line as posted: one side only, a positive bigint of nano. */
export type Line = { account: string; debitNano: bigint } | { account: string; creditNano: bigint };

export interface EntryRef {
  batchId?: string;
  paymentId?: string;
  /** The entry this one corrects or reverses. */
  corrects?: number;
}

export interface Entry {
  no: number;
  at: string;
  kind: EntryKind;
  currency: string;
  lines: StoredLine[];
  ref: EntryRef;
  operator?: string;
  reason?: string;
}

export interface EntryDraft {
  kind: EntryKind;
  currency: string;
  at: string;
  lines: Line[];
  ref: EntryRef;
  operator?: string;
  reason?: string;
}

export type PostResult = { status: 'posted'; entry: Entry } | { status: 'duplicate'; entryNo: number };

/** Balances per currency, then per account, in debit-positive nano, through one entry. */
export interface BalanceSheet {
  throughEntryNo: number;
  byCurrency: Map<string, Map<string, bigint>>;
}

export interface OperatorNote {
  operator: string;
  reason: string;
}

export interface AccountsOptions {
  clock: () => Date;
  /** Distinct (account, currency) pairs held in memory; a payer brings two per currency. */
  accountsMax?: number;
}

export const ACCOUNTS_MAX_DEFAULT = 10_000;
export const LINES_MAX = 16;
const OPERATOR_CHARS_MAX = 100;
const REASON_CHARS_MAX = 500;
const REF_CHARS_MAX = 200;
const ACCOUNT = /^(?:revenue|bank|refunds|(?:receivable|carried):[A-Za-z0-9][A-Za-z0-9._-]{0,62})$/;

export const account = {
  receivable: (payer: string) => `receivable:${payer}`,
  carried: (payer: string) => `carried:${payer}`,
  revenue: 'revenue',
  bank: 'bank',
  refunds: 'refunds',
} as const;

/** The book is full: more (account, currency) pairs than `accountsMax`. */
export class AccountsFullError extends Error {
  readonly code = 'MB_ACCOUNTS_FULL';
}

/** Lines moving `amountNano` from `from` to `to` (Dr to, Cr from); none for zero, reversed when negative. */
export function move(from: string, to: string, amountNano: bigint): Line[] {
  if (amountNano === 0n) return [];
  if (amountNano < 0n) return move(to, from, -amountNano);
  return [{ account: to, debitNano: amountNano }, { account: from, creditNano: amountNano }];
}

/** The usage and carry entries of a sealed batch (either omitted when it would move nothing). */
export function sealPostings(header: BatchHeader): EntryDraft[] {
  const { payer, currency, batchId, sealedAt: at } = header;
  const receivable = account.receivable(payer);
  const carried = account.carried(payer);
  const usage = move(account.revenue, receivable, BigInt(header.totalNano));
  const carry = [...move(carried, receivable, BigInt(header.carriedInNano)), ...move(receivable, carried, BigInt(header.carriedOutNano))];
  const drafts: EntryDraft[] = [];
  if (usage.length > 0) drafts.push({ kind: 'usage', currency, at, lines: usage, ref: { batchId } });
  if (carry.length > 0) drafts.push({ kind: 'carry', currency, at, lines: carry, ref: { batchId } });
  return drafts;
}

/** The bank's money for a settled batch clears what the batch left in receivable. */
export function settlementPosting(header: BatchHeader, options: { at: string; paymentId?: string }): EntryDraft | undefined {
  const paidNano = BigInt(header.amountMinor) * nanoPerMinor(header.currency);
  const lines = move(account.receivable(header.payer), account.bank, paidNano);
  if (lines.length === 0) return undefined;
  const ref: EntryRef = { batchId: header.batchId, ...(options.paymentId === undefined ? {} : { paymentId: options.paymentId }) };
  return { kind: 'settlement', currency: header.currency, at: options.at, lines, ref };
}

/** The idempotency key of a draft: a batch is used, carried and settled once; an entry reversed once; a refund paid once. */
function onceKeyOf(draft: EntryDraft): string | undefined {
  switch (draft.kind) {
    case 'usage':
    case 'carry':
    case 'settlement':
      assert(draft.ref.batchId !== undefined, `${draft.kind} entry without a batchId`);
      return keys.entryOnce(draft.kind, draft.ref.batchId);
    case 'reversal':
      assert(draft.ref.corrects !== undefined, 'reversal entry without the entry it reverses');
      return keys.entryOnce(draft.kind, String(draft.ref.corrects));
    case 'refund':
      assert(draft.ref.paymentId !== undefined, 'refund entry without a paymentId');
      return keys.entryOnce(draft.kind, draft.ref.paymentId);
    case 'correction':
      return undefined;
  }
}

const storedAmountOf = (line: StoredLine): bigint => ('debitNano' in line ? BigInt(line.debitNano) : -BigInt(line.creditNano));

/**
 * Why `lines` cannot be posted in `currency`, or undefined when they can: at least two
 * lines, at most {@link LINES_MAX}, known accounts, positive amounts, debits equal credits.
 */
export function linesProblem(currency: string, lines: readonly Line[]): string | undefined {
  if (lines.length < 2 || lines.length > LINES_MAX) return `has ${lines.length} lines, between 2 and ${LINES_MAX} are allowed`;
  let debits = 0n;
  let credits = 0n;
  for (const [i, line] of lines.entries()) {
    if (typeof line.account !== 'string' || !ACCOUNT.test(line.account)) return `lines[${i}].account ${JSON.stringify(line.account)} is not revenue, bank, refunds, receivable:<payer> or carried:<payer>`;
    const debit = 'debitNano' in line;
    const amount = debit ? line.debitNano : line.creditNano;
    if (typeof amount !== 'bigint' || amount <= 0n) return `lines[${i}] amount ${String(amount)} is not a positive integer of nano`;
    if (debit && 'creditNano' in line) return `lines[${i}] has both a debit and a credit`;
    if (debit) debits += amount;
    else credits += amount;
  }
  if (debits !== credits) return `debits ${debits} do not equal credits ${credits} nano in ${currency}`;
  return undefined;
}

function checkNote(note: OperatorNote, what: string): void {
  for (const [field, max] of [['operator', OPERATOR_CHARS_MAX], ['reason', REASON_CHARS_MAX]] as const) {
    const text = note[field];
    if (typeof text !== 'string' || text.trim() === '' || text.length > max) throw new RangeError(`Cannot post ${what}: ${field} must be 1 to ${max} characters`);
  }
}

function checkDraft(draft: EntryDraft): void {
  assert(ENTRY_KINDS.includes(draft.kind), `unknown entry kind ${draft.kind}`);
  minorDigits(draft.currency); // throws for a currency we do not settle in
  assert(!Number.isNaN(Date.parse(draft.at)), `entry time ${draft.at} is not a date`);
  for (const text of [draft.ref.batchId, draft.ref.paymentId]) assert(text === undefined || (text.length > 0 && text.length <= REF_CHARS_MAX), 'entry ref too long');
  // Unbalanced postings are a programmer error: operator input is checked before it gets here.
  const problem = linesProblem(draft.currency, draft.lines);
  assert(problem === undefined, `Cannot post ${draft.kind} entry: ${problem}`);
}

function toEntry(no: number, draft: EntryDraft): Entry {
  const lines: StoredLine[] = draft.lines.map((line) =>
    'debitNano' in line ? { account: line.account, debitNano: formatDecimal(line.debitNano, 0) } : { account: line.account, creditNano: formatDecimal(line.creditNano, 0) });
  return {
    no, at: draft.at, kind: draft.kind, currency: draft.currency, lines, ref: { ...draft.ref },
    ...(draft.operator === undefined ? {} : { operator: draft.operator }),
    ...(draft.reason === undefined ? {} : { reason: draft.reason }),
  };
}

function addEntry(byCurrency: Map<string, Map<string, bigint>>, entry: Entry): void {
  let accounts = byCurrency.get(entry.currency);
  if (!accounts) byCurrency.set(entry.currency, (accounts = new Map()));
  for (const line of entry.lines) accounts.set(line.account, (accounts.get(line.account) ?? 0n) + storedAmountOf(line));
}

function pairCount(byCurrency: ReadonlyMap<string, ReadonlyMap<string, bigint>>): number {
  let count = 0;
  for (const accounts of byCurrency.values()) count += accounts.size;
  return count;
}

/** Asserts the invariant every balanced entry keeps: per currency, all balances sum to zero. */
export function assertZeroSum(sheet: BalanceSheet, currencies: Iterable<string> = sheet.byCurrency.keys()): void {
  for (const currency of currencies) {
    let sum = 0n;
    for (const balance of sheet.byCurrency.get(currency)?.values() ?? []) sum += balance;
    assert(sum === 0n, `balances in ${currency} sum to ${sum} nano through entry ${sheet.throughEntryNo}, not zero`);
  }
}

/** The balance of one account (0 when it never moved). */
export function balanceIn(sheet: BalanceSheet, currency: string, accountName: string): bigint {
  return sheet.byCurrency.get(currency)?.get(accountName) ?? 0n;
}

export class Accounts {
  readonly #db: LedgerDb;
  readonly #clock: () => Date;
  readonly #accountsMax: number;
  /** Running balances through #entryNo, the current point; rebuilt from disk on open. */
  readonly #balances = new Map<string, Map<string, bigint>>();
  #entryNo = 0;
  /** Posts run one at a time so entry numbers are dense and every index check sees the last write. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(db: LedgerDb, options: AccountsOptions) {
    this.#db = db;
    this.#clock = options.clock;
    this.#accountsMax = options.accountsMax ?? ACCOUNTS_MAX_DEFAULT;
    if (!Number.isSafeInteger(this.#accountsMax) || this.#accountsMax < 1) throw new RangeError(`accountsMax: ${this.#accountsMax} is not a positive integer`);
  }

  static async open(db: LedgerDb, options: AccountsOptions): Promise<Accounts> {
    const book = new Accounts(db, options);
    const entryNo = ((await db.get(keys.entryNo)) as number | undefined) ?? 0;
    for await (const value of db.values(keys.entryRange)) {
      const entry = value as Entry;
      assert(entry.no === book.#entryNo + 1, `accounts entry ${entry.no} follows entry ${book.#entryNo}: the entry book has a gap`);
      addEntry(book.#balances, entry);
      book.#entryNo = entry.no;
    }
    assert(book.#entryNo === entryNo, `accounts hold entries through ${book.#entryNo} but ${keys.entryNo} says ${entryNo}`);
    assertZeroSum({ throughEntryNo: book.#entryNo, byCurrency: book.#balances });
    return book;
  }

  /** The number of the last entry posted (0 before the first). */
  get lastEntryNo(): number {
    return this.#entryNo;
  }

  /** Balances now, from memory (a copy the caller may keep). */
  current(): BalanceSheet {
    const byCurrency = new Map([...this.#balances].map(([currency, accounts]) => [currency, new Map(accounts)]));
    return { throughEntryNo: this.#entryNo, byCurrency };
  }

  /**
   * Balances per account and currency: now, or as they were through an entry number, or
   * at a time (every entry with `at` at or before it). Past points fold over the entries on
   * disk; memory stays bounded by the number of accounts.
   */
  async balances(asOf?: { entryNo: number } | { at: string }): Promise<BalanceSheet> {
    if (asOf === undefined) return this.current();
    const byCurrency = new Map<string, Map<string, bigint>>();
    let throughEntryNo = 0;
    if ('entryNo' in asOf) {
      if (!Number.isSafeInteger(asOf.entryNo) || asOf.entryNo < 0) throw new RangeError(`asOf.entryNo: ${asOf.entryNo} is not a non-negative integer`);
      if (asOf.entryNo >= this.#entryNo) return this.current();
      if (asOf.entryNo === 0) return { throughEntryNo, byCurrency };
      for await (const value of this.#db.values({ gt: keys.entryRange.gt, lte: keys.entry(asOf.entryNo) })) {
        addEntry(byCurrency, value as Entry);
        throughEntryNo = (value as Entry).no;
      }
    } else {
      const atMs = Date.parse(asOf.at);
      if (Number.isNaN(atMs)) throw new RangeError(`asOf.at: ${JSON.stringify(asOf.at)} is not an ISO date`);
      // Entries backfilled for old batches carry the batches' own times, so filter rather than stop.
      for await (const value of this.#db.values(keys.entryRange)) {
        const entry = value as Entry;
        if (Date.parse(entry.at) > atMs) continue;
        addEntry(byCurrency, entry);
        throughEntryNo = entry.no;
      }
    }
    return { throughEntryNo, byCurrency };
  }

  async get(entryNo: number): Promise<Entry | undefined> {
    return (await this.#db.get(keys.entry(entryNo))) as Entry | undefined;
  }

  /** Entries `from`..`to` inclusive, in order. */
  async *entries(from: number, to: number): AsyncGenerator<Entry> {
    for await (const value of this.#db.values({ gte: keys.entry(from), lte: keys.entry(to) })) yield value as Entry;
  }

  /** Whether an entry of `kind` was already posted for a batch. */
  async postedFor(kind: 'usage' | 'carry' | 'settlement', batchId: string): Promise<number | undefined> {
    return (await this.#db.get(keys.entryOnce(kind, batchId))) as number | undefined;
  }

  /**
   * Posts entries atomically together with `alsoWrite` (the caller's own state change),
   * in one fsynced write. A draft whose (kind, ref) was posted before is skipped and
   * reported as a duplicate; `alsoWrite` is written either way.
   */
  post(drafts: readonly EntryDraft[], alsoWrite: readonly LedgerOp[] = []): Promise<PostResult[]> {
    for (const draft of drafts) checkDraft(draft);
    const run = this.#tail.then(() => this.#post(drafts, alsoWrite));
    this.#tail = run.catch(() => {});
    return run;
  }

  async #post(drafts: readonly EntryDraft[], alsoWrite: readonly LedgerOp[]): Promise<PostResult[]> {
    const results: PostResult[] = [];
    const ops: LedgerOp[] = [...alsoWrite];
    const postedNow = new Map<string, number>();
    const entries: Entry[] = [];
    let entryNo = this.#entryNo;
    for (const draft of drafts) {
      const once = onceKeyOf(draft);
      if (once !== undefined) {
        const earlier = postedNow.get(once) ?? ((await this.#db.get(once)) as number | undefined);
        if (earlier !== undefined) {
          results.push({ status: 'duplicate', entryNo: earlier });
          continue;
        }
        postedNow.set(once, entryNo + 1);
        ops.push({ type: 'put', key: once, value: entryNo + 1 });
      }
      entryNo += 1;
      const entry = toEntry(entryNo, draft);
      ops.push({ type: 'put', key: keys.entry(entryNo), value: entry });
      entries.push(entry);
      results.push({ status: 'posted', entry });
    }
    if (entries.length > 0) {
      this.#checkRoom(entries);
      ops.push({ type: 'put', key: keys.entryNo, value: entryNo });
    }
    if (ops.length > 0) await writeDurably(this.#db, ops);
    for (const entry of entries) addEntry(this.#balances, entry);
    this.#entryNo = entryNo;
    assertZeroSum({ throughEntryNo: entryNo, byCurrency: this.#balances }, new Set(entries.map((entry) => entry.currency)));
    return results;
  }

  #checkRoom(entries: readonly Entry[]): void {
    const fresh = new Set<string>();
    for (const entry of entries) {
      for (const line of entry.lines) {
        if (!this.#balances.get(entry.currency)?.has(line.account)) fresh.add(`${entry.currency} ${line.account}`);
      }
    }
    const pairs = pairCount(this.#balances) + fresh.size;
    if (pairs > this.#accountsMax) throw new AccountsFullError(`Cannot post entry ${entries[0]!.no}: it would hold ${pairs} accounts, at most ${this.#accountsMax} (accountsMax)`);
  }

  /**
   * Fixes a posted entry by a new `correction` entry naming it, in the same currency, with
   * the operator's own balanced lines. The corrected entry is never changed.
   */
  async correct(entryNo: number, options: OperatorNote & { lines: Line[] }): Promise<Entry> {
    checkNote(options, `a correction of entry ${entryNo}`);
    const corrected = await this.#mustGet(entryNo, 'correct');
    const problem = linesProblem(corrected.currency, options.lines);
    if (problem !== undefined) throw new RangeError(`Cannot correct entry ${entryNo}: the correction ${problem}`);
    const ref: EntryRef = { corrects: entryNo, ...(corrected.ref.batchId === undefined ? {} : { batchId: corrected.ref.batchId }) };
    const draft: EntryDraft = { kind: 'correction', currency: corrected.currency, at: this.#now(), lines: options.lines, ref, operator: options.operator, reason: options.reason };
    const [result] = await this.post([draft]);
    assert(result?.status === 'posted');
    return result.entry;
  }

  /** Undoes a whole entry with its mirror image; an entry is reversed at most once. */
  async reverse(entryNo: number, note: OperatorNote): Promise<PostResult> {
    checkNote(note, `a reversal of entry ${entryNo}`);
    const reversed = await this.#mustGet(entryNo, 'reverse');
    const lines: Line[] = reversed.lines.map((line) =>
      'debitNano' in line ? { account: line.account, creditNano: BigInt(line.debitNano) } : { account: line.account, debitNano: BigInt(line.creditNano) });
    const ref: EntryRef = { corrects: entryNo, ...(reversed.ref.batchId === undefined ? {} : { batchId: reversed.ref.batchId }) };
    const [result] = await this.post([{ kind: 'reversal', currency: reversed.currency, at: this.#now(), lines, ref, ...note }]);
    assert(result !== undefined);
    return result;
  }

  /** Money paid back to a payer: Dr refunds, Cr bank. `paymentId` (the refund payment) posts it once. */
  async refund(options: OperatorNote & { currency: string; amountNano: bigint; paymentId: string; batchId?: string }): Promise<PostResult> {
    checkNote(options, 'a refund');
    if (typeof options.paymentId !== 'string' || options.paymentId === '' || options.paymentId.length > REF_CHARS_MAX) throw new RangeError(`Cannot post a refund: paymentId must be 1 to ${REF_CHARS_MAX} characters`);
    minorDigits(options.currency);
    if (typeof options.amountNano !== 'bigint' || options.amountNano <= 0n) throw new RangeError(`Cannot post a refund: amountNano ${String(options.amountNano)} is not a positive integer`);
    const ref: EntryRef = { paymentId: options.paymentId, ...(options.batchId === undefined ? {} : { batchId: options.batchId }) };
    const lines = move(account.bank, account.refunds, options.amountNano);
    const [result] = await this.post([{ kind: 'refund', currency: options.currency, at: this.#now(), lines, ref, operator: options.operator, reason: options.reason }]);
    assert(result !== undefined);
    return result;
  }

  async #mustGet(entryNo: number, verb: string): Promise<Entry> {
    if (!Number.isSafeInteger(entryNo) || entryNo < 1) throw new RangeError(`Cannot ${verb} entry ${entryNo}: not an entry number`);
    const entry = await this.get(entryNo);
    if (!entry) throw new RangeError(`Cannot ${verb} entry ${entryNo}: no such entry`);
    return entry;
  }

  #now(): string {
    return this.#clock().toISOString();
  }
}
