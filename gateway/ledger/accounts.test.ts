import { AssertionError } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nanoPerMinor } from '../../protocol/money.ts';
import { generateSigningKey } from '../../protocol/signing.ts';
import type { BatchHeader, UsageRecord } from '../../protocol/usage-record.ts';
import { propertyRuns } from '../../test/vectors/property-seed.ts';
import { BatchBook } from '../settlement/batch-book.ts';
import { Accounts, AccountsFullError, account, balanceIn, sealPostings, settlementPosting, type BalanceSheet, type EntryDraft } from './accounts.ts';
import { canonicalRecordJson } from '../../protocol/canonical-usage.ts';
import type { Journal, JournalEntry } from './journal.ts';
import { keys, openLedgerDb, type LedgerDb } from './ledger-db.ts';

const clock = (): Date => new Date('2026-11-27T12:00:00.000Z');
const signingKey = generateSigningKey();
const silent = pino({ level: 'silent' });

function header(overrides: Partial<BatchHeader> = {}): BatchHeader {
  return {
    v: 1, batchId: 'gw/1', gatewayId: 'gw', payer: 'acme', currency: 'EUR', recordCount: 1, firstIndex: 1, lastIndex: 1, merkleRoot: 'a'.repeat(64),
    totalNano: '12345678', carriedInNano: '4000000', amountMinor: '1', carriedOutNano: '6345678', sealedAt: '2026-11-27T11:00:00.000Z', chainIndex: 1, chainHash: 'b'.repeat(64),
    ...overrides,
  };
}

/** Just what BatchBook reads of a journal: its head and its records in order. */
class MemoryJournal {
  readonly records: UsageRecord[] = [];
  get head(): { index: number; hash: string } {
    return { index: this.records.length, hash: this.records.length.toString(16).padStart(64, '0') };
  }
  add(payer: string, currency: string, amountNano: bigint): void {
    const index = this.records.length + 1;
    this.records.push({
      v: 1, index, gatewayId: 'gw', deviceId: `dev-${payer}`, seq: index, meter: 'cycles', quantity: '1', unit: 'cycle', deviceTime: '2026-11-27T12:00:00.000Z',
      receivedAt: '2026-11-27T12:00:00.000Z', payer, tariff: 'cycles@1', unitPrice: '0', currency, amountNano: amountNano.toString(), messageHash: 'a'.repeat(64),
    });
  }
  async *entries(from: number, to: number): AsyncGenerator<JournalEntry> {
    for (const record of this.records.slice(from - 1, to)) yield { record, prevHash: '', hash: '' };
  }
  async *canonicalRecords(from: number, to: number): AsyncGenerator<string[]> {
    yield this.records.slice(from - 1, to).map((record) => canonicalRecordJson(record));
  }
  asJournal(): Journal {
    return this as unknown as Journal;
  }
}

const openBook = (db: LedgerDb, journal: MemoryJournal): Promise<BatchBook> => BatchBook.open(db, journal.asJournal(), { gatewayId: 'gw', key: signingKey, clock, logger: silent });

const sumOf = (sheet: BalanceSheet, currency: string): bigint => [...(sheet.byCurrency.get(currency)?.values() ?? [])].reduce((a, b) => a + b, 0n);

async function keysWithPrefix(db: LedgerDb, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const key of db.keys({ gt: prefix, lt: `${prefix}~` })) out.push(key);
  return out;
}

