/**
 * The gateway's one config schema: a JSON file (MB_CONFIG or --config) overlaid by
 * environment variables, defaults filled, validated, frozen. The only reader of
 * process.env in the gateway. A bad config fails fast naming the key.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';
import { MINOR_DIGITS, parseMinor, parsePriceNano } from '../protocol/money.ts';
import { ID_PATTERN } from '../protocol/usage-message.ts';
import { gpioPulseInputSchema } from './ingest/gpio/gpio-pulse-config.ts';
import { isTimeZone } from './settlement/cron-next.ts';
import { checkTariffs } from './ledger/tariff-book.ts';

const id = z.string().regex(ID_PATTERN, 'must be 1-63 of a-z 0-9 . _ - starting with a letter or digit');
const port = z.number().int().min(0).max(65535);
const currency = z.string().refine((c) => Object.hasOwn(MINOR_DIGITS, c), { message: `must be one of ${Object.keys(MINOR_DIGITS).join(', ')}` });

const bankAccount = z.strictObject({
  schemeName: z.string().min(1).max(40),
  identification: z.string().min(1).max(256),
  name: z.string().min(1).max(70), // OBIE VRP 4.0: account Name max 70
  /** The account's bank (BIC, 8 or 11 characters) for pain.001 files; VRP does not send it. */
  bic: z.string().regex(/^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$/, 'must be a BIC of 8 or 11 characters, like "DEUTDEFF"').optional(),
});

const meter = z.strictObject({
  unit: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/i),
  description: z.string().max(200).optional(),
  /** For counter readings: the register wraps to 0 at this value (e.g. "4294967296" for 32 bits). */
  counterWrapAt: z.string().regex(/^[1-9][0-9]{0,18}$/, 'must be a positive integer as a string').optional(),
});

const decimalText = z.string().regex(/^(0|[1-9][0-9]{0,17})(\.[0-9]{1,9})?$/, 'must be a non-negative decimal string with at most 9 decimals, like "0.0003"');

/** A tariff rule and the rest of a version are checked in full by protocol/tariff.ts (checkTariffVersion), with the field named. */
const tariffOverride = z.strictObject({
  rule: z.record(z.string(), z.unknown()).optional(),
  minimumPerPeriod: decimalText.optional(),
  capPerPeriod: decimalText.optional(),
});

const tariffVersion = z.strictObject({
  /** Each record names the version (and hash) of the tariff that priced it. */
  version: z.union([z.string().regex(/^[A-Za-z0-9._-]{1,32}$/), z.number().int().min(1)]).transform(String),
  /** RFC 3339 instant; usage is priced by the version in force at its deviceTime, so a change never reprices past usage. */
  effectiveFrom: z.iso.datetime({ offset: true }),
  currency,
  /** What prices are per (mile, km, kwh, slot-h…); converted exactly from the meter's unit. Default: the meter's unit. */
  priceUnit: z.string().min(1).max(16).optional(),
  period: z.enum(['day', 'month']).default('month'),
  timeZone: z.string().min(1).max(64).default('UTC'),
  rule: z.record(z.string(), z.unknown()),
  minimumPerPeriod: decimalText.optional(),
  capPerPeriod: decimalText.optional(),
  /** Per-payer overrides of the rule, minimum or cap. */
  overrides: z.record(id, tariffOverride).default({}),
});

/**
 * Either a schedule of versions (docs/tariffs.md) or the one-line shorthand
 * `{ unitPrice, currency, version }`: one per-unit version in force since 1970.
 */
const tariff = z.strictObject({
  /** Shorthand: price per base unit of the meter, decimal string, at most 9 decimals. */
  unitPrice: z.string().refine((p) => { try { parsePriceNano(p, 'unitPrice'); return true; } catch { return false; } }, {
    message: 'must be a decimal string with at most 9 decimals, like "0.0003"',
  }).optional(),
  currency: currency.optional(),
  version: z.number().int().min(1).optional(),
  versions: z.array(tariffVersion).min(1).max(100).optional(),
}).superRefine((t, ctx) => {
  const shorthand = t.unitPrice !== undefined || t.currency !== undefined || t.version !== undefined;
  if (t.versions && shorthand) ctx.addIssue({ code: 'custom', message: 'give either versions or the shorthand unitPrice/currency/version, not both' });
  if (!t.versions && (t.unitPrice === undefined || t.currency === undefined)) ctx.addIssue({ code: 'custom', message: 'needs versions, or unitPrice and currency' });
});

