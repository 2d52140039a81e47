import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startBankSandbox, type BankSandbox, type BankSandboxOptions } from '../../bank-sandbox/server.ts';
import { createSpecRecorder, type SpecRecorder } from '../../test/conformance/spec-recorder.ts';
import { generateJwsKey, trustedKeyFromJwk } from './jws.ts';
import {
  isFinalVrpStatus,
  isSettledVrpStatus,
  VRP_PAYMENT_STATUSES,
  VrpClient,
  VrpError,
  type BankAccount,
  type CreatePaymentInput,
  type VrpClientOptions,
} from './vrp-client.ts';

const TOKEN = 'gateway-test-token';
const CREDITOR: BankAccount = { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677', name: 'Meterbridge Ltd' };
const DEBTOR: BankAccount = { schemeName: 'UK.OBIE.IBAN', identification: 'GB33BUKB20201555555555', name: 'Acme Machining' };

let bank: BankSandbox | undefined;
let recorder: SpecRecorder;

const GATEWAY_KEY = generateJwsKey();

/**
 * A real sandbox bank on a free port that requires the gateway's signature and signs its
 * answers, and a client that signs and checks them; every request and answer is checked
 * against the spec, x-jws-signature included.
 */
async function connect(options: Partial<BankSandboxOptions> = {}, clientOptions: Partial<VrpClientOptions> = {}) {
  bank = await startBankSandbox({ accessTokens: [TOKEN], settleAfterMs: 50, onExchange: recorder.onExchange, tppSigningKeys: [GATEWAY_KEY], ...options });
  const signed = { signing: { key: GATEWAY_KEY, iss: 'test-gateway' }, bankSigningKeys: [trustedKeyFromJwk(bank.signingJwk)] };
  return { bank, client: new VrpClient({ baseUrl: bank.url, accessToken: TOKEN, timeoutMs: 2000, ...signed, ...clientOptions }) };
}

async function consentFor(client: VrpClient, maxIndividualAmountMinor = 100_00n): Promise<string> {
  const consent = await client.createConsent({ idempotencyKey: 'consent-acme', reference: 'acme', currency: 'GBP', creditor: CREDITOR, debtor: DEBTOR, maxIndividualAmountMinor });
  return consent.consentId;
}

function paymentInput(consentId: string, overrides: Partial<CreatePaymentInput> = {}): CreatePaymentInput {
  return {
    consentId,
    idempotencyKey: 'batch-42',
    instructionIdentification: 'MB-42',
    endToEndIdentification: 'MB42-3f1c',
    amountMinor: 12_34n,
    currency: 'GBP',
    creditor: CREDITOR,
    remittance: { reference: 'MB 42 3f1c', unstructured: 'meterbridge batch 42' },
    ...overrides,
  };
}

async function caught(promise: Promise<unknown>): Promise<VrpError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof VrpError)) throw new Error(`expected a VrpError, got ${String(error)}`);
  return error;
}

beforeEach(() => {
  recorder = createSpecRecorder({ check: 'exchange', ignoreHeaders: [] });
});

afterEach(async () => {
  await bank?.close();
  bank = undefined;
  expect(recorder.problems).toEqual([]);
});

