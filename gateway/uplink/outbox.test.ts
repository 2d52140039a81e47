import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateSigningKey, verifyPayload } from '../../protocol/signing.ts';
import { unsignedOf, UPLOAD_BYTES_MAX, type HealthUpload, type UploadBody } from '../../protocol/upload.ts';
import { keys, openLedgerDb, writeDurably, type LedgerDb } from '../ledger/ledger-db.ts';
import { Outbox, OutboxFullError, type OutboxOptions } from './outbox.ts';

const signingKey = generateSigningKey();
const MIB = 1_048_576;

function settlementBody(n: number, padding = ''): UploadBody {
  return { kind: 'settlement', settlement: { batchId: `batch-${n}${padding}`, state: 'submitted', at: '2026-05-01T12:00:00.000Z', amountMinor: String(n), currency: 'EUR' } };
}

function health(at: string): HealthUpload {
  return { at, version: '0.1.0', records: 1, devicesConnected: 2, chainOk: true, diskFreeBytes: 1e9, outboxItems: 0, outboxBytes: 0 };
}

describe('Outbox in a real LevelDB', () => {
  let dir: string;
  let db: LedgerDb;
  let nowMs: number;
  const clock = (): Date => new Date(nowMs);
  const open = (options: Partial<OutboxOptions> = {}): Promise<Outbox> => Outbox.open(db, { gatewayId: 'gw-1', signingKey, clock, ...options });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outbox-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
    nowMs = Date.parse('2026-05-01T12:00:00.000Z');
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('numbers items 1, 2, 3… and signs each with the gateway key', async () => {
    const outbox = await open();
    const envelopes = await outbox.enqueue([settlementBody(1), settlementBody(2)]);
    expect((await outbox.enqueue([settlementBody(3)]))[0]!.seq).toBe(3);
    expect(envelopes.map((e) => [e.seq, e.gatewayId, e.createdAt])).toEqual([[1, 'gw-1', '2026-05-01T12:00:00.000Z'], [2, 'gw-1', '2026-05-01T12:00:00.000Z']]);
    const stored = (await outbox.first())!;
    expect(verifyPayload(unsignedOf(stored), stored.sig, signingKey.publicKey)).toBe(true);
    expect(verifyPayload(unsignedOf({ ...stored, seq: 2 }), stored.sig, signingKey.publicKey)).toBe(false);
    expect(verifyPayload(unsignedOf(stored), stored.sig, generateSigningKey().publicKey)).toBe(false);
  });

  it('signs an item with another key when told to (a key endorsement goes signed by the key before)', async () => {
    const previous = generateSigningKey();
    const outbox = await open();
    const [envelope] = await outbox.enqueue([settlementBody(1)], { signedBy: previous });
    expect(verifyPayload(unsignedOf(envelope!), envelope!.sig, previous.publicKey)).toBe(true);
  });

  it('gives concurrent enqueues distinct seqs with no gaps', async () => {
    const outbox = await open();
    const made = await Promise.all(Array.from({ length: 50 }, (_, i) => outbox.enqueue([settlementBody(i)])));
    expect(made.map(([e]) => e!.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(outbox.waiting).toBe(50);
  });

  it('resumes its counters after the database is closed and opened again', async () => {
    let outbox = await open();
    await outbox.enqueue([settlementBody(1), settlementBody(2), settlementBody(3)]);
    await outbox.ackThrough(2);
    const { bytes } = outbox.fill();
    await db.close();
    db = await openLedgerDb(path.join(dir, 'ledger'));
    outbox = await open();
    expect([outbox.ackedSeq, outbox.nextSeq, outbox.waiting, outbox.fill().bytes]).toEqual([2, 4, 1, bytes]);
    expect((await outbox.first())!.seq).toBe(3);
    expect((await outbox.enqueue([settlementBody(4)]))[0]!.seq).toBe(4);
  });

  it('refuses to open when the counters disagree with the stored items', async () => {
    const outbox = await open();
    await outbox.enqueue([settlementBody(1), settlementBody(2)]);
    await writeDurably(db, [{ type: 'del', key: keys.outboxItem(2) }]);
    await expect(open()).rejects.toThrow(/do not end before the next seq/);
  });

  it('deletes acknowledged items and records the acknowledged seq, again without effect', async () => {
    const outbox = await open();
    for (let write = 0; write < 2; write += 1) await outbox.enqueue(Array.from({ length: 1_000 }, (_, i) => settlementBody(i)));
    expect(await outbox.ackThrough(1_500)).toBe(1_500);
    expect(await outbox.ackThrough(1_200)).toBe(0);
    expect([outbox.ackedSeq, outbox.waiting]).toEqual([1_500, 500]);
    expect(await db.keys(keys.outboxRange).all()).toHaveLength(500);
    await outbox.ackThrough(2_000);
    expect(outbox.fill()).toMatchObject({ items: 0, bytes: 0 });
    expect(await outbox.first()).toBeUndefined();
    expect(outbox.lastAckAt).toBe('2026-05-01T12:00:00.000Z');
  });

  it('will not acknowledge an item it never made', async () => {
    const outbox = await open();
    await outbox.enqueue([settlementBody(1)]);
    await expect(outbox.ackThrough(2)).rejects.toThrow('Cannot acknowledge outbox item 2: the last item made is 1');
    expect(outbox.waiting).toBe(1);
  });

  it('writes its items atomically with the ops given alongside', async () => {
    const outbox = await open();
    await outbox.enqueue([settlementBody(1)], { alongside: [{ type: 'put', key: 'm!test', value: 'with item 1' }] });
    expect(await db.get('m!test')).toBe('with item 1');
  });

  it('queues nothing when the caller\'s write fails, and numbers the next item as if it never was', async () => {
    const outbox = await open();
    await expect(outbox.enqueueWith([settlementBody(1)], async () => {
      throw new Error('disk gone');
    })).rejects.toThrow('disk gone');
    expect([outbox.waiting, outbox.nextSeq]).toEqual([0, 1]);
    const { envelopes, result } = await outbox.enqueueWith([settlementBody(2)], async (ops) => {
      await writeDurably(db, ops);
      return 'written';
    });
    expect([envelopes[0]!.seq, result]).toEqual([1, 'written']);
  });

  it('refuses an item over the cloud\'s size limit and stores nothing', async () => {
    const outbox = await open();
    await expect(outbox.enqueue([settlementBody(1, 'x'.repeat(UPLOAD_BYTES_MAX))])).rejects.toThrow(RangeError);
    expect(outbox.waiting).toBe(0);
    expect(await db.keys(keys.outboxRange).all()).toEqual([]);
  });

  it('keeps at most one health report waiting, and takes the next once it is acknowledged', async () => {
    const outbox = await open();
    const first = await outbox.enqueueHealth(health('2026-05-01T12:00:00.000Z'));
    expect(await outbox.enqueueHealth(health('2026-05-01T12:05:00.000Z'))).toBeUndefined();
    await outbox.enqueue([settlementBody(2)]);
    await outbox.ackThrough(first!.seq);
    expect((await outbox.enqueueHealth(health('2026-05-01T12:10:00.000Z')))?.seq).toBe(3);
    // The rule survives a restart: the waiting report is known from the counters.
    await db.close();
    db = await openLedgerDb(path.join(dir, 'ledger'));
    expect(await (await open()).enqueueHealth(health('2026-05-01T12:15:00.000Z'))).toBeUndefined();
  });

  it('warns at 80% of its budget, refuses new usage at 100% with the reason, and never drops an item', async () => {
    const outbox = await open({ budgetBytes: MIB });
    const body = settlementBody(0, 'x'.repeat(100_000));
    expect(() => outbox.checkRoomForUsage()).not.toThrow();
    for (let i = 0; i < 8; i += 1) await outbox.enqueue([body]);
    expect(outbox.fill()).toMatchObject({ items: 8, warning: false, full: false, budgetBytes: MIB });
    await outbox.enqueue([body]);
    expect(outbox.fill()).toMatchObject({ items: 9, warning: true, full: false });
    expect(outbox.fill().ratio).toBeGreaterThanOrEqual(0.8);
    expect(() => outbox.checkRoomForUsage()).not.toThrow();
    nowMs += 60_000;
    await outbox.enqueue([body]);
    expect(() => outbox.checkRoomForUsage()).not.toThrow();
    await outbox.enqueue([body]);
    expect(outbox.fill()).toMatchObject({ items: 11, warning: true, full: true, stalledSince: '2026-05-01T12:00:00.000Z' });
    expect(() => outbox.checkRoomForUsage()).toThrow(OutboxFullError);
    expect(() => outbox.checkRoomForUsage()).toThrow(/^Cannot accept usage: the uplink outbox holds 1\.1 MiB of its 1\.0 MiB budget \(cloud-sync has acknowledged nothing since 2026-05-01T12:00:00\.000Z\)$/);
    expect(await db.keys(keys.outboxRange).all()).toHaveLength(11);
    // Once the cloud takes items again, usage is welcome again.
    nowMs += 60_000;
    await outbox.ackThrough(6);
    expect(outbox.fill()).toMatchObject({ items: 5, warning: false, full: false, stalledSince: '2026-05-01T12:02:00.000Z' });
    expect(() => outbox.checkRoomForUsage()).not.toThrow();
  });

  it('refuses a budget outside its bounds, naming the option', async () => {
    await expect(open({ budgetBytes: 1_000 })).rejects.toThrow(/^budgetBytes: expected an integer/);
  });
});
