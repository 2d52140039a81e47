/**
 * Moves sealed batches to the bank and follows them to a final status, never paying twice.
 *
 * - Every state change is persisted before the call it leads to (batch-book.ts transition).
 * - A batch is paid in parts when the consent's caps require it (consent-limits.ts), one
 *   payment per part, one part at a time, each under its own idempotency key
 *   (payment-parts.ts); a payment the consent forbids is held, never sent.
 * - A request without an answer is retried with the same key while the bank still honours it
 *   (OBIE R/W profile 4.0: 24 h). After that the part is `unknown` and the payment is looked
 *   up: found, it is followed; not found, the part is sent again under a new key, and only
 *   then. A refusal (4xx) proves nothing was made only for a key's very first request.
 */
import type { Logger } from 'pino';
import { formatMinor } from '../../protocol/money.ts';
import type { GatewayConfig } from '../config.ts';
import type { LedgerDb, LedgerOp } from '../ledger/ledger-db.ts';
import type { BatchBook, BatchPatch, PaymentPart, StoredBatch } from './batch-book.ts';
import { checkLimits, partCapMinor, pruneSpend, splitAmount } from './consent-limits.ts';
import { PayerConsents } from './payer-consents.ts';
import { currentPart, KEY_RETRY_WINDOW_MS, legacyPart, LOOKUP_QUIET_MS, planParts, replacePart, withNewKey } from './payment-parts.ts';
import { isFinalVrpStatus, isSettledVrpStatus, VrpError, type VrpClient, type VrpPayment, type VrpPeriodicLimit } from './vrp-client.ts';

export interface SettlerOptions {
  db: LedgerDb;
  book: BatchBook;
  client: VrpClient;
  config: Pick<GatewayConfig, 'gatewayId' | 'payers' | 'payee'>;
  pollIntervalMs: number;
  logger: Logger;
  /** False while the ledger failed verification: nothing is paid from a broken chain. */
  enabled: () => boolean;
  /** Epoch ms; default Date.now. Tests move it past the bank's idempotency window. */
  clock?: () => number;
  /** For backoff jitter; default Math.random. */
  random?: () => number;
  /** PeriodicLimits asked for in each payer's consent; default one that caps nothing (vrp-client.ts). */
  periodicLimits?: Readonly<Record<string, readonly VrpPeriodicLimit[]>>;
  /** Most payments one batch may be split into; beyond it the batch is held. Default 12. */
  partsMax?: number;
  /**
   * How a state change is written; default `book.transition`. The gateway passes one that
   * writes the change's cloud upload in the same atomic write (gateway/uplink/batch-uploads.ts).
   */
  transition?: BatchBook['transition'];
}

