/**
 * A real gateway for tests: LevelDB in a temp dir, aedes on a free port, the sandbox
 * bank over real HTTP. Nothing is mocked.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { startBankSandbox, type BankSandbox } from '../../bank-sandbox/server.ts';
import { demoGatewayConfig } from '../../cli/demo-setup.ts';
import { hashPassword } from '../../gateway/auth/password-hash.ts';
import { parseConfig, type GatewayConfig } from '../../gateway/config.ts';
import { startGateway, type Gateway, type GatewayRuntimeOptions } from '../../gateway/main.ts';
import type { MachineKind } from '../../firmware-sim/machines.ts';

export const TEST_DEVICES: ReadonlyArray<{ id: string; kind: MachineKind; payer: string; meter: string; password: string }> = [
  { id: 'cnc-1', kind: 'cnc', payer: 'acme-plant', meter: 'cycles', password: 'cnc-1-secret' },
  { id: 'cnc-2', kind: 'cnc', payer: 'acme-plant', meter: 'cycles', password: 'cnc-2-secret' },
  { id: 'truck-1', kind: 'truck', payer: 'northline-logistics', meter: 'distance', password: 'truck-1-secret' },
  { id: 'yard-1', kind: 'yard', payer: 'harbour-yard', meter: 'slot-time', password: 'yard-1-secret' },
];

export interface TestRig {
  dir: string;
  config: Readonly<GatewayConfig>;
  bank: BankSandbox;
  gateway: Gateway;
  mqttUrl: string;
  /** Stops the gateway and starts it again on the same data dir and ports. */
  restartGateway(options?: Partial<GatewayRuntimeOptions>): Promise<Gateway>;
  connect(deviceId: string, password?: string, extra?: mqtt.IClientOptions): Promise<MqttClient>;
  close(): Promise<void>;
}

export async function startTestRig(options: Partial<GatewayRuntimeOptions> & { settleAfterMs?: number; autoAuthoriseConsents?: boolean; bankTimeoutMs?: number } = {}): Promise<TestRig> {
  const dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-test-'));
  const bankToken = 'test-bank-token';
  const bank = await startBankSandbox({ port: 0, accessTokens: [bankToken], autoAuthoriseConsents: options.autoAuthoriseConsents ?? true, settleAfterMs: options.settleAfterMs ?? 50 });
  const devices = await Promise.all(TEST_DEVICES.map(async (d) => ({ id: d.id, payer: d.payer, meters: [d.meter], passwordHash: await hashPassword(d.password) })));
  await writeFile(path.join(dir, 'devices.json'), JSON.stringify({ devices }));
  const raw = demoGatewayConfig({ mqtt: 0, http: 0, bank: bank.port }, '0 0 1 1 *');
  const settlement = raw.settlement as Record<string, unknown>;
  const config = parseConfig({
    ...raw,
    logLevel: 'silent',
    dataDir: path.join(dir, 'data'),
    devicesFile: path.join(dir, 'devices.json'),
    settlement: { ...settlement, pollIntervalMs: 200, bank: { url: bank.url, token: bankToken, timeoutMs: options.bankTimeoutMs ?? 2_000 } },
  });
  const logger = options.logger ?? pino({ level: 'silent' });
  const { settleAfterMs: _s, autoAuthoriseConsents: _a, bankTimeoutMs: _t, logger: _l, ...runtime } = options;
  let gateway = await startGateway(config, { logger, ...runtime });
  let mqttPort = gateway.mqttPort;
  const clients: MqttClient[] = [];
  const rig: TestRig = {
    dir, config, bank, gateway,
    get mqttUrl() {
      return `mqtt://127.0.0.1:${mqttPort}`;
    },
    async restartGateway(restartOptions = {}) {
      await gateway.stop();
      // Same port, so connected devices reconnect to the new process as they would in the field.
      const again = parseConfig({ ...config, mqtt: { ...config.mqtt, port: mqttPort } });
      gateway = await startGateway(again, { logger, ...restartOptions });
      mqttPort = gateway.mqttPort;
      rig.gateway = gateway;
      return gateway;
    },
    async connect(deviceId, password, extra = {}) {
      const known = TEST_DEVICES.find((d) => d.id === deviceId);
      const client = mqtt.connect(rig.mqttUrl, {
        clientId: deviceId, username: deviceId, password: password ?? known?.password ?? 'nope',
        reconnectPeriod: 0, connectTimeout: 3_000, protocolVersion: 4, ...extra,
      });
      clients.push(client);
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error(`connection of ${deviceId} closed before CONNACK`)));
      });
      return client;
    },
    async close() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
      await gateway.stop().catch(() => {});
      await bank.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return rig;
}

export function usagePayload(deviceId: string, seq: number, overrides: Record<string, unknown> = {}): string {
  const device = TEST_DEVICES.find((d) => d.id === deviceId);
  const meter = device?.meter ?? 'cycles';
  const unit = meter === 'cycles' ? 'cycle' : meter === 'distance' ? 'm' : 'slot-s';
  return JSON.stringify({ v: 1, deviceId, seq, meter, quantity: '1', unit, time: '2026-11-27T12:00:00.000Z', ...overrides });
}

/** Publishes `count` usage messages from a device (QoS 1) and waits for every ack. */
export async function sendUsage(rig: TestRig, deviceId: string, count: number, firstSeq = 1, quantity = '1'): Promise<void> {
  const client = await rig.connect(deviceId);
  const topic = `meterbridge/v1/devices/${deviceId}/usage`;
  await Promise.all(Array.from({ length: count }, (_, i) => client.publishAsync(topic, usagePayload(deviceId, firstSeq + i, { quantity }), { qos: 1 })));
  await client.endAsync();
}
