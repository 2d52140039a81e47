/**
 * The gateway's VRP client against the sandbox bank through a whole consent and payment
 * life, signatures on both ways, with every request and every answer held to the official
 * OBL VRP 4.0 document; then the rejecting twins: requests the spec forbids, which the same
 * validator must catch, so a green run means the check bites.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBankSandbox, type BankSandbox } from '../../bank-sandbox/server.ts';
import { generateJwsKey, OB_TRUST_ANCHOR, signDetachedJws, trustedKeyFromJwk } from '../../gateway/settlement/jws.ts';
import { batchPaymentReferences } from '../../gateway/settlement/payment-references.ts';
import { isFinalVrpStatus, VrpClient, VrpError, type BankAccount, type VrpPayment } from '../../gateway/settlement/vrp-client.ts';
import { matchSpecPath, validateExchange, validateRequest, validateResponse, type HttpExchange } from './openapi-validator.ts';
import { createSpecRecorder, type SpecRecorder } from './spec-recorder.ts';

const TOKEN = 'conformance-token';
const CREDITOR: BankAccount = { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '20000055667788', name: 'Machine Leasing Ltd' };
const DEBTOR: BankAccount = { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40400411270111', name: 'Northline Logistics' };
const ROOT = '9c4f1e2d3b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0';
const STRICT = { ignoreHeaders: [] } as const;

let bank: BankSandbox;
let recorder: SpecRecorder;
let client: VrpClient;
const gatewayKey = generateJwsKey();

beforeAll(async () => {
  recorder = createSpecRecorder({ check: 'exchange', ...STRICT });
  bank = await startBankSandbox({
    accessTokens: [TOKEN], autoAuthoriseConsents: false, settleAfterMs: 30,
    signingKey: generateJwsKey(), tppSigningKeys: [gatewayKey], onExchange: recorder.onExchange,
  });
  client = new VrpClient({
    baseUrl: bank.url, accessToken: TOKEN, timeoutMs: 2_000,
    signing: { key: gatewayKey, iss: 'conformance-gateway' },
    bankSigningKeys: [trustedKeyFromJwk(bank.signingJwk)],
  });
});

afterAll(async () => {
  await bank.close();
});

/** The spec operations the recorder saw, in order: `POST /domestic-vrps 201`. */
function operations(): string[] {
  return recorder.exchanges.flatMap((e) => {
    const specPath = matchSpecPath(e.url);
    return specPath ? [`${e.method} ${specPath} ${e.statusCode}`] : [];
  });
}

function lastExchange(method: string, specPath: string): HttpExchange {
  const found = recorder.exchanges.findLast((e) => e.method === method && matchSpecPath(e.url) === specPath);
  if (!found) throw new Error(`no ${method} ${specPath} was recorded`);
  return found;
}

async function authoriseAtBank(consentId: string): Promise<void> {
  const origin = new URL(bank.url).origin;
  const answer = await fetch(`${origin}/sandbox/consents/${consentId}/authorise`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  expect(answer.status).toBe(200);
}

async function settled(paymentId: string): Promise<VrpPayment> {
  let payment = await client.getPayment(paymentId);
  for (let polls = 0; !isFinalVrpStatus(payment.status) && polls < 100; polls += 1) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    payment = await client.getPayment(paymentId);
  }
  return payment;
}

