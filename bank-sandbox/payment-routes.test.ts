import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSpecRecorder, type SpecRecorder } from '../test/conformance/spec-recorder.ts';
import { startBankSandbox, type BankSandbox, type BankSandboxOptions } from './server.ts';
import { call, consentBody, createConsent, paymentBody, TEST_TOKEN } from './sandbox-fixtures.ts';

let bank: BankSandbox | undefined;
let recorder: SpecRecorder;
let nowMs: number;

async function start(options: Partial<BankSandboxOptions> = {}): Promise<BankSandbox> {
  bank = await startBankSandbox({ accessTokens: [TEST_TOKEN], settleAfterMs: 2000, clock: () => nowMs, onExchange: recorder.onExchange, ...options });
  return bank;
}

async function pay(b: BankSandbox, body: unknown, key: string) {
  return call(b, 'POST', '/domestic-vrps', { body, idempotencyKey: key });
}

beforeEach(() => {
  nowMs = Date.parse('2025-03-03T10:00:00Z');
  // Every request here is valid by the spec (the refusals are business rules), so both halves are checked.
  recorder = createSpecRecorder({ check: 'exchange' });
});

afterEach(async () => {
  await bank?.close();
  bank = undefined;
  expect(recorder.problems).toEqual([]);
});

describe('payment lifecycle', () => {
  it('creates a payment RCVD that is ACSP until settleAfterMs and ACSC after', async () => {
    const b = await start();
    const created = await pay(b, paymentBody(await createConsent(b)), 'p1');
    expect([created.status, created.json.Data.Status]).toEqual([201, 'RCVD']);
    const path = `/domestic-vrps/${created.json.Data.DomesticVRPId}`;
    nowMs += 1999;
    expect((await call(b, 'GET', path)).json.Data.Status).toBe('ACSP');
    nowMs += 1;
    const settled = await call(b, 'GET', path);
    expect([settled.json.Data.Status, settled.json.Data.StatusUpdateDateTime]).toEqual(['ACSC', '2025-03-03T10:00:02.000Z']);
    expect(settled.json.Data.DebtorAccount.Name).toBe('Acme Machining');
  });

  it('answers 400 U011 for a payment id it does not know, not 404', async () => {
    const b = await start();
    const result = await call(b, 'GET', '/domestic-vrps/no-such-payment');
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U011']);
  });
});

describe('idempotency', () => {
  it('returns the same payment for the same key and body, and stores one', async () => {
    const b = await start();
    const body = paymentBody(await createConsent(b));
    const first = await pay(b, body, 'batch-7');
    nowMs += 5000;
    const second = await pay(b, body, 'batch-7');
    expect(second.status).toBe(201);
    expect(second.json.Data.DomesticVRPId).toBe(first.json.Data.DomesticVRPId);
    expect(second.json.Data.Status).toBe('ACSC'); // the current status, not the first answer's
    expect(b.listPayments()).toHaveLength(1);
  });

  it('refuses the same key with a different body with 400 U006 and changes nothing', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    await pay(b, paymentBody(consentId), 'batch-7');
    const result = await pay(b, paymentBody(consentId, { amount: '12.35' }), 'batch-7');
    expect([result.status, result.json.Errors[0]]).toEqual([400, expect.objectContaining({ ErrorCode: 'U006', Path: 'x-idempotency-key' })]);
    expect(b.listPayments().map((p) => p.amountMinor)).toEqual([1234n]);
  });

  it('creates a second payment for a key reused after 24 hours', async () => {
    const b = await start();
    const body = paymentBody(await createConsent(b));
    const first = await pay(b, body, 'batch-7');
    nowMs += 24 * 60 * 60 * 1000;
    const second = await pay(b, body, 'batch-7');
    expect(second.json.Data.DomesticVRPId).not.toBe(first.json.Data.DomesticVRPId);
    expect(b.listPayments()).toHaveLength(2);
  });

  it('keeps keys of different TPPs apart', async () => {
    const b = await start({ accessTokens: [TEST_TOKEN, 'sandbox-test-token-2'] });
    const first = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody(), idempotencyKey: 'shared' });
    const second = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody(), idempotencyKey: 'shared', token: 'sandbox-test-token-2' });
    expect(second.json.Data.ConsentId).not.toBe(first.json.Data.ConsentId);
  });
});

