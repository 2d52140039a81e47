import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { demoGatewayConfig } from '../../cli/demo-setup.ts';
import { canonicalRecordJson } from '../../protocol/canonical-usage.ts';
import { generateSigningKey } from '../../protocol/signing.ts';
import type { UsageRecord } from '../../protocol/usage-record.ts';
import { parseConfig } from '../config.ts';
import type { Journal } from '../ledger/journal.ts';
import { keys, openLedgerDb, type LedgerDb } from '../ledger/ledger-db.ts';
import { BatchBook, type StoredBatch } from './batch-book.ts';
import { compileCron } from './cron-next.ts';
import { bookSeals } from './open-balances.ts';
import { nextStep, SettlementSchedule, settlementPlans, type StoredDue } from './schedule.ts';

const silent = pino({ level: 'silent' });
const signingKey = generateSigningKey();
const NANO_PER_CENT = 10_000_000n;

/** What the schedule and the batch book read of a journal: its head and its records in order. */
class MemoryJournal {
  readonly records: UsageRecord[] = [];
  get head(): { index: number; hash: string } {
    return { index: this.records.length, hash: this.records.length.toString(16).padStart(64, '0') };
  }
  add(payer: string, currency: string, cents: bigint): void {
    const index = this.records.length + 1;
    this.records.push({
      v: 1, index, gatewayId: 'gw', deviceId: `dev-${payer}`, seq: index, meter: 'cycles', quantity: '1', unit: 'cycle', deviceTime: '2026-05-01T12:00:00.000Z',
      receivedAt: '2026-05-01T12:00:00.000Z', payer, tariff: 'cycles@1', unitPrice: '0', currency, amountNano: (cents * NANO_PER_CENT).toString(), messageHash: 'a'.repeat(64),
    });
  }
  async *entries(from: number, to: number): AsyncGenerator<{ record: UsageRecord; prevHash: string; hash: string }> {
    for (const record of this.records.slice(from - 1, to)) yield { record, prevHash: '', hash: '' };
  }
  async *canonicalRecords(from: number, to: number): AsyncGenerator<string[]> {
    yield this.records.slice(from - 1, to).map((record) => canonicalRecordJson(record));
  }
  asJournal(): Journal {
    return this as unknown as Journal;
  }
}

/** A config whose payers settle as given (the demo's payers: acme-plant EUR, northline-logistics GBP, harbour-yard EUR). */
function configWith(settlement: Record<string, Record<string, string>>, sealCron = '0 0 1 1 *', timezone = 'UTC'): ReturnType<typeof parseConfig> {
  const raw = demoGatewayConfig({ mqtt: 1883, http: 8080, bank: 8090 }, sealCron);
  const payers = raw.payers as Record<string, Record<string, unknown>>;
  for (const [payer, s] of Object.entries(settlement)) payers[payer]!.settlement = s;
  return parseConfig({ ...raw, settlement: { ...(raw.settlement as object), sealCron, timezone, bank: { url: 'http://127.0.0.1:8090/', token: 't' } } });
}

const LONDON_0130 = { cron: '30 1 * * *', timeZone: 'Europe/London' };

