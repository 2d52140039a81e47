/**
 * The payments a batch is made of (batch-book.ts PaymentPart): how a batch is split, and the
 * idempotency key and references of each attempt. Pure, no I/O.
 *
 * Every key is derived from the batch's own key (fixed at seal time), so a part's keys can be
 * recomputed after a crash; each key has its own EndToEndIdentification, so the bank's records
 * show at most one payment per EndToEndIdentification and a lookup by it answers for one key.
 * What a key's request carries is stored with the part: every request with the key has the
 * same body, whatever later code would make of the batch (OBIE R/W profile 4.0: a key reused
 * with another body is refused).
 */
import { sha256, toHex } from '../../protocol/hash.ts';
import type { PaymentPart, StoredBatch } from './batch-book.ts';
import { batchPaymentReferences, END_TO_END_ID_CHARS_MAX, UNSTRUCTURED_CHARS_MAX } from './payment-references.ts';

/** OBIE R/W profile 4.0, Idempotency: the bank honours a key for 24 hours after it first sees it. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;
/**
 * We stop retrying a key this long after we first sent it: the bank's 24 h start when it first
 * received it, which is later, and an hour covers any clock skew between us.
 */
export const KEY_RETRY_WINDOW_MS = IDEMPOTENCY_WINDOW_MS - 60 * 60 * 1000;
/** After the last request with a key, no bank is still working on it after this long. */
export const LOOKUP_QUIET_MS = 10 * 60 * 1000;

type BatchRef = Pick<StoredBatch, 'batchNo' | 'header' | 'idempotencyKey'>;

/** OBIE VRP 4.0: x-idempotency-key <= 40 chars; ours are 34. The first part's first key is the batch's. */
export function partKey(batch: Pick<StoredBatch, 'idempotencyKey'>, partNo: number, keyNo: number): string {
  if (partNo === 1 && keyNo === 0) return batch.idempotencyKey;
  return `mb${toHex(sha256(new TextEncoder().encode(`${batch.idempotencyKey}/part/${partNo}/key/${keyNo}`))).slice(0, 32)}`;
}

/**
 * What a part's request with key `keyNo` carries. A whole batch's first key: the batch's own
 * references (payment-references.ts). Otherwise `MB<batchNo>.<part>.<key>-<root hex>` (31
 * characters, which Faster Payments carries whole), and the part in the unstructured text.
 */
export function partReferences(batch: BatchRef, part: { partNo: number; keyNo: number }, partsCount: number, gatewayId: string): Pick<PaymentPart, 'endToEndId' | 'reference' | 'unstructured'> {
  const refs = batchPaymentReferences({ batchNo: batch.batchNo, merkleRoot: batch.header.merkleRoot, gatewayId });
  if (partsCount === 1 && part.keyNo === 0) return { endToEndId: refs.endToEndIdentification, ...refs.remittance };
  const root = batch.header.merkleRoot;
  return {
    endToEndId: `MB${batch.batchNo}.${part.partNo}.${part.keyNo}-${root}`.slice(0, END_TO_END_ID_CHARS_MAX),
    reference: refs.remittance.reference,
    unstructured: `meterbridge batch ${batch.batchNo} part ${part.partNo}/${partsCount} root ${root}`.slice(0, UNSTRUCTURED_CHARS_MAX),
  };
}

/** The parts of a batch paid as `amountsMinor`, none sent yet. */
export function planParts(batch: BatchRef, amountsMinor: readonly bigint[], gatewayId: string): PaymentPart[] {
  return amountsMinor.map((amountMinor, i) => ({
    partNo: i + 1,
    amountMinor: String(amountMinor),
    keyNo: 0,
    idempotencyKey: partKey(batch, i + 1, 0),
    ...partReferences(batch, { partNo: i + 1, keyNo: 0 }, amountsMinor.length, gatewayId),
    state: 'due',
  }));
}

/** The part under a fresh key, once the bank has shown the old key made nothing payable; the old one is kept in `earlier`. */
export function withNewKey(batch: BatchRef, part: PaymentPart, partsCount: number, gatewayId: string, outcome: string): PaymentPart {
  const keyNo = part.keyNo + 1;
  const old = { idempotencyKey: part.idempotencyKey, endToEndId: part.endToEndId, ...(part.paymentId ? { paymentId: part.paymentId } : {}), ...(part.bankStatus ? { bankStatus: part.bankStatus } : {}), outcome };
  return {
    partNo: part.partNo,
    amountMinor: part.amountMinor,
    keyNo,
    idempotencyKey: partKey(batch, part.partNo, keyNo),
    ...partReferences(batch, { partNo: part.partNo, keyNo }, partsCount, gatewayId),
    state: 'due',
    earlier: [...(part.earlier ?? []), old],
  };
}

/**
 * A batch sent before batches had parts (one payment, the batch's key): its one part as that
 * request was made, so a retry repeats it exactly: the old EndToEndIdentification (35
 * characters) and remittance.
 */
export function legacyPart(batch: StoredBatch, consentId: string | undefined): PaymentPart {
  const { header } = batch;
  const sentAt = batch.transitions.find((t) => t.state === 'submitted')?.at ?? header.sealedAt;
  return {
    partNo: 1,
    amountMinor: header.amountMinor,
    keyNo: 0,
    idempotencyKey: batch.idempotencyKey,
    endToEndId: `MB${batch.batchNo}-${header.merkleRoot}`.slice(0, 35),
    reference: `MB ${batch.batchNo} ${header.merkleRoot.slice(0, 16)}`.slice(0, 35),
    unstructured: `meterbridge batch ${header.batchId} merkle root ${header.merkleRoot}`.slice(0, 140),
    state: batch.paymentId ? 'pending' : 'sent',
    ...(consentId ? { consentId } : {}),
    keySentAt: sentAt,
    lastSentAt: batch.transitions.findLast((t) => t.state === 'submitted')?.at ?? sentAt,
    ...(batch.paymentId ? { paymentId: batch.paymentId } : {}),
    ...(batch.bankStatus ? { bankStatus: batch.bankStatus } : {}),
  };
}

/** The parts with `part` (same partNo) replaced. */
export function replacePart(parts: readonly PaymentPart[], part: PaymentPart): PaymentPart[] {
  return parts.map((p) => (p.partNo === part.partNo ? part : p));
}

/** The first part not yet settled; undefined when all are. */
export function currentPart(parts: readonly PaymentPart[]): PaymentPart | undefined {
  return parts.find((p) => p.state !== 'settled');
}
