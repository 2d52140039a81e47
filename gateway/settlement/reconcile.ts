/**
 * Reconciliation: each settled or rejected batch of the ledger against the bank's own record
 * of its payment (EndToEndIdentification, amount, status), and the bank's payments against
 * the batches. Every disagreement becomes an operator alert, stored in the ledger (a!<n>),
 * listed and acknowledged through {@link AlertBook}. Nothing here changes a batch: the ledger
 * is corrected, if at all, by an operator with a new correcting record.
 *
 * Not scheduled by itself: the integrator calls {@link Reconciler.reconcile} (e.g. hourly).
 * A bank that cannot list payments (OBIE VRP 4.0 cannot) only gets the per-batch checks;
 * "unexpected at the bank" needs `BankRecords.listPayments`.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { formatMinor, MINOR_DIGITS, parseMinor } from '../../protocol/money.ts';
import { keys, writeDurably, type LedgerDb } from '../ledger/ledger-db.ts';
import type { StoredBatch } from './batch-book.ts';
import { isSettledVrpStatus, VrpError, type VrpClient } from './vrp-client.ts';

export const ALERT_KINDS = ['amount-differs', 'missing-at-bank', 'unexpected-at-bank', 'reference-differs', 'status-differs'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface AlertDraft {
  kind: AlertKind;
  batchNo?: number;
  batchId?: string;
  paymentId?: string;
  detail: string;
}

export interface ReconcileAlert extends AlertDraft {
  alertNo: number;
  /** When reconciliation found it. */
  at: string;
  acknowledged: boolean;
  acknowledgedAt?: string;
  acknowledgedBy?: string;
}

/** A payment as the bank records it. */
export interface BankPaymentRecord {
  paymentId: string;
  endToEndIdentification?: string;
  amountMinor: bigint;
  currency: string;
  status: string;
}

/** The bank's side, behind a small interface: a VRP bank ({@link vrpBankRecords}) or a test double. */
export interface BankRecords {
  /** The payment, or undefined when the bank has no such payment. Throws when the bank cannot be asked. */
  payment(paymentId: string): Promise<BankPaymentRecord | undefined>;
  /** Every payment the bank holds for us; absent when the bank cannot list them. */
  listPayments?(): Promise<BankPaymentRecord[]>;
}

/**
 * Whether a bank payment's EndToEndIdentification names this batch: `MB<batchNo>-<root hex>`
 * or, for one payment of a batch split in parts, `MB<batchNo>.<part>.<key>-<root hex>`, the
 * root cut to whatever length the settler used (31 or 35 characters in all; see
 * payment-references.ts and payment-parts.ts). At least 8 hex digits of the root must be
 * there, so a batch of the same number from another gateway does not match.
 */
export function endToEndIdNamesBatch(endToEndId: string, batch: Pick<StoredBatch, 'batchNo' | 'header'>): boolean {
  const match = /^MB([0-9]+)(?:\.[0-9]+\.[0-9]+)?-([0-9a-f]{8,64})$/.exec(endToEndId);
  return match !== null && match[1] === String(batch.batchNo) && batch.header.merkleRoot.startsWith(match[2]!);
}

const money = (minor: bigint, currency: string): string => `${Object.hasOwn(MINOR_DIGITS, currency) ? formatMinor(minor, currency) : minor.toString()} ${currency}`;

/** A part of a batch paid in several payments, as much of batch-book.ts PaymentPart as is read here. */
interface PartLike { partNo: number; amountMinor: string; endToEndId: string; state: string; paymentId?: string; earlier?: Array<{ paymentId?: string }> }

/** One payment the ledger says the bank made (or refused) for a batch. */
interface ExpectedPayment { paymentId: string; amountMinor: bigint; endToEndId?: string; settled: boolean; what: string }

/** The payments a settled or rejected batch stands for: its parts that reached the bank, or its one payment. */
export function expectedPayments(batch: StoredBatch): ExpectedPayment[] {
  const parts = (batch as StoredBatch & { parts?: readonly PartLike[] }).parts;
  if (parts && parts.length > 0) {
    return parts.flatMap((part) => (part.paymentId === undefined ? [] : [{
      paymentId: part.paymentId, amountMinor: BigInt(part.amountMinor), endToEndId: part.endToEndId, settled: part.state === 'settled', what: parts.length > 1 ? `part ${part.partNo} of batch ${batch.header.batchId}` : `batch ${batch.header.batchId}`,
    }]));
  }
  if (batch.paymentId === undefined) return [];
  return [{ paymentId: batch.paymentId, amountMinor: BigInt(batch.header.amountMinor), settled: batch.state === 'settled', what: `batch ${batch.header.batchId}` }];
}

