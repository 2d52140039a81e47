/**
 * Sandbox-only routes, NOT part of OBL VRP Profile 4.0.0 (which has no way to list payments):
 *
 *   GET    /sandbox/payments?endToEndId=…   the caller's payments with that EndToEndIdentification
 *   POST   /sandbox/faults                  inject a fault (body: a FaultSpec, see faults.ts)
 *   DELETE /sandbox/faults                  forget every pending fault
 *
 * The lookup lets a TPP find out whether a payment whose answer it never got exists, once the
 * bank's 24 h idempotency window has closed; a real bank offers no such thing, and a TPP must
 * then reconcile from the account statement (AIS) instead.
 */
import type { FastifyInstance } from 'fastify';
import { applyFault, FAULT_KINDS, type FaultSpec } from './faults.ts';
import { badRequest, OB_ERROR_CODES } from './ob-errors.ts';
import { paymentView } from './payment-routes.ts';
import type { SandboxContext } from './sandbox-context.ts';

const paymentsQuerySchema = {
  type: 'object',
  required: ['endToEndId'],
  properties: { endToEndId: { type: 'string', minLength: 1, maxLength: 35 } },
  additionalProperties: false,
} as const;

const delayMs = { type: 'integer', minimum: 0, maximum: 120_000 } as const;
const faultSchema = {
  type: 'object',
  required: ['kind', 'count'],
  additionalProperties: false,
  properties: {
    kind: { type: 'string', enum: FAULT_KINDS },
    count: { type: 'integer', minimum: 1, maximum: 10_000 },
    httpStatus: { type: 'integer' },
    delayMs,
    reason: { type: 'string', enum: ['other', 'insufficient-funds'] },
    forMs: { type: 'integer', minimum: 0, maximum: 86_400_000 },
    reads: { type: 'integer', minimum: 1, maximum: 1_000 },
  },
} as const;

export async function sandboxRoutes(app: FastifyInstance, ctx: SandboxContext): Promise<void> {
  app.get<{ Querystring: { endToEndId: string } }>('/sandbox/payments', { schema: { querystring: paymentsQuerySchema } }, async (request) => {
    const ownerId = ctx.ownerOf(request);
    const nowMs = ctx.clock();
    const payments = ctx.state.paymentsByEndToEndId(ownerId, request.query.endToEndId, nowMs);
    const view = (payment: (typeof payments)[number]) => paymentView(request, payment, ctx.state.consent(ownerId, payment.consentId, nowMs), ctx.settleAfterMs);
    return { Data: { Payments: payments.map(view) }, Meta: { NotPartOfTheSpec: 'sandbox-only lookup' } };
  });

  app.post<{ Body: FaultSpec }>('/sandbox/faults', { schema: { body: faultSchema } }, async (request, reply) => {
    try {
      applyFault(ctx.faults, request.body);
    } catch (error) {
      throw badRequest(OB_ERROR_CODES.fieldInvalid, (error as Error).message);
    }
    return reply.code(204).send();
  });

  app.delete('/sandbox/faults', async (_request, reply) => {
    ctx.faults.clear();
    return reply.code(204).send();
  });
}
