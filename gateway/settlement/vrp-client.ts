/**
 * The gateway's typed client for a bank's OBL VRP Profile 4.0.0 API (base path
 * `/open-banking/v4.0/pisp`): consents, payments, their status.
 *
 * Never pays twice by itself: it makes exactly one HTTP request per call and never retries.
 * The caller retries a `retriable` VrpError with the same idempotency key (and, OBIE R/W
 * profile 4.0, waits at least 1 s before a duplicate payment request), which the bank must
 * answer with the payment it already made.
 *
 * Message signing (docs/bank-api.md): with `signing`, every POST carries an `x-jws-signature`
 * (detached JWS, ES256) over the exact body sent; with `bankSigningKeys`, every answer that
 * has a body must carry one by the bank over the exact bytes received, or the call fails
 * with a retriable 'signature' error (the bank may have acted; retrying with the same key is
 * safe). `signRequest` stays as the lower-level seam (an HSM, a remote signer).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { formatMinor, MINOR_DIGITS, parseMinor } from '../../protocol/money.ts';
import { OB_TRUST_ANCHOR, signDetachedJws, verifyDetachedJws, type JwsKeyPair, type TrustedJwsKey } from './jws.ts';

/** OBIE VRP 4.0: OBDomesticVRPResponse.Data.Status (ExternalPaymentTransactionStatus1Code). */
export const VRP_PAYMENT_STATUSES = [
  'RCVD', 'RJCT', 'CANC', 'PDNG', 'ACTC', 'ACCP', 'ACFC', 'ACSP', 'ACWC', 'ACSC', 'ACWP', 'ACCC', 'BLCK',
] as const;
export type VrpPaymentStatus = (typeof VRP_PAYMENT_STATUSES)[number];
/** OBIE VRP 4.0: OBDomesticVRPConsentResponse.Data.Status. */
export const VRP_CONSENT_STATUSES = ['AWAU', 'RJCT', 'AUTH', 'CANC', 'EXPD'] as const;
export type VrpConsentStatus = (typeof VRP_CONSENT_STATUSES)[number];
/** OBIE VRP 4.0: OBInternalAccountIdentification4Code. */
export const ACCOUNT_SCHEMES = [
  'UK.OBIE.BBAN', 'UK.OBIE.IBAN', 'UK.OBIE.PAN', 'UK.OBIE.Paym', 'UK.OBIE.SortCodeAccountNumber', 'UK.OBIE.Wallet',
] as const;
/** OBIE VRP 4.0: PeriodicLimits.PeriodType and PeriodAlignment. */
export type VrpPeriodType = 'Day' | 'Week' | 'Fortnight' | 'Month' | 'Half-year' | 'Year';
export type VrpPeriodAlignment = 'Calendar' | 'Consent';

export interface BankAccount {
  /** 'UK.OBIE.SortCodeAccountNumber' or 'UK.OBIE.IBAN' (any of {@link ACCOUNT_SCHEMES}). */
  schemeName: string;
  identification: string;
  name: string;
}

export interface VrpPeriodicLimit {
  periodType: VrpPeriodType;
  periodAlignment: VrpPeriodAlignment;
  amountMinor: bigint;
}

/** Returns the detached JWS for the `x-jws-signature` header of a POST. */
export type VrpRequestSigner = (request: { method: string; url: string; body: string }) => Promise<string>;

export interface VrpSigningOptions {
  /** The TPP's P-256 key; its public JWK is registered with the bank. */
  key: JwsKeyPair;
  /** `http://openbanking.org.uk/iss`: who the TPP is to the bank (OBIE: org-id/software-id). */
  iss: string;
}

export interface VrpClientOptions {
  /** e.g. https://bank.example/open-banking/v4.0/pisp */
  baseUrl: string;
  accessToken: string;
  /** Whole exchange, response body included. Default 10000. */
  timeoutMs?: number;
  /** Signs every POST with this key (takes precedence over `signRequest`). */
  signing?: VrpSigningOptions;
  signRequest?: VrpRequestSigner;
  /** The bank's public keys: when given, every answer with a body must be signed by one. */
  bankSigningKeys?: readonly TrustedJwsKey[];
  /** `http://openbanking.org.uk/tan` both sides name. Default 'openbanking.org.uk'. */
  trustAnchor?: string;
  /** Epoch ms for signature times (iat). Default Date.now. */
  clock?: () => number;
}

