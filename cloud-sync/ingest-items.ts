/**
 * The small upload kinds: `settlement` (a batch's payment state), `health` (a periodic
 * report) and `key` (a new gateway key endorsed by one already registered).
 */
import { canonicalJson } from '../protocol/canonical-json.ts';
import { fromHex } from '../protocol/hash.ts';
import { keyIdOf } from '../protocol/signing.ts';
import type { HealthUpload, KeyUpload, SettlementUpload } from '../protocol/upload.ts';
import { verifyKeyEndorsement } from '../gateway/ledger/gateway-key.ts';
import { batchNumberOf } from './batch-check.ts';
import { Refusal, type ItemContext } from './ingest-context.ts';

/**
 * Moves the batch to the state the gateway reports and keeps the report. A settlement of
 * a batch not held here, or for another amount, is stored and alerted rather than refused:
 * refusing would stop the gateway's outbox behind it for good.
 */
export async function storeSettlement(ctx: ItemContext, settlement: SettlementUpload): Promise<void> {
  const { tx, gateway, envelope } = ctx;
  const batchNo = batchNumberOf(settlement.batchId, gateway.id);
  if (typeof batchNo === 'string') throw new Refusal('malformed', `settlement.${batchNo}`);
  const { rows } = await tx.query<{ amount_minor: string; currency: string }>(
    `UPDATE batches SET state = $3, state_at = $4, payment_id = COALESCE($5, payment_id), bank_status = COALESCE($6, bank_status)
      WHERE gateway_id = $1 AND batch_no = $2 RETURNING amount_minor::text, currency`,
    [gateway.id, batchNo, settlement.state, settlement.at, settlement.paymentId ?? null, settlement.bankStatus ?? null],
  );
  const batch = rows[0];
  if (!batch) {
    ctx.alerts.push({ kind: 'settlement_unknown_batch', seq: envelope.seq, batchNo, detail: `settlement ${settlement.state} of batch ${batchNo}, which cloud-sync does not hold` });
  } else if (BigInt(batch.amount_minor) !== BigInt(settlement.amountMinor) || batch.currency !== settlement.currency) {
    ctx.alerts.push({
      kind: 'settlement_mismatch', seq: envelope.seq, batchNo,
      detail: `settlement ${settlement.state} of batch ${batchNo} says ${settlement.amountMinor} ${settlement.currency} minor units; the batch is ${batch.amount_minor} ${batch.currency}`,
    });
  }
  await tx.query(
    `INSERT INTO settlements (gateway_id, seq, batch_no, state, at, payment_id, bank_status, amount_minor, currency, received_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [gateway.id, envelope.seq, batchNo, settlement.state, settlement.at, settlement.paymentId ?? null, settlement.bankStatus ?? null, settlement.amountMinor, settlement.currency, ctx.now.toISOString()],
  );
}

/** The latest report rides on the gateway row; a bounded history beside it. */
export async function storeHealth(ctx: ItemContext, health: HealthUpload): Promise<void> {
  const { tx, gateway, envelope } = ctx;
  const report = canonicalJson(health);
  await tx.query('UPDATE gateways SET latest_health = $2, latest_health_at = $3 WHERE id = $1', [gateway.id, report, health.at]);
  await tx.query('INSERT INTO health_reports (gateway_id, seq, at, report, received_at) VALUES ($1, $2, $3, $4, $5)', [gateway.id, envelope.seq, health.at, report, ctx.now.toISOString()]);
  await tx.query(
    'DELETE FROM health_reports WHERE gateway_id = $1 AND seq <= (SELECT seq FROM health_reports WHERE gateway_id = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)',
    [gateway.id, ctx.limits.healthReportsPerGatewayMax],
  );
}

/**
 * Registers the endorsed key: `key.sig` must be a registered key's signature over the new
 * key's kind, publicKey, keyId and validFrom (gateway/ledger/gateway-key.ts). The same key
 * again is a no-op.
 */
export async function storeKey(ctx: ItemContext, key: KeyUpload): Promise<void> {
  const { tx, gateway, envelope } = ctx;
  if (keyIdOf(fromHex(key.publicKey, 'key.publicKey', 32)) !== key.keyId) throw new Refusal('malformed', `key.keyId: ${key.keyId} is not the id of key.publicKey`);
  const endorser = await ctx.keys.publicKeyOf(tx, key.sig.keyId);
  if (endorser === undefined) {
    throw new Refusal('bad_signature', `key ${key.keyId}: endorsed by key ${key.sig.keyId}, which is not registered for gateway ${gateway.id} (registered: ${ctx.keys.keyIds.join(', ')})`, { alert: 'bad_key_endorsement' });
  }
  if (!verifyKeyEndorsement(key, endorser)) {
    throw new Refusal('bad_signature', `key ${key.keyId}: the endorsement by key ${key.sig.keyId} does not verify`, { alert: 'bad_key_endorsement' });
  }
  // ON CONFLICT: the keys were read before the lock, so the key may be stored already.
  await tx.query(
    `INSERT INTO gateway_keys (gateway_id, key_id, public_key, valid_from, endorsed_by, added_at, added_seq) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (gateway_id, key_id) DO NOTHING`,
    [gateway.id, key.keyId, key.publicKey, key.validFrom, key.sig.keyId, ctx.now.toISOString(), envelope.seq],
  );
  ctx.keys.add(key.keyId, key.publicKey);
}
