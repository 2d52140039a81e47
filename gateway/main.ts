/**
 * Composition root: config in, parts built and wired, started. Nothing else lives here.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { fromHex, toHex } from '../protocol/hash.ts';
import type { GatewayConfig } from './config.ts';
import { DeviceRegistry } from './ingest/device-registry.ts';
import { Intake } from './ingest/intake.ts';
import { IngestRates } from './ingest/ingest-rate.ts';
import { startGpioInputs, type GpioInputs } from './ingest/gpio-intake.ts';
import { startMqttBridge } from './ingest/mqtt-bridge.ts';
import { SparkplugIntake } from './ingest/sparkplug-intake.ts';
import { parseSparkplugScale, SparkplugMappingTable } from './ingest/sparkplug/mapping.ts';
import { startMqttBroker, type MqttBroker } from './ingest/mqtt-broker.ts';
import { RejectionLog } from './ingest/rejection-log.ts';
import { SequenceGaps } from './ingest/sequence-gaps.ts';
import { StorageGuard } from './ingest/storage-guard.ts';
import { loadKeyring } from './ledger/gateway-key.ts';
import { Journal } from './ledger/journal.ts';
import { keys, openLedgerDb, type LedgerDb } from './ledger/ledger-db.ts';
import { tariffSchedules } from './ledger/tariff-book.ts';
import { closeEndedPeriods } from './ledger/period-close.ts';
import { statementService } from './settlement/statement.ts';
import { AlertBook, Reconciler, vrpBankRecords } from './settlement/reconcile.ts';

/** How often the ledger is reconciled with the bank's record of payments. */
const RECONCILE_INTERVAL_MS = 5 * 60_000;
import { TrustedHeadFile, trustedHeadPath } from './ledger/trusted-head.ts';
import { verifyChain, type ChainReport } from './ledger/verify-chain.ts';
import { BatchBook } from './settlement/batch-book.ts';
import { bookSeals } from './settlement/open-balances.ts';
import { SettlementSchedule, settlementPlans } from './settlement/schedule.ts';
import { Settler } from './settlement/settler.ts';
import { openVrpClient } from './settlement/bank-connection.ts';
import { createMetrics } from './web/metrics.ts';
import { startUplink, type Uplink } from './uplink/start-uplink.ts';
import { AuditLog } from './web/audit-log.ts';
import { operatorActions } from './web/operator-actions.ts';
import { OperatorAccounts } from './web/operators.ts';
import { startWebServer } from './web/server.ts';
import { takeSnapshot, type Snapshot } from './web/snapshot.ts';

/** The first operator's setup link works this long; a restart makes a new one while nobody is set up. */
const SETUP_LINK_TTL_MS = 24 * 3_600_000;