describe('SettlementSchedule on a fake clock with a real LevelDB', () => {
  let dir: string;
  let db: LedgerDb;
  let journal: MemoryJournal;
  let nowMs: number;
  let schedule: SettlementSchedule | undefined;
  /** Each run's seal, as [payer, clock time]. */
  let runs: Array<[string, string]>;
  const clock = (): Date => new Date(nowMs);
  const at = (iso: string): void => {
    nowMs = Date.parse(iso);
  };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'schedule-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
    journal = new MemoryJournal();
    runs = [];
  });
  afterEach(async () => {
    await schedule?.stop();
    schedule = undefined;
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts (or restarts) the gateway's part: batch book and schedule on the same LevelDB. */
  async function boot(config: ReturnType<typeof parseConfig>, options: { crash?: 'before seal' | 'after seal' } = {}): Promise<BatchBook> {
    const book = await BatchBook.open(db, journal.asJournal(), { gatewayId: 'gw', key: signingKey, clock, logger: silent });
    const seals = bookSeals({ db, book, journal });
    schedule = new SettlementSchedule({
      db, plans: settlementPlans(config), clock, logger: silent, timer: false,
      seals: {
        ...seals,
        async sealPayer(payer) {
          if (options.crash === 'before seal') throw new Error('power lost before the seal');
          await seals.sealPayer(payer);
          runs.push([payer, clock().toISOString()]);
          if (options.crash === 'after seal') throw new Error('power lost after the seal');
        },
      },
    });
    await schedule.start();
    return book;
  }

  /** The process dies: nothing more runs, LevelDB is closed and opened again. */
  async function crash(): Promise<void> {
    await schedule?.stop();
    schedule = undefined;
    await db.close();
    db = await openLedgerDb(path.join(dir, 'ledger'));
  }

  async function batchesOf(payer: string): Promise<StoredBatch[]> {
    const out: StoredBatch[] = [];
    for await (const value of db.values(keys.batchRange)) if ((value as StoredBatch).header.payer === payer) out.push(value as StoredBatch);
    return out;
  }

  const storedDue = async (payer: string): Promise<StoredDue> => (await db.get(keys.due(payer))) as StoredDue;

  it('stores the first due time at start and runs nothing', async () => {
    at('2026-05-01T12:00:00Z');
    journal.add('acme-plant', 'EUR', 100n);
    await boot(configWith({ 'acme-plant': LONDON_0130 }));
    expect(await storedDue('acme-plant')).toEqual({ v: 1, dueAt: '2026-05-02T00:30:00.000Z', cron: '30 1 * * *', timeZone: 'Europe/London' });
    expect(runs).toEqual([]);
  });

  it('runs once when the clock jumps forward over several due times, then counts the next from now', async () => {
    at('2026-05-01T12:00:00Z');
    await boot(configWith({ 'acme-plant': LONDON_0130 }));
    journal.add('acme-plant', 'EUR', 100n);
    at('2026-05-05T12:00:00Z');
    await schedule!.tick();
    await schedule!.tick();
    expect(runs).toEqual([['acme-plant', '2026-05-05T12:00:00.000Z']]);
    expect(await batchesOf('acme-plant')).toHaveLength(1);
    expect((await storedDue('acme-plant')).dueAt).toBe('2026-05-06T00:30:00.000Z');
  });

  it('does not run a period again when the clock jumps back', async () => {
    at('2026-05-01T12:00:00Z');
    await boot(configWith({ 'acme-plant': LONDON_0130 }));
    journal.add('acme-plant', 'EUR', 100n);
    at('2026-05-02T00:31:00Z');
    await schedule!.tick();
    journal.add('acme-plant', 'EUR', 200n);
    for (const iso of ['2026-05-01T23:00:00Z', '2026-05-02T00:30:00Z', '2026-05-02T00:45:00Z', '2026-04-20T00:30:00Z', '2026-05-03T00:29:59Z']) {
      at(iso);
      await schedule!.tick();
    }
    expect(runs.map(([, time]) => time)).toEqual(['2026-05-02T00:31:00.000Z']);
    at('2026-05-03T00:30:00Z');
    await schedule!.tick();
    expect(runs.map(([, time]) => time)).toEqual(['2026-05-02T00:31:00.000Z', '2026-05-03T00:30:00.000Z']);
    expect((await batchesOf('acme-plant')).map((b) => b.header.recordCount)).toEqual([1, 1]);
  });

  /** Steps the clock five minutes at a time from `from` to `to`, with a record every hour, ticking at each step. */
  async function walk(from: string, to: string): Promise<void> {
    for (nowMs = Date.parse(from); nowMs <= Date.parse(to); nowMs += 300_000) {
      if (nowMs % 3_600_000 === 0) journal.add('acme-plant', 'EUR', 10n);
      await schedule!.tick();
    }
  }

  const londonDate = (iso: string): string => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/London' }).format(new Date(iso));

  it('runs daily 01:30 Europe/London once on the spring-forward day, at 02:00 BST', async () => {
    at('2026-03-27T12:00:00Z');
    await boot(configWith({ 'acme-plant': LONDON_0130 }));
    await walk('2026-03-27T12:00:00Z', '2026-03-31T12:00:00Z');
    // 01:30 GMT, then 02:00 BST (01:30 does not exist on 29 March), then 01:30 BST.
    expect(runs.map(([, time]) => time)).toEqual(['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z', '2026-03-31T00:30:00.000Z']);
    expect(runs.map(([, time]) => londonDate(time))).toEqual(['2026-03-28', '2026-03-29', '2026-03-30', '2026-03-31']);
    expect(await batchesOf('acme-plant')).toHaveLength(4);
  });

  it('runs daily 01:30 Europe/London once on the fall-back day, at the first 01:30', async () => {
    at('2026-10-23T12:00:00Z');
    await boot(configWith({ 'acme-plant': LONDON_0130 }));
    await walk('2026-10-23T12:00:00Z', '2026-10-27T12:00:00Z');
    // 01:30 BST on the 24th and 25th (the first of the two 01:30s), then 01:30 GMT.
    expect(runs.map(([, time]) => time)).toEqual(['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z', '2026-10-27T01:30:00.000Z']);
    expect(runs.map(([, time]) => londonDate(time))).toEqual(['2026-10-24', '2026-10-25', '2026-10-26', '2026-10-27']);
    expect(await batchesOf('acme-plant')).toHaveLength(4);
  });

  it('runs one catch-up settlement after a week switched off, not 168 hourly ones', async () => {
    at('2026-05-01T12:00:00Z');
    const hourly = configWith({}, '0 * * * *');
    await boot(hourly);
    journal.add('northline-logistics', 'GBP', 500n);
    await crash();
    at('2026-05-08T12:20:00Z');
    await boot(hourly);
    await schedule!.tick();
    // Every payer without a schedule of its own follows settlement.sealCron: each runs once.
    expect(runs).toEqual(['acme-plant', 'northline-logistics', 'harbour-yard'].map((payer) => [payer, '2026-05-08T12:20:00.000Z']));
    expect(await batchesOf('northline-logistics')).toHaveLength(1);
    expect((await storedDue('acme-plant')).dueAt).toBe('2026-05-08T13:00:00.000Z');
    expect((await storedDue('northline-logistics')).dueAt).toBe('2026-05-08T13:00:00.000Z');
  });

  it('runs the period once after a crash between storing the next due time and sealing', async () => {
    at('2026-05-01T12:00:00Z');
    const config = configWith({ 'acme-plant': LONDON_0130 });
    await boot(config, { crash: 'before seal' });
    journal.add('acme-plant', 'EUR', 100n);
    at('2026-05-02T00:30:00Z');
    await schedule!.tick();
    const intent = await storedDue('acme-plant');
    expect(intent).toMatchObject({ dueAt: '2026-05-03T00:30:00.000Z', running: { reason: 'due', batchNoBefore: 0 } });
    expect(await batchesOf('acme-plant')).toHaveLength(0);
    await crash();
    journal.add('acme-plant', 'EUR', 200n); // arrives while the gateway is down
    at('2026-05-02T00:40:00Z');
    await boot(config);
    await schedule!.tick();
    expect((await batchesOf('acme-plant')).map((b) => b.header.recordCount)).toEqual([2]);
    expect(await storedDue('acme-plant')).toEqual({ v: 1, dueAt: '2026-05-03T00:30:00.000Z', cron: '30 1 * * *', timeZone: 'Europe/London' });
  });

  it('does not seal again after a crash between sealing and clearing the run', async () => {
    at('2026-05-01T12:00:00Z');
    const config = configWith({ 'acme-plant': LONDON_0130 });
    await boot(config, { crash: 'after seal' });
    journal.add('acme-plant', 'EUR', 100n);
    at('2026-05-02T00:30:00Z');
    await schedule!.tick();
    expect((await storedDue('acme-plant')).running).toBeDefined();
    await crash();
    journal.add('acme-plant', 'EUR', 200n);
    at('2026-05-02T00:40:00Z');
    await boot(config);
    await schedule!.tick();
    // One batch for the period; the record that came later waits for the next due time.
    expect((await batchesOf('acme-plant')).map((b) => b.header.recordCount)).toEqual([1]);
    expect((await storedDue('acme-plant')).running).toBeUndefined();
    at('2026-05-03T00:30:00Z');
    await schedule!.tick();
    expect((await batchesOf('acme-plant')).map((b) => b.header.recordCount)).toEqual([1, 1]);
  });

  it('seals only the payer that is due; the others stay open for their own schedules, across a restart', async () => {
    at('2026-05-01T12:00:00Z');
    const config = configWith({ 'acme-plant': LONDON_0130 });
    let book = await boot(config);
    journal.add('harbour-yard', 'EUR', 300n);
    journal.add('acme-plant', 'EUR', 100n);
    journal.add('harbour-yard', 'EUR', 400n);
    at('2026-05-02T00:30:00Z');
    await schedule!.tick();
    expect(runs.map(([payer]) => payer)).toEqual(['acme-plant']);
    expect(await batchesOf('harbour-yard')).toHaveLength(0);
    expect(book.sealedThrough).toBe(0); // record 1 (harbour-yard) is still open
    expect(book.sealedThroughOf('acme-plant', 'EUR')).toBe(3);
    journal.add('acme-plant', 'EUR', 50n);
    await crash();
    book = await boot(config);
    await book.seal(); // the operator's sealNow: every payer, each record once
    const sealed = [...(await batchesOf('acme-plant')), ...(await batchesOf('harbour-yard'))].map((b) => [b.header.payer, b.header.firstIndex, b.header.lastIndex, b.header.recordCount]);
    expect(sealed).toEqual([['acme-plant', 2, 2, 1], ['acme-plant', 4, 4, 1], ['harbour-yard', 1, 3, 2]]);
    expect(book.sealedThrough).toBe(4);
  });

  it('seals each record once when a payer\'s seal and the operator\'s seal of everyone overlap', async () => {
    at('2026-05-01T12:00:00Z');
    const book = await boot(configWith({}));
    for (let i = 0; i < 30; i++) journal.add(['acme-plant', 'harbour-yard', 'northline-logistics'][i % 3]!, i % 3 === 2 ? 'GBP' : 'EUR', 10n);
    const sealed = await Promise.all([book.seal({ payers: new Set(['harbour-yard']) }), book.seal(), book.seal({ payers: new Set(['acme-plant']) }), book.seal()]);
    expect(sealed.map((batches) => batches.map((b) => b.header.payer))).toEqual([['harbour-yard'], ['acme-plant', 'northline-logistics'], [], []]);
    const counts = (await Promise.all(['acme-plant', 'harbour-yard', 'northline-logistics'].map(batchesOf))).map((batches) => batches.reduce((n, b) => n + b.header.recordCount, 0));
    expect(counts).toEqual([10, 10, 10]);
    expect(book.sealedThrough).toBe(30);
  });

  it('settles as soon as the open balance reaches settleAtBalance', async () => {
    at('2026-05-01T12:00:00Z');
    await boot(configWith({ 'harbour-yard': { settleAtBalance: '1.00' } }));
    journal.add('harbour-yard', 'EUR', 60n);
    await schedule!.tick();
    expect(runs).toEqual([]);
    journal.add('harbour-yard', 'EUR', 50n);
    at('2026-05-01T12:00:05Z');
    await schedule!.tick();
    await schedule!.tick();
    expect(runs).toEqual([['harbour-yard', '2026-05-01T12:00:05.000Z']]);
    expect((await batchesOf('harbour-yard')).map((b) => b.header.amountMinor)).toEqual(['110']);
    expect((await storedDue('harbour-yard')).dueAt).toBe('2027-01-01T00:00:00.000Z');
  });

  it('holds a due run below minimumPayment, sealing nothing, until the balance reaches it', async () => {
    at('2026-05-01T12:00:00Z');
    await boot(configWith({ 'acme-plant': { cron: '0 0 * * *', minimumPayment: '5.00' } }));
    journal.add('acme-plant', 'EUR', 200n);
    at('2026-05-02T00:00:00Z');
    await schedule!.tick();
    expect(runs).toEqual([]);
    const held = await storedDue('acme-plant');
    expect(held.dueAt).toBe('2026-05-03T00:00:00.000Z');
    expect(held.held?.reason).toMatch(/open balance 2\.000000000 EUR is below minimumPayment 5\.000000000/);
    expect(schedule!.status().find((s) => s.payer === 'acme-plant')?.held?.since).toBe('2026-05-02T00:00:00.000Z');
    journal.add('acme-plant', 'EUR', 350n);
    at('2026-05-02T09:00:00Z');
    await schedule!.tick();
    await schedule!.tick();
    expect(runs).toEqual([['acme-plant', '2026-05-02T09:00:00.000Z']]);
    expect((await batchesOf('acme-plant')).map((b) => b.header.amountMinor)).toEqual(['550']);
    expect(await storedDue('acme-plant')).toEqual({ v: 1, dueAt: '2026-05-03T00:00:00.000Z', cron: '0 0 * * *', timeZone: 'UTC' });
  });
});

describe('nextStep', () => {
  const plan = { payer: 'acme', currency: 'EUR', cron: compileCron('0 * * * *', 'UTC') };
  const stored: StoredDue = { v: 1, dueAt: '2026-05-01T13:00:00.000Z', cron: '0 * * * *', timeZone: 'UTC' };

  it('waits until the due time and runs at it', () => {
    expect(nextStep(plan, stored, new Date('2026-05-01T12:59:59.999Z'), undefined)).toEqual({ kind: 'wait' });
    expect(nextStep(plan, stored, new Date('2026-05-01T13:00:00Z'), undefined)).toEqual({ kind: 'run', reason: 'due', due: { ...stored, dueAt: '2026-05-01T14:00:00.000Z' } });
  });

  it('recomputes a due time still ahead when the schedule changed, without running', () => {
    const daily = { ...plan, cron: compileCron('0 6 * * *', 'Europe/London') };
    expect(nextStep(daily, stored, new Date('2026-05-01T12:30:00Z'), undefined)).toEqual({ kind: 'store', note: 'schedule changed', due: { v: 1, dueAt: '2026-05-02T05:00:00.000Z', cron: '0 6 * * *', timeZone: 'Europe/London' } });
  });
});
