import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSpecRecorder, type SpecRecorder } from '../test/conformance/spec-recorder.ts';
import { validateSpecBody } from '../test/conformance/openapi-validator.ts';
import { startBankSandbox, type BankSandbox, type BankSandboxOptions } from './server.ts';
import { call, consentBody, createConsent, OTHER_TPP_TOKEN, paymentBody, TEST_TOKEN } from './sandbox-fixtures.ts';

let bank: BankSandbox | undefined;
let recorder: SpecRecorder;
let nowMs: number;

/** A sandbox on a free port with a hand-moved clock; every answer it gives is checked against the spec. */
async function start(options: Partial<BankSandboxOptions> = {}): Promise<BankSandbox> {
  bank = await startBankSandbox({ accessTokens: [TEST_TOKEN, OTHER_TPP_TOKEN], settleAfterMs: 2000, clock: () => nowMs, onExchange: recorder.onExchange, ...options });
  return bank;
}

beforeEach(() => {
  nowMs = Date.parse('2025-03-03T10:00:00Z');
  // Requests here are malformed on purpose, so only the sandbox's answers are held to the spec.
  recorder = createSpecRecorder({ check: 'response' });
});

afterEach(async () => {
  await bank?.close();
  bank = undefined;
  expect(recorder.problems).toEqual([]);
});

describe('the test fixtures', () => {
  it('are valid requests by the spec, so the sandbox is tested with real shapes', () => {
    expect(validateSpecBody('OBDomesticVRPConsentRequest', consentBody())).toEqual([]);
    expect(validateSpecBody('OBDomesticVRPRequest', paymentBody('c-1'))).toEqual([]);
  });
});

describe('access', () => {
  it('refuses to start without an access token: no open doors', async () => {
    await expect(startBankSandbox({ accessTokens: [] })).rejects.toThrow(/accessTokens/);
  });

  it('refuses a request without a bearer token with 401 and an OB error body', async () => {
    const b = await start();
    const result = await call(b, 'GET', '/domestic-vrp-consents/x', { token: null });
    expect(result.status).toBe(401);
    expect(result.headers.get('www-authenticate')).toBe('Bearer');
    expect(validateSpecBody('OBErrorResponse1', result.json)).toEqual([]);
  });

  it('refuses a request with a token it does not know with 401', async () => {
    const b = await start();
    expect((await call(b, 'GET', '/domestic-vrp-consents/x', { token: 'not-the-token' })).status).toBe(401);
  });

  it('accepts a request with a configured token', async () => {
    const b = await start();
    expect((await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody(), idempotencyKey: 'k' })).status).toBe(201);
  });

  it('hides one TPP\u2019s consent from another TPP', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    expect((await call(b, 'GET', `/domestic-vrp-consents/${consentId}`)).status).toBe(200);
    const other = await call(b, 'GET', `/domestic-vrp-consents/${consentId}`, { token: OTHER_TPP_TOKEN });
    expect([other.status, other.json.Errors[0].ErrorCode]).toEqual([400, 'U011']);
  });
});

describe('headers', () => {
  it('plays back the x-fapi-interaction-id the TPP sent', async () => {
    const b = await start();
    const result = await call(b, 'GET', '/domestic-vrp-consents/x', { headers: { 'x-fapi-interaction-id': '93bac548-d2de-4546-b106-880a5018460d' } });
    expect(result.headers.get('x-fapi-interaction-id')).toBe('93bac548-d2de-4546-b106-880a5018460d');
  });

  it('issues its own x-fapi-interaction-id when the TPP sent none', async () => {
    const b = await start();
    expect((await call(b, 'GET', '/domestic-vrp-consents/x')).headers.get('x-fapi-interaction-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses a POST without x-idempotency-key with 400 U007', async () => {
    const b = await start();
    const result = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody() });
    expect([result.status, result.json.Errors[0]]).toEqual([400, expect.objectContaining({ ErrorCode: 'U007', Path: 'x-idempotency-key' })]);
    expect(b.listConsents()).toEqual([]);
  });

  it('refuses an x-idempotency-key of 41 characters with 400 U006', async () => {
    const b = await start();
    const result = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody(), idempotencyKey: 'k'.repeat(41) });
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U006']);
  });

  it('accepts an x-idempotency-key of exactly 40 characters', async () => {
    const b = await start();
    expect((await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody(), idempotencyKey: 'k'.repeat(40) })).status).toBe(201);
  });
});

