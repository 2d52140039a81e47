/**
 * Everything the demo needs on disk, generated with fresh secrets: gateway config,
 * provisioning file, the simulated devices' credentials and the sandbox bank token.
 * Kept in one folder (0700) so a second start continues the same ledger.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateSecret, hashPassword } from '../gateway/auth/password-hash.ts';
import { GATEWAY_JWS_KEY_FILE, loadOrCreateJwsKey, publicJwkFileOf } from '../gateway/settlement/jws-key-file.ts';
import type { JwsKeyPair } from '../gateway/settlement/jws.ts';
import type { MachineKind } from '../firmware-sim/machines.ts';
import type { SimDeviceConfig } from '../firmware-sim/sim-device.ts';

export interface DemoPorts {
  mqtt: number;
  http: number;
  bank: number;
}

export interface DemoSetup {
  dir: string;
  configFile: string;
  bankToken: string;
  simDevices: SimDeviceConfig[];
}

const FLEET: ReadonlyArray<{ id: string; kind: MachineKind; payer: string; meter: string }> = [
  { id: 'cnc-1', kind: 'cnc', payer: 'acme-plant', meter: 'cycles' },
  { id: 'cnc-2', kind: 'cnc', payer: 'acme-plant', meter: 'cycles' },
  { id: 'truck-1', kind: 'truck', payer: 'northline-logistics', meter: 'distance' },
  { id: 'truck-2', kind: 'truck', payer: 'northline-logistics', meter: 'distance' },
  { id: 'yard-1', kind: 'yard', payer: 'harbour-yard', meter: 'slot-time' },
  { id: 'compressor-1', kind: 'compressor', payer: 'acme-plant', meter: 'energy' },
];

export function demoGatewayConfig(ports: DemoPorts, sealCron: string): Record<string, unknown> {
  return {
    gatewayId: 'demo-gateway',
    dataDir: `./${DEMO_GATEWAY_DATA_DIR}`,
    devicesFile: './devices.json',
    logLevel: 'warn',
    mqtt: { host: '127.0.0.1', port: ports.mqtt },
    http: { host: '127.0.0.1', port: ports.http },
    meters: {
      cycles: { unit: 'cycle', description: 'finished CNC machining cycles' },
      distance: { unit: 'm', description: 'metres driven' },
      'slot-time': { unit: 'slot-s', description: 'container slot occupancy, slot-seconds' },
      energy: { unit: 'wh', description: 'compressor energy register (counter readings), watt-hours', counterWrapAt: '4294967296' },
    },
    tariffs: {
      cycles: { unitPrice: '0.0003', currency: 'EUR', version: 1 },
      distance: { unitPrice: '0.00015', currency: 'GBP', version: 1 },
      'slot-time': { unitPrice: '0.0002', currency: 'EUR', version: 1 },
      energy: { unitPrice: '0.00025', currency: 'EUR', version: 1 },
    },
    payers: {
      'acme-plant': { name: 'ACME Precision Plant', currency: 'EUR', maxIndividualAmount: '500.00', account: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223321325698', name: 'ACME Precision' } },
      'northline-logistics': { name: 'Northline Logistics', currency: 'GBP', maxIndividualAmount: '500.00', account: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40400411270111', name: 'Northline Logistics' } },
      'harbour-yard': { name: 'Harbour Container Yard', currency: 'EUR', maxIndividualAmount: '500.00', account: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '08080021325698', name: 'Harbour Yard' } },
    },
    payee: { name: 'Machine Leasing Ltd', account: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '20000055667788', name: 'Machine Leasing Ltd' } },
    settlement: { sealCron, timezone: 'UTC', pollIntervalMs: 2_000, bank: { url: `http://127.0.0.1:${ports.bank}/open-banking/v4.0/pisp`, tokenFile: './bank-token', publicKeyFile: `./${publicJwkFileOf(DEMO_BANK_KEY_FILE)}`, timeoutMs: 5_000 } },
  };
}

/** The sandbox bank's P-256 signing key in the demo folder; its public JWK is the gateway's settlement.bank.publicKeyFile. */
export const DEMO_BANK_KEY_FILE = 'bank-signing-p256.key';
/** The gateway's data dir in the demo folder (as the demo config names it). */
const DEMO_GATEWAY_DATA_DIR = 'gateway-data';

/**
 * Both message-signing keys, made once per demo folder: the bank's, and the gateway's (made
 * here, before the gateway starts, exactly where the gateway looks for it) so the bank can
 * be told which key signs the gateway's requests.
 */
export async function ensureDemoSigningKeys(dir: string): Promise<{ bank: JwsKeyPair; gateway: JwsKeyPair }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const bank = await loadOrCreateJwsKey(path.join(dir, DEMO_BANK_KEY_FILE));
  const gateway = await loadOrCreateJwsKey(path.join(dir, DEMO_GATEWAY_DATA_DIR, GATEWAY_JWS_KEY_FILE));
  return { bank: bank.key, gateway: gateway.key };
}

/** The sandbox bank's token, made once per demo folder. */
export function ensureBankToken(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tokenFile = path.join(dir, 'bank-token');
  if (!existsSync(tokenFile)) writeFileSync(tokenFile, `${generateSecret()}\n`, { mode: 0o600 });
  return readFileSync(tokenFile, 'utf8').trim();
}

/** Creates the demo folder on first use; later uses keep ledger and secrets but refresh ports. */
export async function prepareDemo(dir: string, ports: DemoPorts, options: { sealCron?: string } = {}): Promise<DemoSetup> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const configFile = path.join(dir, 'gateway.json');
  const simFile = path.join(dir, 'sim-devices.json');
  const bankToken = ensureBankToken(dir);
  if (!existsSync(simFile)) {
    const simDevices: SimDeviceConfig[] = [];
    const devices = [];
    for (const device of FLEET) {
      const password = generateSecret();
      simDevices.push({ id: device.id, password, kind: device.kind });
      devices.push({ id: device.id, payer: device.payer, meters: [device.meter], passwordHash: await hashPassword(password) });
    }
    writeFileSync(path.join(dir, 'devices.json'), `${JSON.stringify({ devices }, null, 2)}\n`, { mode: 0o600 });
    writeFileSync(simFile, `${JSON.stringify(simDevices, null, 2)}\n`, { mode: 0o600 });
  }
  writeFileSync(configFile, `${JSON.stringify(demoGatewayConfig(ports, options.sealCron ?? '* * * * *'), null, 2)}\n`, { mode: 0o600 });
  return {
    dir, configFile,
    bankToken,
    simDevices: JSON.parse(readFileSync(simFile, 'utf8')) as SimDeviceConfig[],
  };
}