describe('Accounts', () => {
  let dir: string;
  let db: LedgerDb;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'accounts-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves a sealed batch\'s amountMinor in receivable and its remainder in carried', async () => {
    const accounts = await Accounts.open(db, { clock });
    const results = await accounts.post(sealPostings(header()));
    expect(results.map((r) => r.status === 'posted' && r.entry.kind)).toEqual(['usage', 'carry']);
    const sheet = await accounts.balances();
    expect(balanceIn(sheet, 'EUR', account.receivable('acme'))).toBe(1n * nanoPerMinor('EUR'));
    expect(balanceIn(sheet, 'EUR', account.carried('acme'))).toBe(6_345_678n - 4_000_000n);
    expect(balanceIn(sheet, 'EUR', account.revenue)).toBe(-12_345_678n);
    expect(sumOf(sheet, 'EUR')).toBe(0n);
    const stored = await accounts.get(1);
    expect(stored).toEqual({ no: 1, at: '2026-11-27T11:00:00.000Z', kind: 'usage', currency: 'EUR', ref: { batchId: 'gw/1' },
      lines: [{ account: 'receivable:acme', debitNano: '12345678' }, { account: 'revenue', creditNano: '12345678' }] });
  });

  it('clears the receivable when a batch settles, and moves nothing for a batch with nothing to pay', async () => {
    const accounts = await Accounts.open(db, { clock });
    await accounts.post([...sealPostings(header()), settlementPosting(header(), { at: '2026-11-27T11:05:00.000Z', paymentId: 'pay-1' })!]);
    const sheet = await accounts.balances();
    expect(balanceIn(sheet, 'EUR', account.receivable('acme'))).toBe(0n);
    expect(balanceIn(sheet, 'EUR', account.bank)).toBe(10_000_000n);
    expect(settlementPosting(header({ amountMinor: '0' }), { at: '2026-11-27T11:05:00.000Z' })).toBeUndefined();
  });

  it('refuses an unbalanced entry as a programmer error and writes nothing', async () => {
    const accounts = await Accounts.open(db, { clock });
    const unbalanced: EntryDraft = { kind: 'usage', currency: 'EUR', at: '2026-11-27T11:00:00.000Z', ref: { batchId: 'gw/1' },
      lines: [{ account: 'receivable:acme', debitNano: 5n }, { account: 'revenue', creditNano: 4n }] };
    expect(() => accounts.post([unbalanced])).toThrow(AssertionError);
    expect(() => accounts.post([{ ...unbalanced, lines: [{ account: 'receivable:acme', debitNano: 5n }, { account: 'wallet', creditNano: 5n }] }])).toThrow(/wallet/);
    expect(() => accounts.post([{ ...unbalanced, lines: [{ account: 'receivable:acme', debitNano: 0n }, { account: 'revenue', creditNano: 0n }] }])).toThrow(/positive/);
    expect(accounts.lastEntryNo).toBe(0);
    expect(await keysWithPrefix(db, 'e!')).toEqual([]);
    // Its balanced twin goes through.
    await accounts.post([{ ...unbalanced, lines: [{ account: 'receivable:acme', debitNano: 5n }, { account: 'revenue', creditNano: 5n }] }]);
    expect(accounts.lastEntryNo).toBe(1);
  });

  it('posts the entries of a (kind, batch) once, also when called again after reopening', async () => {
    const first = await Accounts.open(db, { clock });
    const drafts = sealPostings(header());
    const posted = await first.post([...drafts, ...drafts]);
    expect(posted.map((r) => r.status)).toEqual(['posted', 'posted', 'duplicate', 'duplicate']);
    expect((await first.post(drafts)).map((r) => r.status)).toEqual(['duplicate', 'duplicate']);
    const reopened = await Accounts.open(db, { clock });
    expect(await reopened.post(drafts)).toEqual([{ status: 'duplicate', entryNo: 1 }, { status: 'duplicate', entryNo: 2 }]);
    expect(reopened.lastEntryNo).toBe(2);
    expect(reopened.current()).toEqual(first.current());
    // A different batch of the same payer is a new posting.
    expect((await reopened.post(sealPostings(header({ batchId: 'gw/2' })))).map((r) => r.status)).toEqual(['posted', 'posted']);
  });

  it('corrects an entry with a new entry naming it, the operator and the reason, and never edits it', async () => {
    const accounts = await Accounts.open(db, { clock });
    await accounts.post(sealPostings(header()));
    const before = await accounts.get(1);
    const correction = await accounts.correct(1, { operator: 'ops-anna', reason: 'meter cnc-7 double-counted 2 cycles', lines: [
      { account: account.revenue, debitNano: 600_000n }, { account: account.receivable('acme'), creditNano: 600_000n }] });
    expect(correction).toMatchObject({ no: 3, kind: 'correction', currency: 'EUR', ref: { corrects: 1, batchId: 'gw/1' }, operator: 'ops-anna', reason: 'meter cnc-7 double-counted 2 cycles', at: clock().toISOString() });
    expect(await accounts.get(1)).toEqual(before);
    expect(balanceIn(accounts.current(), 'EUR', account.receivable('acme'))).toBe(10_000_000n - 600_000n);
  });

  it('refuses a correction without an operator or reason, unbalanced, or of no entry', async () => {
    const accounts = await Accounts.open(db, { clock });
    await accounts.post(sealPostings(header()));
    const lines = [{ account: account.revenue, debitNano: 1n }, { account: account.receivable('acme'), creditNano: 1n }];
    await expect(accounts.correct(1, { operator: '', reason: 'typo', lines })).rejects.toThrow(/operator/);
    await expect(accounts.correct(1, { operator: 'ops-anna', reason: ' ', lines })).rejects.toThrow(/reason/);
    await expect(accounts.correct(1, { operator: 'ops-anna', reason: 'typo', lines: [lines[0]!, { account: 'revenue', creditNano: 2n }] })).rejects.toThrow(/Cannot correct entry 1: the correction debits 1 do not equal credits 2/);
    await expect(accounts.correct(9, { operator: 'ops-anna', reason: 'typo', lines })).rejects.toThrow(/Cannot correct entry 9: no such entry/);
    expect(accounts.lastEntryNo).toBe(2);
  });

  it('reverses an entry once with its mirror image', async () => {
    const accounts = await Accounts.open(db, { clock });
    await accounts.post(sealPostings(header()));
    const note = { operator: 'ops-anna', reason: 'batch sealed against the wrong payer' };
    const reversal = await accounts.reverse(1, note);
    expect(reversal).toMatchObject({ status: 'posted', entry: { kind: 'reversal', ref: { corrects: 1 }, ...note,
      lines: [{ account: 'receivable:acme', creditNano: '12345678' }, { account: 'revenue', debitNano: '12345678' }] } });
    expect(await accounts.reverse(1, note)).toEqual({ status: 'duplicate', entryNo: 3 });
    expect(balanceIn(accounts.current(), 'EUR', account.revenue)).toBe(0n);
  });

  it('pays a refund out of the bank into refunds, once per refund payment', async () => {
    const accounts = await Accounts.open(db, { clock });
    const refund = { operator: 'ops-anna', reason: 'goodwill for the outage on 27 Nov', currency: 'GBP', amountNano: 450_000_000n, paymentId: 'refund-77' };
    expect(await accounts.refund(refund)).toMatchObject({ status: 'posted', entry: { no: 1, kind: 'refund', ref: { paymentId: 'refund-77' } } });
    expect(await accounts.refund(refund)).toEqual({ status: 'duplicate', entryNo: 1 });
    const sheet = accounts.current();
    expect([balanceIn(sheet, 'GBP', account.refunds), balanceIn(sheet, 'GBP', account.bank)]).toEqual([450_000_000n, -450_000_000n]);
    await expect(accounts.refund({ ...refund, paymentId: 'refund-78', amountNano: 0n })).rejects.toThrow(/not a positive integer/);
    await expect(accounts.refund({ ...refund, paymentId: 'refund-78', currency: 'XAU' })).rejects.toThrow(/currency/);
  });

  it('gives the balances as of an earlier entry or time, and the current ones rebuilt on open', async () => {
    const accounts = await Accounts.open(db, { clock });
    await accounts.post(sealPostings(header()));
    await accounts.post(sealPostings(header({ batchId: 'gw/2', sealedAt: '2026-11-27T11:30:00.000Z', totalNano: '20000000', carriedInNano: '6345678', amountMinor: '2', carriedOutNano: '6345678' })));
    const afterFirst = await accounts.balances({ entryNo: 1 });
    expect(afterFirst.throughEntryNo).toBe(1);
    expect(balanceIn(afterFirst, 'EUR', account.revenue)).toBe(-12_345_678n);
    expect(balanceIn(afterFirst, 'EUR', account.carried('acme'))).toBe(0n);
    const atHalfPast = await accounts.balances({ at: '2026-11-27T11:15:00.000Z' });
    expect(atHalfPast.throughEntryNo).toBe(2);
    expect(balanceIn(atHalfPast, 'EUR', account.receivable('acme'))).toBe(10_000_000n);
    expect(await accounts.balances({ entryNo: 0 })).toEqual({ throughEntryNo: 0, byCurrency: new Map() });
    await expect(accounts.balances({ at: 'yesterday' })).rejects.toThrow(RangeError);
    const now = accounts.current();
    expect(balanceIn(now, 'EUR', account.receivable('acme'))).toBe(30_000_000n);
    expect((await Accounts.open(db, { clock })).current()).toEqual(now);
    expect(await accounts.balances({ entryNo: 99 })).toEqual(now);
  });

  it('refuses an entry that would hold more accounts than accountsMax, writing nothing', async () => {
    const accounts = await Accounts.open(db, { clock, accountsMax: 3 });
    await accounts.post(sealPostings(header({ carriedInNano: '0', carriedOutNano: '2345678' })));
    await expect(accounts.post(sealPostings(header({ batchId: 'gw/2', payer: 'north' })))).rejects.toThrow(AccountsFullError);
    expect(accounts.lastEntryNo).toBe(2);
    expect(await keysWithPrefix(db, 'e!')).toHaveLength(2);
  });
});

