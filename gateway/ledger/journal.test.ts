import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZERO_HASH_HEX } from '../../protocol/hash.ts';
import { generateSigningKey, verifyPayload } from '../../protocol/signing.ts';
import { chainHash } from '../../protocol/usage-record.ts';
import { Journal, JournalFullError, type JournalOptions, type RecordDraft } from './journal.ts';
import { keys, openLedgerDb, type LedgerDb } from './ledger-db.ts';
import { verifyChain } from './verify-chain.ts';

const key = generateSigningKey();

function draft(deviceId: string, seq: number, overrides: Partial<RecordDraft> = {}): RecordDraft {
  return {
    v: 1, deviceId, seq, meter: 'cycles', quantity: '1', unit: 'cycle', deviceTime: '2026-11-27T12:00:00.000Z', payer: 'acme-plant',
    tariff: 'cycles@1', unitPrice: '0.0003', currency: 'EUR', amountNano: '300000', messageHash: `${deviceId}-${seq}`.padEnd(64, '0'), ...overrides,
  };
}

describe('Journal', () => {
  let dir: string;
  let db: LedgerDb;
  const options = (extra: Partial<JournalOptions> = {}): JournalOptions => ({
    gatewayId: 'gw-test', signingKey: key, clock: () => new Date('2026-11-27T12:00:00Z'),
    queueMax: 1_000, batchMax: 100, checkpointEveryRecords: 10, checkpointIntervalMs: 3_600_000, ...extra,
  });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('chains each record to the one before and continues the chain after reopening', async () => {
    const journal = await Journal.open(db, options());
    const results = await Promise.all([1, 2, 3].map((seq) => journal.append(draft('cnc-1', seq))));
    expect(results.map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted']);
    const first = await journal.get(1);
    expect(first?.prevHash).toBe(ZERO_HASH_HEX);
    expect(first?.hash).toBe(chainHash(ZERO_HASH_HEX, first!.record));
    const reopened = await Journal.open(db, options());
    await reopened.append(draft('cnc-1', 4));
    const fourth = await reopened.get(4);
    expect(fourth?.prevHash).toBe((await reopened.get(3))?.hash);
    expect((await verifyChain(db, key)).ok).toBe(true);
  });

  it('records a repeated (device, seq) once, within one write group and across groups', async () => {
    const journal = await Journal.open(db, options());
    const together = await Promise.all([journal.append(draft('cnc-1', 1)), journal.append(draft('cnc-1', 1))]);
    expect(together.map((r) => r.status)).toEqual(['accepted', 'duplicate']);
    expect((await journal.append(draft('cnc-1', 1))).status).toBe('duplicate');
    expect(journal.head.index).toBe(1);
  });

  it('still finds every repeat when it skips dedup reads above each device\'s highest seq', async () => {
    const highestSeqByDevice = new Map<string, number>();
    const journal = await Journal.open(db, options({ highestSeqByDevice }));
    await Promise.all([5, 7, 6].map((seq) => journal.append(draft('cnc-1', seq))));
    expect(highestSeqByDevice.get('cnc-1')).toBe(7);
    // Below the highest (out of order, or repeats) the journal reads, in one group or across groups.
    const results = await Promise.all([journal.append(draft('cnc-1', 6)), journal.append(draft('cnc-1', 3)), journal.append(draft('cnc-1', 3)), journal.append(draft('cnc-1', 8))]);
    expect(results.map((r) => r.status)).toEqual(['duplicate', 'accepted', 'duplicate', 'accepted']);
    // A reopened journal given the scan's highest seqs sees the old records as repeats.
    const scanned = new Map<string, number>();
    await verifyChain(db, key, (record) => scanned.set(record.deviceId, Math.max(scanned.get(record.deviceId) ?? 0, record.seq)));
    const reopened = await Journal.open(db, options({ highestSeqByDevice: scanned }));
    expect((await reopened.append(draft('cnc-1', 8))).status).toBe('duplicate');
    expect((await reopened.append(draft('cnc-1', 9))).status).toBe('accepted');
  });

  it('reports a conflict when a seq comes back with different content', async () => {
    const journal = await Journal.open(db, options());
    await journal.append(draft('cnc-1', 1));
    expect(await journal.append(draft('cnc-1', 1, { quantity: '2', messageHash: 'f'.repeat(64) }))).toEqual({ status: 'conflict', index: 1 });
    expect(journal.head.index).toBe(1);
  });

  it('refuses appends beyond the queue limit instead of growing without bound', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const journal = await Journal.open(db, options({ queueMax: 2, batchMax: 1, beforeWrite: () => held }));
    const first = journal.append(draft('cnc-1', 1));
    await new Promise((resolve) => setTimeout(resolve, 20)); // 1 is being written and held
    const second = journal.append(draft('cnc-1', 2));
    await new Promise((resolve) => setTimeout(resolve, 20)); // 2 is prepared, waiting for 1
    const queued = [journal.append(draft('cnc-1', 3)), journal.append(draft('cnc-1', 4))];
    await expect(journal.append(draft('cnc-1', 5))).rejects.toBeInstanceOf(JournalFullError);
    release();
    expect((await Promise.all([first, second, ...queued])).map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted', 'accepted']);
    expect((await verifyChain(db, key)).ok).toBe(true);
  });

  it('keeps the chain whole when a write fails while the next group is already prepared', async () => {
    let failNext = true;
    const journal = await Journal.open(db, options({
      batchMax: 2,
      beforeWrite: async () => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (failNext) {
          failNext = false;
          throw new Error('disk full');
        }
      },
    }));
    const results = await Promise.allSettled([1, 2, 3, 4, 5, 6].map((seq) => journal.append(draft('cnc-1', seq))));
    expect(results.slice(0, 2).map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(results.slice(2).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    // The refused ones were not acknowledged; sent again, they go in after the others.
    expect((await journal.append(draft('cnc-1', 1))).status).toBe('accepted');
    expect(journal.head.index).toBe(5);
    expect((await verifyChain(db, key)).ok).toBe(true);
  });

  /** A journal whose first write is held until `release()`; `secondWrite` decides the second one. `writes` counts them. */
  async function holdingFirstWrite(secondWrite: () => Promise<void> = () => Promise.resolve()): Promise<{ journal: Journal; first: ReturnType<Journal['append']>; release: () => void; writes: () => number }> {
    let release: () => void = () => {};
    let writes = 0;
    const journal = await Journal.open(db, options({
      beforeWrite: () => {
        writes += 1;
        if (writes === 1) return new Promise<void>((resolve) => (release = resolve));
        return writes === 2 ? secondWrite() : Promise.resolve();
      },
    }));
    const first = journal.append(draft('cnc-1', 1));
    await new Promise((resolve) => setTimeout(resolve, 20)); // 1 is being written and held
    return { journal, first, release: () => release(), writes: () => writes };
  }

  it('puts everything that arrived while a write was in flight into the next write, not one write per arrival', async () => {
    const { journal, first, release, writes } = await holdingFirstWrite(); // 1 is being written and held
    // Five more arrive one by one, each in a later turn of the event loop, while 1 is held.
    const later: Array<ReturnType<Journal['append']>> = [];
    for (let seq = 2; seq <= 6; seq += 1) {
      later.push(journal.append(draft(seq % 2 === 0 ? 'cnc-1' : 'cnc-2', seq)));
      await new Promise((resolve) => setImmediate(resolve));
    }
    release();
    const results = await Promise.all([first, ...later]);
    expect(results.map((r) => (r.status === 'accepted' ? r.index : r.status))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(writes()).toBe(2);
    expect((await verifyChain(db, key)).ok).toBe(true);
  });

  it('refuses every record of a merged write that fails, and chains the next ones onto what is on disk', async () => {
    const { journal, first, release, writes } = await holdingFirstWrite(() => Promise.reject(new Error('disk full'))); // 1 is being written and held
    // 2 is prepared on top of 1 and waits; 3 arrives later and joins 2's write, which fails.
    const second = journal.append(draft('cnc-1', 2));
    await new Promise((resolve) => setImmediate(resolve));
    const third = journal.append(draft('cnc-1', 3));
    await new Promise((resolve) => setImmediate(resolve));
    release();
    expect(await first).toMatchObject({ status: 'accepted', index: 1 });
    await expect(second).rejects.toThrow('disk full');
    await expect(third).rejects.toThrow('disk full');
    expect(writes()).toBe(2);
    // Neither was acknowledged; sent again, they are written on record 1.
    const again = await Promise.all([journal.append(draft('cnc-1', 3)), journal.append(draft('cnc-1', 2))]);
    expect(again.map((r) => (r.status === 'accepted' ? r.index : r.status))).toEqual([2, 3]);
    expect(journal.head.index).toBe(3);
    expect((await verifyChain(db, key)).ok).toBe(true);
  });

  it('refuses only the late arrivals whose preparation fails, and still writes the group they were to join', async () => {
    const { journal, first, release, writes } = await holdingFirstWrite(); // 1 is being written and held
    const second = journal.append(draft('cnc-1', 2));
    await new Promise((resolve) => setImmediate(resolve)); // 2 is prepared and waits for 1
    const broken = journal.append(draft('cnc-1', -1)).catch((error: unknown) => error); // no key can be made for it: its preparation throws
    await new Promise((resolve) => setImmediate(resolve));
    release();
    expect(await first).toMatchObject({ status: 'accepted', index: 1 });
    expect(await second).toMatchObject({ status: 'accepted', index: 2 });
    expect(await broken).toBeInstanceOf(RangeError);
    expect(await journal.append(draft('cnc-1', 3))).toMatchObject({ status: 'accepted', index: 3 });
    expect(journal.queueLength).toBe(0);
    expect((await verifyChain(db, key)).ok).toBe(true);
  });

  it('signs a checkpoint of the chain head every N records', async () => {
    const journal = await Journal.open(db, options({ checkpointEveryRecords: 5 }));
    for (let seq = 1; seq <= 12; seq += 1) await journal.append(draft('cnc-1', seq));
    const checkpoint = journal.latestCheckpoint!;
    expect(checkpoint.index).toBe(10);
    const { sig, ...payload } = checkpoint;
    expect(verifyPayload(payload, sig, key.publicKey)).toBe(true);
    expect(checkpoint.hash).toBe((await journal.get(10))?.hash);
  });
});

describe('verifyChain', () => {
  let dir: string;
  let db: LedgerDb;
  let journal: Journal;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'verify-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
    journal = await Journal.open(db, { gatewayId: 'gw-test', signingKey: key, clock: () => new Date(), queueMax: 100, batchMax: 100, checkpointEveryRecords: 4, checkpointIntervalMs: 3_600_000 });
    for (let seq = 1; seq <= 10; seq += 1) await journal.append(draft('cnc-1', seq));
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('passes an untouched chain', async () => {
    expect(await verifyChain(db, key)).toMatchObject({ ok: true, records: 10, checkpoints: 2, problems: [] });
  });

  it('names a record whose quantity was changed', async () => {
    const entry = (await journal.get(5))!;
    await db.put(keys.record(5), { ...entry, record: { ...entry.record, quantity: '1000' } });
    const report = await verifyChain(db, key);
    expect(report.ok).toBe(false);
    expect(report.problems).toContain('record 5: content does not match its hash (altered)');
  });

  it('names a deleted record', async () => {
    await db.del(keys.record(6));
    const report = await verifyChain(db, key);
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toMatch(/records 6\.\.6 are missing/);
  });

  it('names a lost log tail', async () => {
    await db.del(keys.record(10));
    await db.del(keys.record(9));
    const report = await verifyChain(db, key);
    expect(report.problems.join('\n')).toMatch(/records 9\.\.10 are missing \(the head says 10\)/);
  });

  it('refuses a checkpoint signed by another key', async () => {
    const stranger = generateSigningKey();
    const report = await verifyChain(db, stranger);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toBe(`checkpoint 4: signed with key ${key.keyId}, which is not in the gateway's key history`);
  });
});
