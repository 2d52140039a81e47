/**
 * cloud-sync under a fleet, over real HTTP: 50 simulated gateways, each with its own key,
 * upload sealed batches (one of them in parts), settlements and health at the same time,
 * while forged, replayed, reordered and tampered uploads are thrown in and refused with
 * their reasons; then the fleet API's totals must equal, exactly, what was sent. Run on
 * PGlite and on a real PostgreSQL; and two instances on one PostgreSQL database must take
 * one gateway's uploads in order exactly once, whichever instance each request reaches.
 */
import pino from 'pino';
import { seededRandom } from '../firmware-sim/machines.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCloudSyncConfig } from '../cloud-sync/config.ts';
import { startCloudSync, type CloudSync } from '../cloud-sync/main.ts';
import { SimulatedGateway, type SealedBatch } from '../cloud-sync/simulated-gateway.ts';
import { formatMinor, formatNano } from '../protocol/money.ts';
import { generateSigningKey } from '../protocol/signing.ts';
import { signUpload, unsignedOf, type UploadAnswer, type UploadEnvelope } from '../protocol/upload.ts';
import { POSTGRES_AVAILABLE, startPostgres, type PostgresServer } from './support/postgres-server.ts';

const ADMIN_TOKEN = 'fleet-admin-token-0123456789abcdef';
const GATEWAYS = 50;
const BATCHES_PER_GATEWAY = 4;
const RECORDS_PER_BATCH = 6;
const PAYERS = ['acme', 'globex', 'initech'];
const CURRENCIES = ['EUR', 'GBP', 'JPY'];
const SEED = Number(process.env.FLEET_SEED ?? 20261127);

function novemberClock(): () => Date {
  let at = Date.parse('2026-11-20T08:00:00.000Z');
  return () => new Date((at += 1_000));
}

