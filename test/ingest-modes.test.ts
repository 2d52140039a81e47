/**
 * One suite, both broker modes: the embedded aedes broker and an external Mosquitto
 * (a real one, on a free port, with a generated config and ACL). Same intake code,
 * same promises.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { rejectionTopic, usageTopic } from '../protocol/usage-message.ts';
import { MOSQUITTO } from './support/server-binaries.ts';
import { startTestRig, TEST_DEVICES, usagePayload, type BrokerMode, type TestRig } from './support/test-gateway.ts';

const MODES: BrokerMode[] = ['embedded', 'mosquitto'];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(read: () => Promise<T> | T, ok: (value: T) => boolean, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await sleep(25);
  }
}

const publish = (client: MqttClient, deviceId: string, payload: string): Promise<unknown> => client.publishAsync(usageTopic(deviceId), payload, { qos: 1 });
const counter = (deviceId: string, seq: number, reading: string, epoch = 'boot-a'): string =>
  JSON.stringify({ v: 1, kind: 'counter', deviceId, seq, meter: 'energy', reading, epoch, unit: 'wh', time: new Date().toISOString() });
const event = (deviceId: string, seq: number, quantity = '1'): string => usagePayload(deviceId, seq, { quantity, time: new Date().toISOString() });

for (const mode of MODES) {
  describe.skipIf(mode === 'mosquitto' && !MOSQUITTO)(`intake through the ${mode} broker`, () => {
    let rig: TestRig | undefined;
    afterEach(async () => {
      await rig?.close();
      rig = undefined;
    });

    it('does not acknowledge usage whose durable write failed; it comes again and is recorded once', async () => {
      let failures = 1;
      rig = await startTestRig({
        mode,
        beforeJournalWrite: async () => {
          if (failures > 0) {
            failures -= 1;
            throw new Error('simulated disk error');
          }
        },
      });
      // Embedded: the device itself resends after the gateway drops the unacknowledged
      // connection. External: the broker redelivers from the gateway's persistent session.
      const client = await rig.connect('cnc-1', undefined, { reconnectPeriod: 100 });
      void publish(client, 'cnc-1', event('cnc-1', 1));
      await until(() => rig!.gateway.journal.head.index, (n) => n === 1, 'the record after redelivery');
      await sleep(300);
      expect(rig.gateway.journal.head.index).toBe(1);
      expect((await rig.gateway.journal.get(1))?.record.seq).toBe(1);
    });

    it('records a repeated (device, seq) with the same content once', async () => {
      rig = await startTestRig({ mode });
      const client = await rig.connect('cnc-1');
      const message = event('cnc-1', 7);
      await publish(client, 'cnc-1', message);
      await publish(client, 'cnc-1', message); // the same bytes again
      await until(() => rig!.gateway.journal.head.index, (n) => n === 1, 'one record');
      await sleep(200);
      expect(rig.gateway.journal.head.index).toBe(1);
    });

    it('refuses the same seq with different content as a conflict and tells the device', async () => {
      rig = await startTestRig({ mode });
      const client = await rig.connect('cnc-1');
      await client.subscribeAsync(rejectionTopic('cnc-1'), { qos: 1 });
      const notice = new Promise<Record<string, unknown>>((resolve) => client.on('message', (_t, p) => resolve(JSON.parse(p.toString()) as Record<string, unknown>)));
      await publish(client, 'cnc-1', event('cnc-1', 3, '1'));
      await publish(client, 'cnc-1', event('cnc-1', 3, '9'));
      expect(await notice).toMatchObject({ reason: 'seq_conflict', field: 'seq' });
      expect(rig.gateway.journal.head.index).toBe(1);
    });

    it('accepts out-of-order events and reports the gaps that remain', async () => {
      rig = await startTestRig({ mode });
      const client = await rig.connect('truck-1');
      for (const seq of [1, 2, 6, 4]) await publish(client, 'truck-1', event('truck-1', seq, '10'));
      await until(() => rig!.gateway.journal.head.index, (n) => n === 4, 'four records');
      const truck = (await rig.gateway.snapshot()).devices.find((d) => d.id === 'truck-1')!;
      expect(truck.gaps).toEqual([{ from: 3, to: 3 }, { from: 5, to: 5 }]);
      await publish(client, 'truck-1', event('truck-1', 3, '10'));
      await publish(client, 'truck-1', event('truck-1', 5, '10'));
      await until(async () => (await rig!.gateway.snapshot()).devices.find((d) => d.id === 'truck-1')!.gaps, (g) => g.length === 0, 'gaps filled');
    });

    it('turns counter readings into usage: baseline, deltas, a lost reading merged, reset on a new epoch, wrap-around', async () => {
      rig = await startTestRig({ mode });
      const client = await rig.connect('compressor-1');
      const readings: Array<[number, string, string?]> = [
        [1, '1000'], // baseline: nothing billed
        [2, '1500'], // +500
        // seq 3 is lost on the way: its usage arrives inside the next delta
        [4, '2100'], // +600
        [5, '40', 'boot-b'], // rebooted: register restarted from 0, +40
        [6, '4294967290', 'boot-b'], // +4294967250
        [7, '10', 'boot-b'], // wrapped at 2^32: +16
      ];
      for (const [seq, reading, epoch] of readings) await publish(client, 'compressor-1', counter('compressor-1', seq, reading, epoch));
      await until(() => rig!.gateway.journal.head.index, (n) => n === 6, 'six records');
      const records = [];
      for await (const entry of rig.gateway.journal.entries(1, 6)) records.push(entry.record);
      expect(records.map((r) => [r.counterEvent, r.quantity])).toEqual([
        ['baseline', '0'], ['delta', '500'], ['delta', '600'], ['reset', '40'], ['delta', '4294967250'], ['wrap', '16'],
      ]);
      expect(records.reduce((sum, r) => sum + BigInt(r.amountNano), 0n)).toBe((500n + 600n + 40n + 4294967250n + 16n) * 250_000n);
      // A lost counter reading is not a gap to chase: its usage is in the next delta.
      const device = (await rig.gateway.snapshot()).devices.find((d) => d.id === 'compressor-1')!;
      expect(device.gaps).toEqual([]);
    });

    it('refuses a stale counter reading that arrives after a later one', async () => {
      rig = await startTestRig({ mode });
      const client = await rig.connect('compressor-1');
      await client.subscribeAsync(rejectionTopic('compressor-1'), { qos: 1 });
      const notice = new Promise<Record<string, unknown>>((resolve) => client.on('message', (_t, p) => resolve(JSON.parse(p.toString()) as Record<string, unknown>)));
      await publish(client, 'compressor-1', counter('compressor-1', 10, '5000'));
      await publish(client, 'compressor-1', counter('compressor-1', 9, '4000'));
      expect(await notice).toMatchObject({ reason: 'stale_reading' });
      expect(rig.gateway.journal.head.index).toBe(1);
    });

    it('keeps a device to its own topics: publishing as another device is refused', async () => {
      rig = await startTestRig({ mode });
      const client = await rig.connect('cnc-1', undefined, { reconnectPeriod: 0 });
      client.publish(usageTopic('cnc-2'), event('cnc-2', 1), { qos: 1 });
      await sleep(500);
      expect(rig.gateway.journal.head.index).toBe(0);
      // …and the accepting twin: its own topic works (on a fresh connection: embedded mode drops the offender).
      const again = await rig.connect('cnc-1');
      await publish(again, 'cnc-1', event('cnc-1', 1));
      await until(() => rig!.gateway.journal.head.index, (n) => n === 1, 'own topic accepted');
    });

    it('refuses a wrong password and a client id that is not the username', async () => {
      rig = await startTestRig({ mode });
      await expect(rig.connect('cnc-1', 'wrong')).rejects.toThrow();
      if (mode === 'embedded') {
        await expect(rig.connect('cnc-2', TEST_DEVICES[0]!.password)).rejects.toThrow();
      } else {
        // Mosquitto's use_username_as_clientid: a device logging in as cnc-1 *is* cnc-1,
        // whatever client id it asks for, so it cannot take over cnc-2's session.
        const client = mqtt.connect(rig.mqttUrl, { clientId: 'cnc-2', username: 'cnc-1', password: TEST_DEVICES[0]!.password, reconnectPeriod: 0 });
        await new Promise<void>((resolve) => client.once('connect', () => resolve()));
        client.publish(usageTopic('cnc-2'), event('cnc-2', 1), { qos: 1 });
        await sleep(500);
        expect(rig.gateway.journal.head.index).toBe(0);
        await client.endAsync(true);
      }
    });
  });
}
