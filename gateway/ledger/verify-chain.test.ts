import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateSigningKey, signPayload } from '../../protocol/signing.ts';
import type { SignedCheckpoint } from '../../protocol/usage-record.ts';
import { Journal, type RecordDraft } from './journal.ts';
import { keys, openLedgerDb, type LedgerDb } from './ledger-db.ts';
import { readTrustedHead, TrustedHeadFile } from './trusted-head.ts';
import { verifyChain } from './verify-chain.ts';

const key = generateSigningKey();

function draft(seq: number): RecordDraft {
  return {
    v: 1, deviceId: 'cnc-1', seq, meter: 'cycles', quantity: '1', unit: 'cycle', deviceTime: '2026-11-27T12:00:00.000Z', payer: 'acme-plant',
    tariff: 'cycles@1', unitPrice: '0.0003', currency: 'EUR', amountNano: '300000', messageHash: `${seq}`.padStart(64, '0'),
  };
}

describe('verifyChain with a trusted head file', () => {
  let dir: string;
  let db: LedgerDb;
  let headFile: string;
  let trustedHead: TrustedHeadFile;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'verify-chain-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
    headFile = path.join(dir, 'ledger-head.json');
    trustedHead = new TrustedHeadFile(headFile, (error) => {
      throw error;
    });
    const journal = await Journal.open(db, {
      gatewayId: 'gw-test', signingKey: key, clock: () => new Date('2026-11-27T12:00:00.000Z'), queueMax: 100, batchMax: 5, checkpointEveryRecords: 10, checkpointIntervalMs: 3_600_000,
      onCheckpointWritten: (checkpoint) => trustedHead.record(checkpoint),
    });
    await Promise.all(Array.from({ length: 25 }, (_, i) => journal.append(draft(i + 1))));
    await journal.checkpointNow();
    await trustedHead.flush();
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the file at the newest durable checkpoint and verifies against it', async () => {
    const read = await readTrustedHead(headFile);
    expect(read.status === 'read' && read.checkpoint.index).toBe(25);
    expect(await verifyChain(db, key, { trustedHeadFile: headFile })).toMatchObject({ ok: true, records: 25, checkpoints: 3, trustedHeadIndex: 25, problems: [] });
  });

  it('never moves the file back to an older checkpoint', async () => {
    const older = (await db.get(keys.checkpoint(10))) as SignedCheckpoint;
    trustedHead.record(older);
    await trustedHead.flush();
    expect(trustedHead.writtenIndex).toBe(25);
    expect(JSON.parse(await readFile(headFile, 'utf8'))).toMatchObject({ index: 25 });
  });

  it('names history rewritten under the trusted checkpoint when the chain was re-hashed to match', async () => {
    const { sig: _sig, ...payload } = JSON.parse(await readFile(headFile, 'utf8')) as SignedCheckpoint;
    const forged = { ...payload, hash: 'f'.repeat(64) };
    await writeFile(headFile, JSON.stringify({ ...forged, sig: signPayload(forged, key) }));
    expect((await verifyChain(db, key, { trustedHeadFile: headFile })).problems).toEqual(['trusted head file: the signed checkpoint at 25 differs from the chain (history rewritten)']);
  });

  it('refuses a trusted head signed by another key, and an unreadable file', async () => {
    const { sig: _sig, ...payload } = JSON.parse(await readFile(headFile, 'utf8')) as SignedCheckpoint;
    const stranger = generateSigningKey();
    await writeFile(headFile, JSON.stringify({ ...payload, sig: signPayload(payload, stranger) }));
    expect((await verifyChain(db, key, { trustedHeadFile: headFile })).problems).toEqual([`trusted head file: checkpoint 25 signed with key ${stranger.keyId}, which is not in the gateway's key history`]);
    await writeFile(headFile, '{"index": 25, ');
    const report = await verifyChain(db, key, { trustedHeadFile: headFile });
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(/^trusted head file .*ledger-head\.json: unreadable \(/);
  });

  it('passes a ledger without a file (a gateway from before the file existed)', async () => {
    await rm(headFile);
    const report = await verifyChain(db, key, { trustedHeadFile: headFile });
    expect(report).toMatchObject({ ok: true, problems: [] });
    expect(report.trustedHeadIndex).toBeUndefined();
  });

  it('accepts an entry stored in another layout when its canonical record hashes right, and names it when altered', async () => {
    const entry = JSON.parse((await db.get<string, string>(keys.record(7), { valueEncoding: 'utf8' }))!) as { record: Record<string, unknown>; prevHash: string; hash: string };
    // Members in reverse order with spaces: not the journal's layout, same record.
    const reversed = Object.fromEntries(Object.entries(entry.record).reverse());
    await db.put(keys.record(7), JSON.stringify({ hash: entry.hash, prevHash: entry.prevHash, record: reversed }, null, 1), { valueEncoding: 'utf8' });
    const onRecord: number[] = [];
    expect(await verifyChain(db, key, { trustedHeadFile: headFile, onRecord: (r) => onRecord.push(r.index) })).toMatchObject({ ok: true, problems: [] });
    expect(onRecord).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    await db.put(keys.record(7), JSON.stringify({ hash: entry.hash, prevHash: entry.prevHash, record: { ...reversed, amountNano: '1' } }), { valueEncoding: 'utf8' });
    expect((await verifyChain(db, key, { trustedHeadFile: headFile })).problems).toEqual(['record 7: content does not match its hash (altered)']);
  });

  it('names an entry that is not JSON, and a checkpoint whose signature was replaced', async () => {
    await db.put(keys.record(3), '{"record":{"amountNano"', { valueEncoding: 'utf8' });
    const checkpoint = (await db.get(keys.checkpoint(20))) as SignedCheckpoint;
    await db.put(keys.checkpoint(20), { ...checkpoint, sig: { ...checkpoint.sig, value: '0'.repeat(128) } });
    const { problems } = await verifyChain(db, key, { trustedHeadFile: headFile });
    expect(problems[0]).toMatch(/^index 3: entry is unreadable \(/);
    expect(problems).toContain('records 3..3 are missing (deleted)');
    expect(problems).toContain(`checkpoint 20: signature does not verify with gateway key ${key.keyId}`);
  });

  it('verifies checkpoints signed by each key of the history, and names a key the history does not list', async () => {
    const next = generateSigningKey();
    const journal = await Journal.open(db, {
      gatewayId: 'gw-test', signingKey: next, clock: () => new Date('2026-12-01T12:00:00.000Z'), queueMax: 100, batchMax: 5, checkpointEveryRecords: 10, checkpointIntervalMs: 3_600_000,
      onCheckpointWritten: (checkpoint) => trustedHead.record(checkpoint),
    });
    await Promise.all(Array.from({ length: 10 }, (_, i) => journal.append(draft(26 + i))));
    await journal.checkpointNow();
    await trustedHead.flush();
    expect(await verifyChain(db, [key, next], { trustedHeadFile: headFile })).toMatchObject({ ok: true, records: 35, checkpoints: 4, trustedHeadIndex: 35, problems: [] });
    const { problems } = await verifyChain(db, [next], { trustedHeadFile: headFile });
    expect(problems).toEqual([10, 20, 25].map((index) => `checkpoint ${index}: signed with key ${key.keyId}, which is not in the gateway's key history`));
  });
});
