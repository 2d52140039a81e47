import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodePayload } from '../gateway/ingest/sparkplug/payload-encoder.ts';
import { startTestRig, type TestRig } from './support/test-gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const UINT64 = 8;

describe('Sparkplug B edge nodes', () => {
  let rig: TestRig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('bills a mapped counter metric from DDATA (by alias from the birth) and refuses unmapped ones with a reason', async () => {
    rig = await startTestRig({
      configPatch: (raw) => void (raw.sparkplug = { mappings: [{ group: 'plant', node: 'edge-1', device: 'compressor-a', metric: 'Energy/Total', deviceId: 'compressor-1', meter: 'energy', kind: 'counter' }] }),
    });
    const node = await rig.connect('edge-1');
    const t0 = Date.now() - 5_000;
    await node.publishAsync('spBv1.0/plant/NBIRTH/edge-1', Buffer.from(encodePayload({ timestamp: t0, seq: 0, metrics: [{ name: 'bdSeq', datatype: UINT64, value: { long: 0 } }] })), { qos: 1 });
    await node.publishAsync('spBv1.0/plant/DBIRTH/edge-1/compressor-a', Buffer.from(encodePayload({ timestamp: t0, seq: 1, metrics: [
      { name: 'Energy/Total', alias: 1, datatype: UINT64, timestamp: t0, value: { long: 5_000 } },
      { name: 'Temperature', alias: 2, datatype: UINT64, timestamp: t0, value: { long: 40 } },
    ] })), { qos: 1 });
    for (const [seq, value, at] of [[2, 5_000, t0 + 1_000], [3, 5_600, t0 + 2_000]] as const) {
      await node.publishAsync('spBv1.0/plant/DDATA/edge-1/compressor-a', Buffer.from(encodePayload({ timestamp: at, seq, metrics: [
        { alias: 1, timestamp: at, value: { long: value } },
        { alias: 2, timestamp: at, value: { long: 41 } },
      ] })), { qos: 1 });
    }
    expect(rig.gateway.journal.head.index).toBe(2);
    const second = (await rig.gateway.journal.get(2))!.record;
    expect(second).toMatchObject({ deviceId: 'compressor-1', meter: 'energy', kind: 'counter', counterEvent: 'delta', quantity: '600', epoch: 'sparkplug' });
    // The same DDATA delivered again is a duplicate, not new usage.
    await node.publishAsync('spBv1.0/plant/DDATA/edge-1/compressor-a', Buffer.from(encodePayload({ timestamp: t0 + 2_000, seq: 4, metrics: [{ alias: 1, timestamp: t0 + 2_000, value: { long: 5_600 } }] })), { qos: 1 });
    expect(rig.gateway.journal.head.index).toBe(2);
    const state = await rig.gateway.snapshot();
    expect(JSON.stringify(state.sparkplugEvents)).toContain('birth');
    // Unmapped metrics (the temperature) are counted, not kept: they would crowd out real refusals.
    const metrics = await (await fetch(`${rig.gateway.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/meterbridge_rejected_messages_total\{reason="sparkplug_not_billable"\} [1-9]/);
    expect(metrics).toMatch(/meterbridge_sparkplug_events_total\{kind="birth"\} [1-9]/);
    expect(state.rejections.filter((r) => r.reason === 'sparkplug_not_billable')).toEqual([]);
  });

  it('refuses an edge node publishing as another node', async () => {
    rig = await startTestRig({
      configPatch: (raw) => void (raw.sparkplug = { mappings: [{ group: 'plant', node: 'edge-2', device: 'd', metric: 'm', deviceId: 'compressor-1', meter: 'energy', kind: 'counter' }] }),
    });
    const node = await rig.connect('edge-1');
    const closed = new Promise<void>((resolve) => node.once('close', () => resolve()));
    node.publish('spBv1.0/plant/DDATA/edge-2/d', Buffer.from(encodePayload({ timestamp: Date.now(), seq: 0, metrics: [] })), { qos: 1 });
    await closed;
    expect(rig.gateway.journal.head.index).toBe(0);
  });
});

describe('GPIO pulse inputs', () => {
  let rig: TestRig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('turns pulses on a simulated pin into counter readings of the device, persisted across a restart', async () => {
    rig = await startTestRig({
      configPatch: (raw) => void (raw.gpio = { pulseInputs: { press: { line: 17, deviceId: 'cnc-2', meter: 'cycles', driver: 'simulated', simulatedRateHz: 50, stateFile: 'gpio/press.json', reportEveryMs: 200, debounceMs: 1, maxRateHz: 200 } } }),
    });
    await mkdir(path.join(rig.config.dataDir, 'gpio'), { recursive: true });
    const deadline = Date.now() + 10_000;
    let records: Array<{ quantity: string; reading?: string; counterEvent?: string }> = [];
    while (records.filter((r) => r.counterEvent === 'delta' && r.quantity !== '0').length < 2) {
      if (Date.now() > deadline) throw new Error(`no GPIO usage: ${JSON.stringify(records)}`);
      await sleep(200);
      records = [];
      for await (const entry of rig.gateway.journal.entries(1, rig.gateway.journal.head.index)) records.push(entry.record);
    }
    expect(records[0]!.counterEvent).toBe('baseline');
    const lastReading = BigInt(records.at(-1)!.reading!);
    const billed = records.reduce((sum, r) => sum + BigInt(r.quantity), 0n);
    expect(billed).toBe(lastReading - BigInt(records[0]!.reading!));
    await rig.restartGateway();
    await sleep(600);
    const after = (await rig.gateway.journal.get(rig.gateway.journal.head.index))!.record;
    expect(BigInt(after.reading!)).toBeGreaterThanOrEqual(lastReading); // same epoch, the count went on
    expect(after.counterEvent).not.toBe('reset');
  });
});
