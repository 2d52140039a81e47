/**
 * The administrator's routes, all behind `Authorization: Bearer <admin token>`:
 * POST /v1/gateways registers a gateway with its first key; GET /v1/fleet/… reads the
 * fleet (gateways, totals, batches, alerts). One encapsulated plugin, so the token check
 * covers exactly these routes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SqlDb } from './db.ts';
import { listAlerts, listBatches, listGateways, monthBounds, PAGE_ROWS_MAX, payerTotals } from './fleet-queries.ts';
import { registerGateway, type GatewayRegistration } from './gateway-registry.ts';

export interface AdminRoutesOptions {
  db: SqlDb;
  adminToken: string;
  clock: () => Date;
}

const ERROR_SCHEMA = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const;
const ID = '^[a-z0-9][a-z0-9._-]{0,62}$';
const limit = { type: 'integer', minimum: 1, maximum: PAGE_ROWS_MAX, default: 100 } as const;
const open = (properties: Record<string, unknown>) => ({ type: 'object', properties, additionalProperties: true }) as const;
const list = (items: object) => ({ 200: { type: 'object', properties: { items: { type: 'array', items } } }, 400: ERROR_SCHEMA, 401: ERROR_SCHEMA });
const nullable = (type: string) => ({ type: [type, 'null'] });

const GATEWAY_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, registeredAt: { type: 'string' }, keys: { type: 'integer' }, lastSeq: { type: 'integer' },
    lastBatchNo: { type: 'integer' }, lastSeenAt: nullable('string'), lastCreatedAt: nullable('string'), uploadLagMs: nullable('integer'),
    latestHealth: { anyOf: [open({}), { type: 'null' }] }, refusals: { type: 'integer' }, lastRefusal: nullable('string'),
    lastRefusalAt: nullable('string'), alerts: { type: 'integer' },
  },
};
const TOTAL_SCHEMA = {
  type: 'object',
  properties: Object.fromEntries([['payer', 'string'], ['currency', 'string'], ['batches', 'integer'], ['records', 'string'], ['totalNano', 'string'], ['total', 'string'],
    ['amountMinor', 'string'], ['amount', 'string'], ['paidMinor', 'string'], ['paid', 'string']].map(([name, type]) => [name, { type }])),
};
const BATCH_SCHEMA = {
  type: 'object',
  properties: {
    ...Object.fromEntries(['batchId', 'gatewayId', 'payer', 'currency', 'totalNano', 'carriedInNano', 'amountMinor', 'carriedOutNano', 'merkleRoot', 'sealedAt', 'state', 'stateAt', 'receivedAt']
      .map((name) => [name, { type: 'string' }])),
    batchNo: { type: 'integer' }, recordCount: { type: 'integer' }, parts: { type: 'integer' }, partsReceived: { type: 'integer' }, complete: { type: 'boolean' },
    paymentId: nullable('string'), bankStatus: nullable('string'),
  },
};
const ALERT_SCHEMA = {
  type: 'object',
  properties: { id: { type: 'integer' }, gatewayId: { type: 'string' }, at: { type: 'string' }, kind: { type: 'string' }, detail: { type: 'string' }, seq: nullable('integer'), batchNo: nullable('integer') },
};

/** Compares digests, so neither the length nor the content of the token leaks through timing. */
export function adminTokenCheck(adminToken: string): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const expected = createHash('sha256').update(adminToken).digest();
  return async (request, reply) => {
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (presented === '' || !timingSafeEqual(createHash('sha256').update(presented).digest(), expected)) {
      await reply.code(401).header('www-authenticate', 'Bearer realm="cloud-sync"').send({ error: 'Unauthorized', message: 'the admin API needs Authorization: Bearer <admin token>' });
    }
  };
}