const capital = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

/** What the bank's records of one batch's payments say that the ledger does not. */
function batchMismatches(batch: StoredBatch, atBank: ReadonlyMap<string, BankPaymentRecord | undefined>): AlertDraft[] {
  const { header } = batch;
  const expected = expectedPayments(batch);
  if (expected.length === 0) {
    // A batch the bank refused outright (400) never had a payment: nothing to compare.
    if (batch.state === 'rejected') return [];
    return [{ kind: 'missing-at-bank', batchNo: batch.batchNo, batchId: header.batchId, detail: `Batch ${header.batchId} is ${batch.state} for ${money(BigInt(header.amountMinor), header.currency)} in the ledger without a payment id: nothing at the bank matches it` }];
  }
  const found: AlertDraft[] = [];
  for (const payment of expected) {
    if (!atBank.has(payment.paymentId)) continue; // could not be read this time
    const bank = atBank.get(payment.paymentId);
    const about = { batchNo: batch.batchNo, batchId: header.batchId, paymentId: payment.paymentId };
    const ledger = `${capital(payment.what)} is ${payment.settled ? 'settled' : batch.state} for ${money(payment.amountMinor, header.currency)} in the ledger`;
    if (!bank) {
      found.push({ kind: 'missing-at-bank', ...about, detail: `${ledger} with payment ${payment.paymentId}; the bank has no such payment` });
      continue;
    }
    const carried = bank.endToEndIdentification;
    if (carried !== undefined && (payment.endToEndId === undefined ? !endToEndIdNamesBatch(carried, batch) : carried !== payment.endToEndId)) {
      found.push({ kind: 'reference-differs', ...about, detail: `${capital(payment.what)}: the bank's payment ${bank.paymentId} carries EndToEndIdentification ${carried}, ${payment.endToEndId === undefined ? `which does not name batch ${batch.batchNo} and its root` : `not ${payment.endToEndId}`}` });
    }
    if (bank.amountMinor !== payment.amountMinor || bank.currency !== header.currency) {
      found.push({ kind: 'amount-differs', ...about, detail: `${ledger}; the bank's payment ${bank.paymentId} is for ${money(bank.amountMinor, bank.currency)}` });
    }
    const bankSettled = isSettledVrpStatus(bank.status);
    const bankRefused = bank.status === 'RJCT' || bank.status === 'CANC';
    if (payment.settled ? !bankSettled : batch.state === 'rejected' && !bankRefused) {
      found.push({ kind: 'status-differs', ...about, detail: `${capital(payment.what)} is ${payment.settled ? 'settled' : batch.state} in the ledger; the bank reports payment ${bank.paymentId} as ${bank.status}` });
    }
  }
  return found;
}

/** The bank's payments no batch accounts for: unknown, or another payment naming a batch. */
function unexpectedPayments(batches: readonly StoredBatch[], listing: readonly BankPaymentRecord[]): AlertDraft[] {
  const known = new Set<string>();
  const byBatchNo = new Map<string, StoredBatch>();
  for (const batch of batches) {
    if (batch.paymentId !== undefined) known.add(batch.paymentId);
    for (const part of (batch as StoredBatch & { parts?: readonly PartLike[] }).parts ?? []) {
      if (part.paymentId !== undefined) known.add(part.paymentId);
      // A part resent under a new key keeps its earlier payments (rejected, refused): the bank rightly has them.
      for (const earlier of part.earlier ?? []) if (earlier.paymentId !== undefined) known.add(earlier.paymentId);
    }
    byBatchNo.set(String(batch.batchNo), batch);
  }
  const found: AlertDraft[] = [];
  for (const payment of listing) {
    if (known.has(payment.paymentId)) continue;
    const amount = money(payment.amountMinor, payment.currency);
    const e2e = payment.endToEndIdentification;
    const candidate = e2e === undefined ? undefined : byBatchNo.get(/^MB([0-9]+)/.exec(e2e)?.[1] ?? '');
    const owner = candidate && e2e !== undefined && endToEndIdNamesBatch(e2e, candidate) ? candidate : undefined;
    // Not final yet: the settler may not have heard back about this payment (a lost answer).
    if (owner && owner.state !== 'settled' && owner.state !== 'rejected') continue;
    const detail = owner
      ? `Payment ${payment.paymentId} of ${amount} at the bank names batch ${owner.header.batchId} (EndToEndIdentification ${e2e}) but is not one of its payments in the ledger: paid twice?`
      : `Payment ${payment.paymentId} of ${amount} at the bank (EndToEndIdentification ${e2e ?? 'none'}) matches no batch in the ledger`;
    found.push({ kind: 'unexpected-at-bank', paymentId: payment.paymentId, ...(owner ? { batchNo: owner.batchNo, batchId: owner.header.batchId } : {}), detail });
  }
  return found;
}

