import { afterEach, describe, expect, it } from 'vitest';
import type { StoredBatch } from '../gateway/settlement/batch-book.ts';
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
    expect(batch!.transitions.map((t) => t.state)).toEqual(['sealed', 'submitted', 'pending', 'settled']);
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

  it('carries a batch worth less than one cent instead of paying it', async () => {
    rig = await startTestRig();
    await sendUsage(rig, 'cnc-1', 3); // 3 × 0.0003 EUR
    const [batch] = await rig.gateway.batches.seal();
    expect(batch).toMatchObject({ state: 'carried' });
    expect(batch!.header.carriedOutNano).toBe('900000');
    expect(rig.bank.listPayments()).toHaveLength(0);
  });
});
