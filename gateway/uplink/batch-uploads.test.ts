import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { generateSigningKey } from '../../protocol/signing.ts';
import { UPLOAD_RECORDS_MAX, type BatchUpload, type UploadEnvelope } from '../../protocol/upload.ts';
import type { SignedBatchHeader, UsageRecord } from '../../protocol/usage-record.ts';
import { keys, openLedgerDb, writeDurably, type LedgerDb, type LedgerOp } from '../ledger/ledger-db.ts';
import type { BatchBook, BatchStateName, StoredBatch } from '../settlement/batch-book.ts';
import { BatchUplink, batchUploads, PART_RECORD_BYTES_MAX, transitionWithUpload } from './batch-uploads.ts';
import { Outbox } from './outbox.ts';
import { SealedLedgerDouble, usageRecord } from './sealed-ledger-double.ts';

const silent = pino({ level: 'silent' });
const signingKey = generateSigningKey();
const AT = '2026-05-01T12:00:00.000Z';

const batchesOf = (envelopes: UploadEnvelope[]): BatchUpload[] => envelopes.flatMap((e) => (e.kind === 'batch' ? [e.batch] : []));

describe('batchUploads', () => {
  const header = { batchId: 'b-1' } as SignedBatchHeader;

  it('splits a batch into parts of UPLOAD_RECORDS_MAX records, numbered k of n with their first record', () => {
    const records = Array.from({ length: 2 * UPLOAD_RECORDS_MAX + 5 }, (_, i) => `{"i":${i}}`);
    const parts = batchUploads(header, records).map((b) => (b.kind === 'batch' ? b.batch : undefined)!);
    expect(parts.map((p) => [p.part, p.parts, p.firstRecord, p.records.length])).toEqual([[1, 3, 0, UPLOAD_RECORDS_MAX], [2, 3, UPLOAD_RECORDS_MAX, UPLOAD_RECORDS_MAX], [3, 3, 2 * UPLOAD_RECORDS_MAX, 5]]);
    expect(parts.flatMap((p) => p.records)).toEqual(records);
  });

  it('sends exactly UPLOAD_RECORDS_MAX records in one part, and an empty batch as one empty part', () => {
    expect(batchUploads(header, Array.from({ length: UPLOAD_RECORDS_MAX }, () => '{}'))).toHaveLength(1);
    expect(batchUploads(header, [])).toEqual([{ kind: 'batch', batch: { header, part: 1, parts: 1, firstRecord: 0, records: [] } }]);
  });

  it('starts a new part before the records pass the byte limit', () => {
    const big = `{"pad":"${'x'.repeat(1_000_000)}"}`;
    const parts = batchUploads(header, Array.from({ length: 40 }, () => big)).map((b) => (b.kind === 'batch' ? b.batch : undefined)!);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) expect(Buffer.byteLength(JSON.stringify(part.records))).toBeLessThanOrEqual(PART_RECORD_BYTES_MAX);
    expect(parts.reduce((n, p) => n + p.records.length, 0)).toBe(40);
  });

  it('refuses a record larger than a part', () => {
    expect(() => batchUploads(header, [`"${'x'.repeat(PART_RECORD_BYTES_MAX)}"`])).toThrow(RangeError);
  });
});