describe('consents', () => {
  it('creates a consent AWAU that the bank shows AUTH once the PSU approved, and revokes it', async () => {
    const { client } = await connect();
    const created = await client.createConsent({ idempotencyKey: 'c1', reference: 'acme', currency: 'GBP', creditor: CREDITOR, maxIndividualAmountMinor: 50_00n });
    expect(created.status).toBe('AWAU');
    expect(await client.getConsent(created.consentId)).toMatchObject({ consentId: created.consentId, status: 'AUTH', terms: { currency: 'GBP', maxIndividualAmountMinor: 50_00n } });
    await client.revokeConsent(created.consentId);
    expect((await client.getConsent(created.consentId)).status).toBe('CANC');
  });

  it('reports a consent the bank does not know as a non-retriable U011', async () => {
    const { client } = await connect();
    const error = await caught(client.getConsent('no-such-consent'));
    expect([error.code, error.httpStatus, error.obErrorCodes, error.retriable]).toEqual(['http', 400, ['U011'], false]);
  });

  it('sends the caller\u2019s periodic limits', async () => {
    const { bank: b, client } = await connect();
    const periodicLimits = [{ periodType: 'Month' as const, periodAlignment: 'Calendar' as const, amountMinor: 500_00n }];
    await client.createConsent({ idempotencyKey: 'c1', reference: 'acme', currency: 'GBP', creditor: CREDITOR, maxIndividualAmountMinor: 50_00n, periodicLimits, validToDateTime: '2099-01-01T00:00:00Z' });
    const sent = b && recorder.exchanges.find((e) => e.method === 'POST')?.requestBody;
    expect(sent).toMatchObject({ Data: { ControlParameters: { PeriodicLimits: [{ PeriodType: 'Month', PeriodAlignment: 'Calendar', Amount: '500.00', Currency: 'GBP' }] } } });
  });

  it('refuses a consent input that breaks the spec before sending anything', async () => {
    const { client } = await connect();
    const base = { idempotencyKey: 'c1', reference: 'acme', currency: 'GBP', creditor: CREDITOR, maxIndividualAmountMinor: 1n };
    await expect(client.createConsent({ ...base, reference: 'r'.repeat(71) })).rejects.toThrow(/^reference: must be 1-70/);
    await expect(client.createConsent({ ...base, periodicLimits: [{ periodType: 'Fortnight', periodAlignment: 'Calendar', amountMinor: 1n }] })).rejects.toThrow(/periodAlignment/);
    await expect(client.createConsent({ ...base, periodicLimits: [] })).rejects.toThrow(/periodicLimits/);
    await expect(client.createConsent({ ...base, validToDateTime: '2099-01-01' })).rejects.toThrow(/validToDateTime/);
    await expect(client.createConsent({ ...base, creditor: { ...CREDITOR, schemeName: 'SortCodeAccountNumber' } })).rejects.toThrow(/creditor\.schemeName/);
    expect(recorder.exchanges).toEqual([]);
  });
});

describe('payments', () => {
  it('creates a payment that reaches ACSC (settled and final)', async () => {
    const { client } = await connect();
    const created = await client.createPayment(paymentInput(await consentFor(client)));
    expect([created.status, created.amountMinor, created.currency]).toEqual(['RCVD', 12_34n, 'GBP']);
    let payment = created;
    for (let polls = 0; !isFinalVrpStatus(payment.status) && polls < 100; polls += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      payment = await client.getPayment(created.paymentId);
    }
    expect(payment.status).toBe('ACSC');
    expect(isSettledVrpStatus(payment.status)).toBe(true);
  });

  it('reports a payment the bank rejected as final but not settled, with its reason', async () => {
    const { bank: b, client } = await connect();
    const consentId = await consentFor(client);
    b.faults.rejectNextPayments(1);
    const payment = await client.createPayment(paymentInput(consentId));
    expect([payment.status, payment.statusReasonCodes, isFinalVrpStatus(payment.status), isSettledVrpStatus(payment.status)]).toEqual(['RJCT', ['U042'], true, false]);
  });

  it('gets the same payment back for the same idempotency key, and the bank holds one', async () => {
    const { bank: b, client } = await connect();
    const input = paymentInput(await consentFor(client));
    const first = await client.createPayment(input);
    const second = await client.createPayment(input);
    expect(second.paymentId).toBe(first.paymentId);
    expect(b.listPayments()).toHaveLength(1);
  });

  it('makes a second payment only for a new idempotency key', async () => {
    const { bank: b, client } = await connect();
    const consentId = await consentFor(client);
    await client.createPayment(paymentInput(consentId));
    await client.createPayment(paymentInput(consentId, { idempotencyKey: 'batch-43' }));
    expect(b.listPayments()).toHaveLength(2);
  });

  it('refuses an amount above MaximumIndividualAmount as non-retriable U014, paying nothing', async () => {
    const { bank: b, client } = await connect();
    const error = await caught(client.createPayment(paymentInput(await consentFor(client, 10_00n), { amountMinor: 10_01n })));
    expect([error.code, error.httpStatus, error.obErrorCodes, error.retriable]).toEqual(['http', 400, ['U014'], false]);
    expect(error.message).toMatch(/exceeds MaximumIndividualAmount 10\.00/);
    expect(b.listPayments()).toEqual([]);
  });

  it('accepts an amount of exactly MaximumIndividualAmount', async () => {
    const { client } = await connect();
    expect((await client.createPayment(paymentInput(await consentFor(client, 10_00n), { amountMinor: 10_00n }))).amountMinor).toBe(10_00n);
  });
});

