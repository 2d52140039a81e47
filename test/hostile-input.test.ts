/**
 * Hostile input against a running gateway: each attack refused with its reason, nothing
 * crashes, memory stays bounded. The fuzz runs thousands of random payloads through a
 * real broker connection.
 */
import fc from 'fast-check';
import { connect } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../protocol/signing.ts';
import { rejectionTopic, usageTopic } from '../protocol/usage-message.ts';
import { signedPayload, SIGNING_DEVICE, startTestRig, usagePayload, type TestRig } from './support/test-gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function rejected(rig: TestRig, reason: string): Promise<number> {
  const text = await (await fetch(`${rig.gateway.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`meterbridge_rejected_messages_total{reason="${reason}"} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** A raw MQTT connection, for what a well-behaved client library refuses to send. */
async function rawConnect(port: number, deviceId: string, password: string): Promise<import('node:net').Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: deviceId, keepalive: 30, username: deviceId, password: Buffer.from(password) }));
  await new Promise<void>((resolve) => socket.once('data', () => resolve())); // CONNACK
  return socket;
}

describe('hostile input', () => {
  let rig: TestRig;
  beforeAll(async () => {
    // The fuzz sends thousands of messages as fast as acks come back: lift the per-device rate
    // limit here; it has its own test below.
    rig = await startTestRig({ configPatch: (raw) => void (raw.mqtt = { ...(raw.mqtt as object), deviceRatePerSMax: 100_000 }) });
  });
  afterAll(async () => {
    await rig.close();
  });

  const expectAlive = async (): Promise<void> => {
    const health = (await (await fetch(`${rig.gateway.httpUrl}/healthz`)).json()) as { status: string };
    expect(health.status).toBe('ok');
  };

  it('drops a connection announcing a packet over the size limit before buffering it', async () => {
    const socket = await rawConnect(rig.gateway.mqttPort, 'cnc-1', 'cnc-1-secret');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // Fixed header announcing 1 MiB, then a trickle: the guard must not wait for the body.
    socket.write(Buffer.from([0x32, 0x80, 0x80, 0x40]));
    await closed;
    expect(await rejected(rig, 'payload_too_large')).toBeGreaterThanOrEqual(1);
    await expectAlive();
  });

  it('refuses a usage payload over 4 KiB that fits in a packet, naming the limit', async () => {
    const client = await rig.connect('cnc-1');
    await client.subscribeAsync(rejectionTopic('cnc-1'), { qos: 1 });
    const notice = new Promise<Record<string, unknown>>((resolve) => client.once('message', (_t, p) => resolve(JSON.parse(p.toString()) as Record<string, unknown>)));
    await client.publishAsync(usageTopic('cnc-1'), 'x'.repeat(5_000), { qos: 1 });
    expect(await notice).toMatchObject({ reason: 'payload_too_large' });
    await client.endAsync();
  });

  it('closes a connection publishing to a 200-level topic and counts it', async () => {
    const client = await rig.connect('cnc-1');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(Array.from({ length: 200 }, (_, i) => `l${i}`).join('/'), 'x', { qos: 1 });
    await closed;
    await client.endAsync(true);
    expect(await rejected(rig, 'topic_too_deep')).toBe(1);
    await expectAlive();
  });

  it('refuses unknown devices and wrong passwords at connect', async () => {
    await expect(rig.connect('ghost-7', 'anything')).rejects.toThrow();
    await expect(rig.connect('cnc-1', 'guessed')).rejects.toThrow();
    expect(await rejected(rig, 'auth_failed')).toBeGreaterThanOrEqual(2);
  });

  it('accepts a message signed by the device key and refuses a forged or missing signature', async () => {
    const client = await rig.connect(SIGNING_DEVICE.id);
    await client.subscribeAsync(rejectionTopic(SIGNING_DEVICE.id), { qos: 1 });
    const notices: Array<Record<string, unknown>> = [];
    client.on('message', (_t, p) => notices.push(JSON.parse(p.toString()) as Record<string, unknown>));
    const before = rig.gateway.journal.head.index;
    await client.publishAsync(usageTopic(SIGNING_DEVICE.id), signedPayload(1), { qos: 1 });
    expect(rig.gateway.journal.head.index).toBe(before + 1);
    expect((await rig.gateway.journal.get(before + 1))?.record.deviceSig).toMatch(/^[0-9a-f]{128}$/);
    await client.publishAsync(usageTopic(SIGNING_DEVICE.id), signedPayload(2, generateSigningKey()), { qos: 1 });
    await client.publishAsync(usageTopic(SIGNING_DEVICE.id), usagePayload(SIGNING_DEVICE.id, 3, { time: new Date().toISOString() }), { qos: 1 });
    await client.publishAsync(usageTopic(SIGNING_DEVICE.id), signedPayload(4).replace('"quantity":"1"', '"quantity":"9"'), { qos: 1 });
    await sleep(200);
    expect(notices.map((n) => n.reason)).toEqual(['bad_signature', 'signature_required', 'bad_signature']);
    expect(rig.gateway.journal.head.index).toBe(before + 1);
    await client.endAsync();
  });

  it('refuses replayed old messages and timestamps from the future', async () => {
    const client = await rig.connect('truck-1');
    await client.subscribeAsync(rejectionTopic('truck-1'), { qos: 1 });
    const notices: Array<Record<string, unknown>> = [];
    client.on('message', (_t, p) => notices.push(JSON.parse(p.toString()) as Record<string, unknown>));
    const before = rig.gateway.journal.head.index;
    const message = usagePayload('truck-1', 500, { time: new Date().toISOString() });
    await client.publishAsync(usageTopic('truck-1'), message, { qos: 1 });
    await client.publishAsync(usageTopic('truck-1'), message, { qos: 1 }); // exact replay: a duplicate, recorded once
    await client.publishAsync(usageTopic('truck-1'), usagePayload('truck-1', 501, { time: '2024-01-01T00:00:00.000Z' }), { qos: 1 });
    await client.publishAsync(usageTopic('truck-1'), usagePayload('truck-1', 502, { time: new Date(Date.now() + 3_600_000).toISOString() }), { qos: 1 });
    await sleep(200);
    expect(rig.gateway.journal.head.index).toBe(before + 1);
    expect(notices.map((n) => n.reason)).toEqual(['time_too_old', 'time_in_future']);
    await client.endAsync();
  });

  it('survives thousands of random payloads: each accepted or refused with a reason, memory bounded', async () => {
    const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
    const client = await rig.connect('yard-1');
    const before = rig.gateway.journal.head.index;
    const rejectionsBefore = (await rig.gateway.snapshot()).rejectionsDropped;
    const heapBeforeMb = process.memoryUsage().heapUsed / 1_048_576;
    const fieldValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.stringMatching(/^[0-9]{1,20}$/), fc.array(fc.integer(), { maxLength: 3 }));
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      fc.string({ maxLength: 300 }).map((s) => new TextEncoder().encode(s)),
      fc.dictionary(fc.constantFrom('v', 'deviceId', 'seq', 'meter', 'quantity', 'unit', 'time', 'kind', 'reading', 'epoch', 'sig', 'extra'), fieldValue).map((o) => new TextEncoder().encode(JSON.stringify(o))),
      fc.record({ v: fc.constant(1), deviceId: fc.constant('yard-1'), seq: fc.integer({ min: -5, max: 2 ** 40 }), meter: fc.constantFrom('slot-time', 'cycles', ''), quantity: fc.oneof(fc.stringMatching(/^-?[0-9]{0,20}$/), fc.integer()), unit: fc.constantFrom('slot-s', 'm'), time: fc.constantFrom(new Date().toISOString(), 'yesterday', '2026-02-30T00:00:00Z') })
        .map((o) => new TextEncoder().encode(JSON.stringify(o))),
    );
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(payload, async (bytes) => {
        await client.publishAsync(usageTopic('yard-1'), Buffer.from(bytes), { qos: 1 });
        sent += 1;
      }),
      { numRuns: 3_000, seed },
    );
    expect(sent).toBe(3_000);
    const state = await rig.gateway.snapshot();
    const accepted = rig.gateway.journal.head.index - before;
    const refusedTotal = [...state.rejections].length + state.rejectionsDropped - rejectionsBefore;
    expect(accepted + refusedTotal, `seed ${seed}`).toBeGreaterThan(0);
    expect(state.rejections.length).toBeLessThanOrEqual(rig.config.limits.rejectionsKept);
    for (const refusal of state.rejections.filter((r) => r.deviceId === 'yard-1')) expect(refusal.reason.length).toBeGreaterThan(0);
    const heapAfterMb = process.memoryUsage().heapUsed / 1_048_576;
    expect(heapAfterMb - heapBeforeMb, 'heap growth over 3000 hostile messages (MB)').toBeLessThan(100);
    await client.endAsync();
    await expectAlive();
  }, 120_000);
});

describe('per-device limits', () => {
  let rig: TestRig;
  beforeAll(async () => {
    rig = await startTestRig({ configPatch: (raw) => void (raw.mqtt = { ...(raw.mqtt as object), deviceRatePerSMax: 20, deviceInflightMax: 50 }) });
  });
  afterAll(async () => {
    await rig.close();
  });

  it('slows a device down to its rate with later acks, and refuses a flood without acknowledging it', async () => {
    const client = await rig.connect('cnc-2');
    const startedMs = Date.now();
    await Promise.all(Array.from({ length: 40 }, (_, i) => client.publishAsync(usageTopic('cnc-2'), usagePayload('cnc-2', i + 1, { time: new Date().toISOString() }), { qos: 1 })));
    // 20 per second with a burst of 20: the last of 40 cannot be acked before ~1 s.
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(900);
    expect(rig.gateway.journal.head.index).toBe(40);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    for (let i = 0; i < 200; i += 1) client.publish(usageTopic('cnc-2'), usagePayload('cnc-2', 100 + i, { time: new Date().toISOString() }), { qos: 1 });
    await closed;
    expect(await rejected(rig, 'rate_limited')).toBeGreaterThanOrEqual(1);
    await client.endAsync(true);
  });
});
