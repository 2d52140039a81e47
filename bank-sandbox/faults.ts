/**
 * Faults a test can inject into the sandbox at run time, each for the next `count` requests
 * it applies to. They model what a real bank does to a TPP on a bad day.
 */

export interface FaultControl {
  /** The next `count` API requests get `httpStatus` (5xx or 429) and change nothing. */
  failNext(count: number, httpStatus?: number): void;
  /**
   * The next `count` payment creations are stored, then the response is held for `delayMs`
   * and the connection is destroyed: the bank accepted, the client never hears so.
   */
  timeoutAfterAcceptNext(count: number, delayMs: number): void;
  /** The next `count` payments are created with Status RJCT (the bank's own decision). */
  rejectNextPayments(count: number): void;
  /** Forgets every pending fault. */
  clear(): void;
}

export interface FaultQueue extends FaultControl {
  takeFailure(): number | undefined;
  takeTimeoutAfterAccept(): number | undefined;
  takeRejection(): boolean;
}

const COUNT_MAX = 10_000;
const DELAY_MS_MAX = 120_000;

function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > COUNT_MAX) {
    throw new RangeError(`count: ${count} must be an integer from 1 to ${COUNT_MAX}`);
  }
}

export function createFaultQueue(): FaultQueue {
  let failures: { remaining: number; httpStatus: number } | undefined;
  let timeouts: { remaining: number; delayMs: number } | undefined;
  let rejections = 0;

  return {
    failNext(count, httpStatus = 500) {
      checkCount(count);
      if (!Number.isInteger(httpStatus) || !(httpStatus === 429 || (httpStatus >= 500 && httpStatus <= 599))) {
        throw new RangeError(`httpStatus: ${httpStatus} must be 429 or 500-599`);
      }
      failures = { remaining: count, httpStatus };
    },
    timeoutAfterAcceptNext(count, delayMs) {
      checkCount(count);
      if (!Number.isSafeInteger(delayMs) || delayMs < 0 || delayMs > DELAY_MS_MAX) {
        throw new RangeError(`delayMs: ${delayMs} must be an integer from 0 to ${DELAY_MS_MAX}`);
      }
      timeouts = { remaining: count, delayMs };
    },
    rejectNextPayments(count) {
      checkCount(count);
      rejections = count;
    },
    clear() {
      failures = undefined;
      timeouts = undefined;
      rejections = 0;
    },
    takeFailure() {
      if (!failures) return undefined;
      const { httpStatus } = failures;
      failures = failures.remaining > 1 ? { ...failures, remaining: failures.remaining - 1 } : undefined;
      return httpStatus;
    },
    takeTimeoutAfterAccept() {
      if (!timeouts) return undefined;
      const { delayMs } = timeouts;
      timeouts = timeouts.remaining > 1 ? { ...timeouts, remaining: timeouts.remaining - 1 } : undefined;
      return delayMs;
    },
    takeRejection() {
      if (rejections === 0) return false;
      rejections -= 1;
      return true;
    },
  };
}
