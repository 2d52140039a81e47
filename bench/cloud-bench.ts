/**
 * cloud_ingest: how fast one cloud-sync verifies and stores a fleet's uploads. G simulated
 * gateways (each its own key) upload B signed batches of R records each over real HTTP,
 * each gateway in order and all of them at once, to cloud-sync on PGlite (embedded, in a
 * temp dir) and on a real PostgreSQL (Debian's server, durable: fsync on). Every batch is
 * checked as in production: envelope and header signatures, Merkle root, totals, seq order
 * and chain continuity. The envelopes are built and signed before the clock starts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { parseCloudSyncConfig } from '../cloud-sync/config.ts';
import { startCloudSync, type CloudSync } from '../cloud-sync/main.ts';
import { SimulatedGateway } from '../cloud-sync/simulated-gateway.ts';
import type { UploadEnvelope } from '../protocol/upload.ts';
import { POSTGRES_AVAILABLE, startPostgres } from '../test/support/postgres-server.ts';

const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';

export interface CloudBenchOptions {
  gateways: number;
  batchesPerGateway: number;
  recordsPerBatch: number;
  log: (line: string) => void;
}

interface StorageFigures {
  batchesPerS: number;
  recordsPerS: number;
  ms: number;
}

function fleetUploads(options: CloudBenchOptions): Array<{ gateway: SimulatedGateway; envelopes: UploadEnvelope[] }> {
  return Array.from({ length: options.gateways }, (_, g) => {
    const gateway = new SimulatedGateway(`bench-gw-${g + 1}`);
    const envelopes: UploadEnvelope[] = [];
    for (let b = 0; b < options.batchesPerGateway; b += 1) {
      const amounts = Array.from({ length: options.recordsPerBatch }, (_, r) => BigInt(300_000 + ((g + b + r) % 7) * 1_000));
      envelopes.push(...gateway.batchEnvelopes(gateway.seal(gateway.records(`payer-${g % 5}`, 'EUR', amounts))));
    }
    return { gateway, envelopes };
  });
}

async function uploadFleet(cloud: CloudSync, fleet: ReturnType<typeof fleetUploads>): Promise<number> {
  const post = (body: unknown, route: string, auth = false): Promise<Response> => fetch(`${cloud.url}${route}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${ADMIN_TOKEN}` } : {}) }, body: JSON.stringify(body),
  });
  for (const { gateway } of fleet) {
    const registered = await post({ id: gateway.id, publicKey: gateway.publicKeyHex }, '/v1/gateways', true);
    if (registered.status !== 201) throw new Error(`Cannot benchmark cloud-sync: registering ${gateway.id} answered ${registered.status}`);
  }
  const startedMs = performance.now();
  await Promise.all(fleet.map(async ({ gateway, envelopes }) => {
    for (const envelope of envelopes) {
      const answer = (await (await post(envelope, '/v1/uploads')).json()) as { status: string; detail?: string };
      if (answer.status !== 'accepted') throw new Error(`Cannot benchmark cloud-sync: ${gateway.id} seq ${envelope.seq} was ${answer.status}: ${answer.detail ?? ''}`);
    }
  }));
  return performance.now() - startedMs;
}

async function measure(label: string, start: () => Promise<CloudSync>, options: CloudBenchOptions): Promise<StorageFigures> {
  const fleet = fleetUploads(options);
  const cloud = await start();
  try {
    const ms = await uploadFleet(cloud, fleet);
    const batches = options.gateways * options.batchesPerGateway;
    const figures = { ms: Math.round(ms), batchesPerS: Math.round((batches * 1000) / ms), recordsPerS: Math.round((batches * options.recordsPerBatch * 1000) / ms) };
    options.log(`  ${label}: ${batches} batches (${batches * options.recordsPerBatch} records) in ${figures.ms} ms: ${figures.batchesPerS} batches/s, ${figures.recordsPerS} records/s`);
    return figures;
  } finally {
    await cloud.close();
  }
}

export async function runCloudBench(options: CloudBenchOptions): Promise<Record<string, number | string>> {
  const { log } = options;
  log(`cloud_ingest: ${options.gateways} gateways × ${options.batchesPerGateway} batches × ${options.recordsPerBatch} records, uploaded at once over HTTP`);
  const dir = await mkdtemp(path.join(tmpdir(), 'mb-cloud-bench-'));
  const quiet = pino({ level: 'silent' });
  const figures: Record<string, number | string> = { cloud_gateways: options.gateways, cloud_batches: options.gateways * options.batchesPerGateway, cloud_records_per_batch: options.recordsPerBatch };
  try {
    const pglite = await measure('PGlite (embedded, on disk)', () => startCloudSync(parseCloudSyncConfig({ port: 0, dataDir: path.join(dir, 'pglite'), adminToken: ADMIN_TOKEN, logLevel: 'silent' }), quiet), options);
    Object.assign(figures, { cloud_pglite_batches_per_s: pglite.batchesPerS, cloud_pglite_records_per_s: pglite.recordsPerS });
    if (!POSTGRES_AVAILABLE) {
      log('  PostgreSQL: skipped (no server binaries; Debian package postgresql)');
      return figures;
    }
    const postgres = await startPostgres('meterbridge_bench', { durable: true });
    try {
      const pg = await measure('PostgreSQL (durable)', () => startCloudSync(parseCloudSyncConfig({ port: 0, databaseUrl: postgres.url, adminToken: ADMIN_TOKEN, logLevel: 'silent' }), quiet), options);
      Object.assign(figures, { cloud_postgres_batches_per_s: pg.batchesPerS, cloud_postgres_records_per_s: pg.recordsPerS });
    } finally {
      await postgres.stop();
    }
    return figures;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