const cronExpression = z.string().refine((expression) => cron.validate(expression), { message: 'must be a node-cron expression (5 or 6 fields), like "0 * * * *"' });
const timeZone = z.string().refine(isTimeZone, { message: 'must be an IANA time zone, like "Europe/London"' });
/** An amount in the payer's currency; its decimals are checked against the currency's minor units. */
const payerAmount = z.string().regex(/^(0|[1-9][0-9]{0,17})(\.[0-9]{1,9})?$/, 'must be a non-negative decimal string in the payer\'s currency, like "25.00"');

/** When a payer's open records are sealed and paid (docs/settlement.md). */
const payerSettlement = z.strictObject({
  /** Default: settlement.sealCron. */
  cron: cronExpression.optional(),
  /** The zone `cron` reads the wall clock of. Default: settlement.timezone. */
  timeZone: timeZone.optional(),
  /** Also settle as soon as the open balance (unsealed + carried) reaches this. */
  settleAtBalance: payerAmount.optional(),
  /** Never pay less (fees): a due run below it seals nothing and waits until the balance reaches it. */
  minimumPayment: payerAmount.optional(),
});

const payer = z.strictObject({
  name: z.string().min(1).max(140),
  currency,
  /** Largest single payment the consent allows, decimal in major units. */
  maxIndividualAmount: z.string().default('1000.00'),
  account: bankAccount.optional(),
  settlement: payerSettlement.optional(),
});