describe('consents', () => {
  it('creates a consent as AWAU and shows it AUTH once read back when auto-authorised', async () => {
    const b = await start();
    const created = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody(), idempotencyKey: 'c1' });
    expect([created.status, created.json.Data.Status]).toEqual([201, 'AWAU']);
    const read = await call(b, 'GET', `/domestic-vrp-consents/${created.json.Data.ConsentId}`);
    expect([read.status, read.json.Data.Status]).toEqual([200, 'AUTH']);
    expect(read.json.Links.Self).toBe(`${b.url}/domestic-vrp-consents/${created.json.Data.ConsentId}`);
  });

  it('keeps a consent AWAU until the PSU authorises it when auto-authorise is off', async () => {
    const b = await start({ autoAuthoriseConsents: false });
    const consentId = await createConsent(b);
    expect((await call(b, 'GET', `/domestic-vrp-consents/${consentId}`)).json.Data.Status).toBe('AWAU');
    expect((await call(b, 'POST', `/sandbox/consents/${consentId}/authorise`)).json.Data.Status).toBe('AUTH');
    expect((await call(b, 'GET', `/domestic-vrp-consents/${consentId}`)).json.Data.Status).toBe('AUTH');
    const again = await call(b, 'POST', `/sandbox/consents/${consentId}/authorise`);
    expect([again.status, again.json.Errors[0].ErrorCode]).toEqual([400, 'U009']);
  });

  it('revokes a consent with DELETE so that it reads CANC', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    expect((await call(b, 'DELETE', `/domestic-vrp-consents/${consentId}`)).status).toBe(204);
    expect((await call(b, 'GET', `/domestic-vrp-consents/${consentId}`)).json.Data.Status).toBe('CANC');
  });

  it('expires a consent once its ValidToDateTime has passed', async () => {
    const b = await start();
    const body = consentBody();
    body.Data.ControlParameters.ValidToDateTime = '2025-03-04T00:00:00Z';
    const consentId = await createConsent(b, body);
    expect((await call(b, 'GET', `/domestic-vrp-consents/${consentId}`)).json.Data.Status).toBe('AUTH');
    nowMs = Date.parse('2025-03-04T00:00:00Z');
    expect((await call(b, 'GET', `/domestic-vrp-consents/${consentId}`)).json.Data.Status).toBe('EXPD');
  });

  it('answers 400 U011 for a consent id it does not know, not 404', async () => {
    const b = await start();
    const result = await call(b, 'GET', '/domestic-vrp-consents/no-such-consent');
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U011']);
  });

  it('returns the same consent for the same idempotency key and body', async () => {
    const b = await start();
    const first = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody(), idempotencyKey: 'same' });
    const second = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody(), idempotencyKey: 'same' });
    expect(second.status).toBe(201);
    expect(second.json.Data.ConsentId).toBe(first.json.Data.ConsentId);
    expect(b.listConsents()).toHaveLength(1);
  });

  it('refuses a periodic limit in another currency than MaximumIndividualAmount', async () => {
    const b = await start();
    const result = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody({ limitCurrency: 'EUR' }), idempotencyKey: 'c' });
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U002']);
  });

  it('refuses a Calendar-aligned Fortnight limit, which the spec forbids', async () => {
    const b = await start();
    const limits = [{ PeriodType: 'Fortnight' as const, PeriodAlignment: 'Calendar' as const, Amount: '10.00', Currency: 'GBP' }];
    const result = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody({ limits }), idempotencyKey: 'c' });
    expect([result.status, result.json.Errors[0].Path]).toEqual([400, 'Data.ControlParameters.PeriodicLimits[0].PeriodAlignment']);
  });

  it('refuses a currency it does not support with U023', async () => {
    const b = await start();
    const result = await call(b, 'POST', '/domestic-vrp-consents', { body: consentBody({ currency: 'XAU' }), idempotencyKey: 'c' });
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U023']);
  });

  it('refuses a body that does not follow the schema with 400 U010', async () => {
    const b = await start();
    const body = consentBody();
    (body.Data.ControlParameters.MaximumIndividualAmount as { Amount: unknown }).Amount = 100;
    const result = await call(b, 'POST', '/domestic-vrp-consents', { body, idempotencyKey: 'c' });
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U010']);
  });

  it('refuses a body that is not JSON with 400 U010', async () => {
    const b = await start();
    const result = await call(b, 'POST', '/domestic-vrp-consents', { rawBody: '{"Data":', idempotencyKey: 'c' });
    expect([result.status, result.json.Errors[0].ErrorCode]).toEqual([400, 'U010']);
  });

  it('refuses a body larger than 64 KiB with 413', async () => {
    const b = await start();
    recorder.tolerated.add(413);
    const body = { ...consentBody(), Padding: 'x'.repeat(65 * 1024) };
    expect((await call(b, 'POST', '/domestic-vrp-consents', { body, idempotencyKey: 'c' })).status).toBe(413);
    expect(b.listConsents()).toEqual([]);
  });

  it('confirms funds under an authorised consent, echoing the amount', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    const answer = await call(b, 'POST', `/domestic-vrp-consents/${consentId}/funds-confirmation`, { body: { Data: { ConsentId: consentId, InstructedAmount: { Amount: '12.34', Currency: 'GBP' } } } });
    expect(answer.status).toBe(201);
    expect(answer.json.Data).toMatchObject({ ConsentId: consentId, FundsAvailableResult: { FundsAvailable: 'Available' }, InstructedAmount: { Amount: '12.34', Currency: 'GBP' } });
    expect(validateSpecBody('OBVRPFundsConfirmationResponse', answer.json)).toEqual([]);
  });

  it('refuses funds confirmation for another consent than the path names, and under a revoked consent', async () => {
    const b = await start();
    const consentId = await createConsent(b);
    const body = (id: string) => ({ body: { Data: { ConsentId: id, InstructedAmount: { Amount: '1.00', Currency: 'GBP' } } } });
    expect((await call(b, 'POST', `/domestic-vrp-consents/${consentId}/funds-confirmation`, body('vrpc-other'))).json.Errors[0]).toMatchObject({ ErrorCode: 'U002', Path: 'Data.ConsentId' });
    expect((await call(b, 'DELETE', `/domestic-vrp-consents/${consentId}`)).status).toBe(204);
    expect((await call(b, 'POST', `/domestic-vrp-consents/${consentId}/funds-confirmation`, body(consentId))).json.Errors[0]).toMatchObject({ ErrorCode: 'U009' });
  });

  it('answers 404 for payment-details, which the sandbox does not implement', async () => {
    const b = await start();
    recorder.tolerated.add(404);
    expect((await call(b, 'GET', '/domestic-vrps/x/payment-details')).status).toBe(404);
  });
});
