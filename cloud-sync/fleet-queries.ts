/**
 * What the fleet API reads: gateways with their last contact and health, totals per payer
 * and currency, batches with their settlement state, alerts. Money leaves the database as
 * text (numeric sums are exact) and stays a decimal string: integer nano or minor units,
 * plus the same formatted in the currency's major unit for people.
 *
 * ORDER BY names columns with their table (`batches.batch_no`): a bare name would mean the
 * output column of the same name, which is cast to text, and sort 10 before 9.
 */
import { formatMinor, formatNano } from '../protocol/money.ts';
import type { HealthUpload } from '../protocol/upload.ts';
import { isoOf, type SqlDb } from './db.ts';

/** Rows in one page of any list. */
export const PAGE_ROWS_MAX = 1_000;

export interface FleetGateway {
  id: string;
  name: string;
  registeredAt: string;
  keys: number;
  lastSeq: number;
  lastBatchNo: number;
  lastSeenAt: string | null;
  /** createdAt of the last item stored: when it went into the gateway's outbox. */
  lastCreatedAt: string | null;
  /** now − lastCreatedAt: how far behind the gateway the cloud's copy may be. */
  uploadLagMs: number | null;
  latestHealth: HealthUpload | null;
  refusals: number;
  lastRefusal: string | null;
  lastRefusalAt: string | null;
  alerts: number;
}

export async function listGateways(db: SqlDb, page: { limit: number; after?: string }, now: Date): Promise<FleetGateway[]> {
  const { rows } = await db.query<{
    id: string; name: string; registered_at: string; keys: number; last_seq: string; last_batch_no: string; last_seen_at: string | null;
    last_created_at: string | null; latest_health: string | null; refusals: string; last_refusal: string | null; last_refusal_at: string | null; alerts: number;
  }>(
    `SELECT g.id, g.name, ${isoOf('g.registered_at')} AS registered_at, g.last_seq::text, g.last_batch_no::text,
            ${isoOf('g.last_seen_at')} AS last_seen_at, ${isoOf('g.last_created_at')} AS last_created_at, g.latest_health,
            g.refusals::text, g.last_refusal, ${isoOf('g.last_refusal_at')} AS last_refusal_at,
            (SELECT count(*) FROM gateway_keys k WHERE k.gateway_id = g.id)::int AS keys,
            (SELECT count(*) FROM alerts a WHERE a.gateway_id = g.id)::int AS alerts
       FROM gateways g WHERE g.id > $1 ORDER BY g.id LIMIT $2`,
    [page.after ?? '', page.limit],
  );
  return rows.map((row) => ({
    id: row.id, name: row.name, registeredAt: row.registered_at, keys: row.keys, lastSeq: Number(row.last_seq), lastBatchNo: Number(row.last_batch_no),
    lastSeenAt: row.last_seen_at, lastCreatedAt: row.last_created_at,
    uploadLagMs: row.last_created_at === null ? null : Math.max(0, now.getTime() - Date.parse(row.last_created_at)),
    latestHealth: row.latest_health === null ? null : (JSON.parse(row.latest_health) as HealthUpload),
    refusals: Number(row.refusals), lastRefusal: row.last_refusal, lastRefusalAt: row.last_refusal_at, alerts: row.alerts,
  }));
}

export interface PayerTotal {
  payer: string;
  currency: string;
  batches: number;
  records: string;
  /** Sum of the batches' totalNano: what the records charged. */
  totalNano: string;
  total: string;
  /** Sum of amountMinor: what the batches ask to be paid. */
  amountMinor: string;
  amount: string;
  /** amountMinor of the batches the gateway reports `settled`. */
  paidMinor: string;
  paid: string;
}

/** `YYYY-MM` → the month's bounds in UTC; undefined when it is not a month. */
export function monthBounds(period: string): { from: string; to: string } | undefined {
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(period);
  if (!match) return undefined;
  const year = Number(match[1]);
  const month = Number(match[2]);
  return { from: new Date(Date.UTC(year, month - 1, 1)).toISOString(), to: new Date(Date.UTC(year, month, 1)).toISOString() };
}

/**
 * Totals of complete batches per payer and currency, for batches sealed in `period` (a
 * UTC month: the billing period the payments fall in) or all of them. A batch still
 * missing parts is left out: its header's totals are not checked yet.
 */
export async function payerTotals(db: SqlDb, filter: { period?: { from: string; to: string }; gatewayId?: string }): Promise<PayerTotal[]> {
  const { rows } = await db.query<{ payer: string; currency: string; batches: number; records: string; total_nano: string; amount_minor: string; paid_minor: string }>(
    `SELECT payer, currency, count(*)::int AS batches, sum(record_count)::text AS records, sum(total_nano)::text AS total_nano,
            sum(amount_minor)::text AS amount_minor, coalesce(sum(amount_minor) FILTER (WHERE state = 'settled'), 0)::text AS paid_minor
       FROM batches
      WHERE complete AND ($1::timestamptz IS NULL OR sealed_at >= $1::timestamptz) AND ($2::timestamptz IS NULL OR sealed_at < $2::timestamptz)
        AND ($3::text IS NULL OR gateway_id = $3::text)
      GROUP BY payer, currency ORDER BY payer, currency`,
    [filter.period?.from ?? null, filter.period?.to ?? null, filter.gatewayId ?? null],
  );
  return rows.map((row) => ({
    payer: row.payer, currency: row.currency, batches: row.batches, records: row.records,
    totalNano: row.total_nano, total: formatNano(BigInt(row.total_nano)),
    amountMinor: row.amount_minor, amount: formatMinor(BigInt(row.amount_minor), row.currency),
    paidMinor: row.paid_minor, paid: formatMinor(BigInt(row.paid_minor), row.currency),
  }));
}

