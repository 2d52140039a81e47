import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SignedBatchHeader } from '../../protocol/usage-record.ts';
import { sendUsage, startTestRig, type TestRig } from '../../test/support/test-gateway.ts';
import { openLedgerDb, type LedgerDb } from '../ledger/ledger-db.ts';
import type { BatchStateName, StoredBatch } from './batch-book.ts';
import { AlertBook, endToEndIdNamesBatch, findMismatches, Reconciler, vrpBankRecords, type BankPaymentRecord } from './reconcile.ts';
import { VrpClient } from './vrp-client.ts';

const TOKEN = 'test-bank-token';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function batch(batchNo: number, state: BatchStateName, amountMinor: string, paymentId?: string): StoredBatch {
  const header = { batchId: `gw/${batchNo}`, payer: 'acme-plant', currency: 'EUR', amountMinor, merkleRoot: String(batchNo).repeat(64).slice(0, 64) } as unknown as SignedBatchHeader;
  return { batchNo, header, state, idempotencyKey: `k${batchNo}`, attempts: 1, transitions: [], ...(paymentId === undefined ? {} : { paymentId }) };
}
const e2e = (b: StoredBatch, chars = 31): string => `MB${b.batchNo}-${b.header.merkleRoot}`.slice(0, chars);
const atBankFor = (b: StoredBatch, patch: Partial<BankPaymentRecord> = {}): BankPaymentRecord => ({ paymentId: b.paymentId!, endToEndIdentification: e2e(b), amountMinor: BigInt(b.header.amountMinor), currency: 'EUR', status: b.state === 'settled' ? 'ACSC' : 'RJCT', ...patch });

describe('endToEndIdNamesBatch', () => {
  const b = batch(12, 'settled', '100', 'p');
  it('accepts the batch number with its root cut to 31 or 35 characters, and a part of it', () => {
    expect([e2e(b, 31), e2e(b, 35), `MB12.2.1-${b.header.merkleRoot}`.slice(0, 35)].map((id) => endToEndIdNamesBatch(id, b))).toEqual([true, true, true]);
  });
  it('refuses another batch number, another root and a root too short to tell gateways apart', () => {
    expect(['MB13-' + b.header.merkleRoot.slice(0, 26), 'MB12-ffffffffffff', 'MB12-' + b.header.merkleRoot.slice(0, 7), 'XX12-' + b.header.merkleRoot.slice(0, 26)].map((id) => endToEndIdNamesBatch(id, b))).toEqual([false, false, false, false]);
  });
});

describe('findMismatches', () => {
  it('finds nothing when every settled and rejected batch matches its payment', () => {
    const batches = [batch(1, 'settled', '100', 'p1'), batch(2, 'rejected', '200', 'p2'), batch(3, 'rejected', '300'), batch(4, 'sealed', '400')];
    const atBank = new Map([['p1', atBankFor(batches[0]!)], ['p2', atBankFor(batches[1]!)]]);
    expect(findMismatches({ batches, atBank, listing: [...atBank.values()] })).toEqual([]);
  });

  it('skips a batch whose payment could not be read, and a payment of a batch still in flight', () => {
    const batches = [batch(1, 'settled', '100', 'p1'), batch(2, 'submitted', '200')];
    const inFlight: BankPaymentRecord = { paymentId: 'p2', endToEndIdentification: e2e(batches[1]!), amountMinor: 200n, currency: 'EUR', status: 'RCVD' };
    expect(findMismatches({ batches, atBank: new Map(), listing: [inFlight] })).toEqual([]);
  });

  it('compares each part of a batch paid in parts with its own payment', () => {
    const split = { ...batch(5, 'settled', '300'), parts: [
      { partNo: 1, amountMinor: '200', endToEndId: 'MB5.1.0-5555555555555555555555555', state: 'settled', paymentId: 'q1' },
      { partNo: 2, amountMinor: '100', endToEndId: 'MB5.2.0-5555555555555555555555555', state: 'settled', paymentId: 'q2' },
    ] } as StoredBatch;
    const atBank = new Map<string, BankPaymentRecord | undefined>([
      ['q1', { paymentId: 'q1', endToEndIdentification: 'MB5.1.0-5555555555555555555555555', amountMinor: 200n, currency: 'EUR', status: 'ACSC' }],
      ['q2', { paymentId: 'q2', endToEndIdentification: 'MB5.2.0-5555555555555555555555555', amountMinor: 150n, currency: 'EUR', status: 'ACSC' }],
    ]);
    expect(findMismatches({ batches: [split], atBank })).toEqual([{ kind: 'amount-differs', batchNo: 5, batchId: 'gw/5', paymentId: 'q2', detail: "Part 2 of batch gw/5 is settled for 1.00 EUR in the ledger; the bank's payment q2 is for 1.50 EUR" }]);
  });

  it('reports a settled batch without a payment id as missing at the bank', () => {
    expect(findMismatches({ batches: [batch(1, 'settled', '100')], atBank: new Map() }).map((a) => a.kind)).toEqual(['missing-at-bank']);
  });
});

