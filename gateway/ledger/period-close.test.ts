import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toHex } from '../../protocol/hash.ts';
import { buildProofBundle, verifyProofBundle } from '../../protocol/proof-bundle.ts';
import { generateSigningKey } from '../../protocol/signing.ts';
import type { UsageRecord } from '../../protocol/usage-record.ts';
import type { GatewayConfig } from '../config.ts';
import { sealBatches } from '../settlement/seal-batches.ts';
import { Journal, type RecordDraft } from './journal.ts';
import { openLedgerDb, type LedgerDb } from './ledger-db.ts';
import { closeEndedPeriods } from './period-close.ts';
import { TariffBook } from './tariff-book.ts';

const key = generateSigningKey();
const config = {
  meters: { cycles: { unit: 'cycle' } },
  tariffs: {
    cycles: { versions: [{ version: '1', effectiveFrom: '2026-01-01T00:00:00Z', currency: 'EUR', period: 'month', timeZone: 'Europe/Berlin', rule: { type: 'per_unit', unitPrice: '0.01' }, minimumPerPeriod: '5.00', overrides: {} }] },
  },
} as unknown as Pick<GatewayConfig, 'meters' | 'tariffs'>;

describe('closing a tariff period', () => {
  let dir: string;
  let db: LedgerDb;
  let now: Date;
  let journal: Journal;
  const tariffs = new TariffBook(config);
  let seq = 0;

  /** What priceUsage makes of an event of `quantity` cycles by cnc-1 at `time`. */
  const use = (quantity: number, time: string): Promise<unknown> => {
    const priced = tariffs.tariffFor('cycles', 'acme', time)!;
    seq += 1;
    const draft: RecordDraft = {
      v: 1, deviceId: 'cnc-1', seq, meter: 'cycles', quantity: String(quantity), unit: 'cycle', deviceTime: time, payer: 'acme', tariff: priced.tariff.id, tariffHash: priced.hash,
      period: time.slice(0, 7), periodQtyBefore: '0', currency: 'EUR', amountNano: '0', messageHash: toHex(new Uint8Array(32).fill(seq)),
    };
    return journal.append(draft, priced.tariff);
  };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'period-close-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
    now = new Date('2026-11-20T12:00:00Z');
    seq = 0;
    journal = await Journal.open(db, { gatewayId: 'gw-test', signingKey: key, clock: () => now, queueMax: 1_000, batchMax: 100, checkpointEveryRecords: 1_000, checkpointIntervalMs: 3_600_000 });
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('tops the period up to its minimum once it has ended, prices late usage with it, and the payer can check all of it', async () => {
    await use(100, '2026-11-10T08:00:00Z'); // 1.00 EUR
    await use(50, '2026-11-20T08:00:00Z'); // 0.50 EUR
    expect(await closeEndedPeriods(db, journal, tariffs, now)).toBe(0); // November is not over in Berlin

    now = new Date('2026-11-30T23:30:00Z'); // 00:30 on 1 December in Berlin
    expect(await closeEndedPeriods(db, journal, tariffs, now)).toBe(1);
    const close = (await journal.get(3))!.record;
    expect(close).toMatchObject({ kind: 'minimum', deviceId: '', seq: 0, quantity: '0', period: '2026-11', periodQtyBefore: '150', amountNano: '3500000000' });
    expect(await closeEndedPeriods(db, journal, tariffs, now)).toBe(0); // once

    // A reading delayed past the close: the period now charges max(minimum, usage).
    await use(400, '2026-11-29T08:00:00Z'); // usage 5.50 EUR, already charged 5.00
    expect((await journal.get(4))!.record).toMatchObject({ periodQtyBefore: '150', amountNano: '500000000' });
    const records: UsageRecord[] = [];
    for await (const entry of journal.entries(1, journal.head.index)) records.push(entry.record);
    expect(records.reduce((sum, r) => sum + BigInt(r.amountNano), 0n)).toBe(5_500_000_000n);

    const sealed = sealBatches({ gatewayId: 'gw-test', records, carries: new Map(), nextBatchNo: 1, sealedAt: now.toISOString(), head: journal.head, key });
    const bundle = buildProofBundle({
      gatewayId: 'gw-test', payer: 'acme', period: '2026-11', createdAt: now.toISOString(), batches: sealed.batches.map((b) => ({ header: b.header, records })),
      gatewayKeys: [{ publicKey: toHex(key.publicKey), keyId: key.keyId, validFrom: '2026-01-01T00:00:00.000Z' }], tariffs: [tariffs.byId('cycles@1')!.tariff], deviceKeys: [],
    });
    const trusted = [toHex(key.publicKey)];
    const report = verifyProofBundle(bundle, trusted);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.find((c) => c.id === 'record-amount:3')?.detail).toMatch(/closes period 2026-11 .* top-up to the minimum 5.00 EUR is 3.5/);

    // Rejecting twins: a top-up that overcharges, and late usage priced as if the period were open.
    const overcharged = structuredClone(bundle);
    overcharged.batches[0]!.records[2]!.record.amountNano = '4500000000';
    expect(verifyProofBundle(overcharged, trusted).checks.find((c) => c.id === 'record-amount:3')).toMatchObject({ ok: false });
    const open = structuredClone(bundle);
    open.batches[0]!.records[3]!.record.amountNano = '4000000000';
    expect(verifyProofBundle(open, trusted).checks.find((c) => c.id === 'record-amount:4')).toMatchObject({ ok: false });
  });

  it('closes nothing for a tariff without a minimum, and nothing without usage', async () => {
    await use(10, '2026-11-10T08:00:00Z');
    const noMinimum = new TariffBook({ ...config, tariffs: { cycles: { versions: [{ ...(config.tariffs.cycles!.versions![0]!), minimumPerPeriod: undefined }] } } } as unknown as Pick<GatewayConfig, 'meters' | 'tariffs'>);
    now = new Date('2026-12-02T00:00:00Z');
    expect(await closeEndedPeriods(db, journal, noMinimum, now)).toBe(0);
    expect(journal.head.index).toBe(1);
  });
});