describe('failures and retries', () => {
  it('times out when the bank accepted but never answered, and the retry with the same key finds that one payment', async () => {
    const { bank: b, client } = await connect({}, { timeoutMs: 200 });
    const input = paymentInput(await consentFor(client));
    b.faults.timeoutAfterAcceptNext(1, 1000);
    const error = await caught(client.createPayment(input));
    expect([error.code, error.retriable]).toEqual(['timeout', true]);
    const retried = await client.createPayment(input);
    expect(b.listPayments().map((p) => p.paymentId)).toEqual([retried.paymentId]);
  });

  it('reports a dropped connection after the bank accepted as a retriable network error, and the retry pays once', async () => {
    const { bank: b, client } = await connect();
    const input = paymentInput(await consentFor(client));
    b.faults.timeoutAfterAcceptNext(1, 0);
    expect((await caught(client.createPayment(input))).code).toBe('network');
    await client.createPayment(input);
    expect(b.listPayments()).toHaveLength(1);
  });

  it('reports a bank answering 500 as a retriable http error, and the retry pays once', async () => {
    const { bank: b, client } = await connect();
    const consentId = await consentFor(client);
    b.faults.failNext(1, 500);
    const error = await caught(client.createPayment(paymentInput(consentId)));
    expect([error.code, error.httpStatus, error.retriable, error.obErrorCodes]).toEqual(['http', 500, true, ['U000']]);
    expect(b.listPayments()).toEqual([]);
    await client.createPayment(paymentInput(consentId));
    expect(b.listPayments()).toHaveLength(1);
  });

  it('reports 429 as retriable', async () => {
    const { bank: b, client } = await connect();
    b.faults.failNext(1, 429);
    recorder.tolerated.add(429); // the spec's 429 has no body; the sandbox sends one
    expect((await caught(client.getConsent('x'))).retriable).toBe(true);
  });

  it('reports a wrong access token as a non-retriable 401', async () => {
    const { bank: b } = await connect();
    const stranger = new VrpClient({ baseUrl: b.url, accessToken: 'not-the-token' });
    const error = await caught(stranger.getPayment('p-1'));
    expect([error.code, error.httpStatus, error.retriable]).toEqual(['http', 401, false]);
  });

  it('reports a bank that is not listening as a retriable network error', async () => {
    const { bank: b } = await connect();
    const url = b.url;
    await b.close();
    bank = undefined;
    const error = await caught(new VrpClient({ baseUrl: url, accessToken: TOKEN }).getPayment('p-1'));
    expect([error.code, error.retriable]).toEqual(['network', true]);
  });
});

