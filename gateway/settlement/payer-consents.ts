/**
 * Each payer's VRP consent as the settler uses it: created once per generation (its
 * idempotency key stored before the call), used only while the bank reports it authorised,
 * replaced when the bank ended it (EXPD, CANC, RJCT), with its caps as the bank holds them and
 * what has been sent under it per period (consent-limits.ts).
 *
 * The spend book changes in the same atomic write as the batch whose part it counts: the
 * methods that change it return LedgerOps for BatchBook.transition rather than writing.
 */
import type { Logger } from 'pino';
import { sha256, toHex } from '../../protocol/hash.ts';
import { parseMinor } from '../../protocol/money.ts';
import type { PeriodicLimit } from '../../protocol/vrp-periodic-limits.ts';
import type { GatewayConfig } from '../config.ts';
import { keys, writeDurably, type LedgerDb, type LedgerOp } from '../ledger/ledger-db.ts';
import type { PaymentPart } from './batch-book.ts';
import { addSpend, pruneSpend, removeSpend, windowsAround, type ConsentCaps, type SpendBook } from './consent-limits.ts';
import type { VrpClient, VrpConsentTerms, VrpPeriodicLimit } from './vrp-client.ts';

/** The payer has not (or no longer) authorised the consent: hold the batch and try later. */
export class ConsentNotReadyError extends Error {
  readonly code = 'MB_CONSENT_NOT_READY';
}

/** A consent's caps as stored (amounts as decimal strings of minor units). */
interface StoredCaps {
  createdMs: number;
  currency: string;
  maxIndividualMinor: string;
  periodicLimits: Array<{ periodType: PeriodicLimit['periodType']; periodAlignment: PeriodicLimit['periodAlignment']; amountMinor: string }>;
}

/** keys.consent(payer) */
export interface StoredConsent {
  idempotencyKey: string;
  /** 0 for the payer's first consent, +1 each time an ended one (EXPD, CANC, RJCT) is replaced. */
  generation?: number;
  consentId?: string;
  status?: string;
  caps?: StoredCaps;
  /** What was sent under this consent per period (consent-limits.ts). */
  spent?: SpendBook;
}

export interface UsableConsent {
  consentId: string;
  caps: ConsentCaps;
  stored: StoredConsent;
}

export interface PayerConsentsOptions {
  db: LedgerDb;
  client: VrpClient;
  config: Pick<GatewayConfig, 'gatewayId' | 'payers' | 'payee'>;
  logger: Logger;
  clock: () => number;
  periodicLimits?: Readonly<Record<string, readonly VrpPeriodicLimit[]>> | undefined;
}

const ENDED_CONSENT_STATUSES: ReadonlySet<string> = new Set(['EXPD', 'CANC', 'RJCT']);

export class PayerConsents {
  readonly #o: PayerConsentsOptions;

  constructor(options: PayerConsentsOptions) {
    this.#o = options;
  }

