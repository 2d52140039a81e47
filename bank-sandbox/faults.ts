/**
 * Faults a test or the demo can inject into the sandbox at run time, each for the next `count`
 * requests it applies to. They model what a real bank does to a TPP on a bad day; each says
 * whether the bank acted, because that is what a TPP cannot see and must never guess.
 *
 * Set in code (`bank.faults`), over HTTP (`POST /sandbox/faults`, sandbox-routes.ts) or on the
 * command line (`--fault kind:count[:ms]`, parsed by {@link parseFaultSpec}).
 */
import { OB_ERROR_CODES } from './ob-errors.ts';

/** Why the bank rejects a payment it was asked to make (Status RJCT). */
export type RejectionReason = 'other' | 'insufficient-funds';

export interface PendingHold {
  /** PDNG until this long after creation (bank clock)… */
  forMs?: number;
  /** …or until it has been read this many times, whichever comes first. */
  reads?: number;
}

export interface FaultControl {
  /** The next `count` API requests get `httpStatus` (5xx or 429) and change nothing. */
  failNext(count: number, httpStatus?: number): void;
  /**
   * The next `count` payment creations are stored, then the response is held for `delayMs`
   * and the connection is destroyed: the bank accepted, the client never hears so.
   */
  timeoutAfterAcceptNext(count: number, delayMs: number): void;
  /**
   * Answers twice: the next `count` payment creations are held `delayMs` before the bank
   * stores them. A retry with the same x-idempotency-key meanwhile waits for that first
   * request and is answered, late, with the same payment; both requests get an answer.
   */
  acceptSlowlyNext(count: number, delayMs: number): void;
  /** The next `count` payment requests (POST or GET) take effect, then are answered `delayMs` late. */
  answerSlowlyNext(count: number, delayMs: number): void;
  /** The next `count` payments are created with Status RJCT and a status reason. */
  rejectNextPayments(count: number, reason?: RejectionReason): void;
  /** The consent of the next `count` new payments expires (EXPD) just before they arrive. */
  expireConsentNext(count: number): void;
  /** The next `count` payments are created PDNG and stay so for a while, then ACSC. */
  holdPendingNext(count: number, hold: PendingHold): void;
  /** Forgets every pending fault. */
  clear(): void;
}

export interface FaultQueue extends FaultControl {
  takeFailure(): number | undefined;
  takeTimeoutAfterAccept(): number | undefined;
  takeAcceptDelay(): number | undefined;
  takeAnswerDelay(): number | undefined;
  /** The status reason of a rejection to apply, or undefined. */
  takeRejection(): { StatusReasonCode: string; StatusReasonDescription: string } | undefined;
  takeConsentExpiry(): boolean;
  takePendingHold(): PendingHold | undefined;
}

const COUNT_MAX = 10_000;
const DELAY_MS_MAX = 120_000;
const READS_MAX = 1_000;

function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > COUNT_MAX) {
    throw new RangeError(`count: ${count} must be an integer from 1 to ${COUNT_MAX}`);
  }
}

function checkDelay(delayMs: number, field = 'delayMs'): void {
  if (!Number.isSafeInteger(delayMs) || delayMs < 0 || delayMs > DELAY_MS_MAX) {
    throw new RangeError(`${field}: ${delayMs} must be an integer from 0 to ${DELAY_MS_MAX}`);
  }
}

/** A value applied to the next `remaining` requests. */
function counted<T>(): { set(count: number, value: T): void; take(): T | undefined; clear(): void } {
  let slot: { remaining: number; value: T } | undefined;
  return {
    set(count, value) {
      checkCount(count);
      slot = { remaining: count, value };
    },
    take() {
      if (!slot) return undefined;
      const { value } = slot;
      slot = slot.remaining > 1 ? { ...slot, remaining: slot.remaining - 1 } : undefined;
      return value;
    },
    clear() {
      slot = undefined;
    },
  };
}

const REJECTIONS = {
  other: { StatusReasonCode: OB_ERROR_CODES.otherReason, StatusReasonDescription: 'Rejected by the bank (sandbox fault)' },
  // ISO 20022 ExternalStatusReason1Code AM04 InsufficientFunds: the code list the spec's
  // OBExternalStatusReason1Code StatusReasonCode refers to (its example, ERIN, is from it).
  'insufficient-funds': { StatusReasonCode: 'AM04', StatusReasonDescription: 'Insufficient funds in the debtor account (sandbox fault)' },
} as const;