export interface FleetBatch {
  batchId: string;
  gatewayId: string;
  batchNo: number;
  payer: string;
  currency: string;
  recordCount: number;
  totalNano: string;
  carriedInNano: string;
  amountMinor: string;
  carriedOutNano: string;
  merkleRoot: string;
  sealedAt: string;
  parts: number;
  partsReceived: number;
  complete: boolean;
  state: string;
  stateAt: string;
  paymentId: string | null;
  bankStatus: string | null;
  receivedAt: string;
}

export interface BatchFilter {
  gatewayId?: string;
  state?: string;
  payer?: string;
  complete?: boolean;
  /** A batchId: the page starts after it (gateway, then batch number). */
  after?: { gatewayId: string; batchNo: number };
  limit: number;
}

export async function listBatches(db: SqlDb, filter: BatchFilter): Promise<FleetBatch[]> {
  const { rows } = await db.query<{
    batch_id: string; gateway_id: string; batch_no: string; payer: string; currency: string; record_count: string; total_nano: string; carried_in_nano: string;
    amount_minor: string; carried_out_nano: string; merkle_root: string; sealed_at: string; parts: number; parts_received: number; complete: boolean;
    state: string; state_at: string; payment_id: string | null; bank_status: string | null; received_at: string;
  }>(
    `SELECT batch_id, gateway_id, batch_no::text, payer, currency, record_count::text, total_nano::text, carried_in_nano::text, amount_minor::text,
            carried_out_nano::text, merkle_root, ${isoOf('sealed_at')} AS sealed_at, parts, parts_received, complete, state,
            ${isoOf('state_at')} AS state_at, payment_id, bank_status, ${isoOf('received_at')} AS received_at
       FROM batches
      WHERE ($1::text IS NULL OR gateway_id = $1::text) AND ($2::text IS NULL OR state = $2::text) AND ($3::text IS NULL OR payer = $3::text)
        AND ($4::boolean IS NULL OR complete = $4::boolean) AND ($5::text IS NULL OR (gateway_id, batch_no) > ($5::text, $6::bigint))
      ORDER BY batches.gateway_id, batches.batch_no LIMIT $7`,
    [filter.gatewayId ?? null, filter.state ?? null, filter.payer ?? null, filter.complete ?? null, filter.after?.gatewayId ?? null, filter.after?.batchNo ?? 0, filter.limit],
  );
  return rows.map((row) => ({
    batchId: row.batch_id, gatewayId: row.gateway_id, batchNo: Number(row.batch_no), payer: row.payer, currency: row.currency,
    recordCount: Number(row.record_count), totalNano: row.total_nano, carriedInNano: row.carried_in_nano, amountMinor: row.amount_minor,
    carriedOutNano: row.carried_out_nano, merkleRoot: row.merkle_root, sealedAt: row.sealed_at, parts: row.parts, partsReceived: row.parts_received,
    complete: row.complete, state: row.state, stateAt: row.state_at, paymentId: row.payment_id, bankStatus: row.bank_status, receivedAt: row.received_at,
  }));
}

export interface FleetAlert {
  id: number;
  gatewayId: string;
  at: string;
  kind: string;
  detail: string;
  seq: number | null;
  batchNo: number | null;
}

export async function listAlerts(db: SqlDb, filter: { gatewayId?: string; kind?: string; before?: number; limit: number }): Promise<FleetAlert[]> {
  const { rows } = await db.query<{ id: string; gateway_id: string; at: string; kind: string; detail: string; seq: string | null; batch_no: string | null }>(
    `SELECT id::text, gateway_id, ${isoOf('at')} AS at, kind, detail, seq::text, batch_no::text
       FROM alerts
      WHERE ($1::text IS NULL OR gateway_id = $1::text) AND ($2::text IS NULL OR kind = $2::text) AND ($3::bigint IS NULL OR id < $3::bigint)
      ORDER BY alerts.id DESC LIMIT $4`,
    [filter.gatewayId ?? null, filter.kind ?? null, filter.before ?? null, filter.limit],
  );
  return rows.map((row) => ({
    id: Number(row.id), gatewayId: row.gateway_id, at: row.at, kind: row.kind, detail: row.detail,
    seq: row.seq === null ? null : Number(row.seq), batchNo: row.batch_no === null ? null : Number(row.batch_no),
  }));
}
