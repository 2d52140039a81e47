/**
 * The checks of a batch upload that need no database: the header against itself (batch id,
 * money rounding), each part's records against the header, and, once every part is in,
 * the Merkle root and totals over all of them. Each check returns the problem as text
 * (`undefined` when sound), phrased for the `bad_batch` answer the gateway reads.
 *
 * The rules are the gateway's own (gateway/settlement/seal-batches.ts): records of one
 * payer and currency in journal order, RFC 9162 Merkle root over their canonical texts,
 * totalNano their sum, and `due = totalNano + carriedInNano` split into whole minor units
 * and a remainder carried on; a negative `due` (a credit) pays nothing and carries all of it.
 */
import { canonicalJson } from '../protocol/canonical-json.ts';
import { sha256HexOf, toHex } from '../protocol/hash.ts';
import { nanoPerMinor } from '../protocol/money.ts';
import type { BatchUpload } from '../protocol/upload.ts';
import type { BatchHeader, SignedBatchHeader } from '../protocol/usage-record.ts';
import { MerkleRootBuilder } from '../gateway/settlement/merkle-root-builder.ts';

const INTEGER = /^-?(0|[1-9][0-9]*)$/;

/** The batch number from `<gatewayId>/<n>`, or the problem. */
export function batchNumberOf(batchId: string, gatewayId: string): number | string {
  const prefix = `${gatewayId}/`;
  const number = batchId.startsWith(prefix) ? batchId.slice(prefix.length) : '';
  if (!/^[1-9][0-9]{0,14}$/.test(number)) return `batchId ${JSON.stringify(batchId)} is not "${prefix}<n>" with n a positive integer`;
  return Number(number);
}

/** The header's money adds up and is rounded the way the gateway rounds. */
export function checkBatchMoney(header: BatchHeader): string | undefined {
  let perMinor: bigint;
  try {
    perMinor = nanoPerMinor(header.currency);
  } catch (error) {
    return `header.${(error as Error).message}`;
  }
  const total = BigInt(header.totalNano);
  const carriedIn = BigInt(header.carriedInNano);
  const amountMinor = BigInt(header.amountMinor);
  const carriedOut = BigInt(header.carriedOutNano);
  const due = total + carriedIn;
  const paid = amountMinor * perMinor + carriedOut;
  if (due !== paid) {
    return `totalNano ${total} + carriedInNano ${carriedIn} = ${due} nano, but amountMinor ${amountMinor} × ${perMinor} + carriedOutNano ${carriedOut} = ${paid} nano`;
  }
  if (due < 0n && amountMinor !== 0n) return `a credit batch (due ${due} nano) must pay nothing, but amountMinor is ${amountMinor}`;
  if (due >= 0n && (carriedOut < 0n || carriedOut >= perMinor)) {
    return `carriedOutNano ${carriedOut} is not the remainder below one minor unit (0 to ${perMinor - 1n} nano) of ${due} nano`;
  }
  return undefined;
}

/** The header's own facts: who it belongs to, its indices, its money. */
export function checkBatchHeader(header: BatchHeader, gatewayId: string): { batchNo: number } | { problem: string } {
  if (header.gatewayId !== gatewayId) return { problem: `header.gatewayId ${JSON.stringify(header.gatewayId)} is not the envelope's gateway ${JSON.stringify(gatewayId)}` };
  const batchNo = batchNumberOf(header.batchId, gatewayId);
  if (typeof batchNo === 'string') return { problem: `header.${batchNo}` };
  if (header.recordCount > 0 && header.firstIndex > header.lastIndex) return { problem: `header.firstIndex ${header.firstIndex} is after lastIndex ${header.lastIndex}` };
  if (header.chainIndex < header.lastIndex) return { problem: `header.chainIndex ${header.chainIndex} is before the batch's last record ${header.lastIndex}` };
  const money = checkBatchMoney(header);
  return money === undefined ? { batchNo } : { problem: money };
}

/** SHA-256 of the header's canonical JSON, signature included: the same batch number with another digest is a fork. */
export function headerDigest(header: SignedBatchHeader): string {
  return sha256HexOf(undefined, canonicalJson(header));
}