export const configSchema = z.strictObject({
  gatewayId: id.default('gateway-1'),
  dataDir: z.string().min(1).default('./data'),
  /** Device provisioning file; in a config file, relative paths are resolved against the file's folder. */
  devicesFile: z.string().min(1).default('./devices.json'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  mqtt: z.strictObject({
    /** embedded: the gateway is the broker (aedes). external: it joins a broker such as Mosquitto. */
    mode: z.enum(['embedded', 'external']).default('embedded'),
    host: z.string().default('0.0.0.0'),
    port: port.default(1883),
    /** Largest MQTT packet a device may send (embedded mode); bigger ones drop the connection. */
    packetBytesMax: z.number().int().min(256).max(1_048_576).default(8_192),
    /** Topic levels allowed (embedded mode); usage topics have 5. */
    topicLevelsMax: z.number().int().min(5).max(100).default(8),
    /** Usage messages per device per second (token bucket, burst = one second's worth). */
    deviceRatePerSMax: z.number().int().min(1).max(100_000).default(200),
    /** Unacknowledged usage messages per device connection at once. */
    deviceInflightMax: z.number().int().min(1).max(10_000).default(100),
    /** Open connections from one IP address (a gateway LAN, a NAT: be generous). */
    connectionsPerIpMax: z.number().int().min(1).max(100_000).default(256),
    /** TLS for the embedded broker; with clientCertRequired, mutual TLS with per-device certificates (CN = device id). */
    tls: z.strictObject({
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
      /** CA that signed the device certificates. */
      caFile: z.string().min(1).optional(),
      clientCertRequired: z.boolean().default(false),
    }).optional(),
    external: z.strictObject({
      url: z.string().regex(/^mqtts?:\/\/[^/]+$/, 'must look like mqtt://host:1883 or mqtts://host:8883'),
      clientId: z.string().min(1).max(23).optional(),
      username: z.string().min(1),
      /** Prefer MB_MQTT_PASSWORD or passwordFile so the secret stays out of the config. */
      password: z.string().min(1).optional(),
      passwordFile: z.string().min(1).optional(),
      caFile: z.string().min(1).optional(),
      keepaliveS: z.number().int().min(5).max(3_600).default(30),
    }).optional(),
  }).prefault({}),
  http: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: port.default(8080),
    sessionTtlMs: z.number().int().min(60_000).max(7 * 24 * 3_600_000).default(8 * 3_600_000),
    /** A file holding a token: then /healthz and /metrics need `Authorization: Bearer <token>` (default: open, for a local agent). */
    metricsTokenFile: z.string().min(1).optional(),
  }).prefault({}),
  /** Store-and-forward to cloud-sync (docs/cloud-sync.md); without `url` the gateway keeps no outbox. */
  uplink: z.strictObject({
    url: z.string().url().refine((u) => /^https?:/.test(u), { message: 'must be an http:// or https:// URL' }).optional(),
    /** Disk the outbox may use: the page warns at 80%; at 100% new usage is refused (billing data is never dropped). */
    budgetBytes: z.number().int().min(64 * 1_048_576).max(1_099_511_627_776).default(256 * 1_048_576),
    healthIntervalMs: z.number().int().min(60_000).max(86_400_000).default(300_000),
    idleTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    requestTimeoutMs: z.number().int().min(100).max(3_600_000).default(600_000),
    retryBaseMs: z.number().int().min(1).max(60_000).default(1_000),
    retryCapMs: z.number().int().min(1).max(3_600_000).default(300_000),
    /** Retry after a refusal that needs an operator (bad signature, unknown gateway, conflict). */
    operatorRetryMs: z.number().int().min(1).max(86_400_000).default(900_000),
    /** Mutual TLS to cloud-sync: CA to trust, and the gateway's client certificate and key. */
    tls: z.strictObject({ caFile: z.string().optional(), certFile: z.string().optional(), keyFile: z.string().optional() })
      .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), { message: 'certFile and keyFile go together' }).optional(),
    /** The first batch to upload: a gateway with a history switched onto the uplink need not send it all. */
    firstBatchNo: z.number().int().min(1).default(1),
  }).refine((u) => u.retryCapMs >= u.retryBaseMs, { message: 'retryCapMs must be at least retryBaseMs' }).prefault({}),
  meters: z.record(id, meter).refine((m) => Object.keys(m).length > 0, { message: 'at least one meter is required' }),
  tariffs: z.record(id, tariff),
  payers: z.record(id, payer).refine((p) => Object.keys(p).length > 0, { message: 'at least one payer is required' }),
  payee: z.strictObject({ name: z.string().min(1).max(140), account: bankAccount }),
  settlement: z.strictObject({
    /** node-cron expression (5 or 6 fields) for sealing open records into batches. */
    sealCron: cronExpression.default('0 * * * *'),
    /** The zone sealCron reads the wall clock of. sealCron and timezone are every payer's default schedule. */
    timezone: timeZone.default('UTC'),
    /** How often payments in flight are submitted, retried and polled. */
    pollIntervalMs: z.number().int().min(200).max(3_600_000).default(5_000),
    bank: z.strictObject({
      url: z.url(),
      /** Bearer token; prefer MB_BANK_TOKEN or tokenFile so it stays out of the config file. */
      token: z.string().min(1).optional(),
      tokenFile: z.string().min(1).optional(),
      /** The bank's public signing key (JWK or JWKS): its answers must carry x-jws-signature by it (docs/bank-api.md). */
      publicKeyFile: z.string().min(1).optional(),
      timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
    }),
  }),
  /** Pulse counters on GPIO lines, reported as counter readings of a provisioned device (docs/gpio.md). */
  gpio: z.strictObject({
    pulseInputs: z.record(id, gpioPulseInputSchema.extend({
      deviceId: id,
      meter: id,
      /** onoff: a real line through sysfs. simulated: a pin driven by firmware-sim (demo, CI). */
      driver: z.enum(['onoff', 'simulated']).default('onoff'),
      simulatedRateHz: z.number().min(0.01).max(1_000).default(2),
    })).default({}),
  }).prefault({}),
  /** Sparkplug B metrics billed as meters (docs/sparkplug.md); one mapping per billed device. */
  sparkplug: z.strictObject({
    mappings: z.array(z.strictObject({
      group: z.string().min(1).max(64),
      node: z.string().min(1).max(64),
      device: z.string().min(1).max(64),
      metric: z.string().min(1).max(256),
      deviceId: id,
      meter: id,
      kind: z.enum(['counter', 'increment']),
      /** Integer base units per metric unit (e.g. "1000" for kWh metrics on a Wh meter). */
      scale: z.union([z.string(), z.number()]).optional(),
    })).max(10_000).default([]),
  }).prefault({}),
  ledger: z.strictObject({
    /** A signed checkpoint of the chain head after this many records… */
    checkpointEveryRecords: z.number().int().min(1).max(1_000_000).default(1_000),
    /** …or this long after the last one, whichever comes first. */
    checkpointIntervalMs: z.number().int().min(100).max(3_600_000).default(10_000),
  }).prefault({}),
  limits: z.strictObject({
    /** Messages waiting for their durable write; beyond it devices are refused (no ack), not queued. */
    intakeQueueMax: z.number().int().min(1).max(1_000_000).default(20_000),
    /** Records written in one LevelDB batch (one fsync). */
    intakeBatchMax: z.number().int().min(1).max(10_000).default(500),
    /** Refused messages kept for the operator (oldest dropped first). */
    rejectionsKept: z.number().int().min(0).max(100_000).default(1_000),
    devicesMax: z.number().int().min(1).max(100_000).default(10_000),
    /** Below this much free space on the data disk, new usage is refused (not acknowledged). */
    diskFreeBytesMin: z.number().int().min(0).max(1_099_511_627_776).default(104_857_600),
    /** Usage stamped further ahead of the gateway clock is refused (clock trouble or forgery). */
    clockSkewMaxMs: z.number().int().min(1_000).max(86_400_000).default(300_000),
    /** Usage older than this is refused as a replay (devices buffer offline, so be generous). */
    usageAgeMaxMs: z.number().int().min(3_600_000).max(400 * 86_400_000).default(35 * 86_400_000),
  }).prefault({}),
});

