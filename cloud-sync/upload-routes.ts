/**
 * POST /v1/uploads: one signed envelope in, one UploadAnswer out. Gateways authenticate by
 * their signatures alone (no bearer token): an envelope is only ever stored when one of
 * the gateway's registered keys signed it.
 *
 * The body's schema is the zod schema of envelope-schema.ts, run by a route validator of
 * our own rather than fastify's ajv: ajv would coerce types and strip unknown members,
 * changing the very object whose signature is checked.
 */
import type { FastifyInstance, FastifyError } from 'fastify';
import { z } from 'zod';
import { UPLOAD_BYTES_MAX, type UploadAnswer, type UploadEnvelope } from '../protocol/upload.ts';
import type { Logger } from 'pino';
import type { SqlDb } from './db.ts';
import { parseEnvelope, uploadEnvelopeSchema } from './envelope-schema.ts';
import { ingestEnvelope, type IngestOptions } from './ingest.ts';

const { $schema: _draft, ...envelopeJsonSchema } = z.toJSONSchema(uploadEnvelopeSchema, { unrepresentable: 'any' }) as Record<string, unknown>;

export const UPLOAD_ANSWER_SCHEMA = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['accepted', 'duplicate', 'refused'] },
    seq: { type: 'integer' },
    alerts: { type: 'array', items: { type: 'string' } },
    reason: { type: 'string' },
    detail: { type: 'string' },
    expectedSeq: { type: 'integer' },
  },
} as const;

export interface UploadRoutesOptions {
  db: SqlDb;
  /** Refusals are logged here at info: fastify's own logger is kept at warn. */
  logger: Logger;
  ingest: IngestOptions;
}

const refused = (reason: 'malformed' | 'too_large', detail: string): UploadAnswer => ({ status: 'refused', reason, detail });

export async function uploadRoutes(app: FastifyInstance, options: UploadRoutesOptions): Promise<void> {
  // Errors before the handler (body too large, not JSON) answer in the protocol's terms too.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send(refused('too_large', `the body is over ${UPLOAD_BYTES_MAX} bytes: send a large batch in parts`));
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) return reply.code(400).send(refused('malformed', `body: ${error.message}`));
    request.log.error({ err: error }, 'cannot store upload');
    return reply.code(503).send({ error: 'Service Unavailable', message: 'cannot store the upload now; send it again later' });
  });

  app.post<{ Body: UploadEnvelope }>('/v1/uploads', {
    bodyLimit: UPLOAD_BYTES_MAX,
    attachValidation: true,
    schema: {
      body: envelopeJsonSchema,
      response: { 200: UPLOAD_ANSWER_SCHEMA, 400: UPLOAD_ANSWER_SCHEMA, 401: UPLOAD_ANSWER_SCHEMA, 409: UPLOAD_ANSWER_SCHEMA, 413: UPLOAD_ANSWER_SCHEMA },
    },
    validatorCompiler: () => (data: unknown) => {
      const parsed = parseEnvelope(data);
      return parsed.ok ? { value: data } : { error: new Error(parsed.detail) };
    },
  }, async (request, reply) => {
    if (request.validationError) return reply.code(400).send(refused('malformed', request.validationError.message));
    const { httpStatus, answer } = await ingestEnvelope(options.db, request.body, options.ingest);
    if (answer.status === 'refused') options.logger.info({ gatewayId: request.body.gatewayId, seq: request.body.seq, reason: answer.reason, detail: answer.detail }, 'upload refused');
    return reply.code(httpStatus).send(answer);
  });
}
