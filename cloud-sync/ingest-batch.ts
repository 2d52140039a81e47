/**
 * A `batch` upload: one part of a sealed batch. Checked in two steps: {@link prepareBatch}
 * before the transaction (pure: the header against itself, the part's records against the
 * header) and {@link storeBatchPart} inside it, holding the gateway's row lock (the header
 * signature with the gateway's keys, the part's place among the parts stored, the batch
 * chain, and once the last part is in, the Merkle root and totals over all parts).
 */
import { canonicalJson } from '../protocol/canonical-json.ts';
import type { BatchUpload } from '../protocol/upload.ts';
import type { SignedBatchHeader } from '../protocol/usage-record.ts';
import { checkBatchHeader, checkBatchPart, checkCompleteBatch, headerDigest, type PartFacts } from './batch-check.ts';
import { Refusal, type ItemContext } from './ingest-context.ts';

export interface PreparedBatch {
  batchNo: number;
  headerDigest: string;
  facts: PartFacts;
}

/** The checks that need no database; a problem is a refusal to throw once the seq is known to be next. */
export function prepareBatch(gatewayId: string, upload: BatchUpload): PreparedBatch | Refusal {
  const header = checkBatchHeader(upload.header, gatewayId);
  if ('problem' in header) return new Refusal('bad_batch', `batch ${upload.header.batchId}: ${header.problem}`, { alert: 'bad_batch' });
  const facts = checkBatchPart(upload);
  if ('problem' in facts) return new Refusal('bad_batch', `batch ${header.batchNo} part ${upload.part}: ${facts.problem}`, { alert: 'bad_batch' });
  return { batchNo: header.batchNo, headerDigest: headerDigest(upload.header), facts };
}

interface StoredBatch {
  header_digest: string;
  merkle_root: string;
  parts: number;
  parts_received: number;
  records_received: string;
  records_nano: string;
  last_record_index: string;
}

export async function storeBatchPart(ctx: ItemContext, upload: BatchUpload, prepared: PreparedBatch): Promise<void> {
  const { tx, gateway } = ctx;
  const { header, part, parts, records } = upload;
  const { batchNo, facts } = prepared;
  const { sig, ...unsignedHeader } = header;
  const signed = await ctx.keys.checkFresh(tx, unsignedHeader, sig);
  if (signed !== 'valid') {
    const why = signed === 'unknown_key' ? `signed by key ${sig.keyId}, which is not registered for gateway ${gateway.id}` : `does not verify with key ${sig.keyId} (the header was altered after sealing)`;
    throw new Refusal('bad_batch', `batch ${batchNo}: header.sig ${why}`, { alert: 'bad_batch' });
  }
  const { rows } = await tx.query<StoredBatch>(
    `SELECT header_digest, merkle_root, parts, parts_received, records_received::text, records_nano::text, last_record_index::text
       FROM batches WHERE gateway_id = $1 AND batch_no = $2`,
    [gateway.id, batchNo],
  );
  const stored = rows[0];
  if (stored && (await isResentPart(ctx, upload, prepared, stored))) return;
  if (!stored && part !== 1) throw new Refusal('bad_batch', `batch ${batchNo}: part ${part} of ${parts} arrived before part 1`, { alert: 'bad_batch' });
  const progress: PartProgress = {
    recordsReceived: Number(stored?.records_received ?? 0) + records.length,
    recordsNano: BigInt(stored?.records_nano ?? 0) + facts.amountNano,
    complete: part === parts,
  };
  if (progress.complete) {
    // Earlier parts come back from the database; a one-part batch never leaves memory.
    const earlier = part === 1 ? [] : await earlierParts(ctx, batchNo);
    const problem = checkCompleteBatch(header, progress.recordsReceived, progress.recordsNano, [...earlier, records]);
    if (problem !== undefined) throw new Refusal('bad_batch', `batch ${batchNo}: ${problem}`, { alert: 'bad_batch' });
  }
  if (stored) {
    await tx.query(
      `UPDATE batches SET parts_received = $3, records_received = $4, records_nano = $5, last_record_index = GREATEST(last_record_index, $6),
              complete = $7, completed_at = CASE WHEN $7 THEN $8::timestamptz ELSE NULL END
        WHERE gateway_id = $1 AND batch_no = $2`,
      [gateway.id, batchNo, part, progress.recordsReceived, progress.recordsNano.toString(), facts.lastIndex, progress.complete, ctx.now.toISOString()],
    );
  } else {
    await insertBatch(ctx, upload, prepared, progress);
    await checkBatchChain(ctx, header, batchNo);
  }
  await tx.query(
    'INSERT INTO batch_parts (gateway_id, batch_no, part, first_record, record_count, records, digest) VALUES ($1, $2, $3, $4, $5, $6, $7)',
    [gateway.id, batchNo, part, upload.firstRecord, records.length, JSON.stringify(records), facts.digest],
  );
}

