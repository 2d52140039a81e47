/**
 * The gateway's uplink to cloud-sync, put together (docs/cloud-sync.md): the durable outbox,
 * the batches queued into it after each seal, settlement changes written with their upload
 * in one atomic write, a health report every `healthIntervalMs`, and the sender.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { SigningKey } from '../../protocol/signing.ts';
import type { GatewayConfig } from '../config.ts';
import type { Journal } from '../ledger/journal.ts';
import type { LedgerDb } from '../ledger/ledger-db.ts';
import type { BatchBook } from '../settlement/batch-book.ts';
import { BatchUplink, transitionWithUpload } from './batch-uploads.ts';
import { Outbox, type OutboxFill } from './outbox.ts';
import { UplinkSender, type UplinkState } from './uplink-sender.ts';

export interface UplinkStatus extends UplinkState {
  configured: true;
  url: string;
  fill: OutboxFill;
  /** Highest batch number queued for upload. */
  batchesQueuedThrough: number;
  batchError?: string;
}

export interface Uplink {
  outbox: Outbox;
  /** For the settler: a state change and its upload in one write. */
  transition: BatchBook['transition'];
  /** Queues whatever was sealed since the last call (idempotent, crash-safe). */
  catchUp(): Promise<void>;
  status(): UplinkStatus;
  stop(): Promise<void>;
}

export interface UplinkParts {
  db: LedgerDb;
  key: SigningKey;
  batches: BatchBook;
  journal: Journal;
  clock: () => Date;
  logger: Logger;
  /** The health report's figures, read when one is due. */
  health: () => { version: string; records: number; devicesConnected: number; chainOk: boolean; diskFreeBytes: number };
}

/** Undefined when `uplink.url` is not configured: then there is no outbox. */
export async function startUplink(config: Readonly<GatewayConfig>, parts: UplinkParts): Promise<Uplink | undefined> {
  const settings = config.uplink;
  if (!settings.url) return undefined;
  const { logger } = parts;
  const outbox = await Outbox.open(parts.db, { gatewayId: config.gatewayId, signingKey: parts.key, clock: parts.clock, budgetBytes: settings.budgetBytes });
  const batchUplink = await BatchUplink.open(parts.db, { outbox, book: parts.batches, journal: parts.journal, logger, firstBatchNo: settings.firstBatchNo });
  const tls = settings.tls ? {
    ...(settings.tls.caFile ? { ca: await readFile(settings.tls.caFile, 'utf8') } : {}),
    ...(settings.tls.certFile ? { cert: await readFile(settings.tls.certFile, 'utf8') } : {}),
    ...(settings.tls.keyFile ? { key: await readFile(settings.tls.keyFile, 'utf8') } : {}),
  } : undefined;
  const sender = new UplinkSender({
    outbox, cloudUrl: settings.url, logger, clock: parts.clock, ...(tls ? { tls } : {}),
    idleTimeoutMs: settings.idleTimeoutMs, requestTimeoutMs: settings.requestTimeoutMs,
    retryBaseMs: settings.retryBaseMs, retryCapMs: settings.retryCapMs, operatorRetryMs: settings.operatorRetryMs,
  });
  const catchUp = async (): Promise<void> => {
    try {
      if ((await batchUplink.catchUp()) > 0) sender.kick();
    } catch (error) {
      logger.error({ err: (error as Error).message }, 'could not queue sealed batches for the cloud; trying again at the next seal');
    }
  };
  const reportHealth = async (): Promise<void> => {
    const fill = outbox.fill();
    const figures = parts.health();
    const queued = await outbox.enqueueHealth({ at: parts.clock().toISOString(), ...figures, outboxItems: fill.items, outboxBytes: fill.bytes });
    if (queued) sender.kick();
  };
  const healthTimer = setInterval(() => {
    reportHealth().catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'could not queue a health report'));
  }, settings.healthIntervalMs);
  healthTimer.unref();

  // Batches sealed while the gateway was down (or before the uplink was switched on) go first.
  await catchUp();
  sender.start();
  await reportHealth().catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'could not queue a health report'));
  logger.info({ url: settings.url, waiting: outbox.waiting }, 'uplink to cloud-sync started');

  return {
    outbox,
    transition: transitionWithUpload(parts.batches, { outbox, clock: parts.clock }),
    catchUp,
    status: () => ({
      configured: true, url: settings.url!, ...sender.state(), fill: outbox.fill(), batchesQueuedThrough: batchUplink.queuedThrough,
      ...(batchUplink.lastError ? { batchError: batchUplink.lastError } : {}),
    }),
    async stop() {
      clearInterval(healthTimer);
      await sender.stop();
    },
  };
}