export interface VrpFundsConfirmation {
  fundsConfirmationId: string;
  available: boolean;
}

export interface VrpConsent {
  consentId: string;
  status: VrpConsentStatus;
  statusUpdateDateTime: string;
  /** StatusReason descriptions the bank gave, e.g. why the consent is CANC or EXPD. */
  statusReasons: string[];
  /** What the bank holds the payer to, as it answered (absent from a bank that leaves them out). */
  terms?: VrpConsentTerms;
}

/** The consent's ControlParameters that cap payments, and when it was created (Consent-aligned periods start then). */
export interface VrpConsentTerms {
  creationDateTime: string;
  currency: string;
  maxIndividualAmountMinor: bigint;
  periodicLimits: VrpPeriodicLimit[];
  validToDateTime?: string;
}

export interface VrpPayment {
  paymentId: string;
  consentId: string;
  status: VrpPaymentStatus;
  statusUpdateDateTime: string;
  amountMinor: bigint;
  currency: string;
  /** OBStatusReason codes the bank gave with the status, e.g. why it is RJCT. */
  statusReasonCodes: string[];
  /** Instruction.EndToEndIdentification as the bank holds it (reconciliation compares it). */
  endToEndIdentification?: string;
}

export interface CreateConsentInput {
  idempotencyKey: string;
  /** Who the payer is to us; sent as Risk.MerchantCustomerIdentification (<= 70 chars). */
  reference: string;
  currency: string;
  creditor: BankAccount;
  debtor?: BankAccount;
  maxIndividualAmountMinor: bigint;
  /** The spec requires at least one; when omitted, one that caps nothing is sent (see below). */
  periodicLimits?: readonly VrpPeriodicLimit[];
  validToDateTime?: string;
}

export interface CreatePaymentInput {
  consentId: string;
  idempotencyKey: string;
  instructionIdentification: string;
  endToEndIdentification: string;
  amountMinor: bigint;
  currency: string;
  creditor: BankAccount;
  remittance: { reference: string; unstructured: string };
}

export type VrpErrorCode = 'timeout' | 'network' | 'http' | 'protocol' | 'signature';

/**
 * A call that did not get the answer it needed. `retriable`: the same call (same idempotency
 * key) may succeed later and cannot pay twice: timeouts, network failures, 5xx, 429,
 * 'protocol' (the bank answered 2xx with a body we could not read, so it may have acted) and
 * 'signature' (the answer's x-jws-signature is missing or wrong: not trusted, maybe acted on).
 */
export class VrpError extends Error {
  readonly code: VrpErrorCode;
  readonly httpStatus?: number;
  readonly obErrorCodes: string[];
  readonly retriable: boolean;
  /** The x-fapi-interaction-id we sent, to find the exchange in the bank's logs. */
  readonly interactionId: string;

  constructor(message: string, details: { code: VrpErrorCode; interactionId: string; httpStatus?: number; obErrorCodes?: string[]; cause?: unknown }) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'VrpError';
    this.code = details.code;
    if (details.httpStatus !== undefined) this.httpStatus = details.httpStatus;
    this.obErrorCodes = details.obErrorCodes ?? [];
    this.interactionId = details.interactionId;
    const status = details.httpStatus ?? 0;
    this.retriable = details.code !== 'http' || status >= 500 || status === 429;
  }
}

/** True when the status is final: settled (ACSC, ACCC), rejected (RJCT) or cancelled (CANC). */
export function isFinalVrpStatus(status: string): boolean {
  return status === 'RJCT' || status === 'CANC' || isSettledVrpStatus(status);
}

/** True when the money has left the debtor's account: ACSC, or ACCC (credited too). */
export function isSettledVrpStatus(status: string): boolean {
  return status === 'ACSC' || status === 'ACCC';
}

/** Spec limits (OBIE VRP 4.0 maxLength; Amount has 13 integer digits) and our own bounds. */
const MAX = Object.freeze({
  idempotencyKey: 40, consentId: 128, paymentId: 40, text35: 35, unstructured: 140, merchantCustomerId: 70,
  accountId: 256, accountName: 70, amountIntegerDigits: 13, timeoutMs: 120_000, responseBytes: 1024 * 1024, periodicLimits: 20,
});
const PERIOD_TYPES_WIRE = ['Day', 'Week', 'Fortnight', 'Month', 'Half-year', 'Year'] as const;
const PERIOD_TYPES: readonly string[] = PERIOD_TYPES_WIRE;