export type GatewayConfig = z.infer<typeof configSchema>;
export type BankAccountConfig = z.infer<typeof bankAccount>;

export class ConfigError extends Error {
  readonly code = 'MB_CONFIG_INVALID';
}

/** Env overrides: MB_<KEY> for the keys an operator changes per machine. */
const ENV_OVERRIDES: ReadonlyArray<[string, string[], 'string' | 'number']> = [
  ['MB_GATEWAY_ID', ['gatewayId'], 'string'],
  ['MB_DATA_DIR', ['dataDir'], 'string'],
  ['MB_DEVICES_FILE', ['devicesFile'], 'string'],
  ['MB_LOG_LEVEL', ['logLevel'], 'string'],
  ['MB_MQTT_HOST', ['mqtt', 'host'], 'string'],
  ['MB_MQTT_PORT', ['mqtt', 'port'], 'number'],
  ['MB_HTTP_HOST', ['http', 'host'], 'string'],
  ['MB_HTTP_PORT', ['http', 'port'], 'number'],
  ['MB_MQTT_MODE', ['mqtt', 'mode'], 'string'],
  ['MB_MQTT_URL', ['mqtt', 'external', 'url'], 'string'],
  ['MB_MQTT_USERNAME', ['mqtt', 'external', 'username'], 'string'],
  ['MB_MQTT_PASSWORD', ['mqtt', 'external', 'password'], 'string'],
  ['MB_BANK_URL', ['settlement', 'bank', 'url'], 'string'],
  ['MB_BANK_TOKEN', ['settlement', 'bank', 'token'], 'string'],
  ['MB_SEAL_CRON', ['settlement', 'sealCron'], 'string'],
];

export const CONFIG_ENV_VARS = ['MB_CONFIG', ...ENV_OVERRIDES.map(([name]) => name)];

function setPath(target: Record<string, unknown>, keys: string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

/** Validates a raw config object; throws ConfigError naming every bad key. */
export function parseConfig(raw: unknown): Readonly<GatewayConfig> {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new ConfigError(`Invalid config:\n  ${problems.join('\n  ')}`);
  }
  const config = result.data;
  checkCrossReferences(config);
  return deepFreeze(config);
}

function checkCrossReferences(config: GatewayConfig): void {
  const problems: string[] = [];
  for (const meterId of Object.keys(config.meters)) {
    if (!config.tariffs[meterId]) problems.push(`tariffs.${meterId}: meter ${meterId} has no tariff`);
  }
  for (const meterId of Object.keys(config.tariffs)) {
    if (!config.meters[meterId]) problems.push(`tariffs.${meterId}: no meter named ${meterId}`);
  }
  if (problems.length === 0) problems.push(...checkTariffs(config));
  for (const [payerId, p] of Object.entries(config.payers)) {
    try {
      parseMinor(p.maxIndividualAmount, p.currency, `payers.${payerId}.maxIndividualAmount`);
    } catch (error) {
      problems.push((error as Error).message);
    }
    problems.push(...checkPayerSettlement(payerId, p));
  }
  if (config.mqtt.tls?.clientCertRequired && !config.mqtt.tls.caFile) problems.push('mqtt.tls.caFile: required with clientCertRequired (the CA that signs device certificates)');
  if (config.mqtt.mode === 'external') {
    const external = config.mqtt.external;
    if (!external) problems.push('mqtt.external: required when mqtt.mode is "external" (url, username, password)');
    if (config.mqtt.tls) problems.push('mqtt.tls: applies to the embedded broker only; in external mode configure TLS in the broker and use an mqtts:// url');
    if (config.sparkplug.mappings.length > 0) problems.push('sparkplug.mappings: Sparkplug B is read by the embedded broker only (external mode does not subscribe to spBv1.0)');
    if (external && !external.password && !external.passwordFile) problems.push('mqtt.external.password: set MB_MQTT_PASSWORD or mqtt.external.passwordFile (no default credentials)');
  }
  const billed = new Set<string>();
  config.sparkplug.mappings.forEach((mapping, i) => {
    if (billed.has(mapping.deviceId)) problems.push(`sparkplug.mappings.${i}.deviceId: ${mapping.deviceId} is billed by another mapping (one mapping per device keeps readings unique)`);
    billed.add(mapping.deviceId);
    if (!config.meters[mapping.meter]) problems.push(`sparkplug.mappings.${i}.meter: no meter named ${mapping.meter}`);
  });
  for (const [name, input] of Object.entries(config.gpio.pulseInputs)) {
    if (!config.meters[input.meter]) problems.push(`gpio.pulseInputs.${name}.meter: no meter named ${input.meter}`);
  }
  if (!config.settlement.bank.token && !config.settlement.bank.tokenFile) {
    problems.push('settlement.bank.token: set MB_BANK_TOKEN or settlement.bank.tokenFile (no default credentials)');
  }
  if (problems.length > 0) throw new ConfigError(`Invalid config:\n  ${problems.join('\n  ')}`);
}

