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

/** What sealing needs of a record: its place, who pays in what, its amount, and its canonical text (the Merkle leaf). */
export interface SealItem {
  index: number;
  payer: string;
  currency: string;
  amountNano: string;
  /** The record's RFC 8785 canonical JSON, as hashed into the chain and the Merkle tree. */
  canonical: string;
}

export interface SealInput {
  gatewayId: string;
  /** Unsealed records in journal order: record objects, or seal items taken from the stored text (faster). */
  records: Iterable<SealItem | UsageRecord>;
  /** Carried remainder in nano per `carryKey(payer, currency)`. */
  carries: ReadonlyMap<string, bigint>;
  nextBatchNo: number;
  sealedAt: string;
  head: { index: number; hash: string };
  key: SigningKey;
}

/** A record object as a seal item (tests, small callers); the gateway streams items from the stored text. */
export function sealItemOf(record: UsageRecord): SealItem {
  // canonicalRecordJson is canonicalJson's exact text for a record (protocol tests), fast.
  return { index: record.index, payer: record.payer, currency: record.currency, amountNano: record.amountNano, canonical: canonicalRecordJson(record) };
}

/** The string member that `needle` (`"name":"`) starts, at or after `from` in a canonical text: [value, where it ends], or undefined. */
function memberAfter(text: string, needle: string, from: number): [string, number] | undefined {
  const at = text.indexOf(needle, from);
  if (at < 0) return undefined;
  const start = at + needle.length;
  const end = text.indexOf('"', start);
  return end < 0 ? undefined : [text.slice(start, end), end];
}

/**
 * A seal item from a record's canonical text without parsing it. RFC 8785 sorts the
 * members (amountNano … currency … index … payer), so each is looked for after the one
 * before; the record's members are plain top-level strings and integers, and no string
 * value can hold an unescaped quote, so `"payer":"` can only start the payer member.
 */
export function sealItemOfCanonical(canonical: string): SealItem {
  const amount = memberAfter(canonical, '"amountNano":"', 0);
  const currency = amount && memberAfter(canonical, '"currency":"', amount[1]);
  const indexAt = currency ? canonical.indexOf('"index":', currency[1]) : -1;
  const index = indexAt < 0 ? Number.NaN : Number.parseInt(canonical.slice(indexAt + 8, indexAt + 24), 10);
  const payer = indexAt < 0 ? undefined : memberAfter(canonical, '"payer":"', indexAt);
  if (amount && currency && payer && Number.isSafeInteger(index)) return { index, payer: payer[0], currency: currency[0], amountNano: amount[0], canonical };
  const record = JSON.parse(canonical) as UsageRecord;
  return { index: record.index, payer: record.payer, currency: record.currency, amountNano: record.amountNano, canonical };
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
  first: SealItem;
  last: SealItem;
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

function addRecord(group: Group, record: SealItem): void {
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
  group.tree.addCanonical(record.canonical);
}

/**
 * Folds records into per-(payer, currency) groups as they stream past, in O(groups ×
 * log n) memory: the gateway seals a million records without holding them.
 */
export class BatchSealer {
  readonly #groups = new Map<string, Group>();
  #group: Group | undefined;

  add(item: SealItem | UsageRecord): void {
    const record = 'canonical' in item ? item : sealItemOf(item);
    let group = this.#group;
    // Runs of one payer are the common case: skip the key and lookup for them.
    if (group?.first.payer !== record.payer || group.first.currency !== record.currency) {
      const key = carryKey(record.payer, record.currency);
      group = this.#groups.get(key);
      if (!group) {
        group = { first: record, last: record, count: 0, totalNano: 0n, smallNano: 0, tree: new MerkleRootBuilder() };
        this.#groups.set(key, group);
      }
      this.#group = group;
    }
    addRecord(group, record);
  }

  get recordCount(): number {
    let count = 0;
    for (const group of this.#groups.values()) count += group.count;
    return count;
  }

  /** One signed batch per group, in key order; the new carried remainders. */
  seal(input: Omit<SealInput, 'records'>): { batches: SealedBatch[]; carries: Map<string, bigint> } {
    const carries = new Map(input.carries);
    const batches: SealedBatch[] = [];
    let batchNo = input.nextBatchNo;
    for (const key of [...this.#groups.keys()].sort()) {
      const group = this.#groups.get(key)!;
      const { first } = group;
      const totalNano = group.totalNano + BigInt(group.smallNano);
      const carriedInNano = carries.get(key) ?? 0n;
      // A volume tier can lower a period's price after part of it was paid: then the batch is
      // a credit, nothing is paid, and the credit is carried into the payer's next batch.
      const due = totalNano + carriedInNano;
      const { minor, carriedNano } = due < 0n ? { minor: 0n, carriedNano: due } : toMinorUnits(due, first.currency);
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
}

export function sealBatches(input: SealInput): { batches: SealedBatch[]; carries: Map<string, bigint> } {
  const sealer = new BatchSealer();
  for (const item of input.records) sealer.add(item);
  return sealer.seal(input);
}
