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
import { startMosquitto, type MosquittoServer } from '../../bench/mosquitto-server.ts';
import { ed25519 } from '@noble/curves/ed25519.js';
import { canonicalBytes } from '../../protocol/canonical-json.ts';
import { toHex } from '../../protocol/hash.ts';
import { signingKeyFromSecret } from '../../protocol/signing.ts';
import type { JwsKeyPair } from '../../gateway/settlement/jws.ts';

export const TEST_DEVICES: ReadonlyArray<{ id: string; kind: MachineKind; payer: string; meter: string; password: string }> = [
  { id: 'cnc-1', kind: 'cnc', payer: 'acme-plant', meter: 'cycles', password: 'cnc-1-secret' },
  { id: 'cnc-2', kind: 'cnc', payer: 'acme-plant', meter: 'cycles', password: 'cnc-2-secret' },
  { id: 'truck-1', kind: 'truck', payer: 'northline-logistics', meter: 'distance', password: 'truck-1-secret' },
  { id: 'yard-1', kind: 'yard', payer: 'harbour-yard', meter: 'slot-time', password: 'yard-1-secret' },
  { id: 'compressor-1', kind: 'compressor', payer: 'acme-plant', meter: 'energy', password: 'compressor-1-secret' },
];

export type BrokerMode = 'embedded' | 'mosquitto';

export const SPARKPLUG_NODE = { id: 'edge-1', password: 'edge-1-secret' };

export const SIGNING_DEVICE = { id: 'signer-1', password: 'signer-1-secret', key: signingKeyFromSecret(new Uint8Array(32).fill(7)) };

/** A usage message signed by the signing device's key (or `key`, to forge one). */
export function signedPayload(seq: number, key = SIGNING_DEVICE.key, overrides: Record<string, unknown> = {}): string {
  const message = { v: 1, deviceId: SIGNING_DEVICE.id, seq, meter: 'cycles', quantity: '1', unit: 'cycle', time: new Date().toISOString(), ...overrides };
  return JSON.stringify({ ...message, sig: toHex(ed25519.sign(canonicalBytes(message), key.secretKey)) });
}
const GATEWAY_BROKER_USER = { username: 'meterbridge-gateway', password: 'gateway-broker-secret' };

export interface TestRig {
  dir: string;
  mode: BrokerMode;
  mosquitto?: MosquittoServer;
  config: Readonly<GatewayConfig>;
  bank: BankSandbox;
  gateway: Gateway;
  mqttUrl: string;
  /** Stops the gateway and starts it again on the same data dir and ports. */
  restartGateway(options?: Partial<GatewayRuntimeOptions>): Promise<Gateway>;
  connect(deviceId: string, password?: string, extra?: mqtt.IClientOptions): Promise<MqttClient>;
  close(): Promise<void>;
}

export interface TestRigOptions extends Partial<GatewayRuntimeOptions> {
  settleAfterMs?: number;
  autoAuthoriseConsents?: boolean;
  bankTimeoutMs?: number;
  mode?: BrokerMode;
  /**
   * The gateway checks the bank's signatures (settlement.bank.publicKeyFile) and the bank
   * sends its event notifications to the gateway's POST /bank/events.
   */
  bankEvents?: boolean;
  /** The bank's message-signing key (default: a new one), e.g. for a test that signs as the bank. */
  bankSigningKey?: JwsKeyPair;
  /** Raw config overrides, merged over the test config (e.g. limits). */
  configPatch?: (raw: Record<string, unknown>) => void;
}