describe('control parameters', () => {
  it('accepts a payment of exactly MaximumIndividualAmount', async () => {
    const b = await start();
    expect((await pay(b, paymentBody(await createConsent(b), { amount: '100.00' }), 'p')).status).toBe(201);
  });

  it('refuses a payment above MaximumIndividualAmount with 400 U014 naming the parameter', async () => {
    const b = await start();
    const result = await pay(b, paymentBody(await createConsent(b), { amount: '100.01' }), 'p');
    expect(result.status).toBe(400);
    expect(result.json.Errors[0]).toMatchObject({ ErrorCode: 'U014', Path: 'Data.ControlParameters.MaximumIndividualAmount' });
    expect(result.json.Errors[0].Message).toMatch(/100\.01 exceeds MaximumIndividualAmount 100\.00/);
    expect(b.listPayments()).toEqual([]);
  });

  it('refuses a payment in another currency than the consent\u2019s with U014', async () => {
    const b = await start();
    const result = await pay(b, paymentBody(await createConsent(b), { currency: 'EUR' }), 'p');
    expect([result.status, result.json.Errors[0].Path]).toEqual([400, 'Data.ControlParameters.MaximumIndividualAmount.Currency']);
  });

  it('accepts payments up to the periodic limit and refuses the one beyond it', async () => {
    const b = await start();
    const limits = [{ PeriodType: 'Day' as const, PeriodAlignment: 'Calendar' as const, Amount: '30.00', Currency: 'GBP' }];
    const consentId = await createConsent(b, consentBody({ limits }));
    expect((await pay(b, paymentBody(consentId, { amount: '20.00' }), 'a')).status).toBe(201);
    expect((await pay(b, paymentBody(consentId, { amount: '10.00', endToEnd: 'b' }), 'b')).status).toBe(201);
    const third = await pay(b, paymentBody(consentId, { amount: '0.01', endToEnd: 'c' }), 'c');
    expect([third.status, third.json.Errors[0].Path]).toEqual([400, 'Data.ControlParameters.PeriodicLimits[0]']);
    nowMs += 24 * 60 * 60 * 1000; // the next calendar day has a fresh limit
    expect((await pay(b, paymentBody(consentId, { amount: '0.01', endToEnd: 'c' }), 'c2')).status).toBe(201);
  });

  it('refuses an amount with more decimals than the currency has with U002', async () => {
    const b = await start();
    const result = await pay(b, paymentBody(await createConsent(b), { amount: '1.234' }), 'p');
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U002']);
  });

  it('accepts trailing zero decimals the spec allows', async () => {
    const b = await start();
    const result = await pay(b, paymentBody(await createConsent(b), { amount: '1.23000' }), 'p');
    expect(result.status).toBe(201);
    expect(b.listPayments()[0]?.amountMinor).toBe(123n);
  });

  it('refuses a payment whose Initiation does not match the consent with 400 U008', async () => {
    const b = await start();
    const body = paymentBody(await createConsent(b));
    delete body.Data.Initiation.DebtorAccount;
    const result = await pay(b, body, 'p');
    expect([result.status, result.json.Errors[0]]).toEqual([400, expect.objectContaining({ ErrorCode: 'U008', Path: 'Data.Initiation' })]);
  });
});

describe('consent status', () => {
  it('refuses a payment under a consent still awaiting authorisation with 400 U009', async () => {
    const b = await start({ autoAuthoriseConsents: false });
    const result = await pay(b, paymentBody(await createConsent(b)), 'p');
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U009']);
    expect(b.listPayments()).toEqual([]);
  });

  it('accepts the payment once the PSU has authorised the consent', async () => {
    const b = await start({ autoAuthoriseConsents: false });
    const consentId = await createConsent(b);
    await call(b, 'POST', `/sandbox/consents/${consentId}/authorise`);
    expect((await pay(b, paymentBody(consentId), 'p')).status).toBe(201);
  });

  it('refuses a payment under a revoked consent with 400 U009', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    await call(b, 'DELETE', `/domestic-vrp-consents/${consentId}`);
    expect((await pay(b, paymentBody(consentId), 'p')).json.Errors[0].ErrorCode).toBe('U009');
  });

  it('refuses a payment under a consent it does not know with 400 U011', async () => {
    const b = await start();
    expect((await pay(b, paymentBody('no-such-consent'), 'p')).json.Errors[0]).toMatchObject({ ErrorCode: 'U011', Path: 'Data.ConsentId' });
  });
});

describe('faults', () => {
  it('answers failNext with 503, creates nothing, then serves again', async () => {
    const b = await start();
    recorder.tolerated.add(503);
    const body = paymentBody(await createConsent(b));
    b.faults.failNext(1, 503);
    const failed = await pay(b, body, 'p');
    expect([failed.status, failed.json.Errors[0].ErrorCode]).toEqual([503, 'U000']);
    expect(b.listPayments()).toEqual([]);
    expect((await pay(b, body, 'p')).status).toBe(201);
  });

  it('stores the payment and drops the connection on timeoutAfterAccept; the retry returns that payment', async () => {
    const b = await start();
    const body = paymentBody(await createConsent(b));
    b.faults.timeoutAfterAcceptNext(1, 10);
    await expect(pay(b, body, 'batch-9')).rejects.toThrow(/fetch failed/);
    expect(b.listPayments()).toHaveLength(1);
    const retried = await pay(b, body, 'batch-9');
    expect([retried.status, retried.json.Data.DomesticVRPId]).toEqual([201, b.listPayments()[0]?.paymentId]);
    expect(b.listPayments()).toHaveLength(1);
  });

  it('creates the payment RJCT with a status reason on rejectNextPayments, and only the next one', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    b.faults.rejectNextPayments(1);
    const rejected = await pay(b, paymentBody(consentId), 'p1');
    expect([rejected.status, rejected.json.Data.Status, rejected.json.Data.StatusReason[0].StatusReasonCode]).toEqual([201, 'RJCT', 'U042']);
    nowMs += 10_000;
    expect((await call(b, 'GET', `/domestic-vrps/${rejected.json.Data.DomesticVRPId}`)).json.Data.Status).toBe('RJCT');
    expect((await pay(b, paymentBody(consentId, { endToEnd: 'next' }), 'p2')).json.Data.Status).toBe('RCVD');
  });

  it('forgets pending faults on clear', async () => {
    const b = await start();
    const body = paymentBody(await createConsent(b));
    b.faults.failNext(5, 500);
    b.faults.rejectNextPayments(5);
    b.faults.clear();
    expect((await pay(b, body, 'p')).json.Data.Status).toBe('RCVD');
  });

  it('refuses fault settings out of range', async () => {
    const b = await start();
    expect(() => b.faults.failNext(0, 500)).toThrow(/count/);
    expect(() => b.faults.failNext(1, 404)).toThrow(/httpStatus/);
    expect(() => b.faults.timeoutAfterAcceptNext(1, -1)).toThrow(/delayMs/);
  });
});
