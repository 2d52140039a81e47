/**
 * The cloud-sync HTTP service: uploads from gateways (upload-routes.ts), the
 * administrator's registration and fleet API (admin-routes.ts), and /healthz. It keeps
 * nothing between requests that matters: every answer comes from the database, so any
 * number of instances can serve one database behind a load balancer.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { adminRoutes } from './admin-routes.ts';
import type { SqlDb } from './db.ts';
import type { IngestLimits } from './ingest-context.ts';
import { uploadRoutes } from './upload-routes.ts';

export interface CloudSyncAppOptions {
  db: SqlDb;
  adminToken: string;
  logger: Logger;
  clock?: () => Date;
  limits?: Partial<IngestLimits>;
}

export async function buildCloudSyncApp(options: CloudSyncAppOptions): Promise<FastifyInstance> {
  const clock = options.clock ?? (() => new Date());
  // A line per request is noise at fleet rates: fastify logs at warn unless the logger is quieter.
  // Request lines lose their query and headers: the admin token travels in a header.
  const level = options.logger.levelVal > 40 ? options.logger.level : 'warn';
  const serializers = { req: (request: { method?: string; url?: string }) => ({ method: request.method, url: request.url?.split('?')[0] }) };
  const app = Fastify({ loggerInstance: options.logger.child({ module: 'http' }, { level, serializers }) as FastifyBaseLogger });
  app.get('/healthz', { schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' } } }, 503: { type: 'object', properties: { status: { type: 'string' }, message: { type: 'string' } } } } } }, async (request, reply) => {
    try {
      await options.db.query('SELECT 1');
      return { status: 'ok' };
    } catch (error) {
      request.log.warn({ err: error }, 'database unreachable');
      return reply.code(503).send({ status: 'degraded', message: 'the database does not answer' });
    }
  });
  await app.register(uploadRoutes, { db: options.db, logger: options.logger.child({ module: 'ingest' }), ingest: { now: clock, ...(options.limits ? { limits: options.limits } : {}) } });
  await app.register(adminRoutes, { db: options.db, adminToken: options.adminToken, clock });
  return app;
}
