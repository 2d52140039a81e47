/**
 * One simulated device: connects with its own credentials, publishes usage v1 with
 * QoS 1 and counts a message delivered only when the gateway's PUBACK arrives.
 * Its sequence numbers survive restarts through a reserved-block counter file.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { rejectionTopic, usageTopic, type UsageMessage } from '../protocol/usage-message.ts';
import { MACHINES, type MachineKind } from './machines.ts';

export interface SimDeviceConfig {
  id: string;
  password: string;
  kind: MachineKind;
}

export interface SimDeviceOptions {
  mqttUrl: string;
  /** Multiplies the report rate (2 = twice as often). */
  speed: number;
  random: () => number;
  /** Where the device keeps its sequence counter; without it, seq starts at 1. */
  stateDir?: string;
  onRejection?: (deviceId: string, notice: unknown) => void;
}

const SEQ_BLOCK = 1_000;

class SeqCounter {
  #next: number;
  #reservedThrough: number;
  readonly #file: string | undefined;

  constructor(file: string | undefined) {
    this.#file = file;
    let reserved = 0;
    if (file) {
      try {
        reserved = Number(readFileSync(file, 'utf8').trim()) || 0;
      } catch {
        reserved = 0;
      }
    }
    // Never reuse a number that might have been sent before a crash: skip the whole block.
    this.#next = reserved + 1;
    this.#reservedThrough = reserved;
  }

  take(): number {
    if (this.#next > this.#reservedThrough) {
      this.#reservedThrough = this.#next + SEQ_BLOCK - 1;
      if (this.#file) writeFileSync(this.#file, `${this.#reservedThrough}\n`, { flush: true });
    }
    return this.#next++;
  }
}

export class SimDevice {
  readonly config: SimDeviceConfig;
  readonly #client: MqttClient;
  readonly #seq: SeqCounter;
  readonly #options: SimDeviceOptions;
  #timer: NodeJS.Timeout | undefined;
  sent = 0;
  /** Counter machines: the register value and the run it belongs to (a restart is a new epoch from 0). */
  #register = 0n;
  readonly #epoch = `run-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
  /** Sequence numbers the gateway acknowledged. */
  readonly acked = new Set<number>();

  constructor(config: SimDeviceConfig, options: SimDeviceOptions) {
    this.config = config;
    this.#options = options;
    if (options.stateDir) mkdirSync(options.stateDir, { recursive: true });
    this.#seq = new SeqCounter(options.stateDir ? path.join(options.stateDir, `${config.id}.seq`) : undefined);
    this.#client = mqtt.connect(options.mqttUrl, {
      clientId: config.id, username: config.id, password: config.password,
      clean: true, reconnectPeriod: 500, connectTimeout: 5_000, protocolVersion: 4,
    });
    this.#client.on('connect', () => this.#client.subscribe(rejectionTopic(config.id), { qos: 1 }));
    this.#client.on('message', (_topic, payload) => {
      let notice: unknown;
      try {
        notice = JSON.parse(payload.toString('utf8'));
      } catch {
        notice = payload.toString('utf8');
      }
      options.onRejection?.(config.id, notice);
    });
    this.#client.on('error', () => {}); // reconnects on its own; errors show as missing acks
  }

  start(): void {
    const intervalMs = MACHINES[this.config.kind].intervalMs / this.#options.speed;
    this.#timer = setInterval(() => {
      this.report().catch(() => {}); // not acknowledged: stays out of `acked`
    }, intervalMs);
  }

  /** Builds and publishes one usage message; resolves when acknowledged. */
  report(): Promise<number> {
    const profile = MACHINES[this.config.kind];
    const seq = this.#seq.take();
    const common = { v: 1 as const, deviceId: this.config.id, seq, meter: profile.meter, unit: profile.unit, time: new Date().toISOString() };
    let message: UsageMessage;
    if (profile.kind === 'counter') {
      this.#register += profile.quantity(this.#options.random);
      message = { ...common, kind: 'counter', reading: this.#register.toString(), epoch: this.#epoch };
    } else {
      message = { ...common, quantity: profile.quantity(this.#options.random).toString() };
    }
    this.sent += 1;
    return new Promise((resolve, reject) => {
      this.#client.publish(usageTopic(this.config.id), JSON.stringify(message), { qos: 1 }, (error) => {
        if (error) return reject(error);
        this.acked.add(seq);
        resolve(seq);
      });
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#client.endAsync(false);
  }
}
