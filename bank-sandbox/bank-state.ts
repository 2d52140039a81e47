/**
 * The sandbox bank's memory: consents, payments and the idempotency keys that created them.
 *
 * Bounded (a sandbox must not grow without end) and time-driven by an injected clock, so the
 * status a resource shows is computed when it is read: payments settle and consents expire
 * lazily, without timers. Records are replaced, never mutated, when their status moves.
 */
import { createHash } from 'node:crypto';
import { badRequest, OB_ERROR_CODES, SandboxError } from './ob-errors.ts';
import type { ConsentRequestBody, PaymentRequestBody } from './schemas.ts';

/** OBIE VRP 4.0: OBDomesticVRPConsentResponse.Data.Status. */
export type ConsentStatus = 'AWAU' | 'RJCT' | 'AUTH' | 'CANC' | 'EXPD';
/** OBIE VRP 4.0: OBDomesticVRPResponse.Data.Status (ExternalPaymentTransactionStatus1Code). */
export type PaymentStatus =
  | 'RCVD' | 'RJCT' | 'CANC' | 'PDNG' | 'ACTC' | 'ACCP' | 'ACFC' | 'ACSP' | 'ACWC' | 'ACSC' | 'ACWP' | 'ACCC' | 'BLCK';

export interface StatusReason {
  StatusReasonCode?: string;
  StatusReasonDescription?: string;
}

export interface ConsentRecord {
  readonly consentId: string;
  readonly ownerId: string;
  readonly createdMs: number;
  readonly status: ConsentStatus;
  readonly statusUpdatedMs: number;
  readonly statusReason: readonly StatusReason[];
  readonly request: ConsentRequestBody;
  readonly currency: string;
  readonly maxIndividualAmountMinor: bigint;
  /** As if the PSU approved at the ASPSP the moment after the consent was created. */
  readonly autoAuthorise: boolean;
}

export interface PaymentRecord {
  readonly paymentId: string;
  readonly ownerId: string;
  readonly consentId: string;
  readonly idempotencyKey: string;
  readonly createdMs: number;
  readonly status: PaymentStatus;
  readonly statusUpdatedMs: number;
  readonly statusReason: readonly StatusReason[];
  readonly request: PaymentRequestBody;
  readonly amountMinor: bigint;
  readonly currency: string;
  /** Sandbox fault hold-pending: PDNG until this instant… */
  readonly pendingUntilMs?: number;
  /** …or until it has been read this many more times; then ACSC. */
  readonly pendingReadsLeft?: number;
}

export interface BankStateLimits {
  consentsMax: number;
  paymentsMax: number;
  settleAfterMs: number;
}

type ResourceKind = 'consent' | 'payment';
interface IdempotencyRecord {
  readonly resourceId: string;
  readonly bodyDigest: string;
  readonly receivedMs: number;
}