interface PartProgress {
  recordsReceived: number;
  recordsNano: bigint;
  complete: boolean;
}

/**
 * A part of a batch already stored: true when it is one already held (a gateway resending
 * a batch under a new seq, e.g. after rebuilding its outbox), so there is nothing to do.
 * Throws when it contradicts what is stored; returns false when it is the next part.
 */
async function isResentPart(ctx: ItemContext, upload: BatchUpload, prepared: PreparedBatch, stored: StoredBatch): Promise<boolean> {
  const { batchNo, facts } = prepared;
  const { part, parts } = upload;
  if (stored.header_digest !== prepared.headerDigest) {
    const roots = stored.merkle_root === upload.header.merkleRoot ? 'the same merkleRoot but other header fields' : `merkleRoot ${upload.header.merkleRoot}, not the stored ${stored.merkle_root}`;
    throw new Refusal('conflict', `batch ${batchNo} is already stored with another header: this one has ${roots}`, { alert: 'batch_fork' });
  }
  if (parts !== stored.parts) throw new Refusal('bad_batch', `batch ${batchNo}: parts ${parts}, but its part 1 said ${stored.parts}`, { alert: 'bad_batch' });
  if (part <= stored.parts_received) {
    const { rows } = await ctx.tx.query<{ digest: string }>('SELECT digest FROM batch_parts WHERE gateway_id = $1 AND batch_no = $2 AND part = $3', [ctx.gateway.id, batchNo, part]);
    if (rows[0]?.digest === facts.digest) return true;
    throw new Refusal('conflict', `batch ${batchNo} part ${part} is already stored with other records`, { alert: 'batch_fork' });
  }
  if (part !== stored.parts_received + 1) {
    throw new Refusal('bad_batch', `batch ${batchNo}: part ${part} arrived after part ${stored.parts_received}; part ${stored.parts_received + 1} comes next`, { alert: 'bad_batch' });
  }
  if (upload.firstRecord !== Number(stored.records_received)) {
    throw new Refusal('bad_batch', `batch ${batchNo} part ${part}: firstRecord ${upload.firstRecord}, but ${stored.records_received} records came before it`, { alert: 'bad_batch' });
  }
  if (upload.records.length > 0 && facts.firstIndex <= Number(stored.last_record_index)) {
    throw new Refusal('bad_batch', `batch ${batchNo} part ${part}: record index ${facts.firstIndex} does not follow the previous part's ${stored.last_record_index}`, { alert: 'bad_batch' });
  }
  return false;
}

