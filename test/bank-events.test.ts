import { afterEach, describe, expect, it } from 'vitest';
import { notificationOf } from '../bank-sandbox/event-notifications.ts';
import type { StoredBatch } from '../gateway/settlement/batch-book.ts';
import { generateJwsKey, OB_TRUST_ANCHOR, signDetachedJws, type JwsKeyPair } from '../gateway/settlement/jws.ts';
import { sendUsage, startTestRig, type TestRig } from './support/test-gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const BANK_ISS = 'meterbridge-sandbox-bank';
/** Long enough that only an event can have moved a batch during a test. */
const POLL_INTERVAL_MS = 600_000;

const longPoll = (raw: Record<string, unknown>): void => {
  raw.settlement = { ...(raw.settlement as object), pollIntervalMs: POLL_INTERVAL_MS };
};

async function waitForBatch(rig: TestRig, batchNo: number, done: (batch: StoredBatch) => boolean, timeoutMs: number): Promise<StoredBatch> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const batch = (await rig.gateway.batches.get(batchNo))!;
    if (done(batch)) return batch;
    if (Date.now() > deadline) throw new Error(`batch ${batchNo} is ${batch.state} after ${timeoutMs} ms: ${JSON.stringify(batch.transitions.map((t) => t.state))}`);
    await sleep(50);
  }
}

/** A batch sent to the bank and pending there, its payment id known to the gateway. */
async function pendingBatch(rig: TestRig): Promise<StoredBatch> {
  await sendUsage(rig, 'yard-1', 2, 1, '500');
  await rig.gateway.batches.seal();
  await rig.gateway.settler.tick();
  const batch = (await rig.gateway.batches.get(1))!;
  expect(batch.state).toBe('pending');
  expect(batch.paymentId).toBeDefined();
  return batch;
}

/** POSTs an event about `paymentId` to the gateway, signed by `key` at `iatS` (default now). */
async function postEvent(rig: TestRig, paymentId: string, options: { key?: JwsKeyPair; iatS?: number; tamper?: boolean; unsigned?: boolean }): Promise<{ status: number; body: { error?: string; status?: string } }> {
  const nowS = options.iatS ?? Math.floor(Date.now() / 1000);
  const body = JSON.stringify(notificationOf({ paymentId, status: 'ACSC', link: `${rig.bank.url}/domestic-vrps/${paymentId}` }, BANK_ISS, nowS));
  const signature = options.key ? signDetachedJws(body, options.key, { iss: BANK_ISS, tan: OB_TRUST_ANCHOR, iatS: nowS }) : undefined;
  const sent = options.tamper ? body.replace('"iat":', '"iat": ') : body;
  const response = await fetch(`${rig.gateway.httpUrl}/bank/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(signature && !options.unsigned ? { 'x-jws-signature': signature } : {}) },
    body: sent,
  });
  return { status: response.status, body: (await response.json()) as { error?: string; status?: string } };
}

describe('signed event notifications from the bank (POST /bank/events)', () => {
  let rig: TestRig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('settles a batch when the bank says its payment settled, without waiting for the poll', async () => {
    rig = await startTestRig({ bankEvents: true, settleAfterMs: 1_000, configPatch: longPoll });
    const batch = await pendingBatch(rig);
    const startedMs = Date.now();
    const settled = await waitForBatch(rig, batch.batchNo, (b) => b.state === 'settled', 8_000);
    expect(Date.now() - startedMs).toBeLessThan(POLL_INTERVAL_MS / 10);
    expect(settled.bankStatus).toBe('ACSC');
    expect(rig.bank.listPayments()).toHaveLength(1);
    expect(rig.bank.notificationCounts()).toMatchObject({ failed: 0, dropped: 0 });
    expect(rig.bank.notificationCounts().delivered).toBeGreaterThanOrEqual(2); // created, then settled
    const metrics = await (await fetch(`${rig.gateway.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/meterbridge_bank_events_total\{outcome="followed"\} [1-9]/);
  });

  it('leaves a batch pending when no event comes and the poll has not run yet', async () => {
    rig = await startTestRig({ settleAfterMs: 50, configPatch: longPoll });
    const batch = await pendingBatch(rig);
    await sleep(1_000);
    expect((await rig.gateway.batches.get(batch.batchNo))!.state).toBe('pending');
  });

  describe('refuses events it cannot trust, and nothing changes', () => {
    const bankKey = generateJwsKey();
    const refusals: Array<[string, (rig: TestRig, paymentId: string) => ReturnType<typeof postEvent>, RegExp]> = [
      ['an unsigned event', (r, id) => postEvent(r, id, { key: bankKey, unsigned: true }), /x-jws-signature missing/],
      ['an event whose body was changed after signing (forged)', (r, id) => postEvent(r, id, { key: bankKey, tamper: true }), /x-jws-signature invalid: the signature does not match/],
      ['an event signed by a key that is not the bank\'s', (r, id) => postEvent(r, id, { key: generateJwsKey() }), /is not a key we trust/],
      ['a replayed event signed an hour ago', (r, id) => postEvent(r, id, { key: bankKey, iatS: Math.floor(Date.now() / 1000) - 3_600 }), /is more than 300 s from now/],
    ];
    for (const [what, send, reason] of refusals) {
      it(`refuses ${what} with 401 and leaves the batch pending; the same event signed by the bank's key then settles it`, async () => {
        rig = await startTestRig({ bankEvents: true, bankSigningKey: bankKey, settleAfterMs: 50, configPatch: longPoll });
        rig.bank.setCallbackUrl(undefined); // this test plays the bank's part
        const batch = await pendingBatch(rig);
        await sleep(100); // the payment is ACSC at the bank by now: only a followed event could settle the batch
        const refused = await send(rig, batch.paymentId!);
        expect(refused.status).toBe(401);
        expect(refused.body.error).toMatch(reason);
        await sleep(300);
        const after = (await rig.gateway.batches.get(batch.batchNo))!;
        expect(after.state).toBe('pending');
        expect(after.transitions).toEqual(batch.transitions);
        const metrics = await (await fetch(`${rig.gateway.httpUrl}/metrics`)).text();
        expect(metrics).toMatch(/meterbridge_bank_events_total\{outcome="refused"\} 1/);
        // Accepting twin: the same event, properly signed now, is followed.
        const accepted = await postEvent(rig, batch.paymentId!, { key: bankKey });
        expect(accepted).toMatchObject({ status: 202, body: { status: 'followed' } });
        expect((await waitForBatch(rig, batch.batchNo, (b) => b.state === 'settled', 5_000)).bankStatus).toBe('ACSC');
      });
    }

    it('does not follow an event about a payment no open batch made', async () => {
      rig = await startTestRig({ bankEvents: true, bankSigningKey: bankKey, settleAfterMs: 50, configPatch: longPoll });
      rig.bank.setCallbackUrl(undefined);
      const batch = await pendingBatch(rig);
      const answer = await postEvent(rig, 'not-a-payment-of-ours', { key: bankKey });
      expect(answer).toMatchObject({ status: 202, body: { status: 'unknown-payment' } });
      await sleep(300);
      expect((await rig.gateway.batches.get(batch.batchNo))!.state).toBe('pending');
    });
  });
});
