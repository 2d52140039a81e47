/**
 * cloud-sync's contract, run against both storages: embedded PGlite and a real PostgreSQL
 * started for the suite (Debian's package; skipped locally without it, a failure under
 * CI=true). Each test uses gateways of its own, so one database serves the whole suite.
 */
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite, openPostgres, type SqlDb } from '../cloud-sync/db.ts';
import { ingestUpload } from '../cloud-sync/ingest.ts';
import { migrate } from '../cloud-sync/migrations.ts';
import { buildCloudSyncApp } from '../cloud-sync/server.ts';
import { SimulatedGateway, type SealedBatch } from '../cloud-sync/simulated-gateway.ts';
import { endorseKey } from '../gateway/ledger/gateway-key.ts';
import { generateSigningKey, signPayload } from '../protocol/signing.ts';
import { signUpload, unsignedOf, UPLOAD_BYTES_MAX, UPLOAD_RECORDS_MAX, type UploadAnswer, type UploadEnvelope } from '../protocol/upload.ts';
import type { BatchHeader } from '../protocol/usage-record.ts';
import { POSTGRES_AVAILABLE, startPostgres } from './support/postgres-server.ts';

const ADMIN_TOKEN = 'contract-admin-token-0123456789';

interface Backend {
  name: string;
  available: boolean;
  open(): Promise<{ db: SqlDb; stop(): Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: 'PGlite', available: true,
    open: async () => {
      const db = await openPglite();
      return { db, stop: () => db.close() };
    },
  },
  {
    name: 'PostgreSQL', available: POSTGRES_AVAILABLE,
    open: async () => {
      const server = await startPostgres();
      const db = openPostgres({ url: server.url });
      return { db, stop: async () => { await db.close(); await server.stop(); } };
    },
  },
];

/** A gateway clock in November 2026, a second further at each reading. */
function novemberClock(): () => Date {
  let at = Date.parse('2026-11-10T08:00:00.000Z');
  return () => new Date((at += 1_000));
}

/** A sealed batch's header changed and signed again by `gateway` (a gateway that seals wrongly). */
function resealed(gateway: SimulatedGateway, batch: SealedBatch, change: Partial<BatchHeader>): SealedBatch {
  const { sig: _sig, ...header } = batch.header;
  const changed = { ...header, ...change };
  return { header: { ...changed, sig: signPayload(changed, gateway.key) }, records: batch.records };
}

/** A one-part batch upload at `seq`, signed by the gateway: to try several versions of one item. */
function batchAt(gateway: SimulatedGateway, seq: number, batch: SealedBatch): UploadEnvelope {
  return signUpload({ v: 1, gatewayId: gateway.id, seq, createdAt: '2026-11-10T09:00:00.000Z', kind: 'batch', batch: { header: batch.header, part: 1, parts: 1, firstRecord: 0, records: batch.records } }, gateway.key);
}