/** A payer's thresholds in its currency's minor units, and in an order that can pay. */
function checkPayerSettlement(payerId: string, p: GatewayConfig['payers'][string]): string[] {
  const settlement = p.settlement;
  if (!settlement) return [];
  const problems: string[] = [];
  const amountOf = (field: 'settleAtBalance' | 'minimumPayment'): bigint | undefined => {
    const text = settlement[field];
    if (text === undefined) return undefined;
    try {
      return parseMinor(text, p.currency, `payers.${payerId}.settlement.${field}`);
    } catch (error) {
      problems.push((error as Error).message);
      return undefined;
    }
  };
  const settleAt = amountOf('settleAtBalance');
  const minimum = amountOf('minimumPayment');
  if (settleAt === 0n) problems.push(`payers.${payerId}.settlement.settleAtBalance: must be above 0 (an empty balance would settle on every tick)`);
  if (settleAt !== undefined && minimum !== undefined && settleAt < minimum) problems.push(`payers.${payerId}.settlement.settleAtBalance: ${settlement.settleAtBalance} is below minimumPayment ${settlement.minimumPayment}, so reaching it could not pay`);
  return problems;
}

/** Reads the config file (if any) and env overrides. `env` defaults to process.env. */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): Readonly<GatewayConfig> {
  const env = options.env ?? process.env;
  const file = options.file ?? env.MB_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file) {
    try {
      raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new ConfigError(`Cannot read config file ${file}: ${(error as Error).message}`, { cause: error });
    }
  }
  for (const [name, keys, type] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    if (type === 'number' && !/^\d+$/.test(value)) throw new ConfigError(`Invalid config: ${name}=${JSON.stringify(value)} is not a whole number`);
    setPath(raw, keys, type === 'number' ? Number(value) : value);
  }
  const config = parseConfig(raw);
  if (!file) return config;
  // Paths in a config file are relative to the file, not to wherever the daemon was started.
  const base = path.dirname(path.resolve(file));
  return deepFreeze({
    ...config,
    dataDir: path.resolve(base, config.dataDir),
    devicesFile: path.resolve(base, config.devicesFile),
    mqtt: {
      ...config.mqtt,
      ...(config.mqtt.tls ? { tls: {
        ...config.mqtt.tls,
        certFile: path.resolve(base, config.mqtt.tls.certFile),
        keyFile: path.resolve(base, config.mqtt.tls.keyFile),
        ...(config.mqtt.tls.caFile ? { caFile: path.resolve(base, config.mqtt.tls.caFile) } : {}),
      } } : {}),
      ...(config.mqtt.external ? { external: {
        ...config.mqtt.external,
        ...(config.mqtt.external.passwordFile ? { passwordFile: path.resolve(base, config.mqtt.external.passwordFile) } : {}),
        ...(config.mqtt.external.caFile ? { caFile: path.resolve(base, config.mqtt.external.caFile) } : {}),
      } } : {}),
    },
    settlement: {
      ...config.settlement,
      bank: {
        ...config.settlement.bank,
        ...(config.settlement.bank.tokenFile ? { tokenFile: path.resolve(base, config.settlement.bank.tokenFile) } : {}),
        ...(config.settlement.bank.publicKeyFile ? { publicKeyFile: path.resolve(base, config.settlement.bank.publicKeyFile) } : {}),
      },
    },
  });
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
