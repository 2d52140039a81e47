/**
 * One upload envelope in, one answer out (protocol/upload.ts, docs/cloud-sync.md). The
 * checks, in the order a refusal names them:
 *
 *   1. shape (envelope-schema.ts)                       → malformed, naming the field
 *   2. the gateway is registered                        → unknown_gateway
 *   3. the envelope's signature, by one of its keys     → bad_signature
 *   4. seq: last + 1 is stored; a repeat with the same digest is a duplicate (200); a
 *      repeat with another digest is a fork (conflict + alert); past last + 1 is a gap
 *      (out_of_order with expectedSeq)
 *   5. the item's own checks (batch, settlement, key)   → bad_batch, malformed, bad_signature
 *
 * Steps 4 and 5 and the storing run in ONE transaction that first locks the gateway's row
 * (`SELECT … FOR UPDATE`): instances behind a load balancer then take one gateway's
 * uploads one at a time and in order, while different gateways go in parallel. Work that
 * needs no database (parsing, hashing, signature checks, record sums) happens before,
 * so the lock is held only for the reads and writes.
 */
import { uploadDigest, unsignedOf, type UploadAnswer, type UploadEnvelope, type UploadRefusal } from '../protocol/upload.ts';
import { ALERTS_PER_GATEWAY_MAX, insertAlerts } from './alerts.ts';
import type { SqlDb } from './db.ts';
import { parseEnvelope } from './envelope-schema.ts';
import { loadGatewayKeys } from './gateway-registry.ts';
import { prepareBatch, storeBatchPart, type PreparedBatch } from './ingest-batch.ts';
import { GatewayKeyLookup, Refusal, type IngestLimits, type ItemContext, type LockedGateway } from './ingest-context.ts';
import { storeHealth, storeKey, storeSettlement } from './ingest-items.ts';

export interface IngestOptions {
  now?: () => Date;
  limits?: Partial<IngestLimits>;
}

export interface IngestResult {
  httpStatus: number;
  answer: UploadAnswer;
}

export const HEALTH_REPORTS_PER_GATEWAY_MAX = 100;

const REFUSAL_STATUS: Readonly<Record<UploadRefusal, number>> = Object.freeze({
  malformed: 400,
  bad_batch: 400,
  unknown_gateway: 401,
  bad_signature: 401,
  out_of_order: 409,
  conflict: 409,
  too_large: 413,
});

export function httpStatusOf(answer: UploadAnswer): number {
  return answer.status === 'refused' ? REFUSAL_STATUS[answer.reason] : 200;
}

const result = (answer: UploadAnswer): IngestResult => ({ httpStatus: httpStatusOf(answer), answer });

/** Checks the body's shape, then {@link ingestEnvelope}. */
export async function ingestUpload(db: SqlDb, body: unknown, options: IngestOptions = {}): Promise<IngestResult> {
  const parsed = parseEnvelope(body);
  if (!parsed.ok) return result(new Refusal('malformed', parsed.detail).answer);
  return ingestEnvelope(db, parsed.envelope, options);
}

/** Verifies and stores an envelope whose shape parseEnvelope accepted. */
export async function ingestEnvelope(db: SqlDb, envelope: UploadEnvelope, options: IngestOptions = {}): Promise<IngestResult> {
  const now = (options.now ?? (() => new Date()))();
  const limits: IngestLimits = {
    alertsPerGatewayMax: options.limits?.alertsPerGatewayMax ?? ALERTS_PER_GATEWAY_MAX,
    healthReportsPerGatewayMax: options.limits?.healthReportsPerGatewayMax ?? HEALTH_REPORTS_PER_GATEWAY_MAX,
  };
  const { gatewayId } = envelope;
  const known = await loadGatewayKeys(db, gatewayId);
  if (!known) return result(new Refusal('unknown_gateway', `gateway ${gatewayId} is not registered with this cloud-sync`).answer);
  const keys = new GatewayKeyLookup(gatewayId, known);
  try {
    const unsigned = unsignedOf(envelope);
    // A key this read does not know may have been endorsed a moment ago: decided under the lock.
    const signedBefore = keys.check(unsigned, envelope.sig);
    if (signedBefore === 'invalid') throw badSignature(envelope, 'does not verify');
    const digest = uploadDigest(envelope);
    const prepared = prepareItem(envelope);
    return result(await db.transaction(async (tx) => {
      const gateway = await lockGateway(tx, gatewayId);
      // Verified already unless the key was unknown: keys are never removed, and a 16 MB envelope is not verified twice.
      const signed = signedBefore === 'valid' ? 'valid' : await keys.checkFresh(tx, unsigned, envelope.sig);
      if (signed === 'unknown_key' && envelope.seq > gateway.lastSeq + 1) throw outOfOrder(envelope, gateway);
      if (signed !== 'valid') throw badSignature(envelope, signed === 'unknown_key' ? `is by key ${envelope.sig.keyId}, which is not registered for the gateway (registered: ${keys.keyIds.join(', ')})` : 'does not verify');
      if (envelope.seq <= gateway.lastSeq) return repeated(tx, envelope, digest, now);
      if (envelope.seq > gateway.lastSeq + 1) throw outOfOrder(envelope, gateway);
      if (prepared instanceof Refusal) throw prepared;
      const ctx: ItemContext = { tx, envelope, gateway, keys, now, alerts: [], limits };
      await storeItem(ctx, prepared);
      // The upload's row and the gateway's new seq in one statement: a round trip fewer per upload.
      await tx.query(
        `WITH stored AS (INSERT INTO uploads (gateway_id, seq, kind, digest, key_id, created_at, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7))
         UPDATE gateways SET last_seq = $2, last_seen_at = $7, last_created_at = $6, last_batch_no = $8 WHERE id = $1`,
        [gatewayId, envelope.seq, envelope.kind, digest, envelope.sig.keyId, envelope.createdAt, now.toISOString(), gateway.lastBatchNo],
      );
      await insertAlerts(tx, gatewayId, ctx.alerts, now, limits.alertsPerGatewayMax);
      const alerts = ctx.alerts.map((alert) => alert.kind);
      return { status: 'accepted', seq: envelope.seq, ...(alerts.length > 0 ? { alerts } : {}) } satisfies UploadAnswer;
    }));
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    await noteRefusal(db, envelope, error, now, limits);
    return result(error.answer);
  }
}

