/**
 * Signed event notifications from the sandbox bank to the TPP's callback URL
 * (docs/bank-api.md, "Event notifications"): when a payment is created or its status moves
 * (RCVD/PDNG -> ACSP -> ACSC, or RJCT), the bank POSTs a small "resource-update" event,
 * signed like its answers (`x-jws-signature`, detached JWS ES256, gateway/settlement/jws.ts).
 *
 * OBIE VRP 4.0 (the openapi in shared/conformance) defines no notification objects; the body
 * follows the shape of the OB Event Notification API's resource-update event (a "ping": it
 * names the resource, the TPP reads its status with a GET). Unlike that API it is JSON with a
 * detached signature, as every other message here, not a compact JWT.
 *
 * Never on the payment path: events go into a bounded queue (oldest dropped when full, and
 * logged) and one worker sends them in order, retrying with backoff; a status change is
 * noticed by a timer at the time the bank's lazy state says it happens.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { signDetachedJws, type JwsKeyPair } from '../gateway/settlement/jws.ts';
import type { PaymentRecord, PaymentStatus } from './bank-state.ts';

/** OB Event Notification API: the one event type, "a resource changed". */
export const RESOURCE_UPDATE_EVENT = 'urn:uk:org:openbanking:events:resource-update';
/** OB claim names of the event subject. */
export const OB_RID = 'http://openbanking.org.uk/rid';
export const OB_RTY = 'http://openbanking.org.uk/rty';
export const OB_RLK = 'http://openbanking.org.uk/rlk';

/** The notification body (docs/bank-api.md). `iat`/`toe` are seconds since the epoch. */
export interface EventNotification {
  iss: string;
  iat: number;
  jti: string;
  sub: string;
  txn: string;
  toe: number;
  events: {
    [RESOURCE_UPDATE_EVENT]: {
      subject: {
        subject_type: string;
        [OB_RID]: string;
        [OB_RTY]: 'domestic-vrps';
        [OB_RLK]: Array<{ version: string; link: string }>;
      };
    };
  };
}

export interface EventNotifierOptions {
  signing: { key: JwsKeyPair; iss: string; tan: string };
  clock: () => number;
  /** The payment as the bank shows it now (advancing its lazy status), or undefined. */
  read: (payment: PaymentRecord) => PaymentRecord | undefined;
  /** Absolute URL of a payment resource, for the event's link. */
  linkOf: (paymentId: string) => string;
  /** When a PDNG/ACSP payment is expected to move on. */
  settleAfterMs: number;
  callbackUrl?: string;
  logger?: Logger;
  /** Events waiting to be sent; beyond it the oldest is dropped. Default 1000, at most 100000. */
  queueMax?: number;
  /** Sends of one event before it is given up. Default 5, at most 20. */
  attemptsMax?: number;
  /** First retry delay, doubled each time. Default 250 ms. */
  retryBaseMs?: number;
  /** One POST's time limit. Default 2000 ms. */
  timeoutMs?: number;
}

const FINAL: ReadonlySet<PaymentStatus> = new Set(['ACSC', 'RJCT', 'CANC', 'ACCC', 'BLCK']);
/** After its expected time a payment is looked at again this often, at most this many times. */
const RECHECK_MS = 1_000;
const RECHECKS_MAX = 120;
const WATCHED_MAX = 10_000;
const QUEUE_MAX_DEFAULT = 1_000;
const RETRY_DELAY_MS_MAX = 30_000;

interface QueuedEvent {
  paymentId: string;
  status: PaymentStatus;
  link: string;
}

export class EventNotifier {
  readonly #o: EventNotifierOptions;
  readonly #queueMax: number;
  readonly #attemptsMax: number;
  readonly #queue: QueuedEvent[] = [];
  readonly #lastStatus = new Map<string, PaymentStatus>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #callbackUrl: string | undefined;
  #sending: Promise<void> | undefined;
  #closed = false;
  readonly #abort = new AbortController();
  readonly #wakers = new Set<() => void>();
  /** Counts since start, for tests and logs. */
  readonly counts = { delivered: 0, failed: 0, dropped: 0 };

  constructor(options: EventNotifierOptions) {
    const { queueMax = QUEUE_MAX_DEFAULT, attemptsMax = 5 } = options;
    if (!Number.isSafeInteger(queueMax) || queueMax < 1 || queueMax > 100_000) throw new RangeError(`queueMax: ${queueMax} must be 1-100000`);
    if (!Number.isSafeInteger(attemptsMax) || attemptsMax < 1 || attemptsMax > 20) throw new RangeError(`attemptsMax: ${attemptsMax} must be 1-20`);
    this.#o = options;
    this.#queueMax = queueMax;
    this.#attemptsMax = attemptsMax;
    this.setCallbackUrl(options.callbackUrl);
  }

