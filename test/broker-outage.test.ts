/**
 * External broker mode through outages: while the gateway is down, Mosquitto keeps its
 * persistent session's queue; when Mosquitto itself restarts, its persistence keeps it.
 * Afterwards every message the broker acknowledged to a device is in the ledger once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { usageTopic } from '../protocol/usage-message.ts';
import { MOSQUITTO } from './support/server-binaries.ts';
import { startTestRig, usagePayload, type TestRig } from './support/test-gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(read: () => number, want: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (read() < want) {
    if (Date.now() > deadline) throw new Error(`only ${read()} of ${want} records after ${timeoutMs} ms`);
    await sleep(50);
  }
}

describe.skipIf(!MOSQUITTO)('outages in external broker mode', () => {
  let rig: TestRig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('loses nothing the broker acknowledged while the gateway was down, and doubles nothing', async () => {
    rig = await startTestRig({ mode: 'mosquitto' });
    const device = await rig.connect('cnc-1', undefined, { reconnectPeriod: 100 });
    for (let seq = 1; seq <= 50; seq += 1) await device.publishAsync(usageTopic('cnc-1'), usagePayload('cnc-1', seq), { qos: 1 });
    await until(() => rig!.gateway.journal.head.index, 50);
    await rig.gateway.stop();
    // The gateway is away: Mosquitto queues for its persistent session and acks the device.
    for (let seq = 51; seq <= 250; seq += 1) await device.publishAsync(usageTopic('cnc-1'), usagePayload('cnc-1', seq), { qos: 1 });
    await rig.restartGateway();
    await until(() => rig!.gateway.journal.head.index, 250);
    await sleep(300);
    const seqs = new Set<number>();
    for await (const entry of rig.gateway.journal.entries(1, rig.gateway.journal.head.index)) seqs.add(entry.record.seq);
    expect(rig.gateway.journal.head.index).toBe(250);
    expect(seqs.size).toBe(250);
  });

  it('picks up again after Mosquitto itself restarts, with the queue it persisted', async () => {
    rig = await startTestRig({ mode: 'mosquitto' });
    const device = await rig.connect('truck-1', undefined, { reconnectPeriod: 100 });
    for (let seq = 1; seq <= 20; seq += 1) await device.publishAsync(usageTopic('truck-1'), usagePayload('truck-1', seq), { qos: 1 });
    await until(() => rig!.gateway.journal.head.index, 20);
    await rig.mosquitto!.stop();
    await rig.mosquitto!.start();
    // The device reconnects on its own; the gateway's bridge too, to the same session.
    for (let seq = 21; seq <= 60; seq += 1) await device.publishAsync(usageTopic('truck-1'), usagePayload('truck-1', seq), { qos: 1 });
    await until(() => rig!.gateway.journal.head.index, 60);
    expect(rig.gateway.journal.head.index).toBe(60);
  });
});