describe('a whole VRP life, signed both ways, checked against the spec', () => {
  it('creates, authorises, reads, confirms funds, pays, follows, revokes: every exchange conforms', async () => {
    const consent = await client.createConsent({ idempotencyKey: 'mbc-conformance-1', reference: 'meterbridge northline', currency: 'GBP', creditor: CREDITOR, debtor: DEBTOR, maxIndividualAmountMinor: 500_00n, validToDateTime: '2099-12-31T23:59:59Z' });
    expect(consent.status).toBe('AWAU');
    await authoriseAtBank(consent.consentId);
    expect((await client.getConsent(consent.consentId)).status).toBe('AUTH');
    expect(await client.confirmFunds(consent.consentId, 123_45n, 'GBP')).toMatchObject({ available: true });
    const references = batchPaymentReferences({ batchNo: 7, merkleRoot: ROOT, gatewayId: 'conformance-gateway' });
    const created = await client.createPayment({ consentId: consent.consentId, idempotencyKey: 'mb-conformance-7', instructionIdentification: 'mb-conformance-7', amountMinor: 123_45n, currency: 'GBP', creditor: CREDITOR, ...references });
    expect((await settled(created.paymentId)).status).toBe('ACSC');
    await client.revokeConsent(consent.consentId);
    expect((await client.getConsent(consent.consentId)).status).toBe('CANC');
    const refused = await client.createPayment({ consentId: consent.consentId, idempotencyKey: 'mb-conformance-8', instructionIdentification: 'mb-conformance-8', amountMinor: 1_00n, currency: 'GBP', creditor: CREDITOR, ...references }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(VrpError);
    expect((refused as VrpError).obErrorCodes).toEqual(['U009']);

    expect(recorder.problems).toEqual([]);
    expect(new Set(operations())).toEqual(new Set([
      'POST /domestic-vrp-consents 201',
      'GET /domestic-vrp-consents/{ConsentId} 200',
      'POST /domestic-vrp-consents/{ConsentId}/funds-confirmation 201',
      'POST /domestic-vrps 201',
      'GET /domestic-vrps/{DomesticVRPId} 200',
      'DELETE /domestic-vrp-consents/{ConsentId} 204',
      'POST /domestic-vrps 400',
    ]));
    // Every POST was signed (the bank refuses unsigned ones) and every answer with a body too.
    for (const e of recorder.exchanges.filter((x) => matchSpecPath(x.url))) {
      if (e.method === 'POST') expect(e.requestHeaders['x-jws-signature']).toMatch(/^[\w-]+\.\.[\w-]{86}$/);
      if (e.responseBody !== undefined) expect(e.responseHeaders['x-jws-signature']).toMatch(/^[\w-]+\.\.[\w-]{86}$/);
    }
  });

  it('ties the payment to its batch and Merkle root in EndToEndIdentification and RemittanceInformation', () => {
    const sent = lastExchange('POST', '/domestic-vrps').requestBody as { Data: { Instruction: Record<string, any> } };
    const instruction = sent.Data.Instruction;
    expect(instruction.EndToEndIdentification).toBe(`MB7-${ROOT.slice(0, 27)}`);
    expect(instruction.RemittanceInformation).toEqual({
      Structured: [{ CreditorReferenceInformation: { Reference: `MB 7 ${ROOT.slice(0, 16)}` } }],
      Unstructured: [`meterbridge batch 7 root ${ROOT} gateway conformance-gateway`],
    });
  });
});

describe('rejecting twins: the validator catches what the spec forbids', () => {
  /** The conforming payment request of the life above, changed by `change`. */
  function paymentTwin(change: (e: { headers: Record<string, string | undefined>; body: any }) => void): HttpExchange {
    const original = recorder.exchanges.find((e) => e.method === 'POST' && matchSpecPath(e.url) === '/domestic-vrps' && e.statusCode === 201);
    if (!original) throw new Error('the life above made no payment');
    const headers = { ...original.requestHeaders } as Record<string, string | undefined>;
    const body = structuredClone(original.requestBody) as any;
    change({ headers, body });
    return { ...original, requestHeaders: headers, requestBody: body };
  }

  it('the original conforms, so each twin fails for its one change', () => {
    expect(validateRequest(paymentTwin(() => undefined), STRICT)).toEqual([]);
  });

  it('a payment request without x-idempotency-key', () => {
    expect(validateRequest(paymentTwin(({ headers }) => void delete headers['x-idempotency-key']), STRICT)).toEqual(['request: header x-idempotency-key is required']);
  });

  it('an x-idempotency-key of 41 characters', () => {
    const problems = validateRequest(paymentTwin(({ headers }) => void (headers['x-idempotency-key'] = 'k'.repeat(41))), STRICT);
    expect(problems).toEqual([expect.stringMatching(/^request: header x-idempotency-key \(root\) must NOT have more than 40 characters/)]);
  });

  it('an x-idempotency-key ending in a space', () => {
    const problems = validateRequest(paymentTwin(({ headers }) => void (headers['x-idempotency-key'] = 'batch-7 ')), STRICT);
    expect(problems).toEqual([expect.stringMatching(/^request: header x-idempotency-key \(root\) must match pattern/)]);
  });

  it('a request without x-jws-signature', () => {
    expect(validateRequest(paymentTwin(({ headers }) => void delete headers['x-jws-signature']), STRICT)).toEqual(['request: header x-jws-signature is required']);
  });

  it('an Amount with 6 decimals (OBActiveCurrencyAndAmount_SimpleType allows 1-5)', () => {
    const problems = validateRequest(paymentTwin(({ body }) => void (body.Data.Instruction.InstructedAmount.Amount = '123.450000')), STRICT);
    expect(problems.some((p) => p.startsWith('request body: /Data/Instruction/InstructedAmount/Amount must match pattern'))).toBe(true);
  });

  it('an Amount with 3 decimals passes the spec, which leaves currency digits to the bank; the sandbox refuses it for GBP', async () => {
    const twin = paymentTwin(({ body }) => void (body.Data.Instruction.InstructedAmount.Amount = '123.451'));
    expect(validateRequest(twin, STRICT)).toEqual([]);
    const consent = await client.createConsent({ idempotencyKey: 'mbc-conformance-2', reference: 'meterbridge twin', currency: 'GBP', creditor: CREDITOR, debtor: DEBTOR, maxIndividualAmountMinor: 500_00n });
    await authoriseAtBank(consent.consentId);
    const terms = lastExchange('POST', '/domestic-vrp-consents').requestBody as { Data: { Initiation: unknown }; Risk: unknown };
    const body = JSON.stringify({ ...(twin.requestBody as object), Data: { ...(twin.requestBody as any).Data, ConsentId: consent.consentId, Initiation: terms.Data.Initiation }, Risk: terms.Risk });
    const signature = signDetachedJws(body, gatewayKey, { iss: 'conformance-gateway', tan: OB_TRUST_ANCHOR, iatS: Math.floor(Date.now() / 1000) });
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-idempotency-key': 'mb-three-decimals', 'x-jws-signature': signature };
    const answer = await fetch(`${bank.url}/domestic-vrps`, { method: 'POST', headers, body });
    expect([answer.status, ((await answer.json()) as { Errors: { ErrorCode: string; Path?: string }[] }).Errors[0]]).toEqual([400, expect.objectContaining({ ErrorCode: 'U002', Path: 'Data.Instruction.InstructedAmount.Amount' })]);
    expect(bank.listPayments().filter((p) => p.consentId === consent.consentId)).toEqual([]);
  });

  it('a payment request missing InstructedAmount', () => {
    const problems = validateRequest(paymentTwin(({ body }) => void delete body.Data.Instruction.InstructedAmount), STRICT);
    expect(problems).toEqual([expect.stringMatching(/^request body: \/Data\/Instruction must have required property 'InstructedAmount'/)]);
  });

  it('an EndToEndIdentification of 36 characters', () => {
    const problems = validateRequest(paymentTwin(({ body }) => void (body.Data.Instruction.EndToEndIdentification = 'e'.repeat(36))), STRICT);
    expect(problems).toEqual([expect.stringMatching(/^request body: \/Data\/Instruction\/EndToEndIdentification must NOT have more than 35/)]);
  });

  it('a consent answer without Status, and an answer without x-jws-signature', () => {
    const answer = lastExchange('GET', '/domestic-vrp-consents/{ConsentId}');
    expect(validateResponse(answer, STRICT)).toEqual([]);
    const { Status: _dropped, ...data } = (answer.responseBody as { Data: Record<string, unknown> }).Data;
    const withoutStatus = { ...answer, responseBody: { ...(answer.responseBody as object), Data: data } };
    expect(validateResponse(withoutStatus, STRICT)).toEqual([expect.stringMatching(/^response body: \/Data must have required property 'Status'/)]);
    const { 'x-jws-signature': _signature, ...headers } = answer.responseHeaders;
    expect(validateExchange({ ...answer, responseHeaders: headers }, STRICT)).toEqual(['response: header x-jws-signature is required']);
  });
});
