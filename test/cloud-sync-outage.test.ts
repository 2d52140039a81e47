/**
 * Store and forward across an outage, with real parts: a gateway (aedes, LevelDB, the
 * sandbox bank) uploads to a real cloud-sync (PGlite in a temp dir, over HTTP). The cloud
 * goes away while usage continues and batches are sealed, the gateway is restarted during
 * the outage, the cloud comes back on the same port and data: every batch arrives once,
 * in order, verified, and the cloud raises no alert.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyCommand } from '../cli/key-command.ts';
import { parseCloudSyncConfig } from '../cloud-sync/config.ts';
import { startCloudSync, type CloudSync } from '../cloud-sync/main.ts';
import { runCaptured } from './support/captured-command.ts';
import { sendUsage, startTestRig, type TestRig } from './support/test-gateway.ts';

const ADMIN_TOKEN = 'outage-test-admin-token-0123456789';

interface FleetBatch { batchId: string; batchNo: number; recordCount: number; merkleRoot: string; complete: boolean; state: string }

describe('uplink to cloud-sync across an outage', () => {
  let cloudDir: string;
  let cloud: CloudSync | undefined;
  let cloudPort = 0;
  let rig: TestRig;

  const startCloud = async (): Promise<CloudSync> => {
    cloud = await startCloudSync(parseCloudSyncConfig({ port: cloudPort, dataDir: path.join(cloudDir, 'pglite'), adminToken: ADMIN_TOKEN, logLevel: 'silent' }), pino({ level: 'silent' }));
    cloudPort = Number(new URL(cloud.url).port);
    return cloud;
  };
  const admin = async (route: string, body?: unknown): Promise<Response> => fetch(`http://127.0.0.1:${cloudPort}${route}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const cloudBatches = async (): Promise<FleetBatch[]> => ((await (await admin(`/v1/fleet/batches?gatewayId=${rig.config.gatewayId}&limit=100`)).json()) as { items: FleetBatch[] }).items;
  const until = async (what: string, test: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await test())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  beforeAll(async () => {
    cloudDir = await mkdtemp(path.join(tmpdir(), 'meterbridge-cloud-'));
    await startCloud();
    rig = await startTestRig({
      configPatch: (raw) => {
        raw.uplink = { url: `http://127.0.0.1:${cloudPort}`, retryBaseMs: 20, retryCapMs: 300, operatorRetryMs: 100, healthIntervalMs: 60_000 };
      },
    });
    const registered = await admin('/v1/gateways', { id: rig.config.gatewayId, publicKey: rig.gateway.publicKeyHex });
    expect(registered.status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await rig?.close();
    await cloud?.close();
    await rm(cloudDir, { recursive: true, force: true });
  });

  it('delivers every batch once, in order, verified, after an outage with a gateway restart in the middle', async () => {
    const expected: Array<{ batchNo: number; merkleRoot: string; recordCount: number }> = [];
    const sealAndRemember = async (): Promise<void> => {
      for (const batchNo of await rig.gateway.sealNow()) {
        const batch = (await rig.gateway.batches.get(batchNo))!;
        expect(batch.header.gatewayId).toBe(rig.config.gatewayId);
        expect(batchNo).toBeGreaterThan(0);
        expected.push({ batchNo, merkleRoot: batch.header.merkleRoot, recordCount: batch.header.recordCount });
      }
    };

    await sendUsage(rig, 'cnc-1', 20, 1);
    await sendUsage(rig, 'truck-1', 10, 1, '1500');
    await sealAndRemember();
    await until('the first batches in the cloud', async () => (await cloudBatches()).filter((b) => b.complete).length === expected.length);

    // The cloud goes away; usage goes on and is sealed.
    await cloud!.close();
    cloud = undefined;
    await sendUsage(rig, 'cnc-1', 15, 21);
    await sealAndRemember();
    await until('the sender to notice the outage', () => rig.gateway.uplink!.status().state === 'retrying');
    expect(rig.gateway.uplink!.status().waiting).toBeGreaterThan(0);

    // The gateway restarts during the outage: its outbox is in LevelDB.
    await rig.restartGateway();
    await sendUsage(rig, 'cnc-2', 12, 1);
    await sendUsage(rig, 'yard-1', 5, 1, '600');
    await sealAndRemember();
    expect(rig.gateway.uplink!.status().waiting).toBeGreaterThan(0);

    // The cloud comes back on the same port and data.
    await startCloud();
    await until('the outbox to drain', () => rig.gateway.uplink!.status().waiting === 0, 30_000);

    const received = (await cloudBatches()).sort((a, b) => a.batchNo - b.batchNo);
    expect(received.map((b) => ({ batchNo: b.batchNo, merkleRoot: b.merkleRoot, recordCount: b.recordCount }))).toEqual(expected.sort((a, b) => a.batchNo - b.batchNo));
    expect(received.every((b) => b.complete)).toBe(true);
    const alerts = (await (await admin(`/v1/fleet/alerts?gatewayId=${rig.config.gatewayId}&limit=100`)).json()) as { items: unknown[] };
    expect(alerts.items).toEqual([]);
    const gateways = (await (await admin('/v1/fleet/gateways?limit=10')).json()) as { items: Array<{ id: string; lastSeq: number }> };
    expect(gateways.items.find((g) => g.id === rig.config.gatewayId)?.lastSeq).toBe(rig.gateway.uplink!.outbox.ackedSeq);
  }, 90_000);

  it('tells cloud-sync of a rotated gateway key through the old key, so uploads signed with the new one are accepted', async () => {
    const configFile = path.join(rig.dir, 'gateway.json');
    await writeFile(configFile, JSON.stringify(rig.config));
    const oldKey = rig.gateway.publicKeyHex;
    await rig.gateway.stop();
    expect((await runCaptured(keyCommand, ['rotate', '--config', configFile])).status).toBe(0);
    await rig.restartGateway();
    expect(rig.gateway.publicKeyHex).not.toBe(oldKey);
    const before = (await cloudBatches()).length;
    await sendUsage(rig, 'cnc-1', 5, 100);
    const sealed = await rig.gateway.sealNow();
    expect(sealed.length).toBe(1);
    await until('the outbox to drain', () => rig.gateway.uplink!.status().waiting === 0, 30_000);
    expect(rig.gateway.uplink!.status().state).toBe('ok');
    const batches = await cloudBatches();
    expect(batches.length).toBe(before + 1);
    expect(batches.find((b) => b.batchNo === sealed[0])?.complete).toBe(true);
    const alerts = (await (await admin(`/v1/fleet/alerts?gatewayId=${rig.config.gatewayId}&limit=100`)).json()) as { items: unknown[] };
    expect(alerts.items).toEqual([]);
  }, 60_000);
});
