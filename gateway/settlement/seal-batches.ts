/**
 * Seals open records into batches: one per payer and currency, with an RFC 9162
 * Merkle root over the records and a signed header. Pure: records, carried
 * remainders, clock reading and key come in; batches and new remainders go out.
 */
import { canonicalBytes } from '../../protocol/canonical-json.ts';
import { sha256, toHex } from '../../protocol/hash.ts';
import { leafHash, merkleRoot } from '../../protocol/merkle.ts';
import { formatDecimal, toMinorUnits } from '../../protocol/money.ts';
import { signPayload, type SigningKey } from '../../protocol/signing.ts';
import type { BatchHeader, SignedBatchHeader, UsageRecord } from '../../protocol/usage-record.ts';

export interface SealInput {
  gatewayId: string;
  /** Unsealed records in journal order. */
  records: readonly UsageRecord[];
  /** Carried remainder in nano per `carryKey(payer, currency)`. */
  carries: ReadonlyMap<string, bigint>;
  nextBatchNo: number;
  sealedAt: string;
  head: { index: number; hash: string };
  key: SigningKey;
}

export interface SealedBatch {
  batchNo: number;
  header: SignedBatchHeader;
  /** Payment idempotency key, fixed at seal time so every retry reuses it. */
  idempotencyKey: string;
}

export const carryKey = (payer: string, currency: string): string => `${payer}!${currency}`;

/** OBIE VRP 4.0: x-idempotency-key is at most 40 characters; ours is 34. */
export function idempotencyKeyFor(gatewayId: string, batchNo: number): string {
  return `mb${toHex(sha256(new TextEncoder().encode(`${gatewayId}/batch/${batchNo}`))).slice(0, 32)}`;
}

export function sealBatches(input: SealInput): { batches: SealedBatch[]; carries: Map<string, bigint> } {
  const groups = new Map<string, UsageRecord[]>();
  for (const record of input.records) {
    const group = carryKey(record.payer, record.currency);
    const list = groups.get(group);
    if (list) list.push(record);
    else groups.set(group, [record]);
  }
  const carries = new Map(input.carries);
  const batches: SealedBatch[] = [];
  let batchNo = input.nextBatchNo;
  for (const group of [...groups.keys()].sort()) {
    const records = groups.get(group)!;
    const first = records[0]!;
    const totalNano = records.reduce((sum, r) => sum + BigInt(r.amountNano), 0n);
    const carriedInNano = carries.get(group) ?? 0n;
    const { minor, carriedNano } = toMinorUnits(totalNano + carriedInNano, first.currency);
    carries.set(group, carriedNano);
    const header: BatchHeader = {
      v: 1,
      batchId: `${input.gatewayId}/${batchNo}`,
      gatewayId: input.gatewayId,
      payer: first.payer,
      currency: first.currency,
      recordCount: records.length,
      firstIndex: first.index,
      lastIndex: records[records.length - 1]!.index,
      merkleRoot: toHex(merkleRoot(records.map((r) => leafHash(canonicalBytes(r))))),
      totalNano: formatDecimal(totalNano, 0),
      carriedInNano: formatDecimal(carriedInNano, 0),
      amountMinor: formatDecimal(minor, 0),
      carriedOutNano: formatDecimal(carriedNano, 0),
      sealedAt: input.sealedAt,
      chainIndex: input.head.index,
      chainHash: input.head.hash,
    };
    batches.push({ batchNo, header: { ...header, sig: signPayload(header, input.key) }, idempotencyKey: idempotencyKeyFor(input.gatewayId, batchNo) });
    batchNo += 1;
  }
  return { batches, carries };
}
