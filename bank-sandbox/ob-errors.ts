/**
 * The one registry of error codes the sandbox answers with, and the OBErrorResponse1 body.
 *
 * OBIE VRP 4.0: `OBError1.ErrorCode` is an `OBExternalStatusReason1Code`, a 4-character code
 * from OB_Internal_CodeSet (U000-U029), each with the HTTP status category it belongs to.
 */

export const OB_ERROR_CODES = Object.freeze({
  /** UK.OBIE.Field.Invalid */
  fieldInvalid: 'U002',
  /** UK.OBIE.Field.InvalidDate */
  fieldInvalidDate: 'U003',
  /** UK.OBIE.Header.Invalid */
  headerInvalid: 'U006',
  /** UK.OBIE.Header.Missing */
  headerMissing: 'U007',
  /** UK.OBIE.Resource.ConsentMismatch */
  consentMismatch: 'U008',
  /** UK.OBIE.Resource.InvalidConsentStatus */
  invalidConsentStatus: 'U009',
  /** UK.OBIE.Resource.InvalidFormat */
  invalidFormat: 'U010',
  /** UK.OBIE.Resource.NotFound */
  notFound: 'U011',
  /** UK.OBIE.Rules.FailsControlParameters */
  failsControlParameters: 'U014',
  // UK.OBIE.Signature.*: numbered in the code set's alphabetical order, like U014 and U021.
  /** UK.OBIE.Signature.Invalid: the signature does not verify. */
  signatureInvalid: 'U015',
  /** UK.OBIE.Signature.InvalidClaim: a header claim has a value we refuse (alg, b64, tan, iat, kid). */
  signatureInvalidClaim: 'U016',
  /** UK.OBIE.Signature.Malformed: not a detached compact JWS. */
  signatureMalformed: 'U017',
  /** UK.OBIE.Signature.Missing: no x-jws-signature on a request that needs one. */
  signatureMissing: 'U018',
  /** UK.OBIE.Signature.MissingClaim: a required header claim, or its crit entry, is absent. */
  signatureMissingClaim: 'U019',
  /** UK.OBIE.Unsupported.AccountIdentifier */
  unsupportedAccountIdentifier: 'U021',
  /** UK.OBIE.Unsupported.Currency */
  unsupportedCurrency: 'U023',
  /** UK.OBIE.Unsupported.Scheme */
  unsupportedScheme: 'U027',
  /** UK.OBIE.UnexpectedError */
  unexpected: 'U000',
  /** UK.OBIE.OtherReason: a status reason, used when a payment is rejected. */
  otherReason: 'U042',
} as const);

export type ObErrorCode = (typeof OB_ERROR_CODES)[keyof typeof OB_ERROR_CODES];

export interface ObErrorBody {
  Errors: { ErrorCode: string; Message: string; Path?: string }[];
}

/** OBIE VRP 4.0: OBError1.Message and Path are at most 500 characters. */
const TEXT_MAX = 500;

export function obErrorBody(code: ObErrorCode, message: string, errorPath?: string): ObErrorBody {
  const error: ObErrorBody['Errors'][number] = { ErrorCode: code, Message: message.slice(0, TEXT_MAX) || code };
  if (errorPath) error.Path = errorPath.slice(0, TEXT_MAX);
  return { Errors: [error] };
}

/** An expected refusal: becomes an HTTP response with an OBErrorResponse1 body. */
export class SandboxError extends Error {
  readonly httpStatus: number;
  readonly code: ObErrorCode;
  readonly path: string | undefined;

  constructor(httpStatus: number, code: ObErrorCode, message: string, errorPath?: string) {
    super(message);
    this.name = 'SandboxError';
    this.httpStatus = httpStatus;
    this.code = code;
    this.path = errorPath;
  }

  body(): ObErrorBody {
    return obErrorBody(this.code, this.message, this.path);
  }
}

/** 400 with the given code: the ASPSP's answer to everything the TPP got wrong. */
export function badRequest(code: ObErrorCode, message: string, errorPath?: string): SandboxError {
  return new SandboxError(400, code, message, errorPath);
}