/**
 * Pure: the alerts the ledger's batches and the bank's records call for. `atBank` holds the
 * bank's answer (undefined: no such payment) for each payment of a settled or rejected batch
 * that could be read; a payment that could not be read is left out of `atBank` and skipped.
 */
export function findMismatches(input: { batches: readonly StoredBatch[]; atBank: ReadonlyMap<string, BankPaymentRecord | undefined>; listing?: readonly BankPaymentRecord[] }): AlertDraft[] {
  const found: AlertDraft[] = [];
  for (const batch of input.batches) {
    if (batch.state === 'settled' || batch.state === 'rejected') found.push(...batchMismatches(batch, input.atBank));
  }
  if (input.listing) found.push(...unexpectedPayments(input.batches, input.listing));
  return found;
}

const fingerprint = (a: AlertDraft): string => `${a.kind}\n${a.batchNo ?? ''}\n${a.paymentId ?? ''}\n${a.detail}`;

/**
 * The operator's alerts, in the ledger under a!<alertNo>. A finding already recorded (same
 * kind, batch, payment and detail, acknowledged or not) is not recorded again, so a periodic
 * reconcile does not repeat itself. Bounded: beyond `alertsMax` new findings are dropped (and
 * counted) until the operator has dealt with the backlog.
 */
export class AlertBook {
  readonly #db: LedgerDb;
  readonly #clock: () => Date;
  readonly #alertsMax: number;
  readonly #known = new Set<string>();
  #lastAlertNo = 0;
  #unacknowledged = 0;
  #writing: Promise<unknown> = Promise.resolve();

  private constructor(db: LedgerDb, clock: () => Date, alertsMax: number) {
    this.#db = db;
    this.#clock = clock;
    this.#alertsMax = alertsMax;
  }

  static async open(db: LedgerDb, options: { clock: () => Date; alertsMax?: number }): Promise<AlertBook> {
    const alertsMax = options.alertsMax ?? 10_000;
    if (!Number.isSafeInteger(alertsMax) || alertsMax < 1 || alertsMax > 1_000_000) throw new RangeError(`alertsMax: ${alertsMax} must be an integer from 1 to 1000000`);
    const book = new AlertBook(db, options.clock, alertsMax);
    for await (const value of db.values(keys.alertRange)) {
      const alert = value as ReconcileAlert;
      book.#known.add(fingerprint(alert));
      book.#lastAlertNo = Math.max(book.#lastAlertNo, alert.alertNo);
      if (!alert.acknowledged) book.#unacknowledged += 1;
    }
    return book;
  }

  get unacknowledgedCount(): number {
    return this.#unacknowledged;
  }