/** Part 1: the batch's row, already counting that part (one statement, not an insert and an update). */
async function insertBatch(ctx: ItemContext, upload: BatchUpload, prepared: PreparedBatch, progress: PartProgress): Promise<void> {
  const { header } = upload;
  // Nothing to pay (less than a minor unit, or a credit): the gateway books it `carried`.
  const state = header.amountMinor === '0' ? 'carried' : 'sealed';
  const now = ctx.now.toISOString();
  await ctx.tx.query(
    `INSERT INTO batches (gateway_id, batch_no, batch_id, header, header_digest, payer, currency, record_count, first_index, last_index,
       total_nano, carried_in_nano, amount_minor, carried_out_nano, merkle_root, chain_index, chain_hash, sealed_at,
       parts, parts_received, records_received, records_nano, last_record_index, complete, completed_at, state, state_at, received_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 1, $20, $21, $22, $23,
       CASE WHEN $23 THEN $24::timestamptz ELSE NULL END, $25, $18, $24)`,
    [
      ctx.gateway.id, prepared.batchNo, header.batchId, canonicalJson(header), prepared.headerDigest, header.payer, header.currency, header.recordCount, header.firstIndex, header.lastIndex,
      header.totalNano, header.carriedInNano, header.amountMinor, header.carriedOutNano, header.merkleRoot, header.chainIndex, header.chainHash, header.sealedAt,
      upload.parts, progress.recordsReceived, progress.recordsNano.toString(), prepared.facts.lastIndex, progress.complete, now, state,
    ],
  );
}

/**
 * Continuity with the gateway's other batches: numbers follow each other (a gap is an
 * alert: batches were lost on the way), and a payer's carried remainder flows from one of
 * its batches into the next in that currency. Stored either way: the batch itself is sound.
 */
async function checkBatchChain(ctx: ItemContext, header: SignedBatchHeader, batchNo: number): Promise<void> {
  const { tx, gateway } = ctx;
  if (batchNo > gateway.lastBatchNo + 1) {
    const missing = batchNo - gateway.lastBatchNo - 1 === 1 ? `batch ${gateway.lastBatchNo + 1} is` : `batches ${gateway.lastBatchNo + 1} to ${batchNo - 1} are`;
    ctx.alerts.push({ kind: 'batch_gap', detail: `batch ${batchNo} follows batch ${gateway.lastBatchNo}: ${missing} missing`, seq: ctx.envelope.seq, batchNo });
  }
  // batches.batch_no, not batch_no: that would sort by the text output column (10 before 9).
  const neighbours = await tx.query<{ batch_no: string; carried_in_nano: string; carried_out_nano: string; after: boolean }>(
    `(SELECT batch_no::text, carried_in_nano::text, carried_out_nano::text, false AS after FROM batches
       WHERE gateway_id = $1 AND payer = $2 AND currency = $3 AND batch_no < $4 ORDER BY batches.batch_no DESC LIMIT 1)
     UNION ALL
     (SELECT batch_no::text, carried_in_nano::text, carried_out_nano::text, true AS after FROM batches
       WHERE gateway_id = $1 AND payer = $2 AND currency = $3 AND batch_no > $4 ORDER BY batches.batch_no LIMIT 1)`,
    [gateway.id, header.payer, header.currency, batchNo],
  );
  for (const other of neighbours.rows) {
    const [from, to, carried, expected] = other.after
      ? [batchNo, Number(other.batch_no), header.carriedOutNano, other.carried_in_nano]
      : [Number(other.batch_no), batchNo, other.carried_out_nano, header.carriedInNano];
    if (BigInt(carried) !== BigInt(expected)) {
      ctx.alerts.push({
        kind: 'carry_mismatch', seq: ctx.envelope.seq, batchNo,
        detail: `${header.payer} ${header.currency}: batch ${from} carried out ${carried} nano, but batch ${to} carried in ${expected} nano`,
      });
    }
  }
  // Written with the gateway's seq at the end of the upload.
  gateway.lastBatchNo = Math.max(gateway.lastBatchNo, batchNo);
}

async function earlierParts(ctx: ItemContext, batchNo: number): Promise<string[][]> {
  const { rows } = await ctx.tx.query<{ records: string }>('SELECT records FROM batch_parts WHERE gateway_id = $1 AND batch_no = $2 ORDER BY part', [ctx.gateway.id, batchNo]);
  return rows.map((row) => JSON.parse(row.records) as string[]);
}