describe('BatchUplink over a real LevelDB', () => {
  let dir: string;
  let db: LedgerDb;
  let ledger: SealedLedgerDouble;
  const openOutbox = (): Promise<Outbox> => Outbox.open(db, { gatewayId: 'gw', signingKey, clock: () => new Date(AT) });
  const openUplink = async (outbox: Outbox, firstBatchNo?: number): Promise<BatchUplink> =>
    BatchUplink.open(db, { outbox, book: ledger.book(), journal: ledger.journal(), logger: silent, ...(firstBatchNo === undefined ? {} : { firstBatchNo }) });
  const queued = async (): Promise<UploadEnvelope[]> => (await db.values(keys.outboxRange).all()) as UploadEnvelope[];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'batch-uploads-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
    ledger = new SealedLedgerDouble('gw', signingKey);
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('queues each sealed batch once, in order, with only its own payer\'s records', async () => {
    const uplink = await openUplink(await openOutbox());
    ledger.add(['acme', 'north', 'acme', 'acme', 'north']);
    ledger.seal();
    expect(await uplink.catchUp()).toBe(2);
    expect(await uplink.catchUp()).toBe(0);
    ledger.add(['north']);
    ledger.seal();
    expect(await uplink.catchUp()).toBe(1);
    const batches = batchesOf(await queued());
    expect(batches.map((b) => [b.header.payer, b.records.map((r) => (JSON.parse(r) as UsageRecord).index)])).toEqual([['acme', [1, 3, 4]], ['north', [2, 5]], ['north', [6]]]);
    expect(uplink.queuedThrough).toBe(3);
  });

  it('runs concurrent catch-ups one after the other, missing nothing sealed meanwhile', async () => {
    const uplink = await openUplink(await openOutbox());
    ledger.add(['acme']);
    ledger.seal();
    const first = uplink.catchUp();
    ledger.add(['north']);
    ledger.seal();
    const [a, b, c] = await Promise.all([first, uplink.catchUp(), uplink.catchUp()]);
    expect([a + b, b]).toEqual([2, c]);
    expect(batchesOf(await queued()).map((x) => x.header.payer)).toEqual(['acme', 'north']);
  });

  it('starts from firstBatchNo on a gateway that had no uplink before', async () => {
    ledger.add(['acme', 'north']);
    ledger.seal();
    const uplink = await openUplink(await openOutbox(), 2);
    await uplink.catchUp();
    expect(batchesOf(await queued()).map((b) => b.header.payer)).toEqual(['north']);
  });

  it('queues a large batch in parts and, after a crash between parts, only the parts still missing', async () => {
    ledger.add(Array.from({ length: 2 * UPLOAD_RECORDS_MAX + 10 }, (_, i) => (i % 10 === 0 ? 'north' : 'acme')));
    ledger.seal();
    const outbox = await openOutbox();
    const uplink = await openUplink(outbox);
    // The "crash": the write of the second part never happens.
    const original = outbox.enqueue.bind(outbox);
    vi.spyOn(outbox, 'enqueue').mockImplementationOnce(original).mockImplementationOnce(async () => {
      throw new Error('power cut');
    });
    await expect(uplink.catchUp()).rejects.toThrow('power cut');
    expect(uplink.lastError).toBe('power cut');
    expect(batchesOf(await queued()).map((b) => [b.header.payer, b.part, b.parts])).toEqual([['acme', 1, 2]]);

    await db.close();
    db = await openLedgerDb(path.join(dir, 'ledger'));
    const resumed = await openUplink(await openOutbox());
    expect(await resumed.catchUp()).toBe(2);
    const batches = batchesOf(await queued());
    expect(batches.map((b) => [b.header.payer, b.part, b.parts, b.firstRecord, b.records.length])).toEqual([
      ['acme', 1, 2, 0, UPLOAD_RECORDS_MAX], ['acme', 2, 2, UPLOAD_RECORDS_MAX, 16_009], ['north', 1, 1, 0, 4_001],
    ]);
    const acme = batches.filter((b) => b.header.payer === 'acme').flatMap((b) => b.records.map((r) => (JSON.parse(r) as UsageRecord).index));
    expect(acme).toEqual(ledger.records.filter((r) => r.payer === 'acme').map((r) => r.index));
  });

  it('stops at a batch whose journal records do not match its header, and queues nothing after it', async () => {
    ledger.add(['acme', 'north']);
    ledger.seal();
    ledger.records[0] = { ...ledger.records[0]!, amountNano: '999' };
    const uplink = await openUplink(await openOutbox());
    await expect(uplink.catchUp()).rejects.toThrow('Cannot upload batch 1: its records in the journal do not match its Merkle root');
    expect(await queued()).toEqual([]);
    expect(uplink.queuedThrough).toBe(0);
  });

  it('stops at a batch whose records are missing from the journal', async () => {
    ledger.add(['acme', 'acme']);
    ledger.seal();
    ledger.records[1] = usageRecord(2, 'north');
    const uplink = await openUplink(await openOutbox());
    await expect(uplink.catchUp()).rejects.toThrow('Cannot upload batch 1: the journal holds 1 of its records from index 1 to 2, its header says 2');
  });
});

describe('transitionWithUpload', () => {
  let dir: string;
  let db: LedgerDb;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'transition-upload-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A book that stores the batch with `alongside` in one write, as BatchBook.transition does. */
  function book(batch: StoredBatch, fail = false): Pick<BatchBook, 'get' | 'transition'> {
    let current = batch;
    return {
      get: async () => current,
      transition: async (batchNo: number, state: BatchStateName, patch: object, _detail?: string, alongside: LedgerOp[] = []) => {
        if (fail) throw new Error(`Cannot change batch ${batchNo}: already settled`);
        current = { ...current, ...patch, state };
        await writeDurably(db, [{ type: 'put', key: keys.batch(batchNo), value: current }, ...alongside]);
        return current;
      },
    };
  }

  const ledger = new SealedLedgerDouble('gw', signingKey);
  ledger.add(['acme']);
  const [header] = ledger.seal();
  const sealed: StoredBatch = { batchNo: 1, header: header!, state: 'sealed', idempotencyKey: 'k', attempts: 0, transitions: [] };

  it('queues a settlement upload in the same write as a state change, and none when the state stays', async () => {
    const outbox = await Outbox.open(db, { gatewayId: 'gw', signingKey, clock: () => new Date(AT) });
    const transition = transitionWithUpload(book(sealed), { outbox, clock: () => new Date(AT) });
    await transition(1, 'submitted', { paymentId: 'pay-1', bankStatus: 'AcceptedSettlementInProcess' }, 'sent');
    await transition(1, 'submitted', { attempts: 2 });
    const items = (await db.values(keys.outboxRange).all()) as UploadEnvelope[];
    expect(items.map((e) => (e.kind === 'settlement' ? e.settlement : undefined))).toEqual([
      { batchId: header!.batchId, state: 'submitted', at: AT, paymentId: 'pay-1', bankStatus: 'AcceptedSettlementInProcess', amountMinor: header!.amountMinor, currency: 'EUR' },
    ]);
  });

  it('queues nothing when the state change is refused', async () => {
    const outbox = await Outbox.open(db, { gatewayId: 'gw', signingKey, clock: () => new Date(AT) });
    await expect(transitionWithUpload(book(sealed, true), { outbox, clock: () => new Date(AT) })(1, 'settled', {})).rejects.toThrow('already settled');
    expect(outbox.waiting).toBe(0);
  });
});
