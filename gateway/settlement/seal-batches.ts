/**
 * Seals open records into batches: one per payer and currency, with an RFC 9162
 * Merkle root over the records and a signed header. Pure: records, carried
 * remainders, clock reading and key come in; batches and new remainders go out.
 */
import { canonicalRecordJson } from '../../protocol/canonical-usage.ts';
import { sha256, toHex } from '../../protocol/hash.ts';
import { formatDecimal, toMinorUnits } from '../../protocol/money.ts';
import { signPayload, type SigningKey } from '../../protocol/signing.ts';
import type { BatchHeader, SignedBatchHeader, UsageRecord } from '../../protocol/usage-record.ts';
import { MerkleRootBuilder } from './merkle-root-builder.ts';

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

/** One payer's records in one currency, folded as they stream past. */
interface Group {
  first: UsageRecord;
  last: UsageRecord;
  count: number;
  totalNano: bigint;
  /** Part of the total still summed as a Number (exact below 2^53). */
  smallNano: number;
  tree: MerkleRootBuilder;
}

// Amounts of up to 15 digits are summed as Numbers (exact while the sum stays below
// 2^53) and moved into the bigint before it could pass that: one BigInt a million
// records cost more than the rest of the fold.
const SMALL_DIGITS_MAX = 15;
const SMALL_AMOUNT = /^[0-9]{1,15}$/;
const SMALL_SUM_MAX = Number.MAX_SAFE_INTEGER - 10 ** SMALL_DIGITS_MAX;

function addRecord(group: Group, record: UsageRecord): void {
  group.last = record;
  group.count += 1;
  const amount = record.amountNano;
  if (SMALL_AMOUNT.test(amount)) {
    group.smallNano += Number(amount);
    if (group.smallNano > SMALL_SUM_MAX) {
      group.totalNano += BigInt(group.smallNano);
      group.smallNano = 0;
    }
  } else {
    group.totalNano += BigInt(amount);
  }
  // canonicalRecordJson is canonicalJson's exact text for a record (protocol tests), fast.
  group.tree.addCanonical(canonicalRecordJson(record));
}

export function sealBatches(input: SealInput): { batches: SealedBatch[]; carries: Map<string, bigint> } {
  const groups = new Map<string, Group>();
  let group: Group | undefined;
  for (const record of input.records) {
    // Runs of one payer are the common case: skip the key and lookup for them.
    if (group?.first.payer !== record.payer || group.first.currency !== record.currency) {
      const key = carryKey(record.payer, record.currency);
      group = groups.get(key);
      if (!group) {
        group = { first: record, last: record, count: 0, totalNano: 0n, smallNano: 0, tree: new MerkleRootBuilder() };
        groups.set(key, group);
      }
    }
    addRecord(group, record);
  }
  const carries = new Map(input.carries);
  const batches: SealedBatch[] = [];
  let batchNo = input.nextBatchNo;
  for (const key of [...groups.keys()].sort()) {
    const group = groups.get(key)!;
    const { first } = group;
    const totalNano = group.totalNano + BigInt(group.smallNano);
    const carriedInNano = carries.get(key) ?? 0n;
    const { minor, carriedNano } = toMinorUnits(totalNano + carriedInNano, first.currency);
    carries.set(key, carriedNano);
    const header: BatchHeader = {
      v: 1,
      batchId: `${input.gatewayId}/${batchNo}`,
      gatewayId: input.gatewayId,
      payer: first.payer,
      currency: first.currency,
      recordCount: group.count,
      firstIndex: first.index,
      lastIndex: group.last.index,
      merkleRoot: toHex(group.tree.root()),
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