/** OBIE R/W profile 4.0, Idempotency: a key is honoured for the preceding 24 hours. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

export function bodyDigest(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

export class BankState {
  readonly #limits: BankStateLimits;
  readonly #consents = new Map<string, ConsentRecord>();
  readonly #payments = new Map<string, PaymentRecord>();
  readonly #idempotency = new Map<string, IdempotencyRecord>();
  /** Payment creations still being processed, by idempotency key: a retry waits for them. */
  readonly #inFlight = new Map<string, Promise<unknown>>();

  constructor(limits: BankStateLimits) {
    this.#limits = limits;
  }

  /**
   * The resource an earlier request with this key created, or undefined when the key is new
   * (or older than 24 h). Throws when the key was used with a different body: the ASPSP
   * must not modify the resource (OBIE R/W profile 4.0, Idempotency).
   */
  replay(ownerId: string, kind: ResourceKind, key: string, digest: string, nowMs: number): string | undefined {
    const found = this.#idempotency.get(`${ownerId}\n${kind}\n${key}`);
    if (!found || nowMs - found.receivedMs >= IDEMPOTENCY_WINDOW_MS) return undefined;
    if (found.bodyDigest !== digest) {
      throw badRequest(
        OB_ERROR_CODES.headerInvalid,
        `Cannot accept ${kind}: x-idempotency-key ${JSON.stringify(key)} was already used with a different body`,
        'x-idempotency-key',
      );
    }
    return found.resourceId;
  }

  #remember(ownerId: string, kind: ResourceKind, key: string, record: IdempotencyRecord): void {
    this.#idempotency.set(`${ownerId}\n${kind}\n${key}`, record);
  }

  /**
   * Runs `create` as the one request processing this key: a request with the same key that
   * arrives meanwhile gets `inFlight` and waits for it, then replays what it stored. A bank
   * must not let a duplicate race the original (OBIE R/W profile 4.0, Idempotency).
   */
  async processOnce<T>(ownerId: string, kind: ResourceKind, key: string, create: () => Promise<T>): Promise<T> {
    const slot = `${ownerId}\n${kind}\n${key}`;
    const running = create();
    this.#inFlight.set(slot, running);
    try {
      return await running;
    } finally {
      if (this.#inFlight.get(slot) === running) this.#inFlight.delete(slot);
    }
  }

  /** The request still processing this key, if any (see processOnce). */
  inFlight(ownerId: string, kind: ResourceKind, key: string): Promise<unknown> | undefined {
    return this.#inFlight.get(`${ownerId}\n${kind}\n${key}`);
  }

  addConsent(record: ConsentRecord, key: string, digest: string): void {
    if (this.#consents.size >= this.#limits.consentsMax) throw full('consents', this.#limits.consentsMax);
    this.#consents.set(record.consentId, record);
    this.#remember(record.ownerId, 'consent', key, { resourceId: record.consentId, bodyDigest: digest, receivedMs: record.createdMs });
  }

  addPayment(record: PaymentRecord, digest: string): void {
    if (this.#payments.size >= this.#limits.paymentsMax) throw full('payments', this.#limits.paymentsMax);
    this.#payments.set(record.paymentId, record);
    this.#remember(record.ownerId, 'payment', record.idempotencyKey, {
      resourceId: record.paymentId,
      bodyDigest: digest,
      receivedMs: record.createdMs,
    });
  }

  /** The consent as of `nowMs`; other TPPs' consents do not exist for this one. */
  consent(ownerId: string, consentId: string, nowMs: number): ConsentRecord | undefined {
    const stored = this.#consents.get(consentId);
    if (!stored || stored.ownerId !== ownerId) return undefined;
    const current = advanceConsent(stored, nowMs);
    if (current !== stored) this.#consents.set(consentId, current);
    return current;
  }

  replaceConsent(record: ConsentRecord): void {
    this.#consents.set(record.consentId, record);
  }

  payment(ownerId: string, paymentId: string, nowMs: number): PaymentRecord | undefined {
    const stored = this.#payments.get(paymentId);
    if (!stored || stored.ownerId !== ownerId) return undefined;
    return this.#advance(stored, nowMs);
  }

  /** A read of the payment by its TPP: counts down a hold-pending fault measured in reads. */
  notePaymentRead(paymentId: string): void {
    const stored = this.#payments.get(paymentId);
    if (stored?.status === 'PDNG' && stored.pendingReadsLeft !== undefined && stored.pendingReadsLeft > 0) {
      this.#payments.set(paymentId, { ...stored, pendingReadsLeft: stored.pendingReadsLeft - 1 });
    }
  }

  /** Sandbox only: the TPP's payments carrying this EndToEndIdentification, oldest first. */
  paymentsByEndToEndId(ownerId: string, endToEndId: string, nowMs: number): PaymentRecord[] {
    return [...this.#payments.values()]
      .filter((p) => p.ownerId === ownerId && p.request.Data.Instruction.EndToEndIdentification === endToEndId)
      .map((p) => this.#advance(p, nowMs))
      .sort((a, b) => a.createdMs - b.createdMs);
  }

  #advance(stored: PaymentRecord, nowMs: number): PaymentRecord {
    const current = advancePayment(stored, nowMs, this.#limits.settleAfterMs);
    if (current !== stored) this.#payments.set(stored.paymentId, current);
    return current;
  }

  /** Sum of the consent's payments not rejected, created in `[startMs, endMs)`. */
  paidInWindow(consentId: string, startMs: number, endMs: number): bigint {
    let sum = 0n;
    for (const payment of this.#payments.values()) {
      if (payment.consentId !== consentId || payment.status === 'RJCT' || payment.status === 'CANC') continue;
      if (payment.createdMs >= startMs && payment.createdMs < endMs) sum += payment.amountMinor;
    }
    return sum;
  }

  allConsents(nowMs: number): ConsentRecord[] {
    return [...this.#consents.values()].map((c) => this.consent(c.ownerId, c.consentId, nowMs) ?? c);
  }

  allPayments(nowMs: number): PaymentRecord[] {
    return [...this.#payments.values()].map((p) => this.#advance(p, nowMs));
  }
}

function full(what: string, max: number): SandboxError {
  return new SandboxError(500, OB_ERROR_CODES.unexpected, `Cannot store more ${what}: the sandbox holds at most ${max}; restart it`);
}

/** AWAU -> AUTH when auto-authorised; AWAU/AUTH -> EXPD once ValidToDateTime has passed. */
export function advanceConsent(record: ConsentRecord, nowMs: number): ConsentRecord {
  let current = record;
  if (current.status === 'AWAU' && current.autoAuthorise && nowMs >= current.createdMs) {
    current = { ...current, status: 'AUTH', statusUpdatedMs: current.createdMs };
  }
  const validTo = current.request.Data.ControlParameters.ValidToDateTime;
  const validToMs = validTo === undefined ? Number.POSITIVE_INFINITY : Date.parse(validTo);
  if ((current.status === 'AWAU' || current.status === 'AUTH') && nowMs >= validToMs) {
    current = { ...current, status: 'EXPD', statusUpdatedMs: validToMs, statusReason: [{ StatusReasonDescription: 'ValidToDateTime has passed' }] };
  }
  return current;
}

/**
 * RCVD (as created) -> ACSP (accepted for settlement, once read back) -> ACSC when
 * `settleAfterMs` have passed since creation. RJCT is final. PDNG (a hold-pending fault)
 * -> ACSC once its hold has run out, in time or in reads.
 */
export function advancePayment(record: PaymentRecord, nowMs: number, settleAfterMs: number): PaymentRecord {
  let current = record;
  if (current.status === 'PDNG') {
    const timeUp = current.pendingUntilMs !== undefined && nowMs >= current.pendingUntilMs;
    const readsUp = current.pendingReadsLeft !== undefined && current.pendingReadsLeft <= 0;
    if (!timeUp && !readsUp) return current;
    return { ...current, status: 'ACSC', statusUpdatedMs: timeUp ? Math.max(current.pendingUntilMs!, current.statusUpdatedMs) : nowMs };
  }
  if (current.status === 'RCVD' && nowMs >= current.createdMs) {
    current = { ...current, status: 'ACSP', statusUpdatedMs: Math.min(nowMs, current.createdMs + settleAfterMs) };
  }
  const settledMs = current.createdMs + settleAfterMs;
  if (current.status === 'ACSP' && nowMs >= settledMs) {
    current = { ...current, status: 'ACSC', statusUpdatedMs: Math.max(settledMs, current.statusUpdatedMs) };
  }
  return current;
}
