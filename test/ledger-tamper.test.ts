/**
 * Tamper evidence: a real ledger (the real Journal, real LevelDB, real seals) is damaged
 * the ways a disk or a person can damage it, and the gateway, started on it, must name
 * what is wrong and where, and refuse to settle. The untouched ledger is the twin that
 * must verify clean and settle.
 */
import { cp, rm } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateGatewayKey } from '../gateway/ledger/gateway-key.ts';
import { Journal, type RecordDraft } from '../gateway/ledger/journal.ts';
import { keys, openLedgerDb, writeDurably, type LedgerDb } from '../gateway/ledger/ledger-db.ts';
import { TRUSTED_HEAD_FILE, TrustedHeadFile } from '../gateway/ledger/trusted-head.ts';
import { sealBatches } from '../gateway/settlement/seal-batches.ts';
import type { UsageRecord } from '../protocol/usage-record.ts';
import { startTestRig, type TestRig } from './support/test-gateway.ts';

const RECORDS = 3_000;
/** Records 1..SEALED are sealed into two batches (one per payer); the rest are open. */
const SEALED = 2_000;

/** Like priceUsage's drafts: even seqs are acme-plant's cycles in EUR, odd ones northline's metres in GBP. */
function draft(seq: number): RecordDraft {
  const acme = seq % 2 === 0;
  return {
    v: 1, deviceId: acme ? 'cnc-1' : 'truck-1', seq, meter: acme ? 'cycles' : 'distance', quantity: '1', unit: acme ? 'cycle' : 'm',
    deviceTime: '2026-11-27T12:00:00.000Z', payer: acme ? 'acme-plant' : 'northline-logistics', tariff: acme ? 'cycles@1' : 'distance@1',
    unitPrice: acme ? '0.0003' : '0.00015', currency: acme ? 'EUR' : 'GBP', amountNano: acme ? '300000' : '150000', messageHash: `${seq}`.padStart(64, '0'),
  };
}

/** Builds the pristine ledger and its trusted head file in `dataDir` with the gateway's own key. */
async function buildLedger(dataDir: string, gatewayId: string): Promise<void> {
  const { key } = await loadOrCreateGatewayKey(dataDir);
  const db = await openLedgerDb(path.join(dataDir, 'ledger'));
  try {
    const trustedHead = new TrustedHeadFile(path.join(dataDir, TRUSTED_HEAD_FILE), (error) => {
      throw error;
    });
    const clock = (): Date => new Date('2026-11-27T12:00:00.000Z');
    const journal = await Journal.open(db, {
      gatewayId, signingKey: key, clock, queueMax: RECORDS, batchMax: 250, checkpointEveryRecords: 1_000, checkpointIntervalMs: 3_600_000,
      onCheckpointWritten: (checkpoint) => trustedHead.record(checkpoint),
    });
    const results = await Promise.all(Array.from({ length: RECORDS }, (_, i) => journal.append(draft(i + 1))));
    expect(results.every((r) => r.status === 'accepted')).toBe(true);
    await trustedHead.flush();
    expect(trustedHead.writtenIndex).toBe(RECORDS);
    const records: UsageRecord[] = [];
    for await (const entry of journal.entries(1, SEALED)) records.push(entry.record);
    const head = { index: SEALED, hash: (await journal.get(SEALED))!.hash };
    const sealed = sealBatches({ gatewayId, records, carries: new Map(), nextBatchNo: 1, sealedAt: clock().toISOString(), head, key });
    await writeDurably(db, [
      ...sealed.batches.map(({ batchNo, header, idempotencyKey }) => ({ type: 'put' as const, key: keys.batch(batchNo), value: { batchNo, header, state: 'sealed', idempotencyKey, attempts: 0, transitions: [{ state: 'sealed', at: clock().toISOString() }] } })),
      { type: 'put', key: keys.sealedThrough, value: SEALED },
      { type: 'put', key: keys.batchNo, value: sealed.batches.length },
    ]);
  } finally {
    await db.close();
  }
}