describe('BatchBook postings', () => {
  let dir: string;
  let db: LedgerDb;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'accounts-book-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('posts usage and carry with the seal, settlement with settled, and nothing on rejection', async () => {
    const journal = new MemoryJournal();
    const book = await openBook(db, journal);
    journal.add('acme', 'EUR', 12_345_678n);
    journal.add('north', 'JPY', 2_500_000_000n);
    const [acme, north] = await book.seal();
    expect(book.accounts.lastEntryNo).toBe(4); // usage + carry for each
    await book.transition(acme!.batchNo, 'settled', { paymentId: 'pay-1' });
    await book.transition(north!.batchNo, 'rejected', {}, 'bank reports RJCT');
    const sheet = book.accounts.current();
    expect(balanceIn(sheet, 'EUR', account.receivable('acme'))).toBe(0n);
    expect(balanceIn(sheet, 'EUR', account.bank)).toBe(10_000_000n);
    expect(balanceIn(sheet, 'JPY', account.receivable('north'))).toBe(2_000_000_000n); // still owed
    expect(balanceIn(sheet, 'JPY', account.carried('north'))).toBe(500_000_000n);
    expect(await book.accounts.get(5)).toMatchObject({ kind: 'settlement', ref: { batchId: 'gw/1', paymentId: 'pay-1' } });
    expect(book.accounts.lastEntryNo).toBe(5);
  });

  it('backfills the entries of batches sealed before the accounts existed, once', async () => {
    const journal = new MemoryJournal();
    const book = await openBook(db, journal);
    journal.add('acme', 'EUR', 12_345_678n);
    await book.seal();
    await book.transition(1, 'settled', { paymentId: 'pay-1' });
    const expected = book.accounts.current();
    // An older gateway wrote the same batches without any entries.
    await db.batch([...(await keysWithPrefix(db, 'e!')), ...(await keysWithPrefix(db, 'x!')), keys.entryNo].map((key) => ({ type: 'del' as const, key })));
    const reopened = await openBook(db, journal);
    expect(reopened.accounts.current()).toEqual(expected);
    const again = await openBook(db, journal);
    expect(again.accounts.lastEntryNo).toBe(expected.throughEntryNo);
  });
});