/** Rewrites the sandbox bank's record of a payment (bank-sandbox/listing-routes.ts, not OB spec). */
async function drill(rig: TestRig, paymentId: string, body: Record<string, unknown>): Promise<void> {
  const response = await fetch(new URL(`/sandbox/payment-listing/${paymentId}`, rig.bank.url), { method: 'PATCH', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(response.status).toBe(204);
}

async function settleAll(rig: TestRig): Promise<StoredBatch[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    await rig.gateway.settler.tick();
    const batches: StoredBatch[] = [];
    for await (const b of rig.gateway.batches.all()) batches.push(b);
    if (batches.length > 0 && batches.every((b) => ['settled', 'rejected', 'carried'].includes(b.state))) return batches;
    if (Date.now() > deadline) throw new Error(`batches not final: ${JSON.stringify(batches.map((b) => [b.batchNo, b.state, b.lastError]))}`);
    await sleep(100);
  }
}

describe('reconciliation against the sandbox bank over HTTP', () => {
  let rig: TestRig | undefined;
  let dir: string | undefined;
  let db: LedgerDb | undefined;
  afterEach(async () => {
    await db?.close();
    await rig?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    rig = undefined;
    dir = undefined;
    db = undefined;
  });

  it('raises each kind of alert once when the bank disagrees, keeps them in the ledger, and acknowledges them', async () => {
    rig = await startTestRig({ settleAfterMs: 50 });
    await sendUsage(rig, 'cnc-1', 3, 1, '1000'); // acme-plant: 0.90 EUR
    await sendUsage(rig, 'truck-1', 2, 1, '1000'); // northline-logistics: 0.30 GBP
    await sendUsage(rig, 'yard-1', 2, 1, '500'); // harbour-yard: 0.20 EUR
    await rig.gateway.batches.seal();
    await settleAll(rig);
    await sendUsage(rig, 'yard-1', 1, 3, '500');
    rig.bank.faults.rejectNextPayments(1);
    await rig.gateway.batches.seal();
    const batches = await settleAll(rig);
    const byPayer = (payer: string, state: BatchStateName) => batches.find((b) => b.header.payer === payer && b.state === state)!;
    const acme = byPayer('acme-plant', 'settled');
    const truck = byPayer('northline-logistics', 'settled');
    const yard = byPayer('harbour-yard', 'settled');
    const yardRejected = byPayer('harbour-yard', 'rejected');
    expect([acme.header.amountMinor, truck.header.amountMinor, yard.header.amountMinor, yardRejected.header.amountMinor]).toEqual(['90', '30', '20', '10']);

    const client = new VrpClient({ baseUrl: rig.bank.url, accessToken: TOKEN });
    const bank = vrpBankRecords(client, { listing: { baseUrl: rig.bank.url, accessToken: TOKEN } });
    let alerts = await AlertBook.open(rig.gateway.db, { clock: () => new Date() });
    let reconciler = new Reconciler({ batches: () => rig!.gateway.batches.all(), bank, alerts });
    // The settler's EndToEndIdentification and amounts match: nothing to say.
    expect(await reconciler.reconcile()).toMatchObject({ checkedBatches: 4, listedPayments: 4, alerts: [], unreadable: [] });

    // The bank cannot be asked: no alert, the batches are checked next time.
    rig.bank.faults.failNext(10, 503);
    const outage = await reconciler.reconcile();
    expect([outage.alerts, outage.unreadable.length, outage.checkedBatches]).toEqual([[], 4, 0]);
    rig.bank.faults.clear();

    await drill(rig, acme.paymentId!, { Amount: '0.95' });
    await drill(rig, truck.paymentId!, { Forget: true });
    await drill(rig, yardRejected.paymentId!, { Status: 'ACSC' });
    await drill(rig, yard.paymentId!, { EndToEndIdentification: 'MB99-somethingelse' });
    const consent = await client.createConsent({ idempotencyKey: 'drill-consent', reference: 'drill', currency: 'EUR', creditor: rig.config.payee.account, maxIndividualAmountMinor: 10_000n });
    await sleep(10);
    const pay = (key: string, endToEndIdentification: string, amountMinor: bigint) => client.createPayment({ consentId: consent.consentId, idempotencyKey: key, instructionIdentification: key, endToEndIdentification, amountMinor, currency: 'EUR', creditor: rig!.config.payee.account, remittance: { reference: key, unstructured: key } });
    const stranger = await pay('drill-stranger', 'NOT-A-BATCH', 123n);
    const twice = await pay('drill-twice', `MB${acme.batchNo}.1.1-${acme.header.merkleRoot}`.slice(0, 35), 90n);

    const report = await reconciler.reconcile();
    const seen = report.alerts.map((a) => [a.kind, a.batchNo ?? null, a.paymentId]);
    expect(seen).toEqual(expect.arrayContaining([
      ['amount-differs', acme.batchNo, acme.paymentId],
      ['missing-at-bank', truck.batchNo, truck.paymentId],
      ['status-differs', yardRejected.batchNo, yardRejected.paymentId],
      ['reference-differs', yard.batchNo, yard.paymentId],
      ['unexpected-at-bank', null, stranger.paymentId],
      ['unexpected-at-bank', acme.batchNo, twice.paymentId],
    ]));
    expect(seen).toHaveLength(6);
    const detail = (kind: string) => report.alerts.find((a) => a.kind === kind)!.detail;
    expect(detail('amount-differs')).toBe(`Batch ${acme.header.batchId} is settled for 0.90 EUR in the ledger; the bank's payment ${acme.paymentId} is for 0.95 EUR`);
    expect(detail('missing-at-bank')).toContain('the bank has no such payment');
    expect(detail('status-differs')).toBe(`Batch ${yardRejected.header.batchId} is rejected in the ledger; the bank reports payment ${yardRejected.paymentId} as ACSC`);
    expect(report.alerts.find((a) => a.paymentId === twice.paymentId)!.detail).toMatch(/paid twice\?$/);
    expect(report.alerts.every((a) => a.acknowledged === false && !Number.isNaN(Date.parse(a.at)))).toBe(true);
    expect(alerts.unacknowledgedCount).toBe(6);

    // A second run finds the same things and records nothing new.
    expect((await reconciler.reconcile()).alerts).toEqual([]);

    const first = report.alerts[0]!;
    const acknowledged = await alerts.acknowledge(first.alertNo, 'operator');
    expect(acknowledged).toMatchObject({ alertNo: first.alertNo, acknowledged: true, acknowledgedBy: 'operator' });
    expect((await alerts.acknowledge(first.alertNo)).acknowledgedAt).toBe(acknowledged.acknowledgedAt);
    await expect(alerts.acknowledge(999)).rejects.toThrow('Cannot acknowledge alert 999: no such alert');
    expect((await alerts.list({ unacknowledged: true })).map((a) => a.alertNo)).not.toContain(first.alertNo);
    expect(await alerts.list()).toHaveLength(6);

    // Stored in the ledger: a restarted gateway reads them back and still does not repeat them.
    await rig.restartGateway();
    alerts = await AlertBook.open(rig.gateway.db, { clock: () => new Date() });
    expect([(await alerts.list()).length, alerts.unacknowledgedCount]).toEqual([6, 5]);
    reconciler = new Reconciler({ batches: () => rig!.gateway.batches.all(), bank, alerts });
    expect((await reconciler.reconcile()).alerts).toEqual([]);
  }, 30_000);

  it('stops recording at alertsMax and counts what it dropped', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'reconcile-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
    const alerts = await AlertBook.open(db, { clock: () => new Date('2025-03-03T10:00:00Z'), alertsMax: 2 });
    const drafts = [1, 2, 3].map((n) => ({ kind: 'missing-at-bank' as const, batchNo: n, detail: `batch ${n}` }));
    const { recorded, dropped } = await alerts.record(drafts);
    expect([recorded.map((a) => a.alertNo), dropped]).toEqual([[1, 2], 1]);
    expect((await alerts.list()).map((a) => a.alertNo)).toEqual([2, 1]);
    await expect(AlertBook.open(db, { clock: () => new Date(), alertsMax: 0 })).rejects.toThrow(/alertsMax/);
  });
});