async function post(url: string, body: unknown, token?: string): Promise<{ status: number; answer: UploadAnswer }> {
  const response = await fetch(url, {
    method: 'POST', body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  return { status: response.status, answer: (await response.json()) as UploadAnswer };
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

async function startService(databaseUrl: string | undefined): Promise<CloudSync> {
  const config = parseCloudSyncConfig({ adminToken: ADMIN_TOKEN, port: 0, logLevel: 'silent', ...(databaseUrl ? { databaseUrl } : {}) });
  return startCloudSync(config, pino({ level: 'silent' }));
}

interface Expected { batches: number; records: bigint; totalNano: bigint; amountMinor: bigint; paidMinor: bigint }

/** One gateway's life: batches (the last in parts), settlements, health, and an attack of each kind along the way. */
async function runGateway(url: string, gateway: SimulatedGateway, index: number, next: () => number, expected: Map<string, Expected>): Promise<{ uploads: number; records: number }> {
  let uploads = 0;
  let records = 0;
  const send = async (envelope: UploadEnvelope, answer: Partial<UploadAnswer> & { status: string }, status = 200) => {
    const response = await post(`${url}/v1/uploads`, envelope);
    expect(response, `gateway ${gateway.id} seq ${envelope.seq} (seed ${SEED})`).toMatchObject({ status, answer });
    if (response.answer.status === 'accepted') uploads += 1;
    return response;
  };
  const currency = CURRENCIES[index % CURRENCIES.length]!;
  for (let b = 0; b < BATCHES_PER_GATEWAY; b += 1) {
    const payer = PAYERS[(index + b) % PAYERS.length]!;
    const amounts = Array.from({ length: RECORDS_PER_BATCH }, () => BigInt(Math.floor(next() * 2_000_000_000)) + BigInt(Math.floor(next() * 1_000)));
    const batch = gateway.seal(gateway.records(payer, currency, amounts));
    const envelopes = gateway.batchEnvelopes(batch, b === BATCHES_PER_GATEWAY - 1 ? 2 : 20_000);
    if (b === 1) await attack(url, gateway, envelopes[0]!, batch);
    if (b === 2) {
      // Reordered: the next item's successor first.
      const settlement = gateway.settlement(batch, 'settled', { paymentId: `pay-${gateway.id}-${b}` });
      await send(settlement, { status: 'refused', reason: 'out_of_order', expectedSeq: envelopes[0]!.seq }, 409);
      for (const envelope of envelopes) await send(envelope, { status: 'accepted' });
      await send(settlement, { status: 'accepted' });
      // Replayed: the same item again is acknowledged, never stored twice (the totals below prove it).
      await send(envelopes[0]!, { status: 'duplicate', seq: envelopes[0]!.seq });
    } else {
      for (const envelope of envelopes) await send(envelope, { status: 'accepted' });
    }
    records += batch.records.length;
    const key = `${payer}|${currency}`;
    const sum = expected.get(key) ?? { batches: 0, records: 0n, totalNano: 0n, amountMinor: 0n, paidMinor: 0n };
    sum.batches += 1;
    sum.records += BigInt(batch.records.length);
    sum.totalNano += BigInt(batch.header.totalNano);
    sum.amountMinor += BigInt(batch.header.amountMinor);
    if (b === 2) sum.paidMinor += BigInt(batch.header.amountMinor);
    expected.set(key, sum);
  }
  await send(gateway.health({ devicesConnected: index }), { status: 'accepted' });
  return { uploads, records };
}

/**
 * Forged (another key), tampered in transit (signature breaks), tampered before signing (a
 * gateway whose records were altered: bad_batch), replayed under a new seq: all refused,
 * then the sound envelope is taken at the same seq.
 */
async function attack(url: string, gateway: SimulatedGateway, sound: UploadEnvelope, batch: SealedBatch): Promise<void> {
  const uploads = `${url}/v1/uploads`;
  expect(await post(uploads, signUpload(unsignedOf(sound), generateSigningKey()))).toMatchObject({ status: 401, answer: { reason: 'bad_signature' } });
  const records = [...batch.records];
  records[0] = records[0]!.replace(/"amountNano":"(\d+)"/, (_, amount: string) => `"amountNano":"${BigInt(amount) + 1n}"`);
  const inTransit = { ...sound, batch: { header: batch.header, part: 1, parts: 1, firstRecord: 0, records } };
  expect(await post(uploads, inTransit)).toMatchObject({ status: 401, answer: { reason: 'bad_signature' } });
  expect(await post(uploads, signUpload({ ...unsignedOf(inTransit as UploadEnvelope) }, gateway.key))).toMatchObject({ status: 400, answer: { reason: 'bad_batch', detail: expect.stringContaining('totalNano') } });
  expect(await post(uploads, { ...sound, seq: sound.seq - 1 })).toMatchObject({ status: 401, answer: { reason: 'bad_signature' } });
}

const BACKENDS = [
  { name: 'PGlite', available: true },
  { name: 'PostgreSQL', available: POSTGRES_AVAILABLE },
];

describe.each(BACKENDS)('a fleet of $name', ({ name, available }) => {
  describe.skipIf(!available)(`${GATEWAYS} gateways`, () => {
    let postgres: PostgresServer | undefined;
    let service: CloudSync;
    beforeAll(async () => {
      postgres = name === 'PostgreSQL' ? await startPostgres('fleet') : undefined;
      service = await startService(postgres?.url);
    }, 60_000);
    afterAll(async () => {
      await service?.close();
      await postgres?.stop();
    });

    it('upload at once, have forged, replayed, reordered and tampered uploads refused with reasons, and total exactly what was sent', async () => {
      const gateways = Array.from({ length: GATEWAYS }, (_, i) => new SimulatedGateway(`fleet-${String(i).padStart(2, '0')}`, { clock: novemberClock() }));
      await Promise.all(gateways.map(async (gateway) => {
        expect((await post(`${service.url}/v1/gateways`, { id: gateway.id, publicKey: gateway.publicKeyHex }, ADMIN_TOKEN)).status).toBe(201);
      }));
      const expected = new Map<string, Expected>();
      const next = seededRandom(SEED); // mulberry32: a failing run repeats with FLEET_SEED
      const startedMs = performance.now();
      const done = await Promise.all(gateways.map((gateway, i) => runGateway(service.url, gateway, i, next, expected)));
      const seconds = (performance.now() - startedMs) / 1_000;
      const uploads = done.reduce((sum, d) => sum + d.uploads, 0);
      const records = done.reduce((sum, d) => sum + d.records, 0);
      process.stdout.write(`fleet on ${name}: ${GATEWAYS} gateways, ${uploads} uploads stored (${records} records) in ${seconds.toFixed(2)} s: ${(uploads / seconds).toFixed(0)} uploads/s, ${(records / seconds).toFixed(0)} records/s (plus ${GATEWAYS * 6} refused or repeated)\n`);

      const totals = await getJson<{ items: Array<Record<string, unknown>> }>(`${service.url}/v1/fleet/totals?period=2026-11`);
      const want = [...expected.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, sum]) => {
        const [payer, currency] = key.split('|') as [string, string];
        return {
          payer, currency, batches: sum.batches, records: String(sum.records), totalNano: String(sum.totalNano), total: formatNano(sum.totalNano),
          amountMinor: String(sum.amountMinor), amount: formatMinor(sum.amountMinor, currency), paidMinor: String(sum.paidMinor), paid: formatMinor(sum.paidMinor, currency),
        };
      });
      expect(totals.items).toEqual(want);

      const fleet = await getJson<{ items: Array<{ id: string; lastSeq: number; lastBatchNo: number; refusals: number; alerts: number; latestHealth: { devicesConnected: number } }> }>(`${service.url}/v1/fleet/gateways?limit=1000`);
      expect(fleet.items).toHaveLength(GATEWAYS);
      fleet.items.forEach((row, i) => {
        // Items: a batch each, the last in parts of 2 records, a settlement, a health report.
        // Refusals: forged, tampered in transit, bad_batch, replayed under another seq.
        expect(row).toMatchObject({ id: gateways[i]!.id, lastSeq: BATCHES_PER_GATEWAY - 1 + RECORDS_PER_BATCH / 2 + 2, lastBatchNo: BATCHES_PER_GATEWAY, refusals: 4, alerts: 1, latestHealth: { devicesConnected: i } });
      });
      const alerts = await getJson<{ items: Array<{ kind: string }> }>(`${service.url}/v1/fleet/alerts?limit=1000`);
      expect(alerts.items.map((alert) => alert.kind)).toEqual(Array.from({ length: GATEWAYS }, () => 'bad_batch'));
      const settled = await getJson<{ items: unknown[] }>(`${service.url}/v1/fleet/batches?state=settled&limit=1000`);
      expect(settled.items).toHaveLength(GATEWAYS);
    }, 60_000);
  });
});

describe.skipIf(!POSTGRES_AVAILABLE)('two cloud-sync instances on one PostgreSQL database', () => {
  let postgres: PostgresServer;
  let instances: CloudSync[] = [];
  beforeAll(async () => {
    postgres = await startPostgres('two_instances');
    // Started together on an empty database: the migration lock lets one migrate, the other wait.
    instances = await Promise.all([startService(postgres.url), startService(postgres.url)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.close()));
    await postgres?.stop();
  });

  it('take one gateway\'s uploads in order exactly once, interleaved or sent to both at once', async () => {
    const [a, b] = instances as [CloudSync, CloudSync];
    const gateway = new SimulatedGateway('twin-instances', { clock: novemberClock() });
    expect((await post(`${a.url}/v1/gateways`, { id: gateway.id, publicKey: gateway.publicKeyHex }, ADMIN_TOKEN)).status).toBe(201);
    const items = (count: number): UploadEnvelope[] => Array.from({ length: count }, (_, i) => (i % 3 === 2 ? [gateway.health()] : gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [BigInt(i + 1) * 3_333_333n]))))).flat();

    const interleaved = items(20);
    for (const [i, envelope] of interleaved.entries()) {
      expect(await post(`${(i % 2 === 0 ? a : b).url}/v1/uploads`, envelope)).toEqual({ status: 200, answer: { status: 'accepted', seq: envelope.seq } });
    }

    // Every item to both instances at once: each seq is stored by one and acknowledged as a duplicate by the other.
    const racing = items(20);
    const answers = await Promise.all(racing.flatMap((envelope) => [a, b].map(async (instance) => {
      for (let attempt = 0; attempt < 400; attempt += 1) {
        const { answer } = await post(`${instance.url}/v1/uploads`, envelope);
        if (answer.status !== 'refused') return { seq: envelope.seq, status: answer.status };
        expect(answer).toMatchObject({ reason: 'out_of_order' });
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`seq ${envelope.seq} was never taken`);
    })));
    for (const envelope of racing) {
      expect(answers.filter((answer) => answer.seq === envelope.seq).map((answer) => answer.status).sort()).toEqual(['accepted', 'duplicate']);
    }
    const { rows } = await a.db.query<{ uploads: number; last_seq: string; batches: number }>(
      "SELECT (SELECT count(*) FROM uploads WHERE gateway_id = $1)::int AS uploads, (SELECT last_seq::text FROM gateways WHERE id = $1) AS last_seq, (SELECT count(*) FROM batches WHERE gateway_id = $1)::int AS batches",
      [gateway.id],
    );
    const total = interleaved.length + racing.length;
    expect(rows[0]).toEqual({ uploads: total, last_seq: String(total), batches: [...interleaved, ...racing].filter((envelope) => envelope.kind === 'batch').length });
  }, 60_000);
});