type PreparedItem = { kind: 'batch'; batch: PreparedBatch } | { kind: 'other' };

function prepareItem(envelope: UploadEnvelope): PreparedItem | Refusal {
  if (envelope.kind !== 'batch') return { kind: 'other' };
  const batch = prepareBatch(envelope.gatewayId, envelope.batch);
  return batch instanceof Refusal ? batch : { kind: 'batch', batch };
}

async function storeItem(ctx: ItemContext, prepared: PreparedItem): Promise<void> {
  const { envelope } = ctx;
  switch (envelope.kind) {
    case 'batch':
      if (prepared.kind !== 'batch') throw new Error('Cannot store a batch upload that was not prepared as one'); // a bug
      return storeBatchPart(ctx, envelope.batch, prepared.batch);
    case 'settlement':
      return storeSettlement(ctx, envelope.settlement);
    case 'health':
      return storeHealth(ctx, envelope.health);
    case 'key':
      return storeKey(ctx, envelope.key);
  }
}

async function lockGateway(tx: SqlDb, gatewayId: string): Promise<LockedGateway> {
  const { rows } = await tx.query<{ last_seq: string; last_batch_no: string }>('SELECT last_seq::text, last_batch_no::text FROM gateways WHERE id = $1 FOR UPDATE', [gatewayId]);
  const row = rows[0];
  if (!row) throw new Refusal('unknown_gateway', `gateway ${gatewayId} is not registered with this cloud-sync`);
  return { id: gatewayId, lastSeq: Number(row.last_seq), lastBatchNo: Number(row.last_batch_no) };
}

/** A seq already stored: the same envelope again is acknowledged again; another one is a fork. */
async function repeated(tx: SqlDb, envelope: UploadEnvelope, digest: string, now: Date): Promise<UploadAnswer> {
  const { rows } = await tx.query<{ digest: string }>('SELECT digest FROM uploads WHERE gateway_id = $1 AND seq = $2', [envelope.gatewayId, envelope.seq]);
  const stored = rows[0]?.digest;
  if (stored !== digest) {
    throw new Refusal('conflict', `seq ${envelope.seq} is already stored with other content (digest ${stored ?? 'unknown'}, this one ${digest}): the gateway's outbox forked`, { alert: 'seq_fork' });
  }
  // Still a sign of life: the gateway resends what it has not seen acknowledged.
  await tx.query('UPDATE gateways SET last_seen_at = $2 WHERE id = $1', [envelope.gatewayId, now.toISOString()]);
  return { status: 'duplicate', seq: envelope.seq };
}

function outOfOrder(envelope: UploadEnvelope, gateway: LockedGateway): Refusal {
  return new Refusal('out_of_order', `seq ${envelope.seq} cannot be stored before seq ${gateway.lastSeq + 1}`, { expectedSeq: gateway.lastSeq + 1 });
}

function badSignature(envelope: UploadEnvelope, why: string): Refusal {
  return new Refusal('bad_signature', `the signature of seq ${envelope.seq} from gateway ${envelope.gatewayId} ${why}`);
}

/**
 * Counts a refusal on the gateway's row (the fleet API shows it) and records the alert
 * it carries, in a transaction of its own: the upload's was rolled back. A gap is the
 * normal way to ask for a resend and is not counted.
 */
async function noteRefusal(db: SqlDb, envelope: UploadEnvelope, refusal: Refusal, now: Date, limits: IngestLimits): Promise<void> {
  if (refusal.reason === 'out_of_order' || refusal.reason === 'unknown_gateway') return;
  await db.transaction(async (tx) => {
    await tx.query('UPDATE gateways SET refusals = refusals + 1, last_refusal = $2, last_refusal_at = $3 WHERE id = $1', [
      envelope.gatewayId, `${refusal.reason}: ${refusal.message}`.slice(0, 1_000), now.toISOString(),
    ]);
    if (refusal.alert) await insertAlerts(tx, envelope.gatewayId, [{ kind: refusal.alert, detail: refusal.message, seq: envelope.seq }], now, limits.alertsPerGatewayMax);
  });
}
