import { once } from 'node:events';
import { connect } from 'node:net';
import type { MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { rejectionTopic, usageTopic } from '../protocol/usage-message.ts';
import { startTestRig, usagePayload, type TestRig } from './support/test-gateway.ts';

function publish(client: MqttClient, topic: string, payload: string): Promise<number> {
  const startedMs = performance.now();
  return new Promise((resolve, reject) => {
    client.publish(topic, payload, { qos: 1 }, (error) => (error ? reject(error) : resolve(performance.now() - startedMs)));
  });
}

async function metric(rig: TestRig, line: string): Promise<number> {
  const text = await (await fetch(`${rig.gateway.httpUrl}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.split(' ')[1]) : 0;
}

function nextNotice(client: MqttClient): Promise<Record<string, unknown>> {
  return new Promise((resolve) => client.once('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as Record<string, unknown>)));
}

/** A device on a raw socket (mqtt-packet, no client library), so a test decides exactly what arrives in one TCP write. */
async function rawDevice(rig: TestRig, deviceId: string, password: string): Promise<{ acked: number[]; publish(messageId: number, payload: string): Buffer; write(bytes: Buffer): void; close(): void }> {
  const socket = connect(Number(new URL(rig.mqttUrl).port), '127.0.0.1');
  await once(socket, 'connect');
  const acked: number[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  let connacked = false;
  parser.on('packet', (packet) => {
    if (packet.cmd === 'connack') connacked = packet.returnCode === 0;
    if (packet.cmd === 'puback') acked.push(packet.messageId ?? 0);
  });
  socket.on('data', (chunk: Buffer) => void parser.parse(chunk));
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: deviceId, username: deviceId, password: Buffer.from(password), keepalive: 60 }));
  await vi.waitFor(() => expect(connacked).toBe(true));
  return {
    acked,
    publish: (messageId, payload) => mqttPacket.generate({ cmd: 'publish', topic: usageTopic(deviceId), payload, qos: 1, messageId, retain: false, dup: false }),
    write: (bytes) => void socket.write(bytes),
    close: () => void socket.destroy(),
  };
}

describe('ack after durable', () => {
  let rig: TestRig;
  let releaseWrite: () => void = () => {};
  let writeStarted: Promise<void>;
  let markWriteStarted: () => void = () => {};

  beforeEach(async () => {
    writeStarted = new Promise((resolve) => (markWriteStarted = resolve));
    rig = await startTestRig({
      beforeJournalWrite: () => {
        markWriteStarted();
        return new Promise<void>((resolve) => (releaseWrite = resolve));
      },
    });
  });
  afterEach(async () => {
    releaseWrite();
    await rig.close();
  });

  it('holds the PUBACK while the store is slow and sends it once the record is on disk', async () => {
    const client = await rig.connect('cnc-1');
    let ackedAt: { headIndex: number; stored: boolean } | undefined;
    const acked = new Promise<void>((resolve, reject) => {
      client.publish(usageTopic('cnc-1'), usagePayload('cnc-1', 1), { qos: 1 }, (error) => {
        if (error) return reject(error);
        void rig.gateway.journal.get(1).then((entry) => {
          ackedAt = { headIndex: rig.gateway.journal.head.index, stored: entry !== undefined };
          resolve();
        });
      });
    });
    await writeStarted;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(ackedAt).toBeUndefined(); // the store is held: no ack yet
    expect(rig.gateway.journal.head.index).toBe(0);
    releaseWrite();
    await acked;
    expect(ackedAt).toEqual({ headIndex: 1, stored: true });
  });

  it('reads a device\'s next messages while its earlier ones are being written, and acks each when it is durable', async () => {
    // aedes alone reads a connection's next packets only once every packet of its last
    // read is handled; usage is pipelined, so one device is not held to one write at a
    // time. A raw socket makes the reads exact: two publishes in one TCP write, then a third.
    const device = await rawDevice(rig, 'cnc-1', 'cnc-1-secret');
    device.write(Buffer.concat([device.publish(1, usagePayload('cnc-1', 1)), device.publish(2, usagePayload('cnc-1', 2))]));
    await writeStarted;
    device.write(device.publish(3, usagePayload('cnc-1', 3)));
    await vi.waitFor(() => expect(rig.gateway.journal.queueLength).toBe(3), { timeout: 3_000 }); // 1 and 2 in their write, 3 waiting for the next
    expect(device.acked).toEqual([]);
    releaseWrite();
    await vi.waitFor(() => expect(device.acked).toEqual([1, 2]));
    expect(rig.gateway.journal.head.index).toBe(2); // 3 waits for its own write
    await vi.waitFor(() => {
      releaseWrite();
      expect(device.acked).toEqual([1, 2, 3]);
    });
    expect(rig.gateway.journal.head.index).toBe(3);
    device.close();
  });

  it('sends PUBACKs in the order the PUBLISHes came in, even when a later one is refused first (MQTT-4.6.0-2)', async () => {
    const device = await rawDevice(rig, 'cnc-1', 'cnc-1-secret');
    device.write(device.publish(1, usagePayload('cnc-1', 1)));
    await writeStarted;
    device.write(device.publish(2, '{"not": "usage"')); // refused at once, acknowledged so it is not resent
    await vi.waitFor(async () => expect((await rig.gateway.snapshot()).rejections.some((r) => r.reason === 'malformed_json')).toBe(true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(device.acked).toEqual([]); // 2 waits for 1, which waits for the disk
    releaseWrite();
    await vi.waitFor(() => expect(device.acked).toEqual([1, 2]));
    device.close();
  });

  it('sends no PUBACK when the store fails, and the device resends after reconnecting', async () => {
    // Twin of the test above: a write that never completes must never be acknowledged.
    const client = await rig.connect('cnc-1');
    let acked = false;
    client.publish(usageTopic('cnc-1'), usagePayload('cnc-1', 1), { qos: 1 }, () => (acked = true));
    await writeStarted;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(acked).toBe(false);
    expect(rig.gateway.journal.head.index).toBe(0);
  });
});

describe('intake', () => {
  let rig: TestRig;
  beforeEach(async () => {
    rig = await startTestRig();
  });
  afterEach(async () => {
    await rig.close();
  });

  it('records a repeated (device, seq) with the same content once and acknowledges both', async () => {
    const client = await rig.connect('cnc-1');
    const message = usagePayload('cnc-1', 7);
    await publish(client, usageTopic('cnc-1'), message);
    await publish(client, usageTopic('cnc-1'), message);
    expect(rig.gateway.journal.head.index).toBe(1);
    expect(await metric(rig, 'meterbridge_duplicate_messages_total')).toBe(1);
  });

  it('refuses the same seq with different content as a conflict and keeps the first', async () => {
    const client = await rig.connect('cnc-1');
    await client.subscribeAsync(rejectionTopic('cnc-1'), { qos: 1 });
    await publish(client, usageTopic('cnc-1'), usagePayload('cnc-1', 7));
    const notice = nextNotice(client);
    await publish(client, usageTopic('cnc-1'), usagePayload('cnc-1', 7, { quantity: '5' }));
    expect(await notice).toMatchObject({ reason: 'seq_conflict', field: 'seq', seq: 7 });
    expect(rig.gateway.journal.head.index).toBe(1);
    expect((await rig.gateway.journal.get(1))?.record.quantity).toBe('1');
  });

  it('prices an accepted record exactly from the tariff', async () => {
    const client = await rig.connect('truck-1');
    await publish(client, usageTopic('truck-1'), usagePayload('truck-1', 1, { quantity: '1609' }));
    const entry = await rig.gateway.journal.get(1);
    expect(entry?.record).toMatchObject({ payer: 'northline-logistics', currency: 'GBP', amountNano: '241350000', tariff: 'distance@1', periodQtyBefore: '0' });
    expect(entry?.record.tariffHash).toBe(rig.gateway.intake.tariffs.tariffFor('distance', 'northline-logistics', entry!.record.deviceTime)?.hash);
    // The next record of the same period starts where this one ended.
    await publish(client, usageTopic('truck-1'), usagePayload('truck-1', 2, { quantity: '10' }));
    expect((await rig.gateway.journal.get(2))?.record).toMatchObject({ periodQtyBefore: '1609', amountNano: '1500000' });
  });
});

describe('rejecting twins', () => {
  let rig: TestRig;
  beforeEach(async () => {
    rig = await startTestRig();
  });
  afterEach(async () => {
    await rig.close();
  });

  it('refuses a wrong password at CONNACK and counts it', async () => {
    await expect(rig.connect('cnc-1', 'wrong-password')).rejects.toThrow(/Bad username or password|closed/i);
    await expect(rig.connect('ghost-device', 'whatever')).rejects.toThrow();
    expect(await metric(rig, 'meterbridge_rejected_messages_total{reason="auth_failed"}')).toBe(2);
    await rig.connect('cnc-1'); // the right password still works
  });

  it("disconnects a device publishing to another device's topic and records nothing", async () => {
    const client = await rig.connect('cnc-1');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(usageTopic('cnc-2'), usagePayload('cnc-2', 1), { qos: 1 });
    await closed;
    expect(rig.gateway.journal.head.index).toBe(0);
    expect(await metric(rig, 'meterbridge_rejected_messages_total{reason="topic_not_allowed"}')).toBe(1);
  });

  it('refuses a device subscribing to anything but its own rejection topic', async () => {
    const client = await rig.connect('cnc-1');
    const granted = await client.subscribeAsync(usageTopic('cnc-2'), { qos: 1 }).catch((error: unknown) => error);
    expect(granted).not.toEqual([{ topic: usageTopic('cnc-2'), qos: 1 }]);
    expect(await metric(rig, 'meterbridge_rejected_messages_total{reason="subscribe_not_allowed"}')).toBe(1);
  });

  const badMessages: Array<[string, string, string, string | undefined]> = [
    ['malformed JSON', '{"v":1,"deviceId":', 'malformed_json', undefined],
    ['a missing field', JSON.stringify({ v: 1, deviceId: 'cnc-1', seq: 1, meter: 'cycles', unit: 'cycle', time: '2026-11-27T12:00:00.000Z' }), 'missing_field', 'quantity'],
    ['a negative quantity', usagePayload('cnc-1', 1, { quantity: '-3' }), 'invalid_field', 'quantity'],
    ['a non-integer quantity', usagePayload('cnc-1', 1, { quantity: '1.5' }), 'invalid_field', 'quantity'],
    ['a quantity sent as a JSON number', usagePayload('cnc-1', 1, { quantity: 2 }), 'invalid_field', 'quantity'],
    ['the wrong unit', usagePayload('cnc-1', 1, { unit: 'm' }), 'unit_mismatch', 'unit'],
    ['a meter the device may not report', usagePayload('cnc-1', 1, { meter: 'distance', unit: 'm' }), 'meter_not_allowed', 'meter'],
    ["another device's id in the body", usagePayload('cnc-2', 1), 'device_mismatch', 'deviceId'],
  ];

  for (const [what, payload, reason, field] of badMessages) {
    it(`refuses ${what} with reason ${reason}, tells the device and keeps running`, async () => {
      const client = await rig.connect('cnc-1');
      await client.subscribeAsync(rejectionTopic('cnc-1'), { qos: 1 });
      const notice = nextNotice(client);
      await publish(client, usageTopic('cnc-1'), payload);
      const body = await notice;
      expect(body.reason).toBe(reason);
      if (field) expect(body.field).toBe(field);
      expect(String(body.detail)).not.toBe('');
      expect(await metric(rig, `meterbridge_rejected_messages_total{reason="${reason}"}`)).toBe(1);
      expect(rig.gateway.journal.head.index).toBe(0);
      // The accepting twin: the same connection's next good message goes in.
      await publish(client, usageTopic('cnc-1'), usagePayload('cnc-1', 2));
      expect(rig.gateway.journal.head.index).toBe(1);
      const state = await rig.gateway.snapshot();
      expect(state.rejections[0]).toMatchObject({ deviceId: 'cnc-1', reason });
    });
  }
});