const utf8 = { valueEncoding: 'utf8' } as const;
const getText = async (db: LedgerDb, key: string): Promise<string> => (await db.get<string, string>(key, utf8))!;

/** Damage done to a copy of the pristine ledger, with the database closed around it. */
type Tamper = (db: LedgerDb) => Promise<void>;

describe('ledger tamper evidence at gateway start-up', () => {
  let rig: TestRig;
  let template: string;

  beforeAll(async () => {
    rig = await startTestRig();
    await rig.gateway.stop();
    template = path.join(rig.dir, 'template');
    await cp(rig.config.dataDir, template, { recursive: true });
    await rm(path.join(template, 'ledger'), { recursive: true, force: true });
    await buildLedger(template, rig.config.gatewayId);
  }, 60_000);
  afterAll(async () => {
    await rig?.close();
  });

  /** Restarts the gateway on a fresh copy of the pristine ledger, damaged by `tamper`. */
  async function startOn(tamper?: Tamper): Promise<TestRig['gateway']> {
    await rig.gateway.stop();
    const dataDir = rig.config.dataDir;
    await rm(path.join(dataDir, 'ledger'), { recursive: true, force: true });
    await cp(path.join(template, 'ledger'), path.join(dataDir, 'ledger'), { recursive: true });
    await cp(path.join(template, TRUSTED_HEAD_FILE), path.join(dataDir, TRUSTED_HEAD_FILE));
    if (tamper) {
      const db = await openLedgerDb(path.join(dataDir, 'ledger'));
      try {
        await tamper(db);
      } finally {
        await db.close();
      }
    }
    return rig.restartGateway({ logger: pino({ level: 'silent' }) });
  }

  /** The gateway reports the broken chain on /healthz and never pays a batch. */
  async function expectSettlementRefused(gateway: TestRig['gateway']): Promise<void> {
    const health = (await (await fetch(`${gateway.httpUrl}/healthz`)).json()) as { chainOk: boolean };
    expect(health.chainOk).toBe(false);
    const paymentsBefore = rig.bank.listPayments().length;
    await gateway.sealNow();
    await gateway.settler.tick();
    expect(gateway.batches.openBatches().map((b) => b.state).filter((s) => s !== 'sealed')).toEqual([]);
    expect(rig.bank.listPayments().length).toBe(paymentsBefore);
  }

  it('verifies the untouched ledger clean, against its trusted head and batches, and settles it', async () => {
    const gateway = await startOn();
    expect(gateway.chainReport).toMatchObject({ ok: true, problems: [], records: RECORDS, checkpoints: 3, batches: 2, trustedHeadIndex: RECORDS });
    const health = (await (await fetch(`${gateway.httpUrl}/healthz`)).json()) as { chainOk: boolean };
    expect(health.chainOk).toBe(true);
    const paymentsBefore = rig.bank.listPayments().length;
    await gateway.settler.tick();
    expect(gateway.batches.openBatches().some((b) => b.state !== 'sealed')).toBe(true);
    expect(rig.bank.listPayments().length).toBeGreaterThan(paymentsBefore);
  }, 30_000);

  it('names the record whose quantity was changed in place', async () => {
    const gateway = await startOn(async (db) => {
      const text = await getText(db, keys.record(1234));
      expect(text).toContain('"quantity":"1"');
      await db.put(keys.record(1234), text.replace('"quantity":"1"', '"quantity":"1000"'), utf8);
    });
    expect(gateway.chainReport.problems[0]).toBe('record 1234: content does not match its hash (altered)');
    // Record 1234 (acme-plant's) is sealed in batch 1, whose root it no longer matches.
    expect(gateway.chainReport.problems).toContainEqual(expect.stringMatching(/^batch 1: Merkle root does not match its records \(acme-plant EUR in 2\.\.2000\)/));
    await expectSettlementRefused(gateway);
  }, 30_000);

  it('names a deleted record', async () => {
    const gateway = await startOn((db) => db.del(keys.record(1500)));
    expect(gateway.chainReport.problems[0]).toBe('records 1500..1500 are missing (deleted)');
    expect(gateway.chainReport.problems).toContain('batch 1: the journal holds 999 records of acme-plant EUR in 2..2000, the header says 1000');
    await expectSettlementRefused(gateway);
  }, 30_000);

  it('names both records of a reordered pair', async () => {
    const gateway = await startOn(async (db) => {
      const [a, b] = [await getText(db, keys.record(2100)), await getText(db, keys.record(2101))];
      await db.batch([{ type: 'put', key: keys.record(2100), value: b }, { type: 'put', key: keys.record(2101), value: a }], utf8);
    });
    expect(gateway.chainReport.problems.slice(0, 4)).toEqual([
      'record 2101: prevHash does not match the hash of record 2099 before it',
      'index 2100 holds record 2101: records are out of order (reordered)',
      'record 2100: prevHash does not match the hash of record 2101 before it',
      'index 2101 holds record 2100: records are out of order (reordered)',
    ]);
    await expectSettlementRefused(gateway);
  }, 30_000);

  it('names a lost log tail that took the head key with it, from the trusted head file', async () => {
    const gateway = await startOn(async (db) => {
      const lost = Array.from({ length: RECORDS - 2_500 }, (_, i) => ({ type: 'del' as const, key: keys.record(2_501 + i) }));
      await db.batch([...lost, { type: 'del', key: keys.checkpoint(3_000) }, { type: 'del', key: keys.head }]);
    });
    expect(gateway.chainReport.problems).toContain("records 2501..3000 are missing: the ledger's log tail was lost (the signed checkpoint at 3000 says they existed)");
    await expectSettlementRefused(gateway);
  }, 30_000);

  it('names a lost log tail that left LevelDB consistent (head rolled back), from the trusted head file alone', async () => {
    const gateway = await startOn(async (db) => {
      const last = JSON.parse(await getText(db, keys.record(2_500))) as { hash: string };
      const lost = Array.from({ length: RECORDS - 2_500 }, (_, i) => ({ type: 'del' as const, key: keys.record(2_501 + i) }));
      await db.batch([...lost, { type: 'del', key: keys.checkpoint(3_000) }, { type: 'put', key: keys.head, value: { index: 2_500, hash: last.hash } }]);
    });
    expect(gateway.chainReport.problems).toEqual(["records 2501..3000 are missing: the ledger's log tail was lost (the signed checkpoint at 3000 says they existed)"]);
    await expectSettlementRefused(gateway);
  }, 30_000);

  it('names a batch whose Merkle root was swapped with another batch\'s', async () => {
    const gateway = await startOn(async (db) => {
      type Stored = { header: { merkleRoot: string } };
      const [one, two] = [(await db.get(keys.batch(1))) as Stored, (await db.get(keys.batch(2))) as Stored];
      await db.batch([
        { type: 'put', key: keys.batch(1), value: { ...one, header: { ...one.header, merkleRoot: two.header.merkleRoot } } },
        { type: 'put', key: keys.batch(2), value: { ...two, header: { ...two.header, merkleRoot: one.header.merkleRoot } } },
      ]);
    });
    const { problems } = gateway.chainReport;
    expect(problems).toContain(`batch 1: header signature does not verify with gateway key ${(await gateway.snapshot()).keyId} (header altered)`);
    expect(problems).toContain(`batch 2: header signature does not verify with gateway key ${(await gateway.snapshot()).keyId} (header altered)`);
    expect(problems).toContainEqual(expect.stringMatching(/^batch 1: Merkle root does not match its records \(acme-plant EUR in 2\.\.2000\): the header says [0-9a-f]{64}, the records give [0-9a-f]{64}$/));
    expect(problems.every((p) => p.startsWith('batch '))).toBe(true);
    await expectSettlementRefused(gateway);
  }, 30_000);
});
