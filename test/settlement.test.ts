import { afterEach, describe, expect, it } from 'vitest';
import type { BankSandbox } from '../bank-sandbox/server.ts';
import type { StoredBatch } from '../gateway/settlement/batch-book.ts';
import { openSettlerRig, startFaultBank, type SettlerRig, type SettlerRigOptions, type VirtualClock } from './support/settler-run.ts';
import { sendUsage, startTestRig, type TestRig } from './support/test-gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function tickUntil(rig: TestRig, done: (batches: StoredBatch[]) => boolean, timeoutMs = 10_000): Promise<StoredBatch[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await rig.gateway.settler.tick();
    const batches: StoredBatch[] = [];
    for await (const batch of rig.gateway.batches.all()) batches.push(batch);
    if (done(batches)) return batches;
    if (Date.now() > deadline) throw new Error(`timed out; batches: ${JSON.stringify(batches.map((b) => [b.batchNo, b.state, b.lastError]))}`);
    await sleep(100);
  }
}

const allFinal = (batches: StoredBatch[]): boolean => batches.length > 0 && batches.every((b) => ['settled', 'rejected', 'carried'].includes(b.state));

describe('settlement through the sandbox bank', () => {
  let rig: TestRig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('pays one batch per payer, rounded down to minor units, and carries the remainder', async () => {
    rig = await startTestRig();
    await sendUsage(rig, 'truck-1', 3, 1, '1001'); // 3 × 1001 m × 0.00015 GBP = 0.45045 GBP
    await rig.gateway.batches.seal();
    const [batch] = await tickUntil(rig, allFinal);
    expect(batch).toMatchObject({ state: 'settled', bankStatus: 'ACSC' });
    expect(batch!.header).toMatchObject({ totalNano: '450450000', amountMinor: '45', carriedOutNano: '450000', currency: 'GBP' });
    expect(rig.bank.listPayments().map((p) => [p.amountMinor, p.currency, p.idempotencyKey])).toEqual([[45n, 'GBP', batch!.idempotencyKey]]);
    // Pending is seen only if a poll comes before the bank settles it: a busy machine may skip it.
    expect(batch!.transitions.map((t) => t.state).filter((state) => state !== 'pending')).toEqual(['sealed', 'submitted', 'settled']);
  });

  it('pays once when the bank accepts but the answer times out, retrying with the same key', async () => {
    rig = await startTestRig({ bankTimeoutMs: 300 });
    await sendUsage(rig, 'yard-1', 2, 1, '500');
    await rig.gateway.batches.seal();
    rig.bank.faults.timeoutAfterAcceptNext(1, 1_000);
    await rig.gateway.settler.tick();
    const afterTimeout = (await rig.gateway.batches.get(1))!;
    expect(afterTimeout.state).toBe('submitted');
    expect(afterTimeout.lastError).toMatch(/no answer within 300 ms|timed out|timeout/i);
    expect(rig.bank.listPayments()).toHaveLength(1); // the bank did accept it
    const [batch] = await tickUntil(rig, allFinal);
    expect(batch!.state).toBe('settled');
    expect(rig.bank.listPayments()).toHaveLength(1);
  });

  it('pays once when the gateway restarts between sending the payment and hearing back', async () => {
    rig = await startTestRig({ bankTimeoutMs: 300 });
    await sendUsage(rig, 'yard-1', 2, 1, '500');
    await rig.gateway.batches.seal();
    rig.bank.faults.timeoutAfterAcceptNext(1, 1_000);
    await rig.gateway.settler.tick();
    expect((await rig.gateway.batches.get(1))!.state).toBe('submitted');
    await rig.restartGateway();
    const [batch] = await tickUntil(rig, allFinal);
    expect(batch!.state).toBe('settled');
    expect(rig.bank.listPayments()).toHaveLength(1);
  });

  it('keeps retrying through bank outages (503) and then settles', async () => {
    rig = await startTestRig();
    await sendUsage(rig, 'cnc-1', 40);
    await rig.gateway.batches.seal();
    rig.bank.faults.failNext(2, 503);
    await rig.gateway.settler.tick();
    expect((await rig.gateway.batches.get(1))!.lastError).toMatch(/503/);
    const [batch] = await tickUntil(rig, allFinal);
    expect(batch!.state).toBe('settled');
    expect(rig.bank.listPayments()).toHaveLength(1);
  });

  it('marks a batch rejected when the bank rejects the payment, and leaves its amount unsettled', async () => {
    rig = await startTestRig();
    await sendUsage(rig, 'cnc-1', 40);
    await rig.gateway.batches.seal();
    rig.bank.faults.rejectNextPayments(1);
    const [batch] = await tickUntil(rig, allFinal);
    expect(batch!.state).toBe('rejected');
    expect(rig.gateway.batches.settledMinorByCurrency().get('EUR') ?? 0n).toBe(0n);
  });

  it('holds batches while the payer has not authorised the consent, then pays', async () => {
    rig = await startTestRig({ autoAuthoriseConsents: false });
    await sendUsage(rig, 'cnc-1', 40);
    await rig.gateway.batches.seal();
    await rig.gateway.settler.tick();
    const held = (await rig.gateway.batches.get(1))!;
    expect(held.state).toBe('sealed');
    expect(held.lastError).toMatch(/waiting for the payer to authorise/);
    const [consent] = rig.bank.listConsents();
    const origin = new URL(rig.bank.url).origin;
    const authorised = await fetch(`${origin}/sandbox/consents/${consent!.consentId}/authorise`, { method: 'POST', headers: { authorization: 'Bearer test-bank-token' } });
    expect(authorised.ok).toBe(true);
    const [batch] = await tickUntil(rig, allFinal);
    expect(batch!.state).toBe('settled');
  });

  it('pays a batch split under the consent\u2019s MaximumIndividualAmount once per part through a timeout and a restart', async () => {
    rig = await startTestRig({
      bankTimeoutMs: 300,
      configPatch: (raw) => {
        (raw.payers as Record<string, { maxIndividualAmount: string }>)['northline-logistics']!.maxIndividualAmount = '0.20';
      },
    });
    await sendUsage(rig, 'truck-1', 3, 1, '1001'); // 0.45 GBP: three payments of 0.15
    await rig.gateway.batches.seal();
    rig.bank.faults.timeoutAfterAcceptNext(1, 1_000);
    await rig.gateway.settler.tick();
    expect((await rig.gateway.batches.get(1))!.state).toBe('submitted');
    await rig.restartGateway();
    const [batch] = await tickUntil(rig, allFinal);
    expect(batch!.state).toBe('settled');
    expect(batch!.parts!.map((p) => [p.amountMinor, p.state])).toEqual([['15', 'settled'], ['15', 'settled'], ['15', 'settled']]);
    const payments = rig.bank.listPayments();
    expect(payments.map((p) => [p.amountMinor, p.status])).toEqual([[15n, 'ACSC'], [15n, 'ACSC'], [15n, 'ACSC']]);
    expect(new Set(payments.map((p) => p.endToEndIdentification)).size).toBe(3);
    expect(rig.gateway.batches.settledMinorByCurrency().get('GBP')).toBe(45n);
  });

  it('carries a batch worth less than one cent instead of paying it', async () => {
    rig = await startTestRig();
    await sendUsage(rig, 'cnc-1', 3); // 3 × 0.0003 EUR
    const [batch] = await rig.gateway.batches.seal();
    expect(batch).toMatchObject({ state: 'carried' });
    expect(batch!.header.carriedOutNano).toBe('900000');
    expect(rig.bank.listPayments()).toHaveLength(0);
  });
});