export function createFaultQueue(): FaultQueue {
  const failures = counted<number>();
  const timeouts = counted<number>();
  const acceptDelays = counted<number>();
  const answerDelays = counted<number>();
  const rejections = counted<RejectionReason>();
  const expiries = counted<true>();
  const holds = counted<PendingHold>();
  const all = [failures, timeouts, acceptDelays, answerDelays, rejections, expiries, holds];

  return {
    failNext(count, httpStatus = 500) {
      if (!Number.isInteger(httpStatus) || !(httpStatus === 429 || (httpStatus >= 500 && httpStatus <= 599))) {
        throw new RangeError(`httpStatus: ${httpStatus} must be 429 or 500-599`);
      }
      failures.set(count, httpStatus);
    },
    timeoutAfterAcceptNext(count, delayMs) {
      checkDelay(delayMs);
      timeouts.set(count, delayMs);
    },
    acceptSlowlyNext(count, delayMs) {
      checkDelay(delayMs);
      acceptDelays.set(count, delayMs);
    },
    answerSlowlyNext(count, delayMs) {
      checkDelay(delayMs);
      answerDelays.set(count, delayMs);
    },
    rejectNextPayments(count, reason = 'other') {
      if (!Object.hasOwn(REJECTIONS, reason)) throw new RangeError(`reason: ${JSON.stringify(reason)} is not one of ${Object.keys(REJECTIONS).join(', ')}`);
      rejections.set(count, reason);
    },
    expireConsentNext(count) {
      expiries.set(count, true);
    },
    holdPendingNext(count, hold) {
      if (hold.forMs === undefined && hold.reads === undefined) throw new RangeError('hold: give forMs, reads or both');
      if (hold.forMs !== undefined && (!Number.isSafeInteger(hold.forMs) || hold.forMs < 0 || hold.forMs > 86_400_000)) {
        throw new RangeError(`hold.forMs: ${hold.forMs} must be an integer from 0 to 86400000`);
      }
      if (hold.reads !== undefined && (!Number.isSafeInteger(hold.reads) || hold.reads < 1 || hold.reads > READS_MAX)) {
        throw new RangeError(`hold.reads: ${hold.reads} must be an integer from 1 to ${READS_MAX}`);
      }
      holds.set(count, { ...hold });
    },
    clear() {
      for (const fault of all) fault.clear();
    },
    takeFailure: () => failures.take(),
    takeTimeoutAfterAccept: () => timeouts.take(),
    takeAcceptDelay: () => acceptDelays.take(),
    takeAnswerDelay: () => answerDelays.take(),
    takeRejection() {
      const reason = rejections.take();
      return reason === undefined ? undefined : { ...REJECTIONS[reason] };
    },
    takeConsentExpiry: () => expiries.take() === true,
    takePendingHold: () => holds.take(),
  };
}

/** One fault as data: what the HTTP control API takes and `--fault` is parsed into. */
export type FaultSpec =
  | { kind: 'fail'; count: number; httpStatus?: number }
  | { kind: 'timeout-after-accept' | 'accept-slowly' | 'answer-slowly'; count: number; delayMs: number }
  | { kind: 'reject'; count: number; reason?: RejectionReason }
  | { kind: 'expire-consent'; count: number }
  | { kind: 'hold-pending'; count: number; forMs?: number; reads?: number };

export const FAULT_KINDS = ['fail', 'timeout-after-accept', 'accept-slowly', 'answer-slowly', 'reject', 'expire-consent', 'hold-pending'] as const;

export function applyFault(control: FaultControl, spec: FaultSpec): void {
  switch (spec.kind) {
    case 'fail':
      return control.failNext(spec.count, spec.httpStatus);
    case 'timeout-after-accept':
      return control.timeoutAfterAcceptNext(spec.count, spec.delayMs);
    case 'accept-slowly':
      return control.acceptSlowlyNext(spec.count, spec.delayMs);
    case 'answer-slowly':
      return control.answerSlowlyNext(spec.count, spec.delayMs);
    case 'reject':
      return control.rejectNextPayments(spec.count, spec.reason);
    case 'expire-consent':
      return control.expireConsentNext(spec.count);
    case 'hold-pending':
      return control.holdPendingNext(spec.count, { ...(spec.forMs === undefined ? {} : { forMs: spec.forMs }), ...(spec.reads === undefined ? {} : { reads: spec.reads }) });
    default:
      throw new RangeError(`kind: ${JSON.stringify((spec as { kind: unknown }).kind)} is not one of ${FAULT_KINDS.join(', ')}`);
  }
}

/**
 * `kind:count[:value]` as on the command line, e.g. `fail:2:503`, `timeout-after-accept:1:5000`,
 * `reject:1:insufficient-funds`, `hold-pending:3:10000` (ms), `expire-consent:1`.
 */
export function parseFaultSpec(text: string): FaultSpec {
  const [kind, countText, value, ...rest] = text.split(':');
  const number = (field: string, given: string | undefined): number => {
    if (given === undefined || !/^\d{1,9}$/.test(given)) throw new RangeError(`--fault ${text}: ${field} must be a whole number`);
    return Number(given);
  };
  if (rest.length > 0) throw new RangeError(`--fault ${text}: expected kind:count[:value]`);
  const count = number('count', countText);
  switch (kind) {
    case 'fail':
      return { kind, count, ...(value === undefined ? {} : { httpStatus: number('httpStatus', value) }) };
    case 'timeout-after-accept':
    case 'accept-slowly':
    case 'answer-slowly':
      return { kind, count, delayMs: number('delay in ms', value) };
    case 'reject':
      if (value !== undefined && value !== 'other' && value !== 'insufficient-funds') throw new RangeError(`--fault ${text}: reason must be other or insufficient-funds`);
      return { kind, count, ...(value === undefined ? {} : { reason: value }) };
    case 'expire-consent':
      return { kind, count };
    case 'hold-pending':
      return { kind, count, forMs: number('hold in ms', value) };
    default:
      throw new RangeError(`--fault ${text}: kind must be one of ${FAULT_KINDS.join(', ')}`);
  }
}