function checkText(value: unknown, field: string, maxLength: number): void {
  if (typeof value !== 'string') throw new TypeError(`${field}: must be a string, got ${typeof value}`);
  if (value.length < 1 || value.length > maxLength) throw new RangeError(`${field}: must be 1-${maxLength} characters, got ${value.length}`);
}

function checkIdempotencyKey(key: string): void {
  checkText(key, 'idempotencyKey', MAX.idempotencyKey);
  // OBIE VRP 4.0: x-idempotency-key pattern ^(?!\s)(.*)(\S)$, and it travels as a header.
  if (!/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(key)) throw new RangeError('idempotencyKey: must be printable ASCII without surrounding spaces');
}

function checkAccount(account: BankAccount, field: string): void {
  if (!(ACCOUNT_SCHEMES as readonly string[]).includes(account.schemeName)) {
    throw new RangeError(`${field}.schemeName: ${JSON.stringify(account.schemeName)} is not one of ${ACCOUNT_SCHEMES.join(', ')}`);
  }
  checkText(account.identification, `${field}.identification`, MAX.accountId);
  checkText(account.name, `${field}.name`, MAX.accountName);
}

function checkAmount(amountMinor: bigint, currency: string, field: string): void {
  if (!Object.hasOwn(MINOR_DIGITS, currency)) {
    throw new RangeError(`currency: ${JSON.stringify(currency)} is not supported (one of ${Object.keys(MINOR_DIGITS).join(', ')})`);
  }
  if (typeof amountMinor !== 'bigint') throw new TypeError(`${field}: must be a bigint, got ${typeof amountMinor}`);
  if (amountMinor <= 0n) throw new RangeError(`${field}: ${amountMinor} must be positive`);
  if (amountMinor > amountMinorMax(currency)) throw new RangeError(`${field}: ${amountMinor} has more than ${MAX.amountIntegerDigits} integer digits`);
}

function amountMinorMax(currency: string): bigint {
  return 10n ** BigInt(MAX.amountIntegerDigits + (MINOR_DIGITS[currency] ?? 0)) - 1n;
}

function checkDateTime(text: string, field: string): void {
  // OBIE R/W profile: date-times carry a time zone.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(text) || Number.isNaN(Date.parse(text))) {
    throw new RangeError(`${field}: ${JSON.stringify(text)} is not an ISO 8601 date-time with a time zone`);
  }
}

function checkPeriodicLimits(limits: readonly VrpPeriodicLimit[], currency: string): void {
  if (limits.length < 1 || limits.length > MAX.periodicLimits) throw new RangeError(`periodicLimits: must hold 1-${MAX.periodicLimits} limits, got ${limits.length}`);
  limits.forEach((limit, index) => {
    const field = `periodicLimits[${index}]`;
    if (!PERIOD_TYPES.includes(limit.periodType)) throw new RangeError(`${field}.periodType: ${limit.periodType} is not a spec period`);
    if (limit.periodAlignment !== 'Calendar' && limit.periodAlignment !== 'Consent') throw new RangeError(`${field}.periodAlignment: must be Calendar or Consent`);
    // OBIE VRP 4.0: "for a PeriodType of Fortnight the PeriodAlignment must be Consent".
    if (limit.periodType === 'Fortnight' && limit.periodAlignment === 'Calendar') throw new RangeError(`${field}.periodAlignment: a Fortnight must be Consent aligned`);
    checkAmount(limit.amountMinor, currency, `${field}.amountMinor`);
  });
}

function wireAccount(account: BankAccount): { SchemeName: string; Identification: string; Name: string } {
  return { SchemeName: account.schemeName, Identification: account.identification, Name: account.name };
}

function wireAmount(amountMinor: bigint, currency: string): { Amount: string; Currency: string } {
  return { Amount: formatMinor(amountMinor, currency), Currency: currency };
}