/** The settler alone, on a virtual clock shared with the bank (support/settler-run.ts). */
describe('settlement within the consent, driven tick by tick', () => {
  let shared: Awaited<ReturnType<typeof startFaultBank>> | undefined;
  let rig: SettlerRig | undefined;
  afterEach(async () => {
    await rig?.close();
    await shared?.bank.close();
    rig = undefined;
    shared = undefined;
  });

  const start = async (options: Partial<SettlerRigOptions> = {}): Promise<{ bank: BankSandbox; clock: VirtualClock; rig: SettlerRig }> => {
    shared = await startFaultBank();
    shared.clock.nowMs = Date.parse('2026-03-02T09:00:00Z');
    rig = await openSettlerRig({ ...shared, gatewayId: 'gw-limits', clientTimeoutMs: 2_000, ...options });
    return { ...shared, rig };
  };

  /** Ticks, moving the clock `stepMs` each time, until `done`. */
  const drive = async (r: SettlerRig, clock: VirtualClock, done: (batches: StoredBatch[]) => boolean, stepMs = 60_000, ticksMax = 500): Promise<StoredBatch[]> => {
    for (let tick = 0; tick < ticksMax; tick += 1) {
      await r.settler.tick();
      const batches = await r.batches();
      if (done(batches)) return batches;
      clock.nowMs += stepMs;
    }
    throw new Error(`not done after ${ticksMax} ticks: ${JSON.stringify((await r.batches()).map((b) => [b.batchNo, b.state, b.lastError, b.transitions.at(-1)?.detail]))}`);
  };
  const sumAtBank = (bank: BankSandbox): bigint => bank.listPayments().filter((p) => p.status === 'ACSC').reduce((sum, p) => sum + p.amountMinor, 0n);

  it('splits a batch over MaximumIndividualAmount into payments of at most it, each under its own key', async () => {
    const { bank, clock, rig: r } = await start({ periodicLimits: {} });
    await r.use('acme', 14_50); // acme's consent allows 6.00 a payment
    await r.seal();
    const [batch] = await drive(r, clock, allFinal);
    expect(batch!.state).toBe('settled');
    expect(batch!.parts!.map((p) => p.amountMinor)).toEqual(['484', '483', '483']);
    const payments = bank.listPayments();
    expect(payments.map((p) => p.amountMinor)).toEqual([484n, 483n, 483n]);
    expect(new Set(payments.map((p) => p.idempotencyKey)).size).toBe(3);
    expect(payments.map((p) => p.endToEndIdentification)).toEqual(batch!.parts!.map((p) => p.endToEndId));
    expect(payments[0]!.idempotencyKey).toBe(batch!.idempotencyKey);
    expect(r.book.settledMinorByCurrency().get('GBP')).toBe(14_50n);
    expect(sumAtBank(bank)).toBe(14_50n);
  });

  it('holds a batch that would need more payments than allowed, sending nothing', async () => {
    const { bank, clock, rig: r } = await start({ periodicLimits: {}, partsMax: 2 });
    await r.use('acme', 14_50); // three payments of at most 6.00; two allowed
    await r.seal();
    const [batch] = await drive(r, clock, (batches) => batches[0]?.state === 'held');
    expect(batch!.transitions.at(-1)!.detail).toMatch(/14\.50 GBP needs more than 2 payments of at most 6\.00 GBP/);
    expect(bank.listPayments()).toEqual([]);
  });

  it('pays a batch within every limit at once, holding nothing', async () => {
    const { bank, clock, rig: r } = await start();
    await r.use('acme', 5_00);
    await r.seal();
    const [batch] = await drive(r, clock, allFinal);
    expect(batch!.transitions.map((t) => t.state)).toEqual(['sealed', 'submitted', 'pending', 'settled']);
    expect(sumAtBank(bank)).toBe(5_00n);
  });

  it('holds a payment that would break the Day limit until the next day, says why, and never sends it early', async () => {
    const { bank, clock, rig: r } = await start(); // acme: 6.00 a payment, 25.00 a calendar day
    await r.use('acme', 20_00);
    await r.seal();
    await drive(r, clock, allFinal);
    await r.use('acme', 8_00); // 4.00 fits today (24.00), the second 4.00 does not
    await r.seal();
    const held = await drive(r, clock, (batches) => batches[1]?.state === 'held');
    const reason = held[1]!.transitions.at(-1)!.detail!;
    expect(reason).toMatch(/payment 2 of 2 of 4\.00 GBP held until 2026-03-03T01:05:00\.000Z: the Day limit \(Calendar aligned\) of 25\.00 GBP for 2026-03-02 to 2026-03-03 has 24\.00 GBP paid/);
    expect(bank.listPayments().filter((p) => p.creationDateTime.startsWith('2026-03-02')).reduce((s, p) => s + p.amountMinor, 0n)).toBe(24_00n);
    const batches = await drive(r, clock, allFinal, 30 * 60_000);
    expect(batches.map((b) => b.state)).toEqual(['settled', 'settled']);
    expect(bank.listPayments().at(-1)!.creationDateTime >= '2026-03-03T01:05').toBe(true);
    expect(batches.flatMap((b) => b.transitions).some((t) => /U014/.test(t.detail ?? ''))).toBe(false); // the bank never had to refuse one
    expect(sumAtBank(bank)).toBe(28_00n);
  });

  it('looks a payment up once its key is past the idempotency window, and follows the one it finds', async () => {
    const { bank, clock, rig: r } = await start({ clientTimeoutMs: 100 });
    await r.use('north', 12_00);
    await r.seal();
    bank.faults.timeoutAfterAcceptNext(1, 150); // the bank makes the payment; we never hear so
    await r.settler.tick();
    bank.faults.failNext(10_000, 503); // and then hear nothing for a day
    await new Promise((resolve) => setTimeout(resolve, 200));
    const unknown = await drive(r, clock, (batches) => batches[0]?.state === 'unknown', 60 * 60_000);
    expect(unknown[0]!.transitions.at(-1)!.detail).toMatch(/past the bank's 24 h idempotency window/);
    bank.faults.clear();
    const [batch] = await drive(r, clock, allFinal, 5 * 60_000);
    expect(batch!.state).toBe('settled');
    expect(batch!.transitions.some((t) => t.detail?.startsWith('found at the bank by EndToEndIdentification'))).toBe(true);
    expect(bank.listPayments()).toHaveLength(1);
  });

  it('sends again under a new key, and only then, when the lookup finds no payment', async () => {
    const { bank, clock, rig: r } = await start();
    await r.use('north', 3_00);
    await r.seal();
    await drive(r, clock, allFinal); // the consent is made and known to be authorised
    await r.use('north', 12_00);
    await r.seal();
    bank.faults.failNext(10_000, 503); // from now on every API request fails: nothing is made
    await drive(r, clock, (batches) => batches[1]?.state === 'unknown', 60 * 60_000);
    bank.faults.clear();
    const batch = (await drive(r, clock, allFinal, 5 * 60_000))[1];
    expect(batch!.state).toBe('settled');
    const resent = batch!.transitions.find((t) => t.detail?.includes('sending again is safe'));
    expect(resent?.detail).toMatch(/no payment with EndToEndIdentification MB2-\w+ \(key \w+\) at the bank, so sending again is safe: new key \w+/);
    const payment = bank.listPayments()[1];
    expect(bank.listPayments()).toHaveLength(2);
    expect(payment!.idempotencyKey).not.toBe(batch!.idempotencyKey);
    expect(payment!.endToEndIdentification).toBe(batch!.parts![0]!.endToEndId);
    expect(batch!.parts![0]!.earlier).toEqual([expect.objectContaining({ idempotencyKey: batch!.idempotencyKey, outcome: 'not at the bank' })]);
  });
});