  /** One write at a time: alert numbers are handed out in order. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#writing.then(work, work);
    this.#writing = run.catch(() => {});
    return run;
  }

  /** Stores the findings not seen before, in one durable write; returns those and how many did not fit. */
  record(drafts: readonly AlertDraft[]): Promise<{ recorded: ReconcileAlert[]; dropped: number }> {
    return this.#serial(async () => {
      const at = this.#clock().toISOString();
      const recorded: ReconcileAlert[] = [];
      let dropped = 0;
      const seen = new Set<string>();
      for (const draft of drafts) {
        const print = fingerprint(draft);
        if (this.#known.has(print) || seen.has(print)) continue;
        seen.add(print);
        if (this.#known.size + recorded.length >= this.#alertsMax) {
          dropped += 1;
          continue;
        }
        recorded.push({ ...draft, alertNo: this.#lastAlertNo + recorded.length + 1, at, acknowledged: false });
      }
      if (recorded.length > 0) await writeDurably(this.#db, recorded.map((alert) => ({ type: 'put', key: keys.alert(alert.alertNo), value: alert })));
      for (const alert of recorded) this.#known.add(fingerprint(alert));
      this.#lastAlertNo += recorded.length;
      this.#unacknowledged += recorded.length;
      return { recorded, dropped };
    });
  }

  /** Newest first; `unacknowledged` keeps only those still open. */
  async list(options: { unacknowledged?: boolean; limit?: number } = {}): Promise<ReconcileAlert[]> {
    const limit = options.limit ?? 100;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new RangeError(`limit: ${limit} must be an integer from 1 to 10000`);
    const out: ReconcileAlert[] = [];
    for await (const value of this.#db.values({ ...keys.alertRange, reverse: true })) {
      const alert = value as ReconcileAlert;
      if (options.unacknowledged && alert.acknowledged) continue;
      out.push(alert);
      if (out.length === limit) break;
    }
    return out;
  }

  /** Marks an alert seen by the operator; acknowledging twice keeps the first time. */
  acknowledge(alertNo: number, by?: string): Promise<ReconcileAlert> {
    return this.#serial(async () => {
      const alert = (await this.#db.get(keys.alert(alertNo))) as ReconcileAlert | undefined;
      if (!alert) throw new RangeError(`Cannot acknowledge alert ${alertNo}: no such alert`);
      if (alert.acknowledged) return alert;
      const next: ReconcileAlert = { ...alert, acknowledged: true, acknowledgedAt: this.#clock().toISOString(), ...(by === undefined ? {} : { acknowledgedBy: by.slice(0, 100) }) };
      await writeDurably(this.#db, [{ type: 'put', key: keys.alert(alertNo), value: next }]);
      this.#unacknowledged -= 1;
      return next;
    });
  }
}

export interface ReconcileReport {
  /** Settled and rejected batches compared with the bank. */
  checkedBatches: number;
  /** Payments the bank listed, or undefined when it cannot list them. */
  listedPayments?: number;
  alerts: ReconcileAlert[];
  /** Findings beyond AlertBook's bound, not stored. */
  droppedAlerts: number;
  /** Payments the bank could not be asked about this time (timeout, 5xx…): checked next run. */
  unreadable: Array<{ batchNo: number; paymentId: string; error: string }>;
  listingError?: string;
}

export interface ReconcilerOptions {
  /** Every batch of the ledger (BatchBook.all). */
  batches: () => AsyncIterable<StoredBatch>;
  bank: BankRecords;
  alerts: AlertBook;
  logger?: Logger;
  /** Payment reads in flight at once. Default 4. */
  concurrency?: number;
}

export class Reconciler {
  readonly #o: ReconcilerOptions;
  #running: Promise<ReconcileReport> | undefined;

  constructor(options: ReconcilerOptions) {
    const concurrency = options.concurrency ?? 4;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 32) throw new RangeError(`concurrency: ${concurrency} must be an integer from 1 to 32`);
    this.#o = { ...options, concurrency };
  }

  /** Resolves when no run is in progress (for shutdown). */
  async idle(): Promise<void> {
    await this.#running?.catch(() => undefined);
  }

  /** One run over the whole ledger; concurrent calls share it. */
  reconcile(): Promise<ReconcileReport> {
    this.#running ??= this.#reconcile().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #reconcile(): Promise<ReconcileReport> {
    const batches: StoredBatch[] = [];
    for await (const batch of this.#o.batches()) batches.push(batch);
    const final = batches.filter((b) => b.state === 'settled' || b.state === 'rejected');
    const toRead = final.flatMap((batch) => expectedPayments(batch).map((p) => ({ batchNo: batch.batchNo, paymentId: p.paymentId })));
    const atBank = new Map<string, BankPaymentRecord | undefined>();
    const unreadable: ReconcileReport['unreadable'] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < toRead.length) {
        const { batchNo, paymentId } = toRead[next++]!;
        try {
          atBank.set(paymentId, await this.#o.bank.payment(paymentId));
        } catch (error) {
          unreadable.push({ batchNo, paymentId, error: (error as Error).message });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#o.concurrency!, toRead.length) }, worker));
    let listing: BankPaymentRecord[] | undefined;
    let listingError: string | undefined;
    if (this.#o.bank.listPayments) {
      try {
        listing = await this.#o.bank.listPayments();
      } catch (error) {
        listingError = (error as Error).message;
      }
    }
    const { recorded, dropped } = await this.#o.alerts.record(findMismatches({ batches, atBank, ...(listing ? { listing } : {}) }));
    const checkedBatches = final.length - new Set(unreadable.map((u) => u.batchNo)).size;
    for (const alert of recorded) this.#o.logger?.warn({ alertNo: alert.alertNo, kind: alert.kind, batchNo: alert.batchNo, paymentId: alert.paymentId }, alert.detail);
    if (dropped > 0) this.#o.logger?.error({ dropped }, 'reconciliation alerts not stored: the alert book is full; acknowledge and archive alerts');
    if (unreadable.length > 0 || listingError) this.#o.logger?.warn({ unreadable: unreadable.length, listingError }, 'reconciliation could not read every payment at the bank; they are checked next run');
    return { checkedBatches, ...(listing ? { listedPayments: listing.length } : {}), alerts: recorded, droppedAlerts: dropped, unreadable, ...(listingError ? { listingError } : {}) };
  }
}

/** OBIE R/W profile 4.0: an unknown resource id is a 400 (U011 in the sandbox); some banks answer 404. */
function isNotFound(error: unknown): boolean {
  return error instanceof VrpError && (error.httpStatus === 404 || (error.httpStatus === 400 && error.obErrorCodes.some((code) => code === 'U011' || code.endsWith('Resource.NotFound'))));
}

/** "10.00000" is 10.00 EUR: zeros past the currency's digits are exact. */
function parseListedAmount(text: string, currency: string): bigint {
  const digits = MINOR_DIGITS[currency] ?? 0;
  const [whole, fraction = ''] = text.split('.');
  let kept = fraction;
  while (kept.length > digits && kept.endsWith('0')) kept = kept.slice(0, -1);
  return parseMinor(kept === '' ? (whole ?? text) : `${whole}.${kept}`, currency, 'InstructedAmount.Amount');
}

const listingPage = z.object({
  Data: z.object({
    Payments: z.array(z.object({
      DomesticVRPId: z.string().min(1).max(40),
      Status: z.string().min(1).max(8),
      EndToEndIdentification: z.string().max(35).optional(),
      InstructedAmount: z.object({ Amount: z.string().max(32), Currency: z.string().regex(/^[A-Z]{3}$/) }),
    })).max(1_000),
  }),
  Meta: z.object({ NextOffset: z.number().int().min(1).optional() }),
});
const LISTING_PAGES_MAX = 100;

/**
 * The bank's records through the VRP client's payment GET, and the sandbox's listing
 * (`GET /sandbox/payment-listing`, bank-sandbox/listing-routes.ts; NOT part of the OB spec)
 * when `listing` is given. A real bank lists its payments in an account statement instead.
 */
export function vrpBankRecords(client: VrpClient, options: { listing?: { baseUrl: string; accessToken: string; timeoutMs?: number } } = {}): BankRecords {
  const records: BankRecords = {
    async payment(paymentId) {
      try {
        const p = await client.getPayment(paymentId);
        return { paymentId: p.paymentId, amountMinor: p.amountMinor, currency: p.currency, status: p.status, ...(p.endToEndIdentification === undefined ? {} : { endToEndIdentification: p.endToEndIdentification }) };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
  };
  const listing = options.listing;
  if (!listing) return records;
  records.listPayments = async () => {
    const out: BankPaymentRecord[] = [];
    let offset: number | undefined = 0;
    for (let page = 0; offset !== undefined; page += 1) {
      if (page === LISTING_PAGES_MAX) throw new Error(`Cannot list the bank's payments: more than ${LISTING_PAGES_MAX} pages`);
      const url = new URL(`/sandbox/payment-listing?offset=${offset}`, listing.baseUrl);
      const response = await fetch(url, { headers: { authorization: `Bearer ${listing.accessToken}`, accept: 'application/json' }, signal: AbortSignal.timeout(listing.timeoutMs ?? 10_000) });
      if (response.status !== 200) throw new Error(`Cannot list the bank's payments: ${url.pathname} answered ${response.status}`);
      const parsed = listingPage.safeParse(await response.json());
      if (!parsed.success) throw new Error(`Cannot list the bank's payments: the answer is not a listing (${parsed.error.issues[0]?.message ?? 'unreadable'})`);
      for (const p of parsed.data.Data.Payments) {
        out.push({ paymentId: p.DomesticVRPId, status: p.Status, currency: p.InstructedAmount.Currency, amountMinor: parseListedAmount(p.InstructedAmount.Amount, p.InstructedAmount.Currency), ...(p.EndToEndIdentification === undefined ? {} : { endToEndIdentification: p.EndToEndIdentification }) });
      }
      offset = parsed.data.Meta.NextOffset;
    }
    return out;
  };
  return records;
}