describe.each(BACKENDS)('cloud-sync on $name', (backend) => {
  describe.skipIf(!backend.available)('contract', () => {
    let app: FastifyInstance;
    let storage: { db: SqlDb; stop(): Promise<void> };
    let gateways = 0;

    beforeAll(async () => {
      storage = await backend.open();
      expect(await migrate(storage.db)).toEqual([1]);
      app = await buildCloudSyncApp({ db: storage.db, adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }) });
    }, 60_000);
    afterAll(async () => {
      await app?.close();
      await storage?.stop();
    });

    async function upload(envelope: unknown): Promise<{ status: number; answer: UploadAnswer }> {
      const response = await app.inject({ method: 'POST', url: '/v1/uploads', payload: envelope as object });
      return { status: response.statusCode, answer: response.json() as UploadAnswer };
    }
    async function admin<T>(method: 'GET' | 'POST', url: string, payload?: object, token = ADMIN_TOKEN): Promise<{ status: number; body: T }> {
      const response = await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });
      return { status: response.statusCode, body: response.json() as T };
    }
    async function registeredGateway(): Promise<SimulatedGateway> {
      gateways += 1;
      const gateway = new SimulatedGateway(`gw-${backend.name.toLowerCase()}-${gateways}`, { clock: novemberClock() });
      const { status } = await admin('POST', '/v1/gateways', { id: gateway.id, publicKey: gateway.publicKeyHex });
      expect(status).toBe(201);
      return gateway;
    }
    async function alertsOf(gatewayId: string): Promise<Array<{ kind: string; detail: string }>> {
      return (await admin<{ items: Array<{ kind: string; detail: string }> }>('GET', `/v1/fleet/alerts?gatewayId=${gatewayId}`)).body.items;
    }
    async function batchesOf(gatewayId: string): Promise<Array<Record<string, unknown>>> {
      return (await admin<{ items: Array<Record<string, unknown>> }>('GET', `/v1/fleet/batches?gatewayId=${gatewayId}`)).body.items;
    }
    const accepted = (seq: number, alerts?: string[]) => ({ status: 200, answer: { status: 'accepted', seq, ...(alerts ? { alerts } : {}) } });

    it('applies no migration twice, and refuses a database newer than itself', async () => {
      expect(await migrate(storage.db)).toEqual([]);
      await storage.db.query("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')");
      try {
        await expect(migrate(storage.db)).rejects.toThrow('it has schema migration(s) 999, newer than this cloud-sync knows (up to 1)');
      } finally {
        await storage.db.query('DELETE FROM schema_migrations WHERE version = 999');
      }
    });

    it('keeps at most the configured number of alerts and health reports per gateway, the newest', async () => {
      const gateway = await registeredGateway();
      const limits = { alertsPerGatewayMax: 3, healthReportsPerGatewayMax: 2 };
      for (let i = 0; i < 5; i += 1) {
        const batch = gateway.seal(gateway.records('acme', 'EUR', [1n]));
        expect((await ingestUpload(storage.db, gateway.settlement(batch, 'settled'), { limits })).answer).toMatchObject({ status: 'accepted', alerts: ['settlement_unknown_batch'] });
        expect((await ingestUpload(storage.db, gateway.health({ outboxItems: i }), { limits })).answer).toMatchObject({ status: 'accepted' });
      }
      expect((await alertsOf(gateway.id)).map((alert) => alert.detail)).toEqual([5, 4, 3].map((n) => `settlement settled of batch ${n}, which cloud-sync does not hold`));
      const { rows } = await storage.db.query<{ seq: string }>('SELECT seq::text FROM health_reports WHERE gateway_id = $1 ORDER BY health_reports.seq', [gateway.id]);
      expect(rows.map((row) => Number(row.seq))).toEqual([8, 10]);
    });

    it('registers a gateway once, and refuses another key for its id, a missing token and a wrong one', async () => {
      const gateway = await registeredGateway();
      expect(await admin('POST', '/v1/gateways', { id: gateway.id, publicKey: gateway.publicKeyHex })).toMatchObject({ status: 200, body: { status: 'exists', keyId: gateway.key.keyId } });
      const other = await admin<{ message: string }>('POST', '/v1/gateways', { id: gateway.id, publicKey: new SimulatedGateway('x').publicKeyHex });
      expect(other.status).toBe(409);
      expect(other.body.message).toContain('endorsed key upload');
      expect((await app.inject({ method: 'GET', url: '/v1/fleet/gateways' })).statusCode).toBe(401);
      expect((await admin('GET', '/v1/fleet/gateways', undefined, 'wrong-token-wrong-token')).status).toBe(401);
      expect((await admin<{ message: string }>('POST', '/v1/gateways', { id: 'Bad Id', publicKey: gateway.publicKeyHex })).status).toBe(400);
    });

    it('stores a batch, its settlement and a health report in order, and shows them in the fleet API', async () => {
      const gateway = await registeredGateway();
      const batch = gateway.seal(gateway.records('acme', 'EUR', [1_234_567_891n, 5_000_000n]));
      expect(await upload(gateway.batchEnvelopes(batch)[0])).toEqual(accepted(1));
      expect(await upload(gateway.settlement(batch, 'settled', { paymentId: 'pay-1', bankStatus: 'ACSC' }))).toEqual(accepted(2));
      expect(await upload(gateway.health({ devicesConnected: 3 }))).toEqual(accepted(3));
      const fleet = await admin<{ items: Array<Record<string, unknown>> }>('GET', `/v1/fleet/gateways?after=${gateway.id.slice(0, -1)}&limit=1000`);
      const row = fleet.body.items.find((item) => item.id === gateway.id);
      expect(row).toMatchObject({ lastSeq: 3, lastBatchNo: 1, keys: 1, alerts: 0, refusals: 0, latestHealth: { devicesConnected: 3, chainOk: true } });
      expect(row?.uploadLagMs).toBeTypeOf('number');
      expect(await batchesOf(gateway.id)).toEqual([expect.objectContaining({
        batchId: `${gateway.id}/1`, state: 'settled', paymentId: 'pay-1', bankStatus: 'ACSC', complete: true, recordCount: 2,
        totalNano: '1239567891', amountMinor: '123', carriedOutNano: '9567891',
      })]);
    });

    it('acknowledges a repeated upload as a duplicate and stores it once', async () => {
      const gateway = await registeredGateway();
      const [envelope] = gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [10_000_000n])));
      expect(await upload(envelope)).toEqual(accepted(1));
      expect(await upload(envelope)).toEqual({ status: 200, answer: { status: 'duplicate', seq: 1 } });
      expect(await batchesOf(gateway.id)).toHaveLength(1);
    });

    it('refuses an upload past the next seq as out_of_order, naming the seq to resend from', async () => {
      const gateway = await registeredGateway();
      const first = gateway.health();
      gateway.health(); // seq 2, never sent
      const third = gateway.health();
      expect(await upload(third)).toEqual({ status: 409, answer: { status: 'refused', reason: 'out_of_order', detail: 'seq 3 cannot be stored before seq 1', expectedSeq: 1 } });
      expect(await upload(first)).toEqual(accepted(1));
      expect((await upload(third)).answer).toMatchObject({ reason: 'out_of_order', expectedSeq: 2 });
    });

    it('refuses other content under a stored seq as a conflict and raises a seq_fork alert', async () => {
      const gateway = await registeredGateway();
      const original = gateway.health({ devicesConnected: 1 });
      expect(await upload(original)).toEqual(accepted(1));
      const fork = signUpload({ ...unsignedOf(original), kind: 'health', health: { ...(original as UploadEnvelope & { kind: 'health' }).health, devicesConnected: 2 } }, gateway.key);
      const answer = await upload(fork);
      expect(answer).toMatchObject({ status: 409, answer: { status: 'refused', reason: 'conflict' } });
      expect((answer.answer as { detail: string }).detail).toContain('seq 1 is already stored with other content');
      expect(await alertsOf(gateway.id)).toEqual([expect.objectContaining({ kind: 'seq_fork' })]);
    });

    it('refuses an envelope signed by a key the gateway never registered, or altered after signing, as bad_signature', async () => {
      const gateway = await registeredGateway();
      const forged = signUpload(unsignedOf(gateway.health()), generateSigningKey());
      expect(await upload(forged)).toMatchObject({ status: 401, answer: { reason: 'bad_signature' } });
      // The right keyId, another key's signature value.
      const impostor = { ...forged, sig: { ...forged.sig, keyId: gateway.key.keyId } };
      expect(await upload(impostor)).toMatchObject({ status: 401, answer: { reason: 'bad_signature', detail: expect.stringContaining('does not verify') } });
      const batch = gateway.seal(gateway.records('acme', 'EUR', [7n]));
      const [envelope] = gateway.batchEnvelopes(batch) as [UploadEnvelope & { kind: 'batch' }];
      const altered = { ...envelope, batch: { ...envelope.batch, records: [envelope.batch.records[0]!.replace('"amountNano":"7"', '"amountNano":"8"')] } };
      expect(await upload(altered)).toMatchObject({ status: 401, answer: { reason: 'bad_signature' } });
      // A replay under a seq of the attacker's choosing: the seq is signed too.
      expect(await upload({ ...envelope, seq: 1 })).toMatchObject({ status: 401, answer: { reason: 'bad_signature' } });
      expect(await alertsOf(gateway.id)).toEqual([]);
      const fleet = await admin<{ items: Array<{ id: string; refusals: number; lastRefusal: string }> }>('GET', '/v1/fleet/gateways?limit=1000');
      expect(fleet.body.items.find((item) => item.id === gateway.id)).toMatchObject({ refusals: 4, lastRefusal: expect.stringContaining('bad_signature') });
    });

    it('refuses uploads from a gateway that is not registered', async () => {
      const stranger = new SimulatedGateway('never-registered');
      expect(await upload(stranger.health())).toEqual({ status: 401, answer: { status: 'refused', reason: 'unknown_gateway', detail: 'gateway never-registered is not registered with this cloud-sync' } });
    });

    it('refuses a malformed envelope naming the field', async () => {
      const gateway = await registeredGateway();
      const [envelope] = gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [7n]))) as [UploadEnvelope & { kind: 'batch' }];
      const numberAmount = { ...envelope, batch: { ...envelope.batch, header: { ...envelope.batch.header, totalNano: 7 } } };
      expect(await upload(numberAmount)).toEqual({ status: 400, answer: { status: 'refused', reason: 'malformed', detail: 'batch.header.totalNano: Invalid input: expected string, received number' } });
      const { seq: _seq, ...noSeq } = envelope;
      expect((await upload(noSeq)).answer).toMatchObject({ reason: 'malformed', detail: expect.stringMatching(/^seq: /) });
      expect((await upload({ ...envelope, extra: 1 })).answer).toMatchObject({ reason: 'malformed', detail: expect.stringContaining('extra') });
      expect((await upload([1, 2])).answer).toMatchObject({ reason: 'malformed', detail: 'body: must be a JSON object (an upload envelope)' });
      const notJson = await app.inject({ method: 'POST', url: '/v1/uploads', headers: { 'content-type': 'application/json' }, payload: '{"v":1,' });
      expect(notJson.statusCode).toBe(400);
      expect(notJson.json()).toMatchObject({ status: 'refused', reason: 'malformed' });
    });

    it('refuses a signed batch whose records do not match its header as bad_batch, stores nothing of it, and takes the sound one at the same seq', async () => {
      const gateway = await registeredGateway();
      const batch = gateway.seal(gateway.records('acme', 'EUR', [1_000n, 2_000n, 3_000n]));
      const tamperedRecords = [batch.records[0]!, batch.records[1]!.replace('"amountNano":"2000"', '"amountNano":"2001"'), batch.records[2]!];
      // Signed by the gateway itself: a gateway whose journal or outbox was altered.
      const tampered = signUpload({ ...unsignedOf(gateway.batchEnvelopes(batch)[0]!), kind: 'batch', batch: { header: batch.header, part: 1, parts: 1, firstRecord: 0, records: tamperedRecords } }, gateway.key);
      const refused = await upload(tampered);
      expect(refused).toMatchObject({ status: 400, answer: { reason: 'bad_batch', detail: `batch 1: the records' amountNano add up to 6001, but the header's totalNano is 6000` } });
      const swapped = signUpload({ ...unsignedOf(tampered), kind: 'batch', batch: { header: batch.header, part: 1, parts: 1, firstRecord: 0, records: [batch.records[0]!, batch.records[1]!.replace('"deviceId":"cnc-1"', '"deviceId":"cnc-2"'), batch.records[2]!] } }, gateway.key);
      expect((await upload(swapped)).answer).toMatchObject({ reason: 'bad_batch', detail: expect.stringContaining("the records' Merkle root is") });
      expect(await batchesOf(gateway.id)).toEqual([]);
      expect((await alertsOf(gateway.id)).map((alert) => alert.kind)).toEqual(['bad_batch', 'bad_batch']);
      expect(await upload(batchAt(gateway, 1, batch))).toEqual(accepted(1));
    });

    it('refuses a batch header altered after sealing, or whose money does not add up', async () => {
      const gateway = await registeredGateway();
      const batch = gateway.seal(gateway.records('acme', 'EUR', [15_000_000n]));
      const altered = { ...batch, header: { ...batch.header, amountMinor: '2' } };
      expect((await upload(batchAt(gateway, 1, altered))).answer).toMatchObject({
        reason: 'bad_batch', detail: `batch ${gateway.id}/1: totalNano 15000000 + carriedInNano 0 = 15000000 nano, but amountMinor 2 × 10000000 + carriedOutNano 5000000 = 25000000 nano`,
      });
      const wrongRounding = resealed(gateway, batch, { amountMinor: '0', carriedOutNano: '15000000' });
      expect((await upload(batchAt(gateway, 1, wrongRounding))).answer).toMatchObject({ reason: 'bad_batch', detail: expect.stringContaining('not the remainder below one minor unit') });
      const unsigned = { ...batch, header: { ...batch.header, carriedOutNano: '5000001', totalNano: '15000001' } };
      expect((await upload(batchAt(gateway, 1, unsigned))).answer).toMatchObject({ reason: 'bad_batch', detail: 'batch 1: header.sig does not verify with key ' + gateway.key.keyId + ' (the header was altered after sealing)' });
      expect(await upload(batchAt(gateway, 1, batch))).toEqual(accepted(1));
    });

    it('assembles a batch sent in parts and checks its Merkle root once the last part is in', async () => {
      const gateway = await registeredGateway();
      const batch = gateway.seal(gateway.records('globex', 'GBP', Array.from({ length: 10 }, (_, i) => BigInt(i + 1) * 1_000_000n)));
      const parts = gateway.batchEnvelopes(batch, 4);
      expect(parts).toHaveLength(3);
      expect(await upload(parts[0])).toEqual(accepted(1));
      expect(await upload(parts[1])).toEqual(accepted(2));
      expect(await batchesOf(gateway.id)).toEqual([expect.objectContaining({ parts: 3, partsReceived: 2, complete: false })]);
      expect(await upload(parts[2])).toEqual(accepted(3));
      expect(await batchesOf(gateway.id)).toEqual([expect.objectContaining({ parts: 3, partsReceived: 3, complete: true, totalNano: '55000000', amountMinor: '5', carriedOutNano: '5000000' })]);
      expect(await upload(parts[1])).toEqual({ status: 200, answer: { status: 'duplicate', seq: 2 } });
    });

    it('takes a batch of more records than one upload may hold in parts of the largest size, and refuses a part over it', async () => {
      const gateway = await registeredGateway();
      const records = UPLOAD_RECORDS_MAX + 5_000;
      const batch = gateway.seal(gateway.records('bulk', 'EUR', Array.from({ length: records }, (_, i) => BigInt(i % 1_000) * 1_234n)));
      const [first, second] = gateway.batchEnvelopes(batch) as [UploadEnvelope & { kind: 'batch' }, UploadEnvelope];
      const oversized = signUpload({ ...unsignedOf(first), kind: 'batch', batch: { ...first.batch, parts: 1, records: batch.records } }, gateway.key);
      expect((await upload(oversized)).answer).toMatchObject({ reason: 'malformed', detail: `batch.records: must hold at most ${UPLOAD_RECORDS_MAX} records (send larger batches in parts)` });
      expect(await upload(first)).toEqual(accepted(1));
      expect(await upload(second)).toEqual(accepted(2));
      expect(await batchesOf(gateway.id)).toEqual([expect.objectContaining({ recordCount: records, parts: 2, complete: true, totalNano: batch.header.totalNano })]);
    }, 30_000);

    it('refuses a part that comes before the parts it follows, and a last part that breaks the Merkle root', async () => {
      const gateway = await registeredGateway();
      const batch = gateway.seal(gateway.records('acme', 'EUR', [1n, 2n, 3n, 4n]));
      const [first, second] = [1, 2].map((part) => ({ header: batch.header, part, parts: 2, firstRecord: (part - 1) * 2, records: batch.records.slice((part - 1) * 2, part * 2) }));
      expect((await upload(gateway.envelope({ kind: 'batch', batch: second! }))).answer).toMatchObject({ reason: 'bad_batch', detail: 'batch 1: part 2 of 2 arrived before part 1' });
      const gateway2 = await registeredGateway();
      const batch2 = gateway2.seal(gateway2.records('acme', 'EUR', [1n, 2n, 3n, 4n]));
      const [a, b] = gateway2.batchEnvelopes(batch2, 2) as [UploadEnvelope & { kind: 'batch' }, UploadEnvelope & { kind: 'batch' }];
      expect(await upload(a)).toEqual(accepted(1));
      // The last part with two records swapped: each part alone looks sound, the whole does not.
      const reordered = signUpload({ ...unsignedOf(b), kind: 'batch', batch: { ...b.batch, records: [b.batch.records[1]!, b.batch.records[0]!] } }, gateway2.key);
      expect((await upload(reordered)).answer).toMatchObject({ reason: 'bad_batch', detail: expect.stringContaining('does not follow') });
      expect(first).toBeDefined();
    });

    it('stores a batch after a gap in batch numbers and raises a batch_gap alert', async () => {
      const gateway = await registeredGateway();
      expect(await upload(gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [1n])))[0])).toEqual(accepted(1));
      gateway.skipBatches(7);
      expect(await upload(gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [1n])))[0])).toEqual(accepted(2, ['batch_gap']));
      gateway.skipBatches(1);
      expect(await upload(gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [1n])))[0])).toEqual(accepted(3, ['batch_gap']));
      expect(await upload(gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [1n])))[0])).toEqual(accepted(4));
      // Newest first; numbers sort as numbers (11 after 9), carries flow from batch 9 to 11 to 12.
      expect(await alertsOf(gateway.id)).toEqual([
        expect.objectContaining({ kind: 'batch_gap', detail: 'batch 11 follows batch 9: batch 10 is missing' }),
        expect.objectContaining({ kind: 'batch_gap', detail: 'batch 9 follows batch 1: batches 2 to 8 are missing' }),
      ]);
      expect((await batchesOf(gateway.id)).map((batch) => batch.batchNo)).toEqual([1, 9, 11, 12]);
    });

    it('refuses the same batch number with another header as a conflict and raises a batch_fork alert', async () => {
      const gateway = await registeredGateway();
      const twin = new SimulatedGateway(gateway.id, { key: gateway.key, clock: novemberClock() });
      expect(await upload(gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [1n])))[0])).toEqual(accepted(1));
      const fork = twin.seal(twin.records('acme', 'EUR', [2n]));
      const answer = await upload(gateway.batchEnvelopes(fork)[0]);
      expect(answer).toMatchObject({ status: 409, answer: { reason: 'conflict', detail: expect.stringContaining('batch 1 is already stored with another header') } });
      expect(await alertsOf(gateway.id)).toEqual([expect.objectContaining({ kind: 'batch_fork' })]);
    });

    it('raises carry_mismatch when a batch does not carry in what the payer\'s previous batch carried out (credits carry negative nano)', async () => {
      const gateway = await registeredGateway();
      const first = gateway.seal(gateway.records('acme', 'EUR', [12_345_678n]));
      expect(first.header.carriedOutNano).toBe('2345678');
      expect(await upload(gateway.batchEnvelopes(first)[0])).toEqual(accepted(1));
      // A volume-tier credit: negative amount, nothing paid, the credit carried on.
      const credit = gateway.seal(gateway.records('acme', 'EUR', [-20_000_000n]));
      expect(credit.header).toMatchObject({ carriedInNano: '2345678', amountMinor: '0', carriedOutNano: '-17654322' });
      expect(await upload(gateway.batchEnvelopes(credit)[0])).toEqual(accepted(2));
      const next = gateway.seal(gateway.records('acme', 'EUR', [30_000_000n]));
      const mismatched = resealed(gateway, next, { carriedInNano: '0', totalNano: '30000000', amountMinor: '3', carriedOutNano: '0' });
      expect(await upload(gateway.batchEnvelopes(mismatched)[0])).toEqual(accepted(3, ['carry_mismatch']));
      expect(await alertsOf(gateway.id)).toEqual([expect.objectContaining({ kind: 'carry_mismatch', detail: 'acme EUR: batch 2 carried out -17654322 nano, but batch 3 carried in 0 nano' })]);
      expect((await batchesOf(gateway.id)).map((batch) => batch.state)).toEqual(['sealed', 'carried', 'sealed']);
    });

    it('takes a new key endorsed by a registered one and the uploads it signs; refuses an endorsement by a key it does not know', async () => {
      const gateway = await registeredGateway();
      const oldKey = gateway.key;
      expect(await upload(gateway.rotateKey())).toEqual(accepted(1));
      expect(gateway.key.keyId).not.toBe(oldKey.keyId);
      expect(await upload(gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [1n])))[0])).toEqual(accepted(2));
      const stranger = generateSigningKey();
      const unendorsed = endorseKey(stranger, generateSigningKey(), '2026-11-11T00:00:00.000Z');
      const refused = await upload(gateway.envelope({ kind: 'key', key: unendorsed }));
      expect(refused).toMatchObject({ status: 401, answer: { reason: 'bad_signature', detail: expect.stringContaining(`endorsed by key ${stranger.keyId}, which is not registered`) } });
      expect(await alertsOf(gateway.id)).toEqual([expect.objectContaining({ kind: 'bad_key_endorsement' })]);
      const fleet = await admin<{ items: Array<{ id: string; keys: number }> }>('GET', '/v1/fleet/gateways?limit=1000');
      expect(fleet.body.items.find((item) => item.id === gateway.id)?.keys).toBe(2);
    });

    it('stores a settlement of a batch it does not hold, with an alert, rather than stop the gateway\'s outbox', async () => {
      const gateway = await registeredGateway();
      const batch = gateway.seal(gateway.records('acme', 'EUR', [100_000_000n]));
      expect(await upload(gateway.settlement(batch, 'pending'))).toEqual(accepted(1, ['settlement_unknown_batch']));
    });

    it('sums totals per payer and currency for a month exactly, with what was paid', async () => {
      const gateway = await registeredGateway();
      const eur = [gateway.seal(gateway.records('payer-t', 'EUR', [999_999_999n, 1n])), gateway.seal(gateway.records('payer-t', 'EUR', [123_456_789_012n]))];
      const jpy = gateway.seal(gateway.records('payer-t', 'JPY', [2_500_000_000n]));
      for (const batch of [...eur, jpy]) expect((await upload(gateway.batchEnvelopes(batch)[0])).status).toBe(200);
      expect((await upload(gateway.settlement(eur[0]!, 'settled'))).status).toBe(200);
      const totals = await admin<{ period: string; items: Array<Record<string, unknown>> }>('GET', `/v1/fleet/totals?period=2026-11&gatewayId=${gateway.id}`);
      expect(totals.body).toEqual({
        period: '2026-11',
        items: [
          { payer: 'payer-t', currency: 'EUR', batches: 2, records: '3', totalNano: '124456789012', total: '124.456789012', amountMinor: '12445', amount: '124.45', paidMinor: '100', paid: '1.00' },
          { payer: 'payer-t', currency: 'JPY', batches: 1, records: '1', totalNano: '2500000000', total: '2.500000000', amountMinor: '2', amount: '2', paidMinor: '0', paid: '0' },
        ],
      });
      expect((await admin<{ items: unknown[] }>('GET', `/v1/fleet/totals?period=2026-10&gatewayId=${gateway.id}`)).body.items).toEqual([]);
      expect((await admin('GET', '/v1/fleet/totals?period=2026-13')).status).toBe(400);
    });

    it('refuses a body over the upload limit as too_large', async () => {
      const response = await app.inject({ method: 'POST', url: '/v1/uploads', headers: { 'content-type': 'application/json' }, payload: `{"pad":"${'x'.repeat(UPLOAD_BYTES_MAX)}"}` });
      expect(response.statusCode).toBe(413);
      expect(response.json()).toMatchObject({ status: 'refused', reason: 'too_large' });
    });

    it('answers /healthz from the database', async () => {
      expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    });
  });
});