export async function adminRoutes(app: FastifyInstance, options: AdminRoutesOptions): Promise<void> {
  const { db, clock } = options;
  app.addHook('preHandler', adminTokenCheck(options.adminToken));

  app.post<{ Body: GatewayRegistration }>('/v1/gateways', {
    bodyLimit: 16 * 1024,
    schema: {
      body: {
        type: 'object', required: ['id', 'publicKey'], additionalProperties: false,
        properties: { id: { type: 'string', pattern: ID }, name: { type: 'string', minLength: 1, maxLength: 200 }, publicKey: { type: 'string', pattern: '^[0-9a-f]{64}$' }, validFrom: { type: 'string', maxLength: 40 } },
      },
      response: { 200: open({ status: { type: 'string' }, id: { type: 'string' }, keyId: { type: 'string' } }), 201: open({ status: { type: 'string' }, id: { type: 'string' }, keyId: { type: 'string' } }), 400: ERROR_SCHEMA, 401: ERROR_SCHEMA, 409: ERROR_SCHEMA },
    },
  }, async (request, reply) => {
    const registered = await registerGateway(db, request.body, clock());
    if (registered.status === 'invalid') return reply.code(400).send({ error: 'Bad Request', message: `Cannot register gateway ${request.body.id}: ${registered.detail}` });
    if (registered.status === 'conflict') return reply.code(409).send({ error: 'Conflict', message: `Cannot register gateway ${request.body.id}: ${registered.detail}` });
    return reply.code(registered.status === 'created' ? 201 : 200).send(registered);
  });

  app.get<{ Querystring: { limit: number; after?: string } }>('/v1/fleet/gateways', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { limit, after: { type: 'string', maxLength: 63 } } }, response: list(GATEWAY_SCHEMA) },
  }, async (request) => ({ items: await listGateways(db, { limit: request.query.limit, ...(request.query.after === undefined ? {} : { after: request.query.after }) }, clock()) }));

  app.get<{ Querystring: { period?: string; gatewayId?: string } }>('/v1/fleet/totals', {
    schema: {
      querystring: { type: 'object', additionalProperties: false, properties: { period: { type: 'string', pattern: '^\\d{4}-(0[1-9]|1[0-2])$' }, gatewayId: { type: 'string', pattern: ID } } },
      response: { ...list(TOTAL_SCHEMA), 200: { type: 'object', properties: { period: nullable('string'), items: { type: 'array', items: TOTAL_SCHEMA } } } },
    },
  }, async (request) => {
    const { period, gatewayId } = request.query;
    const bounds = period === undefined ? undefined : monthBounds(period);
    return { period: period ?? null, items: await payerTotals(db, { ...(bounds ? { period: bounds } : {}), ...(gatewayId === undefined ? {} : { gatewayId }) }) };
  });

  app.get<{ Querystring: { gatewayId?: string; state?: string; payer?: string; complete?: boolean; after?: string; limit: number } }>('/v1/fleet/batches', {
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { gatewayId: { type: 'string', pattern: ID }, state: { type: 'string', maxLength: 32 }, payer: { type: 'string', maxLength: 200 }, complete: { type: 'boolean' }, after: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,62}/[1-9][0-9]{0,14}$' }, limit },
      },
      response: list(BATCH_SCHEMA),
    },
  }, async (request) => {
    const { gatewayId, state, payer, complete, after } = request.query;
    const cursor = after === undefined ? undefined : { gatewayId: after.slice(0, after.lastIndexOf('/')), batchNo: Number(after.slice(after.lastIndexOf('/') + 1)) };
    return {
      items: await listBatches(db, {
        limit: request.query.limit, ...(gatewayId === undefined ? {} : { gatewayId }), ...(state === undefined ? {} : { state }), ...(payer === undefined ? {} : { payer }),
        ...(complete === undefined ? {} : { complete }), ...(cursor ? { after: cursor } : {}),
      }),
    };
  });

  app.get<{ Querystring: { gatewayId?: string; kind?: string; before?: number; limit: number } }>('/v1/fleet/alerts', {
    schema: {
      querystring: { type: 'object', additionalProperties: false, properties: { gatewayId: { type: 'string', pattern: ID }, kind: { type: 'string', maxLength: 40 }, before: { type: 'integer', minimum: 1 }, limit } },
      response: list(ALERT_SCHEMA),
    },
  }, async (request) => {
    const { gatewayId, kind, before } = request.query;
    return { items: await listAlerts(db, { limit: request.query.limit, ...(gatewayId === undefined ? {} : { gatewayId }), ...(kind === undefined ? {} : { kind }), ...(before === undefined ? {} : { before }) }) };
  });
}
