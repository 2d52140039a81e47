/** Composition root of cloud-sync: open the database, migrate, build the app, listen. Nothing else. */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CloudSyncConfig } from './config.ts';
import { redactedUrl } from './config.ts';
import { openPglite, openPostgres, type SqlDb } from './db.ts';
import { migrate } from './migrations.ts';
import { buildCloudSyncApp } from './server.ts';

export interface CloudSync {
  url: string;
  /** Where the data lives, for the start-up line: never the password. */
  storage: string;
  app: FastifyInstance;
  db: SqlDb;
  close(): Promise<void>;
}

export async function openCloudSyncDb(config: CloudSyncConfig, logger: Logger): Promise<{ db: SqlDb; storage: string }> {
  if (config.databaseUrl !== undefined) {
    const db = openPostgres({ url: config.databaseUrl, connectionsMax: config.connectionsMax, onIdleError: (error) => logger.warn({ err: error }, 'idle database connection failed') });
    return { db, storage: `PostgreSQL ${redactedUrl(config.databaseUrl)}` };
  }
  const db = await openPglite(config.dataDir === undefined ? {} : { dataDir: config.dataDir });
  return { db, storage: config.dataDir === undefined ? 'PGlite in memory (gone at exit: pass --data-dir to keep it)' : `PGlite in ${config.dataDir}` };
}

export async function startCloudSync(config: CloudSyncConfig, logger: Logger, options: { clock?: () => Date } = {}): Promise<CloudSync> {
  const { db, storage } = await openCloudSyncDb(config, logger);
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ applied }, 'applied schema migrations');
    const app = await buildCloudSyncApp({
      db, adminToken: config.adminToken, logger, ...(options.clock ? { clock: options.clock } : {}),
      limits: { alertsPerGatewayMax: config.alertsPerGatewayMax, healthReportsPerGatewayMax: config.healthReportsPerGatewayMax },
    });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    return {
      url: `http://${host}:${port}`, storage, app, db,
      close: async () => {
        await app.close();
        await db.close();
      },
    };
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
}