export interface PartFacts {
  /** Sum of this part's records' amountNano. */
  amountNano: bigint;
  /** Journal index of this part's first and last record (0 when it has none). */
  firstIndex: number;
  lastIndex: number;
  /** SHA-256 of the part's records as canonical JSON: a resent part must match it. */
  digest: string;
}

/**
 * One part's records against the header: the part's place (part/parts/firstRecord), and
 * each record's gateway, payer, currency, journal index (rising, within the header's
 * range) and amountNano. Sums the amounts; the Merkle root waits for the last part.
 */
export function checkBatchPart(upload: BatchUpload): PartFacts | { problem: string } {
  const { header, part, parts, firstRecord, records } = upload;
  if (part > parts) return { problem: `part ${part} of ${parts}: part is past the last` };
  if (parts > Math.max(1, header.recordCount)) return { problem: `parts ${parts} is more than the batch's ${header.recordCount} records allow` };
  if (part === 1 && firstRecord !== 0) return { problem: `part 1 must start at record 0, not ${firstRecord}` };
  const end = firstRecord + records.length;
  if (end > header.recordCount) return { problem: `records ${firstRecord}..${end - 1} run past the header's recordCount ${header.recordCount}` };
  if (part === parts && end !== header.recordCount) return { problem: `the last part ends at record ${end}, but the header's recordCount is ${header.recordCount}` };
  if (part < parts && records.length === 0) return { problem: `part ${part} of ${parts} holds no records` };
  let amountNano = 0n;
  let previousIndex = -1;
  let firstIndex = 0;
  for (let i = 0; i < records.length; i += 1) {
    const where = `record ${firstRecord + i} (records[${i}])`;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(records[i]!) as Record<string, unknown>;
    } catch (error) {
      return { problem: `${where} is not JSON: ${(error as Error).message}` };
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) return { problem: `${where} is not a JSON object` };
    for (const field of ['gatewayId', 'payer', 'currency'] as const) {
      if (record[field] !== header[field]) return { problem: `${where}: ${field} ${JSON.stringify(record[field])} is not the header's ${JSON.stringify(header[field])}` };
    }
    const index = record.index;
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < header.firstIndex || index > header.lastIndex) {
      return { problem: `${where}: index ${JSON.stringify(index)} is not a journal index from ${header.firstIndex} to ${header.lastIndex}` };
    }
    if (index <= previousIndex) return { problem: `${where}: index ${index} does not follow ${previousIndex} (records go in journal order)` };
    if (i === 0) firstIndex = index;
    previousIndex = index;
    const amount = record.amountNano;
    if (typeof amount !== 'string' || amount.length > 40 || !INTEGER.test(amount)) return { problem: `${where}: amountNano ${JSON.stringify(amount)} is not an integer as a decimal string` };
    amountNano += BigInt(amount);
  }
  if (part === 1 && records.length > 0 && firstIndex !== header.firstIndex) return { problem: `the first record's index ${firstIndex} is not the header's firstIndex ${header.firstIndex}` };
  if (part === parts && records.length > 0 && previousIndex !== header.lastIndex) return { problem: `the last record's index ${previousIndex} is not the header's lastIndex ${header.lastIndex}` };
  return { amountNano, firstIndex, lastIndex: Math.max(previousIndex, 0), digest: sha256HexOf(undefined, canonicalJson(records)) };
}

/** RFC 9162 Merkle root (hex) over the records of every part, in order. */
export function merkleRootOf(parts: Iterable<readonly string[]>): string {
  const builder = new MerkleRootBuilder();
  for (const records of parts) for (const text of records) builder.addCanonical(text);
  return toHex(builder.root());
}

/** The whole batch against its header, once every part is in. */
export function checkCompleteBatch(header: BatchHeader, recordsReceived: number, recordsNano: bigint, parts: Iterable<readonly string[]>): string | undefined {
  if (recordsReceived !== header.recordCount) return `${recordsReceived} records arrived, but the header's recordCount is ${header.recordCount}`;
  if (recordsNano !== BigInt(header.totalNano)) return `the records' amountNano add up to ${recordsNano}, but the header's totalNano is ${header.totalNano}`;
  const root = merkleRootOf(parts);
  if (root !== header.merkleRoot) return `the records' Merkle root is ${root}, but the header's merkleRoot is ${header.merkleRoot} (a record was altered, added, dropped or reordered)`;
  return undefined;
}