const BACKOFF_MAX_MS = 5 * 60_000;
const PARTS_MAX_DEFAULT = 12;
/** How long a batch held for a reason without a natural end (a refused or rejected part) waits. */
const HOLD_RETRY_MS = 60 * 60_000;
export { ConsentNotReadyError } from './payer-consents.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export class Settler {
  readonly #o: SettlerOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #consents: PayerConsents;
  readonly #retryAtMs = new Map<number, { atMs: number; failures: number }>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #stopped = false;

  readonly #transition: BatchBook['transition'];

  constructor(options: SettlerOptions) {
    this.#o = options;
    this.#transition = options.transition ?? ((...args) => options.book.transition(...args));
    this.#now = options.clock ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#consents = new PayerConsents({ ...options, clock: this.#now, periodicLimits: options.periodicLimits });
  }

  start(): void {
    this.#timer = setInterval(() => void this.tick(), this.#o.pollIntervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopped = true;
    await this.followed;
    await this.#ticking;
  }

  /** One pass over every open batch. Overlapping calls share the pass in progress. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => {
      this.#ticking = undefined;
    });
    return this.#ticking;
  }

  /**
   * The bank says payment `paymentId` changed (a signed event notification): the open batch
   * that made it is followed now rather than at the next poll. Its failure backoff is dropped
   * (the news is fresher than the backoff's guess); a hold stays. A pass already running may
   * have read the payment before it changed, so one more pass follows it. Returns at once
   * (the bank must not wait for our pass); `followed` settles when that pass is done. False
   * when no open batch made this payment: nothing is done.
   */
  follow(paymentId: string): boolean {
    const batch = this.#o.book.openBatches().find((b) => b.paymentId === paymentId || b.parts?.some((part) => part.paymentId === paymentId));
    if (!batch || this.#stopped) return false;
    this.#retryAtMs.delete(batch.batchNo);
    const running = this.#ticking;
    this.followed = (async () => {
      await running;
      await this.tick();
    })().catch((error: unknown) => this.#o.logger.warn({ batchNo: batch.batchNo, err: (error as Error).message }, 'following a bank event failed; the poll will follow the batch'));
    return true;
  }

  /** The pass the latest `follow` started (for tests and shutdown). */
  followed: Promise<void> = Promise.resolve();

  async #tick(): Promise<void> {
    if (!this.#o.enabled()) return;
    for (const batch of this.#o.book.openBatches()) {
      const nowMs = this.#now();
      const retry = this.#retryAtMs.get(batch.batchNo);
      if (retry && retry.atMs > nowMs) continue;
      if (batch.heldUntil !== undefined && Date.parse(batch.heldUntil) > nowMs) continue;
      try {
        await this.#step(batch);
      } catch (error) {
        await this.#failed(batch, error);
      }
    }
  }

  async #step(stored: StoredBatch): Promise<void> {
    const batch = stored.parts || stored.state === 'sealed' || stored.state === 'held' ? stored : await this.#adoptLegacy(stored);
    const part = batch.parts ? currentPart(batch.parts) : undefined;
    if (batch.parts && !part) throw new Error(`Invariant broken: batch ${batch.batchNo} is ${batch.state} with every part settled`);
    switch (part?.state) {
      case undefined:
      case 'due':
      case 'rejected':
        return this.#sendNew(batch, part);
      case 'sent':
        return this.#retry(batch, part);
      case 'pending':
        return this.#apply(batch, part, await this.#o.client.getPayment(part.paymentId!));
      case 'unknown':
        return this.#lookUp(batch, part);
      case 'settled':
        throw new Error(`Invariant broken: batch ${batch.batchNo} chose a settled part`);
    }
  }

  /** A batch sent before batches had parts: given its one part, as that request was made. */
  async #adoptLegacy(batch: StoredBatch): Promise<StoredBatch> {
    const part = legacyPart(batch, (await this.#consents.stored(batch.header.payer))?.consentId);
    return this.#transition(batch.batchNo, batch.state, { parts: [part] }, 'in flight before payments had parts: its one payment kept as it was sent');
  }

  /** Sends a part under a key never sent before (planning the parts first), or holds it. */
  async #sendNew(batch: StoredBatch, due: PaymentPart | undefined, why?: string): Promise<void> {
    const { header } = batch;
    const payer = this.#o.config.payers[header.payer];
    if (!payer) throw new Error(`Cannot settle batch ${batch.batchNo}: payer ${header.payer} is no longer configured`);
    const consent = await this.#consents.usable(header.payer);
    const nowMs = this.#now();
    const money = (minor: bigint) => `${formatMinor(minor, header.currency)} ${header.currency}`;
    let parts = batch.parts;
    let part = due;
    if (!parts || !part) {
      const capMinor = partCapMinor(consent.caps);
      const amounts = splitAmount(BigInt(header.amountMinor), capMinor, this.#o.partsMax ?? PARTS_MAX_DEFAULT);
      if (!amounts) {
        return this.#hold(batch, undefined, nowMs + HOLD_RETRY_MS, `${money(BigInt(header.amountMinor))} needs more than ${this.#o.partsMax ?? PARTS_MAX_DEFAULT} payments of at most ${money(capMinor)} under consent ${consent.consentId}: held until the payer's consent allows more`);
      }
      parts = planParts(batch, amounts, this.#o.config.gatewayId);
      part = parts[0]!;
    }
    const amountMinor = BigInt(part.amountMinor);
    const spent = pruneSpend(consent.stored.spent ?? {}, nowMs);
    const check = checkLimits(consent.caps, spent, amountMinor, nowMs, money);
    const label = paymentLabel(part, parts.length);
    if (!check.ok) return this.#hold(batch, parts, check.untilMs, `${why ? `${why}; ` : ''}${label} of ${money(amountMinor)} held until ${iso(check.untilMs)}: ${check.reason}`);
    const sent: PaymentPart = { ...part, state: 'sent', consentId: consent.consentId, keySentAt: iso(nowMs), lastSentAt: iso(nowMs), countedWindows: check.windowIds };
    const counted = this.#consents.countOps(header.payer, consent, check.windowIds, amountMinor, nowMs);
    const attempts = batch.attempts + 1;
    const detail = `${why ? `${why}; ` : ''}${label} of ${money(amountMinor)} sent to the bank (attempt ${attempts}, key ${part.idempotencyKey})`;
    const submitted = await this.#transition(batch.batchNo, 'submitted', { parts: replacePart(parts, sent), attempts, heldUntil: undefined, ...mirror(sent) }, detail, counted);
    await this.#request(submitted, sent, true);
  }

  /** A part whose key has had no answer: again with the same key while the bank honours it. */
  async #retry(batch: StoredBatch, part: PaymentPart): Promise<void> {
    const nowMs = this.#now();
    if (nowMs - Date.parse(part.keySentAt!) >= KEY_RETRY_WINDOW_MS) {
      const detail = `no answer for key ${part.idempotencyKey} since ${part.keySentAt}: past the bank's 24 h idempotency window (OBIE R/W profile 4.0) a retry could pay twice, so the payment is looked up first`;
      await this.#transition(batch.batchNo, 'unknown', { parts: replacePart(batch.parts!, { ...part, state: 'unknown' }) }, detail);
      this.#o.logger.warn({ batchNo: batch.batchNo, key: part.idempotencyKey }, 'payment outcome unknown; looking it up');
      return;
    }
    // The bank counts the payment where it makes it: if that is a new period, count it there too.
    const { part: counted, ops } = await this.#consents.countAgain(batch.header.payer, part, nowMs);
    const retried: PaymentPart = { ...counted, lastSentAt: iso(nowMs) };
    const saved = await this.#transition(batch.batchNo, batch.state, { parts: replacePart(batch.parts!, retried), attempts: batch.attempts + 1 }, undefined, ops);
    await this.#request(saved, retried, false);
  }

  /** An `unknown` part: the bank is asked whether the payment exists; only a clear no lets it be sent again. */
  async #lookUp(batch: StoredBatch, part: PaymentPart): Promise<void> {
    if (part.paymentId) return this.#apply(batch, part, await this.#o.client.getPayment(part.paymentId), 'looked up by payment id');
    const quietSinceMs = Date.parse(part.lastSentAt ?? part.keySentAt!);
    if (this.#now() - quietSinceMs < LOOKUP_QUIET_MS) {
      this.#retryAtMs.set(batch.batchNo, { atMs: quietSinceMs + LOOKUP_QUIET_MS, failures: 0 });
      return;
    }
    let found: VrpPayment[];
    try {
      found = await this.#o.client.findPaymentsByEndToEndId(part.endToEndId);
    } catch (error) {
      if (!(error instanceof VrpError) || error.retriable) throw error;
      throw new Error(`Cannot find out whether batch ${batch.batchNo}'s payment ${part.endToEndId} exists: the bank offers no lookup (${error.message}); check the account statement`, { cause: error });
    }
    if (found.length > 1) throw new Error(`Cannot follow batch ${batch.batchNo}: the bank shows ${found.length} payments with EndToEndIdentification ${part.endToEndId}; an operator must look into it`);
    if (found[0]) return this.#apply(batch, part, found[0], `found at the bank by EndToEndIdentification ${part.endToEndId}`);
    // Nothing carries this key's EndToEndIdentification and no request with it is in flight:
    // sending again, under a new key and EndToEndIdentification, cannot pay twice.
    const fresh = withNewKey(batch, part, batch.parts!.length, this.#o.config.gatewayId, 'not at the bank');
    const why = `no payment with EndToEndIdentification ${part.endToEndId} (key ${part.idempotencyKey}) at the bank, so sending again is safe: new key ${fresh.idempotencyKey}`;
    const renewed = await this.#transition(batch.batchNo, 'unknown', { parts: replacePart(batch.parts!, fresh), ...mirror(fresh) }, why, await this.#consents.releaseOps(batch.header.payer, part));
    await this.#sendNew(renewed, fresh, 'not found at the bank');
  }

  /** One request with the part's key; `first`: no request with this key was ever made before. */
  async #request(batch: StoredBatch, part: PaymentPart, first: boolean): Promise<void> {
    let payment: VrpPayment;
    try {
      payment = await this.#o.client.createPayment({
        consentId: part.consentId!,
        idempotencyKey: part.idempotencyKey,
        instructionIdentification: part.idempotencyKey.slice(0, 35),
        endToEndIdentification: part.endToEndId,
        amountMinor: BigInt(part.amountMinor),
        currency: batch.header.currency,
        creditor: this.#o.config.payee.account,
        remittance: { reference: part.reference, unstructured: part.unstructured },
      });
    } catch (error) {
      if (error instanceof VrpError && !error.retriable) return this.#refused(batch, part, error, first);
      throw error; // no answer, or one that may hide a payment: same key, later
    }
    await this.#apply(batch, part, payment);
  }

  /** The bank refused a request (4xx). Only for a key's first request does that prove nothing was paid. */
  async #refused(batch: StoredBatch, part: PaymentPart, error: VrpError, first: boolean): Promise<void> {
    const { batchNo, header } = batch;
    const parts = batch.parts!;
    if (!first || error.obErrorCodes.includes('U006')) {
      const detail = `the bank refused a repeat of key ${part.idempotencyKey} (${error.message}): an earlier request with it may have been paid, so the payment is looked up before anything is sent again`;
      await this.#transition(batchNo, 'unknown', { parts: replacePart(parts, { ...part, state: 'unknown' }), lastError: error.message }, detail);
      return;
    }
    // OBIE VRP 4.0 U009: the consent is not usable (not authorised, expired, revoked): read it again next time.
    const consentRefused = error.obErrorCodes.includes('U009');
    if (consentRefused) await this.#consents.forgetStatus(header.payer);
    const release = await this.#consents.releaseOps(header.payer, part);
    const fresh = replacePart(parts, withNewKey(batch, part, parts.length, this.#o.config.gatewayId, `refused: ${error.obErrorCodes.join(', ') || error.httpStatus}`));
    const paidParts = parts.filter((p) => p.state === 'settled').length;
    const label = paymentLabel(part, parts.length);
    if (consentRefused) {
      this.#backOff(batchNo);
      await this.#transition(batchNo, paidParts > 0 ? 'pending' : 'sealed', { parts: fresh, lastError: error.message }, `the bank refused ${label}, nothing was paid (${error.message}): it goes again under a new key once the consent is usable`, release);
      return;
    }
    if (error.obErrorCodes.includes('U014') || paidParts > 0) {
      // U014: our count of the consent's limits and the bank's disagree; the bank's is the one that pays.
      return this.#hold(batch, fresh, this.#now() + HOLD_RETRY_MS, `the bank refused ${label}, nothing was paid (${error.message}): held, then sent again under a new key`, release);
    }
    await this.#transition(batchNo, 'rejected', { lastError: error.message, parts: replacePart(parts, { ...part, state: 'rejected' }) }, `bank refused the payment: ${error.message}`, release);
    this.#o.logger.warn({ batchNo, err: error.message }, 'payment refused by the bank');
  }

  /** The bank's answer about a part: settled, rejected or still on its way. */
  async #apply(batch: StoredBatch, part: PaymentPart, payment: VrpPayment, how?: string): Promise<void> {
    const { batchNo, header } = batch;
    const parts = batch.parts!;
    if (payment.amountMinor !== BigInt(part.amountMinor) || payment.currency !== header.currency) {
      throw new Error(`Cannot follow batch ${batchNo}: the bank's payment ${payment.paymentId} is ${formatMinor(payment.amountMinor, payment.currency)} ${payment.currency}, not part ${part.partNo}'s ${part.amountMinor} minor units`);
    }
    this.#retryAtMs.delete(batchNo);
    const answered: PaymentPart = { ...part, paymentId: payment.paymentId, bankStatus: payment.status };
    const patch: BatchPatch = { paymentId: payment.paymentId, bankStatus: payment.status };
    const label = parts.length > 1 ? ` for ${paymentLabel(part, parts.length)}` : '';
    const said = `${how ? `${how}: ` : ''}bank reports ${payment.status}${payment.statusReasonCodes.length > 0 ? ` (${payment.statusReasonCodes.join(', ')})` : ''}${label}`;
    if (isSettledVrpStatus(payment.status)) {
      const done = replacePart(parts, { ...answered, state: 'settled' });
      const next = currentPart(done);
      await this.#transition(batchNo, next ? 'pending' : 'settled', { ...patch, parts: done }, `${said} at ${payment.statusUpdateDateTime}${next ? `; ${paymentLabel(next, parts.length)} next` : ''}`);
      if (!next) this.#o.logger.info({ batchNo, paymentId: payment.paymentId, payments: parts.length }, 'batch settled');
    } else if (isFinalVrpStatus(payment.status)) {
      const release = await this.#consents.releaseOps(header.payer, part);
      const paidParts = parts.filter((p) => p.state === 'settled').length;
      this.#o.logger.warn({ batchNo, paymentId: payment.paymentId, status: payment.status, reasons: payment.statusReasonCodes }, 'payment rejected by the bank');
      if (paidParts === 0) {
        await this.#transition(batchNo, 'rejected', { ...patch, parts: replacePart(parts, { ...answered, state: 'rejected' }) }, said, release);
        return;
      }
      // Earlier parts were paid and stay paid: this one goes again, under a new key, later.
      const fresh = replacePart(parts, withNewKey(batch, answered, parts.length, this.#o.config.gatewayId, `bank reports ${payment.status}`));
      await this.#hold(batch, fresh, this.#now() + HOLD_RETRY_MS, `${said} after ${paidParts} of ${parts.length} payments were made: sent again under a new key`, release, patch);
    } else if (batch.state !== 'pending' || batch.bankStatus !== payment.status || part.state !== 'pending') {
      await this.#transition(batchNo, 'pending', { ...patch, parts: replacePart(parts, { ...answered, state: 'pending' }) }, said);
    }
  }

  async #hold(batch: StoredBatch, parts: PaymentPart[] | undefined, untilMs: number, reason: string, alongside: LedgerOp[] = [], patch: BatchPatch = {}): Promise<void> {
    await this.#transition(batch.batchNo, 'held', { ...patch, ...(parts ? { parts } : {}), heldUntil: iso(untilMs) }, reason, alongside);
    this.#o.logger.warn({ batchNo: batch.batchNo, until: iso(untilMs), reason }, 'batch held');
  }

  async #failed(batch: StoredBatch, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    const delayMs = this.#backOff(batch.batchNo);
    const current = await this.#o.book.get(batch.batchNo);
    if (current && current.state !== 'settled' && current.state !== 'rejected' && current.state !== 'carried') {
      await this.#transition(batch.batchNo, current.state, { lastError: message });
    }
    this.#o.logger.warn({ batchNo: batch.batchNo, err: message, retryInMs: Math.round(delayMs) }, 'settlement attempt failed; will retry with the same idempotency key');
  }

  #backOff(batchNo: number): number {
    const failures = (this.#retryAtMs.get(batchNo)?.failures ?? 0) + 1;
    const delayMs = Math.min(BACKOFF_MAX_MS, this.#o.pollIntervalMs * 2 ** Math.min(failures, 10)) * (0.5 + this.#random() / 2);
    this.#retryAtMs.set(batchNo, { atMs: this.#now() + delayMs, failures });
    return delayMs;
  }
}

/** The batch shows the payment in progress. */
function mirror(part: PaymentPart): BatchPatch {
  return { paymentId: part.paymentId, bankStatus: part.bankStatus };
}

function paymentLabel(part: PaymentPart, partsCount: number): string {
  return partsCount === 1 ? 'payment' : `payment ${part.partNo} of ${partsCount}`;
}