  async stored(payer: string): Promise<StoredConsent | undefined> {
    return (await this.#o.db.get(keys.consent(payer))) as StoredConsent | undefined;
  }

  /**
   * The payer's consent, usable now. Until the payer approves it, batches wait (a
   * ConsentNotReadyError); they are never rejected for it.
   */
  async usable(payer: string): Promise<UsableConsent> {
    const payerConfig = this.#o.config.payers[payer]!;
    const key = keys.consent(payer);
    let stored = await this.stored(payer);
    if (!stored) {
      stored = { idempotencyKey: this.#consentKey(payer, 0), generation: 0 };
      await writeDurably(this.#o.db, [{ type: 'put', key, value: stored }]);
    }
    if (!stored.consentId) {
      const consent = await this.#o.client.createConsent({
        idempotencyKey: stored.idempotencyKey,
        reference: `meterbridge ${payer}`.slice(0, 35),
        currency: payerConfig.currency,
        creditor: this.#o.config.payee.account,
        ...(payerConfig.account ? { debtor: payerConfig.account } : {}),
        maxIndividualAmountMinor: parseMinor(payerConfig.maxIndividualAmount, payerConfig.currency, `payers.${payer}.maxIndividualAmount`),
        ...(this.#o.periodicLimits?.[payer] ? { periodicLimits: this.#o.periodicLimits[payer] } : {}),
      });
      stored = { ...stored, consentId: consent.consentId, status: consent.status, spent: {} };
      await writeDurably(this.#o.db, [{ type: 'put', key, value: stored }]);
      this.#o.logger.info({ payer, consentId: consent.consentId, status: consent.status }, 'VRP consent created');
    }
    const consentId = stored.consentId!;
    if (stored.status !== 'AUTH' || !stored.caps) {
      const consent = await this.#o.client.getConsent(consentId);
      if (ENDED_CONSENT_STATUSES.has(consent.status)) {
        const generation = (stored.generation ?? 0) + 1;
        await writeDurably(this.#o.db, [{ type: 'put', key, value: { idempotencyKey: this.#consentKey(payer, generation), generation } satisfies StoredConsent }]);
        this.#o.logger.warn({ payer, consentId, status: consent.status }, 'VRP consent ended; asking for a new one');
        throw new ConsentNotReadyError(`Cannot settle for ${payer}: consent ${consentId} is ${consent.status}; a new consent is requested and must be authorised`);
      }
      const caps = consent.terms ? storedCapsOf(consent.terms) : (stored.caps ?? this.#requestedCaps(payer));
      stored = { ...stored, status: consent.status, caps };
      await writeDurably(this.#o.db, [{ type: 'put', key, value: stored }]);
      if (consent.status !== 'AUTH') throw new ConsentNotReadyError(`Cannot settle for ${payer}: consent ${consentId} is ${consent.status}, waiting for the payer to authorise it`);
    }
    return { consentId, caps: capsOf(consentId, stored.caps!), stored };
  }

  /** After the bank said the consent is not usable (U009): read it again before the next try. */
  async forgetStatus(payer: string): Promise<void> {
    const stored = await this.stored(payer);
    if (stored?.status) await writeDurably(this.#o.db, [{ type: 'put', key: keys.consent(payer), value: { ...stored, status: 'unknown' } }]);
  }

  /** Ops counting a part about to be sent in the periods `windowIds`. */
  countOps(payer: string, consent: UsableConsent, windowIds: readonly string[], amountMinor: bigint, nowMs: number): LedgerOp[] {
    const spent = addSpend(consent.caps, pruneSpend(consent.stored.spent ?? {}, nowMs), windowIds, amountMinor);
    return [{ type: 'put', key: keys.consent(payer), value: { ...consent.stored, spent } }];
  }

  /** Ops taking a part the bank did not make back from the periods it was counted in. */
  async releaseOps(payer: string, part: PaymentPart): Promise<LedgerOp[]> {
    const stored = await this.stored(payer);
    if (!stored?.spent || stored.consentId !== part.consentId || !part.countedWindows?.length) return [];
    return [{ type: 'put', key: keys.consent(payer), value: { ...stored, spent: removeSpend(stored.spent, part.countedWindows, BigInt(part.amountMinor)) } }];
  }

  /** A retry may land in a period the part is not counted in yet: count it there (no check: it may already be paid). */
  async countAgain(payer: string, part: PaymentPart, nowMs: number): Promise<{ part: PaymentPart; ops: LedgerOp[] }> {
    const stored = await this.stored(payer);
    if (!stored?.caps || stored.consentId === undefined || stored.consentId !== part.consentId) return { part, ops: [] };
    const caps = capsOf(stored.consentId, stored.caps);
    const counted = new Set(part.countedWindows ?? []);
    const added = windowsAround(caps, nowMs).map((w) => w.id).filter((id) => !counted.has(id));
    if (added.length === 0) return { part, ops: [] };
    const spent = addSpend(caps, pruneSpend(stored.spent ?? {}, nowMs), added, BigInt(part.amountMinor));
    return { part: { ...part, countedWindows: [...counted, ...added] }, ops: [{ type: 'put', key: keys.consent(payer), value: { ...stored, spent } }] };
  }

  #consentKey(payer: string, generation: number): string {
    const seed = generation === 0 ? `${this.#o.config.gatewayId}/consent/${payer}` : `${this.#o.config.gatewayId}/consent/${payer}/${generation}`;
    return `mbc${toHex(sha256(new TextEncoder().encode(seed))).slice(0, 32)}`;
  }

  /** The caps we asked for, when the bank did not say (creation time: now, near enough). */
  #requestedCaps(payer: string): StoredCaps {
    const payerConfig = this.#o.config.payers[payer]!;
    const limits = this.#o.periodicLimits?.[payer] ?? [];
    return {
      createdMs: this.#o.clock(),
      currency: payerConfig.currency,
      maxIndividualMinor: String(parseMinor(payerConfig.maxIndividualAmount, payerConfig.currency, `payers.${payer}.maxIndividualAmount`)),
      periodicLimits: limits.map((l) => ({ periodType: l.periodType, periodAlignment: l.periodAlignment, amountMinor: String(l.amountMinor) })),
    };
  }
}

function storedCapsOf(terms: VrpConsentTerms): StoredCaps {
  return {
    createdMs: Date.parse(terms.creationDateTime),
    currency: terms.currency,
    maxIndividualMinor: String(terms.maxIndividualAmountMinor),
    periodicLimits: terms.periodicLimits.map((l) => ({ periodType: l.periodType, periodAlignment: l.periodAlignment, amountMinor: String(l.amountMinor) })),
  };
}

function capsOf(consentId: string, stored: StoredCaps): ConsentCaps {
  return {
    consentId,
    createdMs: stored.createdMs,
    currency: stored.currency,
    maxIndividualMinor: BigInt(stored.maxIndividualMinor),
    periodicLimits: stored.periodicLimits.map((l) => ({ periodType: l.periodType, periodAlignment: l.periodAlignment, amountMinor: BigInt(l.amountMinor) })),
  };
}
