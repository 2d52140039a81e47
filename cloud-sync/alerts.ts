/**
 * Alerts: what a person should look at, raised only by content the gateway signed (a
 * forged envelope is refused and counted on the gateway, never made an alert, so nobody
 * can flood a gateway's alerts without its key). Kept per gateway up to a bound; the
 * oldest go first.
 */
import type { SqlDb } from './db.ts';

export type AlertKind =
  /** The same seq again with other content: the gateway's outbox forked (a restored backup, two gateways with one id). */
  | 'seq_fork'
  /** The same batch number again with another header. */
  | 'batch_fork'
  /** Batch numbers skip: the batches between never arrived. */
  | 'batch_gap'
  /** A batch's carriedInNano is not the payer's previous batch's carriedOutNano. */
  | 'carry_mismatch'
  /** A signed batch whose records do not match its header (refused). */
  | 'bad_batch'
  /** A key upload whose endorsement does not verify (refused). */
  | 'bad_key_endorsement'
  /** A settlement of a batch cloud-sync does not hold. */
  | 'settlement_unknown_batch'
  /** A settlement whose amount or currency is not its batch's. */
  | 'settlement_mismatch';

export interface AlertDraft {
  kind: AlertKind;
  detail: string;
  seq?: number;
  batchNo?: number;
}

/** Alerts kept per gateway by default. */
export const ALERTS_PER_GATEWAY_MAX = 1_000;

export async function insertAlerts(tx: SqlDb, gatewayId: string, alerts: readonly AlertDraft[], now: Date, keptMax: number): Promise<void> {
  if (alerts.length === 0) return;
  for (const alert of alerts) {
    await tx.query('INSERT INTO alerts (gateway_id, at, kind, detail, seq, batch_no) VALUES ($1, $2, $3, $4, $5, $6)', [
      gatewayId, now.toISOString(), alert.kind, alert.detail, alert.seq ?? null, alert.batchNo ?? null,
    ]);
  }
  await tx.query(
    'DELETE FROM alerts WHERE gateway_id = $1 AND id <= (SELECT id FROM alerts WHERE gateway_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)',
    [gatewayId, keptMax],
  );
}
