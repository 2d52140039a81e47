import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSpecRecorder, type SpecRecorder } from '../test/conformance/spec-recorder.ts';
import { startBankSandbox, type BankSandbox, type BankSandboxOptions } from './server.ts';
import { parseFaultSpec } from './faults.ts';
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

  it('answers twice: a retry while the first request is still processing waits for it and gets the same payment', async () => {
    const b = await start();
    const body = paymentBody(await createConsent(b));
    b.faults.acceptSlowlyNext(1, 100);
    const [first, retry] = await Promise.all([pay(b, body, 'batch-3'), new Promise((resolve) => setTimeout(resolve, 20)).then(() => pay(b, body, 'batch-3'))]);
    expect([first.status, retry.status]).toEqual([201, 201]);
    expect(retry.json.Data.DomesticVRPId).toBe(first.json.Data.DomesticVRPId);
    expect(b.listPayments()).toHaveLength(1);
  });

  it('makes two payments for two keys sent while one is slow: only the same key is a duplicate', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    b.faults.acceptSlowlyNext(1, 50);
    await Promise.all([pay(b, paymentBody(consentId), 'batch-3'), pay(b, paymentBody(consentId, { endToEnd: 'other' }), 'batch-4')]);
    expect(b.listPayments()).toHaveLength(2);
  });

  it('answers slowly on answerSlowlyNext, having done what was asked', async () => {
    const b = await start();
    const body = paymentBody(await createConsent(b));
    b.faults.answerSlowlyNext(1, 120);
    const startedMs = Date.now();
    const created = await pay(b, body, 'p');
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(100);
    expect([created.status, b.listPayments()]).toEqual([201, [expect.objectContaining({ paymentId: created.json.Data.DomesticVRPId })]]);
  });

  it('rejects for insufficient funds with Status RJCT and StatusReasonCode AM04', async () => {
    const b = await start();
    b.faults.rejectNextPayments(1, 'insufficient-funds');
    const rejected = await pay(b, paymentBody(await createConsent(b)), 'p');
    expect([rejected.status, rejected.json.Data.Status, rejected.json.Data.StatusReason[0].StatusReasonCode]).toEqual([201, 'RJCT', 'AM04']);
  });

  it('expires the consent on expireConsentNext: the payment is refused U009 and the consent reads EXPD', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    b.faults.expireConsentNext(1);
    const refused = await pay(b, paymentBody(consentId), 'p');
    expect([refused.status, refused.json.Errors[0].ErrorCode]).toEqual([400, 'U009']);
    expect((await call(b, 'GET', `/domestic-vrp-consents/${consentId}`)).json.Data.Status).toBe('EXPD');
    expect(b.listPayments()).toEqual([]);
  });

  it('still replays a payment made before its consent expired', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    const body = paymentBody(consentId);
    const first = await pay(b, body, 'p');
    b.faults.expireConsentNext(1);
    await pay(b, paymentBody(consentId, { endToEnd: 'x' }), 'q'); // takes the fault: the consent ends
    const replay = await pay(b, body, 'p');
    expect([replay.status, replay.json.Data.DomesticVRPId]).toEqual([201, first.json.Data.DomesticVRPId]);
  });

  it('holds a payment PDNG for forMs, then ACSC', async () => {
    const b = await start();
    b.faults.holdPendingNext(1, { forMs: 60_000 });
    const created = await pay(b, paymentBody(await createConsent(b)), 'p');
    const path = `/domestic-vrps/${created.json.Data.DomesticVRPId}`;
    expect(created.json.Data.Status).toBe('PDNG');
    nowMs += 59_999;
    expect((await call(b, 'GET', path)).json.Data.Status).toBe('PDNG');
    nowMs += 1;
    expect((await call(b, 'GET', path)).json.Data.Status).toBe('ACSC');
  });

  it('holds a payment PDNG for a number of reads, then ACSC', async () => {
    const b = await start();
    b.faults.holdPendingNext(1, { reads: 2 });
    const created = await pay(b, paymentBody(await createConsent(b)), 'p');
    const path = `/domestic-vrps/${created.json.Data.DomesticVRPId}`;
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await call(b, 'GET', path)).json.Data.Status);
    expect(statuses).toEqual(['PDNG', 'PDNG', 'ACSC']);
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
    expect(() => b.faults.acceptSlowlyNext(1, 120_001)).toThrow(/delayMs/);
    expect(() => b.faults.holdPendingNext(1, {})).toThrow(/forMs, reads or both/);
    expect(() => b.faults.rejectNextPayments(1, 'bad' as 'other')).toThrow(/reason/);
  });
});

describe('sandbox-only routes (not in the spec)', () => {
  it('finds the caller\u2019s payments by EndToEndIdentification, and none for an unknown one', async () => {
    const b = await start({ accessTokens: [TEST_TOKEN, 'sandbox-test-token-2'] });
    const created = await pay(b, paymentBody(await createConsent(b), { endToEnd: 'MB7-abc' }), 'p');
    const found = await call(b, 'GET', '/sandbox/payments?endToEndId=MB7-abc');
    expect([found.status, found.json.Data.Payments.map((p: { Data: { DomesticVRPId: string } }) => p.Data.DomesticVRPId)]).toEqual([200, [created.json.Data.DomesticVRPId]]);
    expect((await call(b, 'GET', '/sandbox/payments?endToEndId=MB8-abc')).json.Data.Payments).toEqual([]);
    expect((await call(b, 'GET', '/sandbox/payments?endToEndId=MB7-abc', { token: 'sandbox-test-token-2' })).json.Data.Payments).toEqual([]);
  });

  it('sets faults over HTTP and refuses an unknown kind', async () => {
    const b = await start();
    recorder.tolerated.add(503);
    expect((await call(b, 'POST', '/sandbox/faults', { body: { kind: 'fail', count: 1, httpStatus: 503 } })).status).toBe(204);
    expect((await pay(b, paymentBody('c'), 'p')).status).toBe(503);
    expect((await call(b, 'POST', '/sandbox/faults', { body: { kind: 'explode', count: 1 } })).status).toBe(400);
    expect((await call(b, 'POST', '/sandbox/faults', { body: { kind: 'fail', count: 1, httpStatus: 404 } })).json.Errors[0].Message).toMatch(/httpStatus/);
    b.faults.failNext(3, 503);
    expect((await call(b, 'DELETE', '/sandbox/faults')).status).toBe(204);
    expect((await pay(b, paymentBody(await createConsent(b)), 'p')).status).toBe(201);
  });

  it('parses --fault specs, and names what is wrong in a bad one', () => {
    expect(parseFaultSpec('fail:2:503')).toEqual({ kind: 'fail', count: 2, httpStatus: 503 });
    expect(parseFaultSpec('reject:1:insufficient-funds')).toEqual({ kind: 'reject', count: 1, reason: 'insufficient-funds' });
    expect(parseFaultSpec('hold-pending:3:10000')).toEqual({ kind: 'hold-pending', count: 3, forMs: 10_000 });
    expect(() => parseFaultSpec('accept-slowly:1')).toThrow(/delay in ms must be a whole number/);
    expect(() => parseFaultSpec('melt:1')).toThrow(/kind must be one of/);
  });
});
