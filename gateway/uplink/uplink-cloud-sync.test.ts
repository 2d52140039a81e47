/**
 * The uplink end to end against the real cloud-sync (cloud-sync/, embedded PGlite) over
 * real HTTP: sealed batches (one in parts), settlement changes and a health report leave
 * the outbox in order and arrive once, with the batches complete and no alerts raised.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite, type SqlDb } from '../../cloud-sync/db.ts';
import { registerGateway } from '../../cloud-sync/gateway-registry.ts';
import { migrate } from '../../cloud-sync/migrations.ts';
import { buildCloudSyncApp } from '../../cloud-sync/server.ts';
import { toHex } from '../../protocol/hash.ts';
import { generateSigningKey } from '../../protocol/signing.ts';
import { UPLOAD_RECORDS_MAX } from '../../protocol/upload.ts';
import { openLedgerDb, writeDurably, type LedgerDb, type LedgerOp } from '../ledger/ledger-db.ts';
import type { BatchStateName } from '../settlement/batch-book.ts';
import { BatchUplink, transitionWithUpload } from './batch-uploads.ts';
import { Outbox } from './outbox.ts';
import { SealedLedgerDouble } from './sealed-ledger-double.ts';
import { UplinkSender } from './uplink-sender.ts';

const silent = pino({ level: 'silent' });
const ADMIN_TOKEN = 'uplink-test-admin-token-0123456789';
const GATEWAY = 'gw-uplink';

describe('the uplink against the real cloud-sync', () => {
  let sql: SqlDb;
  let app: FastifyInstance;
  let cloudUrl: string;
  let dir: string;
  let db: LedgerDb;
  const key = generateSigningKey();

  beforeAll(async () => {
    sql = await openPglite();
    await migrate(sql);
    app = await buildCloudSyncApp({ db: sql, adminToken: ADMIN_TOKEN, logger: silent });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cloudUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    expect((await registerGateway(sql, { id: GATEWAY, publicKey: toHex(key.publicKey) }, new Date())).status).toBe('created');
    dir = await mkdtemp(path.join(tmpdir(), 'uplink-cloud-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await sql?.close();
    await db?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const fleet = async (route: string): Promise<unknown> => {
    const response = await app.inject({ method: 'GET', url: `/v1/fleet/${route}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(response.statusCode).toBe(200);
    return response.json();
  };

  it('delivers sealed batches in parts, their settlement and a health report, complete and without alerts', async () => {
    const clock = (): Date => new Date('2026-05-01T12:00:00.000Z');
    const ledger = new SealedLedgerDouble(GATEWAY, key);
    const outbox = await Outbox.open(db, { gatewayId: GATEWAY, signingKey: key, clock });
    const uplink = await BatchUplink.open(db, { outbox, book: ledger.book(), journal: ledger.journal(), logger: silent });
    // acme: 20,800 records, in two parts (UPLOAD_RECORDS_MAX); north: 5,200, in one.
    ledger.add(Array.from({ length: 26_000 }, (_, i) => (i % 5 === 0 ? 'north' : 'acme')));
    ledger.seal();
    ledger.add(['acme', 'north', 'acme']);
    ledger.seal();
    expect(await uplink.catchUp()).toBe(4);
    expect(outbox.waiting).toBe(5);
    expect(UPLOAD_RECORDS_MAX).toBeLessThan(20_800);
    const book = {
      get: async (batchNo: number) => ledger.batches.get(batchNo),
      transition: async (batchNo: number, state: BatchStateName, patch: object, _detail?: string, alongside: LedgerOp[] = []) => {
        const next = { ...ledger.batches.get(batchNo)!, ...patch, state };
        await writeDurably(db, alongside);
        ledger.batches.set(batchNo, next);
        return next;
      },
    };
    const transition = transitionWithUpload(book, { outbox, clock });
    await transition(1, 'submitted', { paymentId: 'pay-1' });
    await transition(1, 'settled', { bankStatus: 'AcceptedSettlementCompleted' });
    await outbox.enqueueHealth({ at: clock().toISOString(), version: '0.1.0', records: ledger.records.length, devicesConnected: 2, chainOk: true, diskFreeBytes: 1e9, outboxItems: outbox.waiting, outboxBytes: outbox.fill().bytes });

    const sender = new UplinkSender({ outbox, cloudUrl, logger: silent });
    sender.start();
    for (let turn = 0; outbox.waiting > 0; turn += 1) {
      if (turn === 3_000) throw new Error(`the outbox still holds ${outbox.waiting} items: ${JSON.stringify(sender.state())}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await sender.stop();

    expect(sender.state()).toMatchObject({ state: 'ok', acked: 8, waiting: 0 });
    const { items: gateways } = (await fleet('gateways?limit=10')) as { items: Array<{ id: string; lastSeq: number; lastBatchNo: number }> };
    expect(gateways.find((g) => g.id === GATEWAY)).toMatchObject({ lastSeq: 8, lastBatchNo: 4 });
    const { items: batches } = (await fleet(`batches?gatewayId=${GATEWAY}&limit=10`)) as { items: Array<{ batchNo: number; state: string; complete: boolean }> };
    expect(batches.map((b) => [b.batchNo, b.state, b.complete]).sort()).toEqual([[1, 'settled', true], [2, 'sealed', true], [3, 'carried', true], [4, 'carried', true]]);
    const { items: alerts } = (await fleet(`alerts?gatewayId=${GATEWAY}&limit=10`)) as { items: unknown[] };
    expect(alerts).toEqual([]);
  }, 60_000);
});