// What we read from the bank's answers; everything else in them is passed over.
const wireAmountSchema = z.object({ Amount: z.string(), Currency: z.string() });
const consentResponse = z.object({
  Data: z.object({
    ConsentId: z.string().min(1).max(MAX.consentId),
    Status: z.enum(VRP_CONSENT_STATUSES),
    StatusUpdateDateTime: z.string().min(1),
    StatusReason: z.array(z.object({ StatusReasonDescription: z.string().optional() })).optional(),
    CreationDateTime: z.string().optional(),
    ControlParameters: z.object({
      VRPType: z.array(z.string()).min(1),
      PSUAuthenticationMethods: z.array(z.string()).min(1),
      PSUInteractionTypes: z.array(z.string()).optional(),
      ValidToDateTime: z.string().optional(),
      MaximumIndividualAmount: wireAmountSchema.optional(),
      PeriodicLimits: z.array(wireAmountSchema.extend({ PeriodType: z.enum(PERIOD_TYPES_WIRE), PeriodAlignment: z.enum(['Calendar', 'Consent']) })).optional(),
    }),
    Initiation: z.record(z.string(), z.unknown()),
  }),
  Risk: z.record(z.string(), z.unknown()),
});
type ConsentResponse = z.infer<typeof consentResponse>;

const paymentResponse = z.object({
  Data: z.object({
    DomesticVRPId: z.string().min(1).max(MAX.paymentId),
    ConsentId: z.string().min(1).max(MAX.consentId),
    Status: z.enum(VRP_PAYMENT_STATUSES),
    StatusUpdateDateTime: z.string().min(1),
    StatusReason: z.array(z.object({ StatusReasonCode: z.string().optional() })).optional(),
    Instruction: z.object({ EndToEndIdentification: z.string().max(MAX.text35).optional(), InstructedAmount: z.object({ Amount: z.string(), Currency: z.string() }) }),
  }),
});

const fundsConfirmationResponse = z.object({
  Data: z.object({
    FundsConfirmationId: z.string().min(1).max(MAX.paymentId),
    ConsentId: z.string().min(1).max(MAX.consentId),
    FundsAvailableResult: z.object({ FundsAvailable: z.enum(['Available', 'NotAvailable']) }),
  }),
});

const errorResponse = z.object({ Errors: z.array(z.object({ ErrorCode: z.string(), Message: z.string().optional() })) });

/** "10.00000" is a valid GBP amount on the wire; zeros past the currency's digits are exact. */
function parseBankAmount(text: string, currency: string, field: string): bigint {
  const digits = MINOR_DIGITS[currency] ?? 0;
  const [whole, fraction] = text.split('.');
  let kept = fraction ?? '';
  while (kept.length > digits && kept.endsWith('0')) kept = kept.slice(0, -1);
  return parseMinor(kept === '' ? (whole ?? text) : `${whole}.${kept}`, currency, field);
}

/** One call: what it is for (for messages), where, and the one status that means success. */
interface Exchange { action: string; method: 'GET' | 'POST' | 'DELETE'; path: string; expectStatus: number; body?: unknown; idempotencyKey?: string; /** `path` is from the server's origin, not the API base (sandbox-only routes). */ fromOrigin?: true }

/** Whether the bank answered the last request, for the operator page; null before the first. */
export interface BankReach {
  reachable: boolean | null;
  lastOkAt?: string;
  lastError?: string;
  lastErrorAt?: string;
}

export class VrpClient {
  #reach: BankReach = { reachable: null };

