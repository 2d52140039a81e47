/**
 * Moves sealed batches to the bank and follows them to a final status. Every state
 * change is persisted before the call it leads to, and a batch keeps one idempotency
 * key (made at seal time) for every attempt, so a timeout after the bank accepted can
 * only ever produce the same single payment.
 */
import type { Logger } from 'pino';
import { sha256, toHex } from '../../protocol/hash.ts';
import { formatMinor, parseMinor } from '../../protocol/money.ts';
import type { BankAccountConfig, GatewayConfig } from '../config.ts';
import { keys, writeDurably, type LedgerDb } from '../ledger/ledger-db.ts';
import type { BatchBook, StoredBatch } from './batch-book.ts';
import { isFinalVrpStatus, isSettledVrpStatus, VrpError, type VrpClient, type VrpPayment } from './vrp-client.ts';

export interface SettlerOptions {
  db: LedgerDb;
  book: BatchBook;
  client: VrpClient;
  config: Pick<GatewayConfig, 'gatewayId' | 'payers' | 'payee'>;
  pollIntervalMs: number;
  logger: Logger;
  /** False while the ledger failed verification: nothing is paid from a broken chain. */
  enabled: () => boolean;
}

interface StoredConsent {
  idempotencyKey: string;
  consentId?: string;
  status?: string;
}

const BACKOFF_MAX_MS = 5 * 60_000;

/** The payer has not (or no longer) authorised the consent: hold the batch and try later. */
export class ConsentNotReadyError extends Error {
  readonly code = 'MB_CONSENT_NOT_READY';
}

export class Settler {
  readonly #o: SettlerOptions;
  readonly #retryAtMs = new Map<number, { atMs: number; failures: number }>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;

  constructor(options: SettlerOptions) {
    this.#o = options;
  }

  start(): void {
    this.#timer = setInterval(() => void this.tick(), this.#o.pollIntervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#ticking;
  }