export async function startTestRig(options: TestRigOptions = {}): Promise<TestRig> {
  const dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-test-'));
  const mode = options.mode ?? 'embedded';
  const mosquitto = mode === 'mosquitto'
    ? await startMosquitto(path.join(dir, 'mosquitto'), [...[...TEST_DEVICES, SIGNING_DEVICE, SPARKPLUG_NODE].map((d) => ({ username: d.id, password: d.password })), GATEWAY_BROKER_USER], GATEWAY_BROKER_USER.username)
    : undefined;
  const bankToken = 'test-bank-token';
  const bank = await startBankSandbox({ port: 0, accessTokens: [bankToken], autoAuthoriseConsents: options.autoAuthoriseConsents ?? true, settleAfterMs: options.settleAfterMs ?? 50, ...(options.bankSigningKey ? { signingKey: options.bankSigningKey } : {}) });
  const devices: Array<Record<string, unknown>> = await Promise.all(TEST_DEVICES.map(async (d) => ({ id: d.id, payer: d.payer, meters: [d.meter], passwordHash: await hashPassword(d.password) })));
  // A Sparkplug B edge node (its metrics bill other devices through config mappings).
  devices.push({ id: SPARKPLUG_NODE.id, payer: 'acme-plant', meters: ['energy'], passwordHash: await hashPassword(SPARKPLUG_NODE.password), sparkplug: { group: 'plant', node: SPARKPLUG_NODE.id } });
  // A device that signs its messages with its own Ed25519 key.
  devices.push({ id: SIGNING_DEVICE.id, payer: 'acme-plant', meters: ['cycles'], passwordHash: await hashPassword(SIGNING_DEVICE.password), publicKey: toHex(SIGNING_DEVICE.key.publicKey) });
  await writeFile(path.join(dir, 'devices.json'), JSON.stringify({ devices }));
  const raw = demoGatewayConfig({ mqtt: 0, http: 0, bank: bank.port }, '0 0 1 1 *');
  const settlement = raw.settlement as Record<string, unknown>;
  const patched: Record<string, unknown> = {
    ...raw,
    logLevel: 'silent',
    dataDir: path.join(dir, 'data'),
    devicesFile: path.join(dir, 'devices.json'),
    settlement: { ...settlement, pollIntervalMs: 200, bank: { url: bank.url, token: bankToken, timeoutMs: options.bankTimeoutMs ?? 2_000, ...(options.bankEvents ? { publicKeyFile: await writeBankJwk(dir, bank) } : {}) } },
    ...(mosquitto ? { mqtt: { mode: 'external', external: { url: mosquitto.url, ...GATEWAY_BROKER_USER, keepaliveS: 10 } } } : {}),
  };
  options.configPatch?.(patched);
  const config = parseConfig(patched);
  const logger = options.logger ?? pino({ level: 'silent' });
  const { settleAfterMs: _s, autoAuthoriseConsents: _a, bankTimeoutMs: _t, logger: _l, mode: _m, configPatch: _c, bankEvents: _e, bankSigningKey: _k, ...runtime } = options;
  let gateway = await startGateway(config, { logger, ...runtime });
  await gateway.mqttReady;
  if (options.bankEvents) bank.setCallbackUrl(`${gateway.httpUrl}/bank/events`);
  let mqttPort = mosquitto ? mosquitto.port : gateway.mqttPort;
  const clients: MqttClient[] = [];
  const rig: TestRig = {
    dir, config, bank, gateway, mode,
    ...(mosquitto ? { mosquitto } : {}),
    get mqttUrl() {
      return `mqtt://127.0.0.1:${mqttPort}`;
    },
    async restartGateway(restartOptions = {}) {
      await gateway.stop();
      // Same port, so connected devices reconnect to the new process as they would in the field.
      const again = mosquitto ? config : parseConfig({ ...config, mqtt: { ...config.mqtt, port: mqttPort } });
      gateway = await startGateway(again, { logger, ...restartOptions });
      await gateway.mqttReady;
      if (!mosquitto) mqttPort = gateway.mqttPort;
      rig.gateway = gateway;
      if (options.bankEvents) bank.setCallbackUrl(`${gateway.httpUrl}/bank/events`);
      return gateway;
    },
    async connect(deviceId, password, extra = {}) {
      const known = [...TEST_DEVICES, SIGNING_DEVICE, SPARKPLUG_NODE].find((d) => d.id === deviceId);
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
      await mosquitto?.stop();
      await bank.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return rig;
}

/** The bank's public JWK in the rig's folder, for settlement.bank.publicKeyFile. */
async function writeBankJwk(dir: string, bank: BankSandbox): Promise<string> {
  const file = path.join(dir, 'bank-signing.jwk.json');
  await writeFile(file, JSON.stringify(bank.signingJwk));
  return file;
}

export function usagePayload(deviceId: string, seq: number, overrides: Record<string, unknown> = {}): string {
  const device = TEST_DEVICES.find((d) => d.id === deviceId);
  const meter = device?.meter ?? 'cycles';
  const unit = ({ cycles: 'cycle', distance: 'm', 'slot-time': 'slot-s', energy: 'wh' } as Record<string, string>)[meter] ?? 'cycle';
  // Now, not a fixed date: usage older than limits.usageAgeMaxMs is refused as a replay.
  return JSON.stringify({ v: 1, deviceId, seq, meter, quantity: '1', unit, time: new Date().toISOString(), ...overrides });
}

/** Publishes `count` usage messages from a device (QoS 1) and waits for every ack. */
export async function sendUsage(rig: TestRig, deviceId: string, count: number, firstSeq = 1, quantity = '1'): Promise<void> {
  const client = await rig.connect(deviceId);
  const topic = `meterbridge/v1/devices/${deviceId}/usage`;
  await Promise.all(Array.from({ length: count }, (_, i) => client.publishAsync(topic, usagePayload(deviceId, firstSeq + i, { quantity }), { qos: 1 })));
  await client.endAsync();
}