/** The package version, for the operator page. */
const VERSION = ((): string => {
  try {
    return (JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

export interface GatewayRuntimeOptions {
  logger: Logger;
  /** Make a new operator password even if one exists (it is returned, to be shown once). */
  resetOperatorLogin?: boolean;
  /** Test seam: awaited before each durable journal write. */
  beforeJournalWrite?: () => Promise<void>;
  clock?: () => Date;
}

export interface Gateway {
  mqttPort: number;
  /** Resolves when usage can flow (external mode: subscribed to the broker). */
  mqttReady: Promise<void>;
  httpUrl: string;
  /** Present while no operator is set up: the one-time link to set up the first one (show it once). */
  operatorSetup?: { link: string; expiresAt: string };
  publicKeyHex: string;
  chainReport: ChainReport;
  journal: Journal;
  intake: Intake;
  batches: BatchBook;
  settler: Settler;
  db: LedgerDb;
  snapshot(): Promise<Snapshot>;
  /** Seals every payer's open records now (the operator's; each payer's schedule seals its own). */
  /** The numbers of the batches it made. */
  sealNow(): Promise<number[]>;
  /** The uplink to cloud-sync, when `uplink.url` is configured. */
  uplink?: Uplink;
  stop(): Promise<void>;
}

/** Where usage comes in: the embedded broker or a bridge to an external one. */
interface UsageSource {
  /** Embedded mode: the port devices connect to; external mode: 0. */
  port: number;
  connectedDevices(): string[];
  /** Embedded mode: closes a device's connection (after a revoke or rotate); external mode cannot. */
  disconnect?: (deviceId: string) => void;
  close(): Promise<void>;
  /** External mode: resolves once subscribed to the broker. */
  ready?: Promise<void>;
  /** External mode: whether the bridge is connected right now. */
  brokerConnected?: () => boolean;
  /** Sparkplug B sequence gaps, births and deaths, newest first. */
  sparkplugEvents?: () => unknown[];
  /** Sparkplug B sequence events by kind since start. */
  sparkplugEventCounts?: () => ReadonlyMap<string, number>;
}

function brokerApi(broker: MqttBroker): UsageSource {
  return { port: broker.port, connectedDevices: () => broker.connectedDevices(), disconnect: (deviceId) => broker.disconnect(deviceId), close: () => broker.close() };
}

function sparkplugIntakeFor(config: Readonly<GatewayConfig>, parts: { registry: DeviceRegistry; intake: Intake; rejections: RejectionLog; logger: Logger }): SparkplugIntake | undefined {
  if (config.sparkplug.mappings.length === 0) return undefined;
  const mappings = SparkplugMappingTable.compile(config.sparkplug.mappings.map((m, i) => {
    const { scale, ...rest } = m;
    return { ...rest, ...(scale === undefined ? {} : { scale: parseSparkplugScale(scale, `sparkplug.mappings.${i}.scale`) }) };
  }));
  const meterUnits = Object.fromEntries(Object.entries(config.meters).map(([meter, m]) => [meter, m.unit]));
  return new SparkplugIntake({ ...parts, mappings, meterUnits });
}

async function startUsageSource(config: Readonly<GatewayConfig>, parts: { registry: DeviceRegistry; intake: Intake; rejections: RejectionLog; logger: Logger }): Promise<UsageSource> {
  if (config.mqtt.mode === 'embedded') {
    const sparkplug = sparkplugIntakeFor(config, parts);
    const tls = config.mqtt.tls;
    const tlsFiles = tls ? {
      cert: await readFile(tls.certFile, 'utf8'), key: await readFile(tls.keyFile, 'utf8'),
      ...(tls.caFile ? { ca: await readFile(tls.caFile, 'utf8') } : {}), clientCertRequired: tls.clientCertRequired,
    } : undefined;
    const broker: MqttBroker = await startMqttBroker({ ...parts, host: config.mqtt.host, port: config.mqtt.port, connectionsMax: config.limits.devicesMax + 16, limits: config.mqtt, ...(sparkplug ? { sparkplug } : {}), ...(tlsFiles ? { tls: tlsFiles } : {}) });
    return sparkplug ? { ...brokerApi(broker), sparkplugEvents: () => sparkplug.recentEvents(20), sparkplugEventCounts: () => sparkplug.eventCounts() } : broker;
  }
  const external = config.mqtt.external!;
  const bridge = startMqttBridge({
    ...parts,
    url: external.url,
    clientId: external.clientId ?? config.gatewayId.slice(0, 23),
    username: external.username,
    password: external.password ?? (await readFile(external.passwordFile!, 'utf8')).trim(),
    keepaliveS: external.keepaliveS,
    ...(external.caFile ? { ca: await readFile(external.caFile, 'utf8') } : {}),
  });
  return { port: 0, connectedDevices: () => [], close: () => bridge.close(), ready: bridge.ready, brokerConnected: () => bridge.connected };
}

async function readBankToken(config: Readonly<GatewayConfig>): Promise<string> {
  const bank = config.settlement.bank;
  if (bank.token) return bank.token;
  return (await readFile(bank.tokenFile!, 'utf8')).trim();
}

export async function startGateway(config: Readonly<GatewayConfig>, options: GatewayRuntimeOptions): Promise<Gateway> {
  const { logger } = options;
  const clock = options.clock ?? (() => new Date());
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const startedAtMs = Date.now();
  const knownDevices = {
    meterCurrencies: Object.fromEntries([...tariffSchedules(config)].map(([meter, schedule]) => [meter, schedule.versions.at(-1)!.currency])),
    payerCurrencies: Object.fromEntries(Object.entries(config.payers).map(([payer, p]) => [payer, p.currency])),
    devicesMax: config.limits.devicesMax,
  };
  const registry = DeviceRegistry.load(config.devicesFile, knownDevices);
  const accounts = await OperatorAccounts.open(config.dataDir);
  if (options.resetOperatorLogin) await accounts.resetAll();
  const metricsToken = config.http.metricsTokenFile ? (await readFile(config.http.metricsTokenFile, 'utf8')).trim() : undefined;
  // The ledger's LevelDB lock first: `meterbridge key rotate` holds it while it changes the keyring.
  const db = await openLedgerDb(`${config.dataDir}/ledger`);
  const keyring = await loadKeyring(config.dataDir).catch(async (error: unknown) => {
    await db.close();
    throw error;
  });
  const key = keyring.current;
  if (keyring.created) logger.info({ keyId: key.keyId }, 'created gateway signing key');

  const gaps = new SequenceGaps();
  const highestSeqByDevice = new Map<string, number>();
  // Signed by any key the gateway has had: what an old key signed before a rotation stays good.
  const chainReport = await verifyChain(db, keyring.history.keys.map((k) => ({ publicKey: fromHex(k.publicKey, 'publicKey', 32) })), {
    trustedHeadFile: trustedHeadPath(config.dataDir),
    onRecord: (record) => {
      if (record.kind === 'minimum') return; // a period close, not a device's message
      if (record.kind !== 'counter') gaps.see(record.deviceId, record.seq);
      if (record.seq > (highestSeqByDevice.get(record.deviceId) ?? 0)) highestSeqByDevice.set(record.deviceId, record.seq);
    },
  });
  if (chainReport.ok) logger.info({ records: chainReport.records, durationMs: chainReport.durationMs }, 'ledger chain verified');
  else logger.error({ problems: chainReport.problems }, 'ledger chain is broken: settlement is stopped until an operator resolves it');

  const trustedHead = new TrustedHeadFile(trustedHeadPath(config.dataDir), (error) => logger.error({ err: (error as Error).message }, 'could not write the trusted head file'));
  const journal = await Journal.open(db, {
    gatewayId: config.gatewayId, signingKey: key, clock,
    queueMax: config.limits.intakeQueueMax, batchMax: config.limits.intakeBatchMax,
    checkpointEveryRecords: config.ledger.checkpointEveryRecords, checkpointIntervalMs: config.ledger.checkpointIntervalMs,
    ...(options.beforeJournalWrite ? { beforeWrite: options.beforeJournalWrite } : {}),
    // Only a complete, verified scan may spare dedup reads; after damage every append reads.
    // Only a verified chain moves the trusted head: after damage the file keeps the evidence.
    ...(chainReport.ok ? { highestSeqByDevice, onCheckpointWritten: (checkpoint) => trustedHead.record(checkpoint) } : {}),
  });
  if (chainReport.ok && journal.latestCheckpoint) trustedHead.record(journal.latestCheckpoint);
  const rejections = new RejectionLog(config.limits.rejectionsKept);
  const storage = new StorageGuard(config.dataDir, config.limits.diskFreeBytesMin);
  await Promise.resolve().then(() => storage.check()).catch((error: unknown) => logger.error({ err: (error as Error).message }, 'data disk below its floor: usage will be refused'));
  const rates = new IngestRates(config.limits.devicesMax);
  // Set once the uplink has started (below); until then there is no outbox to be full.
  let uplink: Uplink | undefined;
  const outboxRoom = { checkRoomForUsage: () => uplink?.outbox.checkRoomForUsage() };
  const intake = new Intake(journal, config, rejections, { limits: config.limits, clock, gaps, storage, rates, outbox: outboxRoom });
  const batches = await BatchBook.open(db, journal, {
    gatewayId: config.gatewayId, key, clock, logger: logger.child({ module: 'batches' }),
    closePeriods: () => closeEndedPeriods(db, journal, intake.tariffs, clock()),
  });
  // The broker starts after the uplink (the settler needs the uplink): until then nobody is connected.
  let devicesConnected = (): number => 0;
  uplink = await startUplink(config, {
    db, key, batches, journal, clock, logger: logger.child({ module: 'uplink' }),
    health: () => ({ version: VERSION, records: journal.head.index, devicesConnected: devicesConnected(), chainOk: chainReport.ok, diskFreeBytes: Number.isFinite(storage.freeBytes) ? storage.freeBytes : -1 }),
  });
  const client = await openVrpClient(config, { accessToken: await readBankToken(config), logger: logger.child({ module: 'bank' }) });
  const settler = new Settler({
    db, book: batches, client, config, pollIntervalMs: config.settlement.pollIntervalMs, logger: logger.child({ module: 'settlement' }), enabled: () => chainReport.ok,
    ...(uplink ? { transition: uplink.transition } : {}),
  });

  let mqtt: UsageSource;
  let gpio: GpioInputs;
  try {
    mqtt = await startUsageSource(config, { registry, intake, rejections, logger: logger.child({ module: 'mqtt' }) });
    gpio = await startGpioInputs(config, { registry, intake, logger: logger.child({ module: 'gpio' }) }).catch(async (error: unknown) => {
      await mqtt.close();
      throw error;
    });
  } catch (error) {
    await uplink?.stop();
    await db.close();
    throw error;
  }
  devicesConnected = () => mqtt.connectedDevices().length;
  const publicKeyHex = toHex(key.publicKey);
  // The ledger against the bank's record of its payments; mismatches become operator alerts (gateway/settlement/reconcile.ts).
  const alerts = await AlertBook.open(db, { clock });
  const reconciler = new Reconciler({ batches: () => batches.all(), bank: vrpBankRecords(client), alerts, logger: logger.child({ module: 'reconcile' }) });
  const reconcileTimer = setInterval(() => {
    if (chainReport.ok) reconciler.reconcile().catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'reconciliation did not finish; next run later'));
  }, RECONCILE_INTERVAL_MS);
  reconcileTimer.unref();
  const sealNow = async (): Promise<number[]> => {
    const sealed = await batches.seal();
    await uplink?.catchUp();
    await settler.tick();
    return sealed.map((b) => b.batchNo);
  };
  // Each payer on its own schedule, its due time kept in LevelDB: clock jumps and restarts run each period once (docs/settlement.md).
  const seals = bookSeals({ db, book: batches, journal });
  const schedule = new SettlementSchedule({ db, plans: settlementPlans(config), seals, clock, logger: logger.child({ module: 'schedule' }), afterRun: async () => {
    await uplink?.catchUp();
    await settler.tick();
  } });
  const snapshot = (): Promise<Snapshot> => takeSnapshot({
    gatewayId: config.gatewayId, keyId: key.keyId, publicKeyHex, version: VERSION, startedAtMs, clock, chainReport, registry, intake, rates, journal, batches, rejections,
    mqttMode: config.mqtt.mode, brokerConnected: () => mqtt.brokerConnected?.() ?? true, connectedDevices: mqtt.connectedDevices, sparkplugEvents: mqtt.sparkplugEvents ?? (() => []),
    alerts: async () => (await alerts.list({ unacknowledged: true, limit: 50 })).map((a) => ({ alertNo: a.alertNo, at: a.at, kind: a.kind, detail: a.detail, ...(a.batchId === undefined ? {} : { batchId: a.batchId }) })),
    disk: () => ({ freeBytes: storage.freeBytes, floorBytes: config.limits.diskFreeBytesMin }),
    bankReach: () => client.reach,
    uplink: () => uplink?.status(),
    payers: Object.fromEntries(Object.entries(config.payers).map(([payer, p]) => [payer, {
      name: p.name, currency: p.currency, maxIndividualAmount: p.maxIndividualAmount, ...(p.settlement?.settleAtBalance ? { settleAtBalance: p.settlement.settleAtBalance } : {}),
    }])),
    schedule: () => schedule.status(),
    openBalancesNano: () => seals.openBalancesNano(),
    consentStatus: async (payer) => ((await db.get(keys.consent(payer))) as { status?: string } | undefined)?.status,
  });
  const metrics = createMetrics({ journal, intake, rejections, batches, sparkplugEventCounts: mqtt.sparkplugEventCounts ?? (() => new Map()) });
  const audit = await AuditLog.open(db, { clock });
  const actions = operatorActions({
    devicesFile: config.devicesFile, registry, known: knownDevices, disconnect: mqtt.disconnect, batches, settler, alerts, rates, rejections, sealNow, clock,
  });
  const web = await startWebServer({
    host: config.http.host, port: config.http.port, sessionTtlMs: config.http.sessionTtlMs,
    logger: logger.child({ module: 'web' }), metrics, snapshot, accounts, audit, actions, ...(metricsToken ? { metricsToken } : {}),
    // The bank's event notifications follow a batch now; the poll stays the fallback (docs/bank-api.md).
    bankEvents: { bankKeys: client.bankSigningKeys, trustAnchor: client.trustAnchor, follow: (paymentId) => settler.follow(paymentId) },
    statements: statementService({
      gatewayId: config.gatewayId, journal, batches, tariffs: intake.tariffs, clock, payers: new Set(Object.keys(config.payers)),
      gatewayKeys: () => keyring.history.keys.map((k) => ({ ...k })),
      deviceKeys: () => registry.list().flatMap((d) => (d.publicKey ? [{ deviceId: d.id, publicKey: d.publicKey }] : [])),
    }),
    health: () => {
      const brokerOk = mqtt.brokerConnected?.() ?? true;
      return {
        ok: chainReport.ok && brokerOk,
        detail: { gatewayId: config.gatewayId, chainOk: chainReport.ok, mqttMode: config.mqtt.mode, brokerConnected: brokerOk, records: journal.head.index, devicesConnected: mqtt.connectedDevices().length, intakeQueue: journal.queueLength, diskFreeMb: Math.floor(storage.freeBytes / 1_048_576) },
      };
    },
  });
  // No default password: while no operator exists, a one-time link sets up the first (docs/operator-page.md).
  let operatorSetup: Gateway['operatorSetup'];
  if (accounts.needsSetup) {
    const setup = await accounts.createSetupToken(SETUP_LINK_TTL_MS);
    operatorSetup = { link: `${web.url}/setup?token=${setup.token}`, expiresAt: setup.expiresAt };
  }

  await schedule.start();
  settler.start();
  let stopping: Promise<void> | undefined;
  logger.info({ mqttPort: mqtt.port, http: web.url, sealCron: config.settlement.sealCron }, 'gateway started');

  return {
    mqttPort: mqtt.port, mqttReady: mqtt.ready ?? Promise.resolve(), httpUrl: web.url, ...(operatorSetup ? { operatorSetup } : {}), publicKeyHex, chainReport, journal, intake, batches, settler, db, snapshot, sealNow, ...(uplink ? { uplink } : {}),
    stop() {
      // Idempotent: a supervisor, a signal handler and a test may all ask.
      stopping ??= (async () => {
        clearInterval(reconcileTimer);
        await schedule.stop();
        await batches.idle();
        await settler.stop();
        await uplink?.stop();
        await reconciler.idle(); // a run in progress finishes before the ledger closes
        await gpio.close();
        await mqtt.close();
        await journal.drain();
        await journal.checkpointNow();
        await trustedHead.flush();
        await web.app.close();
        await db.close();
        logger.info('gateway stopped');
      })();
      return stopping;
    },
  };
}
