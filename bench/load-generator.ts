/**
 * The bench's device fleet, in its own process: M devices on raw TCP sockets speaking
 * just enough MQTT 3.1.1 (CONNECT, QoS 1 PUBLISH, PUBACK) to load a broker while costing
 * as little CPU as possible, so on a 2-core machine the figure is the broker's and not
 * the load generator's. Reads its job as JSON from argv[2]; prints one JSON line with the
 * ack latencies' percentiles when done.
 *
 * Closed loop (no rate): each device keeps `inflight` messages unacknowledged. Open loop
 * (rate R): message k of a device is due at start + offset + k·interval; latency is
 * measured from when it was due, so a slow ack that delays the next send still counts
 * (no coordinated omission).
 */
import { connect, type Socket } from 'node:net';
import { usageTopic } from '../protocol/usage-message.ts';

export interface LoadJob {
  host: string;
  port: number;
  devices: Array<{ id: string; password: string }>;
  messagesPerDevice: number;
  /** Sent first, as fast as acks allow, and not measured: lets both sides' JIT warm up. */
  warmupPerDevice: number;
  inflight: number;
  ratePerS?: number;
}

export interface LoadReport {
  acknowledged: number;
  elapsedMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function remainingLength(length: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return Buffer.from(bytes);
}

function utf8Field(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(body.length);
  return Buffer.concat([length, body]);
}

function connectPacket(id: string, password: string): Buffer {
  const variable = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0b1100_0010, 0, 60]); // MQTT, level 4, user+password+clean, keepalive 60
  const body = Buffer.concat([variable, utf8Field(id), utf8Field(id), utf8Field(password)]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

function publishPacket(topic: Buffer, messageId: number, payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  const length = topic.length + 2 + body.length;
  const header = remainingLength(length);
  const packet = Buffer.allocUnsafe(1 + header.length + length);
  packet[0] = 0x32; // PUBLISH, QoS 1
  header.copy(packet, 1);
  let at = 1 + header.length;
  at += topic.copy(packet, at);
  packet.writeUInt16BE(messageId, at);
  body.copy(packet, at + 2);
  return packet;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

class Device {
  readonly socket: Socket;
  readonly #topic: Buffer;
  readonly #id: string;
  #nextSeq = 1;
  #inflight = 0;
  /** When each message id in flight was due (or sent), by message id. */
  readonly #dueAt = new Float64Array(65_536);
  #pending: Buffer = Buffer.alloc(0);
  #connected: () => void = () => {};

  constructor(
    readonly job: LoadJob,
    credentials: { id: string; password: string },
    readonly offsetMs: number,
    readonly onAck: (latencyMs: number) => void,
  ) {
    this.#id = credentials.id;
    this.#topic = utf8Field(usageTopic(credentials.id));
    this.socket = connect({ host: job.host, port: job.port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.#read(chunk));
    this.socket.on('error', (error) => {
      process.stderr.write(`load generator: device ${this.#id}: ${error.message}\n`);
      process.exit(1);
    });
    this.socket.write(connectPacket(credentials.id, credentials.password));
  }

  connected(): Promise<void> {
    return new Promise((resolve) => (this.#connected = resolve));
  }

  /**
   * Sends what is due (open loop) or what the in-flight window allows (closed loop), up
   * to message `lastSeq`; `firstSeq` is the first message of the phase (its schedule's origin).
   */
  pump(nowMs: number, phase: { startedMs: number; intervalMs: number; firstSeq: number; lastSeq: number }): void {
    let corked = false;
    while (this.#nextSeq <= phase.lastSeq && this.#inflight < this.job.inflight) {
      const seq = this.#nextSeq;
      const dueMs = phase.intervalMs > 0 ? phase.startedMs + this.offsetMs + (seq - phase.firstSeq) * phase.intervalMs : nowMs;
      if (dueMs > nowMs) break;
      if (!corked) {
        this.socket.cork();
        corked = true;
      }
      const messageId = ((seq - 1) % 65_535) + 1;
      this.#dueAt[messageId] = dueMs;
      const payload = `{"v":1,"deviceId":"${this.#id}","seq":${seq},"meter":"cycles","quantity":"1","unit":"cycle","time":"${new Date().toISOString()}"}`;
      this.socket.write(publishPacket(this.#topic, messageId, payload));
      this.#nextSeq += 1;
      this.#inflight += 1;
    }
    if (corked) this.socket.uncork();
  }

  #read(chunk: Buffer): void {
    const data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    let at = 0;
    const nowMs = performance.now();
    while (data.length - at >= 2) {
      const type = data[at]! >> 4;
      const length = data[at + 1]!; // CONNACK and PUBACK are short: one length byte
      if (data.length - at < 2 + length) break;
      if (type === 2) {
        if (data[at + 3] !== 0) {
          process.stderr.write(`load generator: device ${this.#id} refused, CONNACK code ${data[at + 3]}\n`);
          process.exit(1);
        }
        this.#connected();
      } else if (type === 4) {
        const messageId = data.readUInt16BE(at + 2);
        this.#inflight -= 1;
        this.onAck(nowMs - this.#dueAt[messageId]!);
      } else if (length >= 0x80) {
        throw new Error(`load generator: unexpected long packet type ${type}`);
      }
      at += 2 + length;
    }
    this.#pending = at < data.length ? data.subarray(at) : Buffer.alloc(0);
  }
}

export async function runLoadJob(job: LoadJob): Promise<LoadReport> {
  const total = job.devices.length * job.messagesPerDevice;
  const latencies = new Float64Array(total);
  let acknowledged = 0;
  let measuring = false;
  let wake: (() => void) | undefined;
  const onAck = (latencyMs: number): void => {
    if (measuring) latencies[acknowledged] = latencyMs;
    acknowledged += 1;
    if (!wake) return;
    const resume = wake;
    wake = undefined;
    queueMicrotask(resume); // pump after every ack of this read is counted
  };
  const intervalMs = job.ratePerS ? (job.devices.length * 1000) / job.ratePerS : 0;
  const devices = job.devices.map((credentials, i) => new Device(job, credentials, intervalMs > 0 ? (i * intervalMs) / job.devices.length : 0, onAck));
  await Promise.all(devices.map((d) => d.connected()));

  const runPhase = async (phase: { startedMs: number; intervalMs: number; firstSeq: number; lastSeq: number }, expected: number): Promise<void> => {
    let lastReportMs = phase.startedMs;
    while (acknowledged < expected) {
      const nowMs = performance.now();
      for (const device of devices) device.pump(nowMs, phase);
      if (measuring && nowMs - lastReportMs > 2_000) {
        lastReportMs = nowMs;
        process.stderr.write(`    … ${acknowledged} / ${expected} acknowledged\n`);
      }
      // Closed loop: wait for an ack. Open loop: also wake for the next due message.
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (phase.intervalMs > 0) setTimeout(() => {
          if (wake === resolve) {
            wake = undefined;
            resolve();
          }
        }, 1);
      });
    }
  };

  if (job.warmupPerDevice > 0) await runPhase({ startedMs: performance.now(), intervalMs: 0, firstSeq: 1, lastSeq: job.warmupPerDevice }, job.warmupPerDevice * devices.length);
  acknowledged = 0;
  measuring = true;
  process.stderr.write('measuring\n');
  const startedMs = performance.now();
  await runPhase({ startedMs, intervalMs, firstSeq: job.warmupPerDevice + 1, lastSeq: job.warmupPerDevice + job.messagesPerDevice }, total);
  const elapsedMs = performance.now() - startedMs;
  for (const device of devices) device.socket.end(Buffer.from([0xe0, 0])); // DISCONNECT
  const sorted = latencies.subarray(0, acknowledged).sort();
  return { acknowledged, elapsedMs: Math.round(elapsedMs), p50Ms: round2(percentile(sorted, 50)), p99Ms: round2(percentile(sorted, 99)), maxMs: round2(sorted[sorted.length - 1] ?? 0) };
}

if (process.argv[2]) {
  const report = await runLoadJob(JSON.parse(process.argv[2]) as LoadJob);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
