/**
 * What the route plugins share: the bank's state, its faults and clock, and the small checks
 * every route makes the same way (idempotency key, accounts, amounts).
 */
import type { FastifyRequest } from 'fastify';
import { MINOR_DIGITS, parseMinor } from '../protocol/money.ts';
import type { BankState, PaymentRecord } from './bank-state.ts';
import type { FaultQueue } from './faults.ts';
import { badRequest, OB_ERROR_CODES } from './ob-errors.ts';
import type { WireAmount, WireCashAccount } from './schemas.ts';

/** OBIE VRP 4.0: `servers[0].url`. */
export const BASE_PATH = '/open-banking/v4.0/pisp';

export interface SandboxContext {
  readonly state: BankState;
  readonly faults: FaultQueue;
  readonly clock: () => number;
  readonly autoAuthoriseConsents: boolean;
  readonly settleAfterMs: number;
  /** The TPP (access token) the request was authenticated as. */
  ownerOf(request: FastifyRequest): string;
  /** Told of every payment created, for event notifications (event-notifications.ts); never blocks. */
  paymentCreated(payment: PaymentRecord): void;
  /** Waits `delayMs`, or less if the sandbox closes first. */
  hold(delayMs: number): Promise<void>;
}

/** OBIE VRP 4.0: x-idempotency-key is required, at most 40 chars, `^(?!\s)(.*)(\S)$`. */
const IDEMPOTENCY_KEY_MAX = 40;
const IDEMPOTENCY_KEY_PATTERN = /^(?!\s)(.*)(\S)$/;

export function requireIdempotencyKey(request: FastifyRequest): string {
  const key = request.headers['x-idempotency-key'];
  if (key === undefined || key === '') {
    throw badRequest(OB_ERROR_CODES.headerMissing, 'x-idempotency-key is required on this POST', 'x-idempotency-key');
  }
  if (typeof key !== 'string' || key.length > IDEMPOTENCY_KEY_MAX || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw badRequest(
      OB_ERROR_CODES.headerInvalid,
      `x-idempotency-key must be 1-${IDEMPOTENCY_KEY_MAX} characters without surrounding spaces`,
      'x-idempotency-key',
    );
  }
  return key;
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** OBIE VRP 4.0: Links.Self is an absolute URI of the resource. */
export function selfLink(request: FastifyRequest, resourcePath: string): string {
  return `${request.protocol}://${request.host}${BASE_PATH}${resourcePath}`;
}

/** The account schemes this sandbox bank can pay to and from, with their identifier shape. */
const ACCOUNT_FORMATS: Readonly<Record<string, RegExp>> = {
  'UK.OBIE.SortCodeAccountNumber': /^\d{14}$/, // 6-digit sort code + 8-digit account number
  'UK.OBIE.IBAN': /^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/,
};

export function checkAccount(account: WireCashAccount, accountPath: string): void {
  const format = ACCOUNT_FORMATS[account.SchemeName];
  if (!format) {
    const supported = Object.keys(ACCOUNT_FORMATS).join(', ');
    throw badRequest(OB_ERROR_CODES.unsupportedScheme, `SchemeName must be one of ${supported}`, `${accountPath}.SchemeName`);
  }
  if (!format.test(account.Identification)) {
    throw badRequest(
      OB_ERROR_CODES.unsupportedAccountIdentifier,
      `Identification is not a valid ${account.SchemeName}`,
      `${accountPath}.Identification`,
    );
  }
}

/** "10.00000" -> "10.00" for GBP: the spec allows 5 decimals, zeros past the currency's are exact. */
function trimZeroDecimals(text: string, digits: number): string {
  const [whole, fraction] = text.split('.');
  if (fraction === undefined) return text;
  let kept = fraction;
  while (kept.length > digits && kept.endsWith('0')) kept = kept.slice(0, -1);
  return kept === '' ? (whole ?? text) : `${whole}.${kept}`;
}

/** A positive wire amount in minor units of a currency the bank supports. */
export function parseWireAmount(amount: WireAmount, amountPath: string): bigint {
  const digits = Object.hasOwn(MINOR_DIGITS, amount.Currency) ? MINOR_DIGITS[amount.Currency] : undefined;
  if (digits === undefined) {
    throw badRequest(OB_ERROR_CODES.unsupportedCurrency, `Currency ${amount.Currency} is not supported`, `${amountPath}.Currency`);
  }
  let minor: bigint;
  try {
    minor = parseMinor(trimZeroDecimals(amount.Amount, digits), amount.Currency, 'Amount');
  } catch (error) {
    throw badRequest(OB_ERROR_CODES.fieldInvalid, (error as Error).message, `${amountPath}.Amount`);
  }
  if (minor <= 0n) throw badRequest(OB_ERROR_CODES.fieldInvalid, 'Amount must be positive', `${amountPath}.Amount`);
  return minor;
}