  get reach(): BankReach {
    return { ...this.#reach };
  }

  readonly #baseUrl: string;
  readonly #accessToken: string;
  readonly #timeoutMs: number;
  readonly #signRequest: VrpRequestSigner | undefined;
  readonly #bankSigningKeys: readonly TrustedJwsKey[] | undefined;
  readonly #trustAnchor: string;
  readonly #clock: () => number;

  constructor(options: VrpClientOptions) {
    const url = new URL(options.baseUrl); // throws TypeError on a bad URL
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RangeError(`baseUrl: ${url.protocol} is not http(s)`);
    if (!/^[\x21-\x7e]{1,4096}$/.test(options.accessToken)) throw new RangeError('accessToken: must be 1-4096 visible ASCII characters');
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX.timeoutMs) {
      throw new RangeError(`timeoutMs: ${timeoutMs} must be an integer from 1 to ${MAX.timeoutMs}`);
    }
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#accessToken = options.accessToken;
    this.#timeoutMs = timeoutMs;
    this.#clock = options.clock ?? Date.now;
    this.#trustAnchor = options.trustAnchor ?? OB_TRUST_ANCHOR;
    this.#bankSigningKeys = options.bankSigningKeys;
    const { signing } = options;
    this.#signRequest = signing
      ? async ({ body }) => signDetachedJws(body, signing.key, { iss: signing.iss, tan: this.#trustAnchor, iatS: Math.floor(this.#clock() / 1000) })
      : options.signRequest;
  }

  /** The keys the bank's signatures are checked with (also its event notifications'), if any. */
  get bankSigningKeys(): readonly TrustedJwsKey[] | undefined {
    return this.#bankSigningKeys;
  }

  /** The `http://openbanking.org.uk/tan` both sides sign with. */
  get trustAnchor(): string {
    return this.#trustAnchor;
  }

  async createConsent(input: CreateConsentInput): Promise<VrpConsent> {
    checkIdempotencyKey(input.idempotencyKey);
    checkText(input.reference, 'reference', MAX.merchantCustomerId);
    checkAmount(input.maxIndividualAmountMinor, input.currency, 'maxIndividualAmountMinor');
    checkAccount(input.creditor, 'creditor');
    if (input.debtor) checkAccount(input.debtor, 'debtor');
    // OBIE VRP 4.0 requires PeriodicLimits (1..*). Without one from the caller we send the
    // largest the spec can express: MaximumIndividualAmount stays the only real cap.
    const limits = input.periodicLimits ?? [{ periodType: 'Year', periodAlignment: 'Consent', amountMinor: amountMinorMax(input.currency) }];
    checkPeriodicLimits(limits, input.currency);
    if (input.validToDateTime !== undefined) checkDateTime(input.validToDateTime, 'validToDateTime');
    const body = {
      Data: {
        ControlParameters: {
          ...(input.validToDateTime !== undefined ? { ValidToDateTime: input.validToDateTime } : {}),
          MaximumIndividualAmount: wireAmount(input.maxIndividualAmountMinor, input.currency),
          PeriodicLimits: limits.map((l) => ({ PeriodType: l.periodType, PeriodAlignment: l.periodAlignment, ...wireAmount(l.amountMinor, input.currency) })),
          // Commercial (not sweeping) payments, made by the machine with no PSU present.
          VRPType: ['UK.OBIE.VRPType.Other'],
          PSUAuthenticationMethods: ['UK.OBIE.SCANotRequired'],
          PSUInteractionTypes: ['OffSession'],
        },
        // No RemittanceInformation here: each payment carries its own batch reference, and
        // OBIE VRP 4.0 says consent-level remittance must then not be captured.
        Initiation: { ...(input.debtor ? { DebtorAccount: wireAccount(input.debtor) } : {}), CreditorAccount: wireAccount(input.creditor) },
      },
      Risk: { PaymentContextCode: 'BillingGoodsAndServicesInArrears', MerchantCustomerIdentification: input.reference, ContractPresentIndicator: true },
    };
    const action = `create consent with key ${input.idempotencyKey}`;
    const answer = await this.#exchange({ action, method: 'POST', path: '/domestic-vrp-consents', expectStatus: 201, body, idempotencyKey: input.idempotencyKey });
    return consentOf(this.#read(consentResponse, answer, action));
  }

  async getConsent(consentId: string): Promise<VrpConsent> {
    return consentOf(await this.#consentTerms(consentId));
  }

  /** OBIE VRP 4.0 funds-confirmation: may the debtor's account pay this amount now? */
  async confirmFunds(consentId: string, amountMinor: bigint, currency: string): Promise<VrpFundsConfirmation> {
    checkText(consentId, 'consentId', MAX.consentId);
    checkAmount(amountMinor, currency, 'amountMinor');
    const action = `confirm funds of ${formatMinor(amountMinor, currency)} ${currency} under consent ${consentId}`;
    const path = `/domestic-vrp-consents/${encodeURIComponent(consentId)}/funds-confirmation`;
    const body = { Data: { ConsentId: consentId, InstructedAmount: wireAmount(amountMinor, currency) } };
    const { Data } = this.#read(fundsConfirmationResponse, await this.#exchange({ action, method: 'POST', path, expectStatus: 201, body }), action);
    return { fundsConfirmationId: Data.FundsConfirmationId, available: Data.FundsAvailableResult.FundsAvailable === 'Available' };
  }

  /** DELETE: the PSU revoked the consent with us; the bank marks it CANC. */
  async revokeConsent(consentId: string): Promise<void> {
    checkText(consentId, 'consentId', MAX.consentId);
    const path = `/domestic-vrp-consents/${encodeURIComponent(consentId)}`;
    await this.#exchange({ action: `revoke consent ${consentId}`, method: 'DELETE', path, expectStatus: 204 });
  }

  /**
   * Reads the consent first: OBIE VRP 4.0 wants each payment's Initiation and Risk to match
   * the consent's exactly, so they are copied from the bank's own record of it.
   */
  async createPayment(input: CreatePaymentInput): Promise<VrpPayment> {
    checkText(input.consentId, 'consentId', MAX.consentId);
    checkIdempotencyKey(input.idempotencyKey);
    checkText(input.instructionIdentification, 'instructionIdentification', MAX.text35);
    checkText(input.endToEndIdentification, 'endToEndIdentification', MAX.text35);
    checkAmount(input.amountMinor, input.currency, 'amountMinor');
    checkAccount(input.creditor, 'creditor');
    checkText(input.remittance.reference, 'remittance.reference', MAX.text35);
    checkText(input.remittance.unstructured, 'remittance.unstructured', MAX.unstructured);
    const terms = await this.#consentTerms(input.consentId);
    const control = terms.Data.ControlParameters;
    const pick = (allowed: readonly string[], preferred: string) => (allowed.includes(preferred) ? preferred : (allowed[0] ?? preferred));
    const body = {
      Data: {
        ConsentId: input.consentId,
        PSUAuthenticationMethod: pick(control.PSUAuthenticationMethods, 'UK.OBIE.SCANotRequired'),
        PSUInteractionType: pick(control.PSUInteractionTypes ?? ['OffSession'], 'OffSession'),
        VRPType: pick(control.VRPType, 'UK.OBIE.VRPType.Other'),
        Initiation: terms.Data.Initiation,
        Instruction: {
          InstructionIdentification: input.instructionIdentification,
          EndToEndIdentification: input.endToEndIdentification,
          // OBIE VRP 4.0 has no flat Reference: the batch reference is the creditor's reference.
          RemittanceInformation: { Structured: [{ CreditorReferenceInformation: { Reference: input.remittance.reference } }], Unstructured: [input.remittance.unstructured] },
          InstructedAmount: wireAmount(input.amountMinor, input.currency),
          CreditorAccount: wireAccount(input.creditor),
        },
      },
      Risk: terms.Risk,
    };
    const action = `create payment with key ${input.idempotencyKey} under consent ${input.consentId}`;
    const answer = await this.#exchange({ action, method: 'POST', path: '/domestic-vrps', expectStatus: 201, body, idempotencyKey: input.idempotencyKey });
    const payment = this.#payment(answer, action);
    if (payment.consentId !== input.consentId || payment.amountMinor !== input.amountMinor || payment.currency !== input.currency) {
      const got = `payment ${payment.paymentId} of ${formatMinor(payment.amountMinor, payment.currency)} ${payment.currency} under consent ${payment.consentId}`;
      throw new VrpError(`Cannot ${action}: the bank answered with ${got}`, { code: 'protocol', interactionId: answer.interactionId });
    }
    return payment;
  }

  async getPayment(paymentId: string): Promise<VrpPayment> {
    checkText(paymentId, 'paymentId', MAX.paymentId);
    const action = `read payment ${paymentId}`;
    const answer = await this.#exchange({ action, method: 'GET', path: `/domestic-vrps/${encodeURIComponent(paymentId)}`, expectStatus: 200 });
    return this.#payment(answer, action);
  }

  /**
   * NOT part of the OBIE VRP 4.0 spec, which has no way to list payments: the bank sandbox's
   * `GET /sandbox/payments?endToEndId=` (bank-sandbox/sandbox-routes.ts). The settler uses it
   * to find out whether a payment it never heard back about exists, once the bank's 24 h
   * idempotency window has closed. A real bank answers 404 (a non-retriable VrpError).
   */
  async findPaymentsByEndToEndId(endToEndId: string): Promise<VrpPayment[]> {
    checkText(endToEndId, 'endToEndId', MAX.text35);
    const action = `look up payments with EndToEndIdentification ${endToEndId}`;
    const path = `/sandbox/payments?endToEndId=${encodeURIComponent(endToEndId)}`;
    const answer = await this.#exchange({ action, method: 'GET', path, expectStatus: 200, fromOrigin: true });
    const list = z.object({ Data: z.object({ Payments: z.array(z.unknown()).max(1_000) }) }).safeParse(answer.json);
    if (!list.success) throw new VrpError(`Cannot ${action}: the answer is not a list of payments`, { code: 'protocol', interactionId: answer.interactionId });
    return list.data.Data.Payments.map((json) => this.#payment({ json, interactionId: answer.interactionId }, action));
  }

  async #consentTerms(consentId: string): Promise<ConsentResponse> {
    checkText(consentId, 'consentId', MAX.consentId);
    const action = `read consent ${consentId}`;
    const answer = await this.#exchange({ action, method: 'GET', path: `/domestic-vrp-consents/${encodeURIComponent(consentId)}`, expectStatus: 200 });
    return this.#read(consentResponse, answer, action);
  }

  #payment(answer: { json: unknown; interactionId: string }, action: string): VrpPayment {
    const { Data } = this.#read(paymentResponse, answer, action);
    const { Amount, Currency } = Data.Instruction.InstructedAmount;
    let amountMinor: bigint;
    try {
      amountMinor = parseBankAmount(Amount, Currency, 'Data.Instruction.InstructedAmount.Amount');
    } catch (error) {
      throw new VrpError(`Cannot ${action}: ${(error as Error).message}`, { code: 'protocol', interactionId: answer.interactionId, cause: error });
    }
    return {
      paymentId: Data.DomesticVRPId,
      consentId: Data.ConsentId,
      status: Data.Status,
      statusUpdateDateTime: Data.StatusUpdateDateTime,
      amountMinor,
      currency: Currency,
      statusReasonCodes: (Data.StatusReason ?? []).flatMap((reason) => (reason.StatusReasonCode ? [reason.StatusReasonCode] : [])),
      ...(Data.Instruction.EndToEndIdentification === undefined ? {} : { endToEndIdentification: Data.Instruction.EndToEndIdentification }),
    };
  }

  #read<T>(schema: z.ZodType<T>, answer: { json: unknown; interactionId: string }, action: string): T {
    const parsed = schema.safeParse(answer.json);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.') || '(root)'} ${issue.message}` : 'unreadable';
    throw new VrpError(`Cannot ${action}: the bank's answer does not follow the spec (${where})`, { code: 'protocol', interactionId: answer.interactionId });
  }

  async #exchange(request: Exchange): Promise<{ json: unknown; interactionId: string }> {
    const interactionId = randomUUID();
    const url = `${request.fromOrigin ? new URL(this.#baseUrl).origin : this.#baseUrl}${request.path}`;
    const headers: Record<string, string> = { authorization: `Bearer ${this.#accessToken}`, 'x-fapi-interaction-id': interactionId, accept: 'application/json' };
    const bodyText = request.body === undefined ? undefined : JSON.stringify(request.body);
    if (bodyText !== undefined) headers['content-type'] = 'application/json';
    if (request.idempotencyKey !== undefined) headers['x-idempotency-key'] = request.idempotencyKey;
    if (this.#signRequest && bodyText !== undefined) headers['x-jws-signature'] = await this.#signRequest({ method: request.method, url, body: bodyText });
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let status: number;
    let text: string;
    let echoedId: string | null;
    let signature: string | null;
    try {
      const response = await fetch(url, { method: request.method, headers, signal, ...(bodyText === undefined ? {} : { body: bodyText }) });
      status = response.status;
      echoedId = response.headers.get('x-fapi-interaction-id');
      signature = response.headers.get('x-jws-signature');
      text = await readBounded(response);
    } catch (error) {
      const failure = this.#transportError(error, request.action, interactionId);
      this.#reach = { ...this.#reach, reachable: false, lastError: failure.message, lastErrorAt: new Date(this.#clock()).toISOString() };
      throw failure;
    }
    // Any HTTP answer means the bank is there (an error status is about the request).
    this.#reach = { ...this.#reach, reachable: true, lastOkAt: new Date(this.#clock()).toISOString() };
    this.#checkSignature(request.action, { status, text, signature }, interactionId);
    if (status !== request.expectStatus) throw httpError(request.action, status, text, interactionId);
    if (echoedId !== interactionId) {
      throw new VrpError(`Cannot ${request.action}: the bank did not play back x-fapi-interaction-id`, { code: 'protocol', interactionId, httpStatus: status });
    }
    return { json: parseJson(text), interactionId };
  }

  /** An answer body the bank did not sign with a key we trust is not read at all. */
  #checkSignature(action: string, answer: { status: number; text: string; signature: string | null }, interactionId: string): void {
    if (!this.#bankSigningKeys || answer.text === '') return;
    const nowS = Math.floor(this.#clock() / 1000);
    const verdict = verifyDetachedJws(answer.signature ?? undefined, answer.text, { trustedKeys: this.#bankSigningKeys, tan: this.#trustAnchor, nowS });
    if (!verdict.ok) {
      const message = `Cannot ${action}: the bank's answer (${answer.status}) is not signed by the bank: ${verdict.detail}`;
      throw new VrpError(message, { code: 'signature', interactionId, httpStatus: answer.status });
    }
  }

  #transportError(error: unknown, action: string, interactionId: string): VrpError {
    if (error instanceof VrpError) return new VrpError(`Cannot ${action}: ${error.message}`, { code: error.code, interactionId, cause: error });
    const name = (error as { name?: string } | null)?.name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new VrpError(`Cannot ${action}: no answer within ${this.#timeoutMs} ms`, { code: 'timeout', interactionId, cause: error });
    }
    const reason = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
    const detail = reason?.code ?? reason?.message ?? (error as Error).message;
    return new VrpError(`Cannot ${action}: network failure (${detail})`, { code: 'network', interactionId, cause: error });
  }
}

/** The caps of a consent as the bank answered them; undefined when it left any out. */
function readTerms(consent: ConsentResponse): VrpConsentTerms | undefined {
  const { CreationDateTime: created, ControlParameters: control } = consent.Data;
  const max = control.MaximumIndividualAmount;
  if (created === undefined || max === undefined || control.PeriodicLimits === undefined || Number.isNaN(Date.parse(created))) return undefined;
  try {
    return {
      creationDateTime: created,
      currency: max.Currency,
      maxIndividualAmountMinor: parseBankAmount(max.Amount, max.Currency, 'MaximumIndividualAmount'),
      periodicLimits: control.PeriodicLimits.map((l) => ({ periodType: l.PeriodType, periodAlignment: l.PeriodAlignment, amountMinor: parseBankAmount(l.Amount, l.Currency, 'PeriodicLimits.Amount') })),
      ...(control.ValidToDateTime === undefined ? {} : { validToDateTime: control.ValidToDateTime }),
    };
  } catch {
    return undefined; // amounts we cannot read: the settler falls back to what it asked for
  }
}

function consentOf(consent: ConsentResponse): VrpConsent {
  const { Data } = consent;
  const terms = readTerms(consent);
  return {
    consentId: Data.ConsentId,
    status: Data.Status,
    statusUpdateDateTime: Data.StatusUpdateDateTime,
    statusReasons: (Data.StatusReason ?? []).flatMap((reason) => (reason.StatusReasonDescription ? [reason.StatusReasonDescription] : [])),
    ...(terms ? { terms } : {}),
  };
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined; // then the schema check reports the answer as unreadable
  }
}

function httpError(action: string, status: number, text: string, interactionId: string): VrpError {
  const parsed = errorResponse.safeParse(parseJson(text));
  const errors = parsed.success ? parsed.data.Errors : [];
  const codes = errors.map((error) => error.ErrorCode);
  const detail = errors.map((error) => `${error.ErrorCode}${error.Message ? ` ${error.Message}` : ''}`).join('; ');
  return new VrpError(`Cannot ${action}: the bank answered ${status}${detail ? ` (${detail})` : ''}`, {
    code: 'http',
    httpStatus: status,
    obErrorCodes: codes,
    interactionId,
  });
}

/** Reads the body as text, refusing more than MAX.responseBytes (a bank is not a file server). */
async function readBounded(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (let part = await reader.read(); !part.done; part = await reader.read()) {
    total += part.value.byteLength;
    if (total > MAX.responseBytes) {
      await reader.cancel();
      throw new VrpError(`the answer exceeds ${MAX.responseBytes} bytes`, { code: 'protocol', interactionId: '' });
    }
    chunks.push(part.value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