  /** Where events go from now on; undefined: nowhere (nothing is watched or queued). */
  setCallbackUrl(url: string | undefined): void {
    if (url !== undefined) {
      const parsed = URL.canParse(url) ? new URL(url) : undefined;
      if (parsed?.protocol !== 'http:' && parsed?.protocol !== 'https:') throw new RangeError(`callbackUrl: ${JSON.stringify(url)} must be an http(s) URL`);
    }
    this.#callbackUrl = url;
  }

  /** A payment was just created: its status is sent now, and each later change when it happens. */
  created(payment: PaymentRecord): void {
    if (this.#callbackUrl === undefined || this.#closed) return;
    this.#changed(payment);
    // Bounded: only payments still moving are remembered, and at most WATCHED_MAX of them.
    if (!FINAL.has(payment.status) && this.#lastStatus.size <= WATCHED_MAX) this.#watch(payment, 0);
    else this.#lastStatus.delete(payment.paymentId);
  }

  #watch(payment: PaymentRecord, rechecks: number): void {
    const nowMs = this.#o.clock();
    const dueMs = rechecks > 0 ? nowMs + RECHECK_MS : (payment.pendingUntilMs ?? payment.createdMs + this.#o.settleAfterMs);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const current = this.#o.read(payment);
      if (!current || this.#closed) return;
      this.#changed(current);
      if (FINAL.has(current.status)) this.#lastStatus.delete(current.paymentId);
      else if (rechecks < RECHECKS_MAX) this.#watch(current, rechecks + 1);
      else this.#lastStatus.delete(current.paymentId);
    }, Math.max(0, dueMs - nowMs) + 5);
    timer.unref();
    this.#timers.add(timer);
  }

  #changed(payment: PaymentRecord): void {
    if (this.#lastStatus.get(payment.paymentId) === payment.status) return;
    this.#lastStatus.set(payment.paymentId, payment.status);
    if (this.#queue.length >= this.#queueMax) {
      const dropped = this.#queue.shift();
      this.counts.dropped += 1;
      this.#o.logger?.warn({ paymentId: dropped?.paymentId, queueMax: this.#queueMax }, 'event notification queue full: oldest event dropped');
    }
    this.#queue.push({ paymentId: payment.paymentId, status: payment.status, link: this.#o.linkOf(payment.paymentId) });
    this.#sending ??= this.#drain().finally(() => {
      this.#sending = undefined;
    });
  }

  async #drain(): Promise<void> {
    for (let event = this.#queue.shift(); event && !this.#closed; event = this.#queue.shift()) {
      await this.#deliver(event);
    }
  }

  async #deliver(event: QueuedEvent): Promise<void> {
    const retryBaseMs = this.#o.retryBaseMs ?? 250;
    let problem = '';
    for (let attempt = 1; attempt <= this.#attemptsMax && !this.#closed; attempt += 1) {
      const url = this.#callbackUrl;
      if (url === undefined) return;
      problem = await this.#post(url, event);
      if (problem === '') {
        this.counts.delivered += 1;
        return;
      }
      if (attempt < this.#attemptsMax) await this.#sleep(Math.min(RETRY_DELAY_MS_MAX, retryBaseMs * 2 ** (attempt - 1)));
    }
    this.counts.failed += 1;
    this.#o.logger?.warn({ paymentId: event.paymentId, status: event.status, attempts: this.#attemptsMax, problem }, 'event notification not delivered; the TPP will see the status when it polls');
  }

  /** One signed POST; '' when the TPP took it (2xx), else why not. */
  async #post(url: string, event: QueuedEvent): Promise<string> {
    const nowS = Math.floor(this.#o.clock() / 1000);
    const body = JSON.stringify(notificationOf(event, this.#o.signing.iss, nowS));
    const signature = signDetachedJws(body, this.#o.signing.key, { iss: this.#o.signing.iss, tan: this.#o.signing.tan, iatS: nowS });
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-jws-signature': signature, 'x-fapi-interaction-id': randomUUID() },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(this.#o.timeoutMs ?? 2_000), this.#abort.signal]),
      });
      await response.arrayBuffer().catch(() => undefined);
      return response.ok ? '' : `HTTP ${response.status}`;
    } catch (error) {
      return (error as Error).message;
    }
  }

  #sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, delayMs);
      timer.unref();
      this.#wakers.add(wake);
    });
  }

  /** Stops watching and sending; events still queued are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#abort.abort();
    for (const wake of [...this.#wakers]) wake();
    await this.#sending;
  }
}

export function notificationOf(event: QueuedEvent, iss: string, nowS: number): EventNotification {
  return {
    iss,
    iat: nowS,
    jti: randomUUID(),
    sub: event.link,
    txn: randomUUID(),
    toe: nowS,
    events: {
      [RESOURCE_UPDATE_EVENT]: {
        subject: {
          subject_type: `${OB_RID}_${OB_RTY}`,
          [OB_RID]: event.paymentId,
          [OB_RTY]: 'domestic-vrps',
          [OB_RLK]: [{ version: 'v4.0', link: event.link }],
        },
      },
    },
  };
}
