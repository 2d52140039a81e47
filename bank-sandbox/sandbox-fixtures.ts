/**
 * Spec-shaped request bodies and a raw HTTP helper for the sandbox's own tests. Raw on
 * purpose: these tests must be able to send what no well-behaved client would.
 */
import type { BankSandbox } from './server.ts';
import type { ConsentRequestBody, PaymentRequestBody, WireCashAccount } from './schemas.ts';

export const TEST_TOKEN = 'sandbox-test-token-1';
export const OTHER_TPP_TOKEN = 'sandbox-test-token-2';

export const CREDITOR: WireCashAccount = { SchemeName: 'UK.OBIE.SortCodeAccountNumber', Identification: '11223344556677', Name: 'Meterbridge Ltd' };
export const DEBTOR: WireCashAccount = { SchemeName: 'UK.OBIE.IBAN', Identification: 'GB33BUKB20201555555555', Name: 'Acme Machining' };
export const RISK = { PaymentContextCode: 'BillingGoodsAndServicesInArrears', MerchantCustomerIdentification: 'acme' };

export function consentBody(options: { maxAmount?: string; currency?: string; limitCurrency?: string; limits?: ConsentRequestBody['Data']['ControlParameters']['PeriodicLimits'] } = {}): ConsentRequestBody {
  const currency = options.currency ?? 'GBP';
  return {
    Data: {
      ControlParameters: {
        MaximumIndividualAmount: { Amount: options.maxAmount ?? '100.00', Currency: currency },
        PeriodicLimits: options.limits ?? [
          { PeriodType: 'Month', PeriodAlignment: 'Consent', Amount: '1000.00', Currency: options.limitCurrency ?? currency },
        ],
        VRPType: ['UK.OBIE.VRPType.Other'],
        PSUAuthenticationMethods: ['UK.OBIE.SCANotRequired'],
        PSUInteractionTypes: ['OffSession'],
      },
      Initiation: { DebtorAccount: DEBTOR, CreditorAccount: CREDITOR },
    },
    Risk: RISK,
  };
}

export function paymentBody(consentId: string, options: { amount?: string; currency?: string; endToEnd?: string } = {}): PaymentRequestBody {
  return {
    Data: {
      ConsentId: consentId,
      PSUAuthenticationMethod: 'UK.OBIE.SCANotRequired',
      PSUInteractionType: 'OffSession',
      VRPType: 'UK.OBIE.VRPType.Other',
      Initiation: { DebtorAccount: DEBTOR, CreditorAccount: CREDITOR },
      Instruction: {
        InstructionIdentification: 'MB-1',
        EndToEndIdentification: options.endToEnd ?? 'MB1-e2e',
        RemittanceInformation: { Structured: [{ CreditorReferenceInformation: { Reference: 'MB 1' } }], Unstructured: ['meterbridge batch 1'] },
        InstructedAmount: { Amount: options.amount ?? '12.34', Currency: options.currency ?? 'GBP' },
        CreditorAccount: CREDITOR,
      },
    },
    Risk: RISK,
  };
}

export interface CallOptions {
  body?: unknown;
  rawBody?: string;
  /** null sends no Authorization header. */
  token?: string | null;
  idempotencyKey?: string;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  headers: Headers;
  /** Parsed JSON body; `any` because tests read it freely and assert on it. */
  json: any;
}

/** `path` is under the API base path, or absolute from the origin when it starts with /sandbox. */
export async function call(bank: BankSandbox, method: string, path: string, options: CallOptions = {}): Promise<CallResult> {
  const url = path.startsWith('/sandbox/') ? `${new URL(bank.url).origin}${path}` : `${bank.url}${path}`;
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TEST_TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (options.idempotencyKey !== undefined) headers['x-idempotency-key'] = options.idempotencyKey;
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? (JSON.parse(text) as unknown) : undefined };
}

let consentsMade = 0;

/** Creates a consent and returns its id; fails the test loudly if the bank refuses. */
export async function createConsent(bank: BankSandbox, body: ConsentRequestBody = consentBody()): Promise<string> {
  consentsMade += 1;
  const result = await call(bank, 'POST', '/domestic-vrp-consents', { body, idempotencyKey: `test-consent-${consentsMade}` });
  if (result.status !== 201) throw new Error(`Cannot create test consent: ${result.status} ${JSON.stringify(result.json)}`);
  return result.json.Data.ConsentId as string;
}