describe('input limits (OBIE VRP 4.0 field lengths)', () => {
  const cases: [string, Partial<CreatePaymentInput>, RegExp][] = [
    ['an idempotency key of 41 characters', { idempotencyKey: 'k'.repeat(41) }, /^idempotencyKey: must be 1-40/],
    ['an idempotency key with a trailing space', { idempotencyKey: 'batch-42 ' }, /^idempotencyKey/],
    ['an EndToEndIdentification of 36 characters', { endToEndIdentification: 'e'.repeat(36) }, /^endToEndIdentification: must be 1-35/],
    ['an InstructionIdentification of 36 characters', { instructionIdentification: 'i'.repeat(36) }, /^instructionIdentification/],
    ['a remittance reference of 36 characters', { remittance: { reference: 'r'.repeat(36), unstructured: 'u' } }, /^remittance\.reference/],
    ['unstructured remittance of 141 characters', { remittance: { reference: 'r', unstructured: 'u'.repeat(141) } }, /^remittance\.unstructured/],
    ['a zero amount', { amountMinor: 0n }, /^amountMinor: 0 must be positive/],
    ['an amount with 14 integer digits', { amountMinor: 10n ** 15n }, /^amountMinor/],
    ['a currency money.ts does not know', { currency: 'XAU' }, /^currency/],
    ['a creditor name of 71 characters', { creditor: { ...CREDITOR, name: 'n'.repeat(71) } }, /^creditor\.name/],
  ];
  for (const [what, overrides, message] of cases) {
    it(`refuses ${what} with a RangeError naming the field, sending nothing`, async () => {
      const client = new VrpClient({ baseUrl: 'http://127.0.0.1:9/open-banking/v4.0/pisp', accessToken: TOKEN });
      await expect(client.createPayment(paymentInput('c-1', overrides))).rejects.toThrow(message);
    });
  }

  it('accepts the longest values the spec allows', async () => {
    const { client } = await connect();
    const consentId = await consentFor(client);
    const longest = { idempotencyKey: 'k'.repeat(40), endToEndIdentification: 'e'.repeat(35), instructionIdentification: 'i'.repeat(35), remittance: { reference: 'r'.repeat(35), unstructured: 'u'.repeat(140) } };
    expect((await client.createPayment(paymentInput(consentId, longest))).status).toBe('RCVD');
  });

  it('refuses options it cannot work with', () => {
    expect(() => new VrpClient({ baseUrl: 'ftp://bank', accessToken: TOKEN })).toThrow(/baseUrl/);
    expect(() => new VrpClient({ baseUrl: 'http://bank', accessToken: '' })).toThrow(/accessToken/);
    expect(() => new VrpClient({ baseUrl: 'http://bank', accessToken: TOKEN, timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});

/** A bank that does not check request signatures, and a client that checks nothing: for the signRequest seam. */
async function connectUnsigned(clientOptions: Partial<VrpClientOptions> = {}) {
  bank = await startBankSandbox({ accessTokens: [TOKEN], settleAfterMs: 50, onExchange: recorder.onExchange });
  recorder.tolerated.add(201); // no or stub signatures: not what the spec asks for, on purpose
  return { bank, client: new VrpClient({ baseUrl: bank.url, accessToken: TOKEN, timeoutMs: 2000, ...clientOptions }) };
}

describe('message signing seam', () => {
  it('sends what signRequest returns as x-jws-signature on POSTs, over the exact body sent', async () => {
    const signed: { method: string; body: string }[] = [];
    const signRequest = async (request: { method: string; url: string; body: string }) => {
      signed.push(request);
      return 'detached.jws.stub';
    };
    const { client } = await connectUnsigned({ signRequest });
    const consentId = await consentFor(client);
    expect(recorder.exchanges.map((e) => e.requestHeaders['x-jws-signature'])).toEqual(['detached.jws.stub']);
    expect(JSON.stringify(recorder.exchanges[0]?.requestBody)).toBe(signed[0]?.body);
    await client.getConsent(consentId);
    expect(recorder.exchanges[1]?.requestHeaders['x-jws-signature']).toBeUndefined(); // GETs carry no body to sign
  });

  it('sends no x-jws-signature without a signer', async () => {
    const { client } = await connectUnsigned();
    await consentFor(client);
    expect(recorder.exchanges[0]?.requestHeaders['x-jws-signature']).toBeUndefined();
  });
});

describe('message signing', () => {
  it('signs every POST so that a bank requiring signatures accepts it, and reads only answers the bank signed', async () => {
    const { client } = await connect();
    const consentId = await consentFor(client);
    expect((await client.confirmFunds(consentId, 12_34n, 'GBP')).available).toBe(true);
    await client.createPayment(paymentInput(consentId));
    const posts = recorder.exchanges.filter((e) => e.method === 'POST');
    expect(posts.map((e) => [e.statusCode, typeof e.requestHeaders['x-jws-signature']])).toEqual([[201, 'string'], [201, 'string'], [201, 'string']]);
  });

  it('refuses an answer signed by a key other than the bank’s, as a retriable signature error', async () => {
    const { client } = await connect({}, { bankSigningKeys: [generateJwsKey()] });
    const error = await caught(client.getConsent('vrpc-unknown'));
    expect([error.code, error.retriable, error.httpStatus]).toEqual(['signature', true, 400]);
    expect(error.message).toMatch(/is not signed by the bank: kid .* is not a key we trust/);
  });

  it('refuses an answer without x-jws-signature when it expects one, reading nothing from it', async () => {
    // A bank that answers well-formed but unsigned: what a man in the middle would send.
    const server = createServer((request, response) => {
      response.writeHead(200, { 'content-type': 'application/json', 'x-fapi-interaction-id': String(request.headers['x-fapi-interaction-id']) });
      response.end(JSON.stringify({ Data: { DomesticVRPId: 'p-1' } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const client = new VrpClient({ baseUrl: `http://127.0.0.1:${port}/open-banking/v4.0/pisp`, accessToken: TOKEN, bankSigningKeys: [generateJwsKey()] });
      const error = await caught(client.getPayment('p-1'));
      expect([error.code, error.retriable]).toEqual(['signature', true]);
      expect(error.message).toMatch(/there is no x-jws-signature/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('is refused by the bank when it signs with a key the bank does not know (U016), and pays nothing', async () => {
    const { bank: b, client } = await connect({}, { signing: { key: generateJwsKey(), iss: 'stranger' } });
    const error = await caught(client.createConsent({ idempotencyKey: 'c1', reference: 'acme', currency: 'GBP', creditor: CREDITOR, maxIndividualAmountMinor: 1_00n }));
    expect([error.httpStatus, error.obErrorCodes, error.retriable]).toEqual([400, ['U016'], false]);
    expect(b.listConsents()).toEqual([]);
  });
});

describe('consent life', () => {
  it('reports a consent past its ValidToDateTime as EXPD, with when it ended', async () => {
    let nowMs = Date.parse('2030-01-01T00:00:00Z');
    const { client } = await connect({ clock: () => nowMs }, { clock: () => nowMs });
    const consent = await client.createConsent({ idempotencyKey: 'c1', reference: 'acme', currency: 'GBP', creditor: CREDITOR, maxIndividualAmountMinor: 1_00n, validToDateTime: '2030-01-02T00:00:00Z' });
    expect((await client.getConsent(consent.consentId)).status).toBe('AUTH');
    nowMs = Date.parse('2030-01-02T00:00:01Z');
    const expired = await client.getConsent(consent.consentId);
    expect(expired).toMatchObject({ status: 'EXPD', statusUpdateDateTime: '2030-01-02T00:00:00.000Z', statusReasons: ['ValidToDateTime has passed'] });
  });

  it('reports a revoked consent as CANC with the bank’s reason', async () => {
    const { client } = await connect();
    const consentId = await consentFor(client);
    await client.revokeConsent(consentId);
    expect(await client.getConsent(consentId)).toMatchObject({ status: 'CANC', statusReasons: [expect.stringMatching(/Revoked/)] });
  });
});

describe('status helpers', () => {
  it('call exactly ACSC and ACCC settled, and those plus RJCT and CANC final', () => {
    expect(VRP_PAYMENT_STATUSES.filter(isSettledVrpStatus)).toEqual(['ACSC', 'ACCC']);
    expect(VRP_PAYMENT_STATUSES.filter(isFinalVrpStatus)).toEqual(['RJCT', 'CANC', 'ACSC', 'ACCC']);
    expect(isFinalVrpStatus('AcceptedSettlementCompleted')).toBe(false); // v3 names are not 4.0 statuses
  });
});