  /** One pass over every open batch. Overlapping calls share the pass in progress. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => {
      this.#ticking = undefined;
    });
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    if (!this.#o.enabled()) return;
    const nowMs = Date.now();
    for (const batch of this.#o.book.openBatches()) {
      const retry = this.#retryAtMs.get(batch.batchNo);
      if (retry && retry.atMs > nowMs) continue;
      try {
        if (batch.state === 'pending') await this.#poll(batch);
        else await this.#submit(batch);
      } catch (error) {
        await this.#failed(batch, error);
      }
    }
  }

  async #submit(batch: StoredBatch): Promise<void> {
    const { header } = batch;
    const payer = this.#o.config.payers[header.payer];
    if (!payer) throw new Error(`Cannot settle batch ${batch.batchNo}: payer ${header.payer} is no longer configured`);
    const consentId = await this.#consentFor(header.payer, payer.currency, payer.maxIndividualAmount, payer.account);
    const submitted = await this.#o.book.transition(batch.batchNo, 'submitted', { attempts: batch.attempts + 1 }, `payment of ${formatMinor(BigInt(header.amountMinor), header.currency)} ${header.currency} sent to the bank (attempt ${batch.attempts + 1})`);
    const payment = await this.#o.client.createPayment({
      consentId,
      idempotencyKey: submitted.idempotencyKey,
      instructionIdentification: submitted.idempotencyKey.slice(0, 35),
      // OBIE VRP 4.0: EndToEndIdentification <= 35 chars; ties the payment to batch and root.
      endToEndIdentification: `MB${batch.batchNo}-${header.merkleRoot}`.slice(0, 35),
      amountMinor: BigInt(header.amountMinor),
      currency: header.currency,
      creditor: this.#o.config.payee.account,
      remittance: {
        reference: `MB ${batch.batchNo} ${header.merkleRoot.slice(0, 16)}`.slice(0, 35),
        unstructured: `meterbridge batch ${header.batchId} merkle root ${header.merkleRoot}`.slice(0, 140),
      },
    });
    await this.#apply(submitted, payment);
  }

  async #poll(batch: StoredBatch): Promise<void> {
    if (!batch.paymentId) throw new Error(`Cannot follow batch ${batch.batchNo}: pending without a payment id`);
    await this.#apply(batch, await this.#o.client.getPayment(batch.paymentId));
  }

  async #apply(batch: StoredBatch, payment: VrpPayment): Promise<void> {
    const patch = { paymentId: payment.paymentId, bankStatus: payment.status };
    this.#retryAtMs.delete(batch.batchNo);
    if (isSettledVrpStatus(payment.status)) {
      await this.#o.book.transition(batch.batchNo, 'settled', patch, `bank reports ${payment.status} at ${payment.statusUpdateDateTime}`);
      this.#o.logger.info({ batchNo: batch.batchNo, paymentId: payment.paymentId }, 'batch settled');
    } else if (isFinalVrpStatus(payment.status)) {
      await this.#o.book.transition(batch.batchNo, 'rejected', patch, `bank reports ${payment.status}`);
      this.#o.logger.warn({ batchNo: batch.batchNo, paymentId: payment.paymentId, status: payment.status }, 'payment rejected by the bank');
    } else if (batch.state !== 'pending' || batch.bankStatus !== payment.status) {
      await this.#o.book.transition(batch.batchNo, 'pending', patch, `bank reports ${payment.status}`);
    }
  }

  async #failed(batch: StoredBatch, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    const consentRefused = error instanceof VrpError && error.obErrorCodes.includes('U009'); // OBIE VRP 4.0: consent not authorised
    if (consentRefused) await this.#forgetConsentStatus(batch.header.payer);
    if (error instanceof VrpError && !error.retriable && !consentRefused && batch.state !== 'pending') {
      await this.#o.book.transition(batch.batchNo, 'rejected', { lastError: message }, `bank refused the payment: ${message}`);
      return;
    }
    // Retriable (timeout, network, 5xx) or unknown: keep the state and the key, try later.
    const failures = (this.#retryAtMs.get(batch.batchNo)?.failures ?? 0) + 1;
    const delayMs = Math.min(BACKOFF_MAX_MS, this.#o.pollIntervalMs * 2 ** Math.min(failures, 10));
    this.#retryAtMs.set(batch.batchNo, { atMs: Date.now() + delayMs * (0.5 + Math.random() / 2), failures });
    const current = await this.#o.book.get(batch.batchNo);
    if (current && current.state !== 'settled' && current.state !== 'rejected' && current.state !== 'carried') {
      await this.#o.book.transition(batch.batchNo, current.state, { lastError: message });
    }
    this.#o.logger.warn({ batchNo: batch.batchNo, err: message, retryInMs: Math.round(delayMs) }, 'settlement attempt failed; will retry with the same idempotency key');
  }

  /**
   * The payer's VRP consent: created once (its idempotency key stored before the call),
   * then used only while the bank reports it authorised. Until the payer approves it,
   * batches wait; they are never rejected for it.
   */
  async #consentFor(payer: string, currency: string, maxIndividualAmount: string, debtor: BankAccountConfig | undefined): Promise<string> {
    const key = keys.consent(payer);
    let stored = (await this.#o.db.get(key)) as StoredConsent | undefined;
    if (!stored) {
      stored = { idempotencyKey: `mbc${toHex(sha256(new TextEncoder().encode(`${this.#o.config.gatewayId}/consent/${payer}`))).slice(0, 32)}` };
      await writeDurably(this.#o.db, [{ type: 'put', key, value: stored }]);
    }
    if (!stored.consentId) {
      const consent = await this.#o.client.createConsent({
        idempotencyKey: stored.idempotencyKey,
        reference: `meterbridge ${payer}`.slice(0, 35),
        currency,
        creditor: this.#o.config.payee.account,
        ...(debtor ? { debtor } : {}),
        maxIndividualAmountMinor: parseMinor(maxIndividualAmount, currency, `payers.${payer}.maxIndividualAmount`),
      });
      stored = { ...stored, consentId: consent.consentId, status: consent.status };
      await writeDurably(this.#o.db, [{ type: 'put', key, value: stored }]);
      this.#o.logger.info({ payer, consentId: consent.consentId, status: consent.status }, 'VRP consent created');
    }
    const consentId = stored.consentId!;
    if (stored.status !== 'AUTH') {
      const { status } = await this.#o.client.getConsent(consentId);
      if (status !== stored.status) await writeDurably(this.#o.db, [{ type: 'put', key, value: { ...stored, status } }]);
      if (status !== 'AUTH') throw new ConsentNotReadyError(`Cannot settle for ${payer}: consent ${consentId} is ${status}, waiting for the payer to authorise it`);
    }
    return consentId;
  }

  /** After the bank said the consent is not usable (U009), look it up again before the next try. */
  async #forgetConsentStatus(payer: string): Promise<void> {
    const key = keys.consent(payer);
    const stored = (await this.#o.db.get(key)) as StoredConsent | undefined;
    if (stored?.status) await writeDurably(this.#o.db, [{ type: 'put', key, value: { ...stored, status: 'unknown' } }]);
  }

}
