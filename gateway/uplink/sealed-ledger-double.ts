/**
 * A test double of what the uplink reads of the ledger: the journal's canonical records
 * and the batch book's sealed batches, kept in memory but sealed by the real sealer
 * (gateway/settlement/seal-batches.ts: real Merkle roots, totals, carried remainders and
 * signed headers), so the batches are what a gateway would upload.
 */
import { canonicalRecordJson } from '../../protocol/canonical-usage.ts';
import type { SigningKey } from '../../protocol/signing.ts';
import type { SignedBatchHeader, UsageRecord } from '../../protocol/usage-record.ts';
import type { Journal } from '../ledger/journal.ts';
import type { BatchBook, StoredBatch } from '../settlement/batch-book.ts';
import { sealBatches } from '../settlement/seal-batches.ts';

const AT = '2026-05-01T12:00:00.000Z';

export function usageRecord(index: number, payer: string, gatewayId = 'gw'): UsageRecord {
  return {
    v: 1, index, gatewayId, deviceId: `dev-${payer}`, seq: index, meter: 'cycles', quantity: '1', unit: 'cycle', deviceTime: AT, receivedAt: AT,
    payer, tariff: 'cycles@1', unitPrice: '0.0003', currency: 'EUR', amountNano: '3000000', messageHash: 'a'.repeat(64),
  };
}

export class SealedLedgerDouble {
  readonly records: UsageRecord[] = [];
  readonly batches = new Map<number, StoredBatch>();
  #carries = new Map<string, bigint>();
  readonly #gatewayId: string;
  readonly #key: SigningKey;

  constructor(gatewayId: string, key: SigningKey) {
    this.#gatewayId = gatewayId;
    this.#key = key;
  }

  /** One record per payer named, in order. */
  add(payers: string[]): void {
    for (const payer of payers) this.records.push(usageRecord(this.records.length + 1, payer, this.#gatewayId));
  }

  /** Seals every record since the last seal, one batch per payer. */
  seal(): SignedBatchHeader[] {
    const from = Math.max(0, ...[...this.batches.values()].map((b) => b.header.chainIndex));
    const head = { index: this.records.length, hash: '0'.repeat(64) };
    const { batches, carries } = sealBatches({ gatewayId: this.#gatewayId, records: this.records.slice(from), carries: this.#carries, nextBatchNo: this.batches.size + 1, sealedAt: AT, head, key: this.#key });
    this.#carries = carries;
    for (const { batchNo, header, idempotencyKey } of batches) this.batches.set(batchNo, { batchNo, header, state: 'sealed', idempotencyKey, attempts: 0, transitions: [] });
    return batches.map((b) => b.header);
  }

  async *canonicalRecords(from: number, to: number): AsyncGenerator<string[]> {
    for (let at = from; at <= to; at += 1_000) yield this.records.slice(at - 1, Math.min(to, at + 999)).map((r) => canonicalRecordJson(r));
  }

  journal(): Pick<Journal, 'canonicalRecords'> {
    return this;
  }

  book(): Pick<BatchBook, 'get'> {
    return { get: async (batchNo) => this.batches.get(batchNo) };
  }
}