type Step =
  | { t: 'use'; payer: number; currency: string; amountNano: bigint }
  | { t: 'seal' }
  | { t: 'settle' | 'reject'; pick: number }
  | { t: 'correct'; pick: number; amountNano: bigint; onCarried: boolean }
  | { t: 'reopen' };

const PAYERS = ['acme', 'north'];
const CURRENCIES = ['EUR', 'GBP', 'JPY'];

const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.record({ t: fc.constant('use' as const), payer: fc.nat(PAYERS.length - 1), currency: fc.constantFrom(...CURRENCIES), amountNano: fc.bigInt(0n, 3_000_000_000n) }), weight: 6 },
  { arbitrary: fc.constant({ t: 'seal' as const }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constantFrom('settle' as const, 'reject' as const), pick: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant('correct' as const), pick: fc.nat(), amountNano: fc.bigInt(-1_000_000_000n, 1_000_000_000n).filter((n) => n !== 0n), onCarried: fc.boolean() }), weight: 1 },
  { arbitrary: fc.constant({ t: 'reopen' as const }), weight: 1 },
);

describe('Accounts property', () => {
  it('keeps every currency at zero and receivable + carried at usage − settlements + corrections, exactly', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 30 }), async (steps) => {
        const dir = await mkdtemp(path.join(tmpdir(), 'accounts-prop-'));
        let db = await openLedgerDb(path.join(dir, 'ledger'));
        try {
          const journal = new MemoryJournal();
          let book = await openBook(db, journal);
          const expected = new Map<string, bigint>(); // `${currency} ${payer}` → usage − settled + corrections
          const corrected = new Map<string, bigint>(); // `${currency} ${account}` → corrections posted to it
          const add = (currency: string, payer: string, amount: bigint): void => void expected.set(`${currency} ${payer}`, (expected.get(`${currency} ${payer}`) ?? 0n) + amount);
          for (const s of steps) {
            if (s.t === 'use') {
              journal.add(PAYERS[s.payer]!, s.currency, s.amountNano);
              add(s.currency, PAYERS[s.payer]!, s.amountNano);
            } else if (s.t === 'seal') {
              await book.seal();
            } else if (s.t === 'settle' || s.t === 'reject') {
              const open = book.openBatches();
              const batch = open[s.pick % Math.max(open.length, 1)];
              if (!batch) continue;
              await book.transition(batch.batchNo, s.t === 'settle' ? 'settled' : 'rejected', { paymentId: `pay-${batch.batchNo}` });
              if (s.t === 'settle') add(batch.header.currency, batch.header.payer, -BigInt(batch.header.amountMinor) * nanoPerMinor(batch.header.currency));
            } else if (s.t === 'correct') {
              if (book.accounts.lastEntryNo === 0) continue;
              const entry = (await book.accounts.get(1 + (s.pick % book.accounts.lastEntryNo)))!;
              const payer = PAYERS[s.pick % PAYERS.length]!;
              const target = s.onCarried ? account.carried(payer) : account.receivable(payer);
              const [from, to, amount] = s.amountNano > 0n ? [account.revenue, target, s.amountNano] : [target, account.revenue, -s.amountNano];
              await book.accounts.correct(entry.no, { operator: 'prop', reason: 'property test', lines: [{ account: to, debitNano: amount }, { account: from, creditNano: amount }] });
              add(entry.currency, payer, s.amountNano);
              corrected.set(`${entry.currency} ${target}`, (corrected.get(`${entry.currency} ${target}`) ?? 0n) + s.amountNano);
            } else {
              const before = book.accounts.current();
              await db.close();
              db = await openLedgerDb(path.join(dir, 'ledger'));
              book = await openBook(db, journal);
              expect(book.accounts.current()).toEqual(before);
            }
          }
          const sheet = book.accounts.current();
          for (const currency of CURRENCIES) expect(sumOf(sheet, currency)).toBe(0n);
          for (const currency of CURRENCIES) {
            for (const payer of PAYERS) {
              const held = balanceIn(sheet, currency, account.receivable(payer)) + balanceIn(sheet, currency, account.carried(payer));
              // Records not yet sealed are not in the accounts yet.
              const unsealed = journal.records.slice(book.sealedThrough).filter((r) => r.payer === payer && r.currency === currency).reduce((sum, r) => sum + BigInt(r.amountNano), 0n);
              expect(held).toBe((expected.get(`${currency} ${payer}`) ?? 0n) - unsealed);
            }
          }
          // Each side on its own: carried is the batch book's remainder, receivable what batches
          // not settled ask for (a rejected batch stays owed), each plus its corrections.
          const carries = await book.carried();
          const owed = new Map<string, bigint>();
          for await (const batch of book.all()) {
            if (batch.state === 'settled' || batch.state === 'carried') continue;
            const k = `${batch.header.currency} ${account.receivable(batch.header.payer)}`;
            owed.set(k, (owed.get(k) ?? 0n) + BigInt(batch.header.amountMinor) * nanoPerMinor(batch.header.currency));
          }
          for (const currency of CURRENCIES) {
            for (const payer of PAYERS) {
              const [receivable, carried] = [account.receivable(payer), account.carried(payer)];
              expect(balanceIn(sheet, currency, carried)).toBe((carries.get(`${payer}!${currency}`) ?? 0n) + (corrected.get(`${currency} ${carried}`) ?? 0n));
              expect(balanceIn(sheet, currency, receivable)).toBe((owed.get(`${currency} ${receivable}`) ?? 0n) + (corrected.get(`${currency} ${receivable}`) ?? 0n));
            }
          }
          const folded = await book.accounts.balances({ at: '2999-01-01T00:00:00.000Z' });
          expect(folded).toEqual(sheet);
        } finally {
          await db.close();
          await rm(dir, { recursive: true, force: true });
        }
      }),
      propertyRuns(40),
    );
  }, 120_000);
});
