/**
 * Sandbox-only routes, NOT part of OBL VRP Profile 4.0.0 (which can neither list payments
 * nor change one after the fact):
 *
 *   GET   /sandbox/payment-listing?offset=&limit=        every payment of the caller, oldest first
 *   PATCH /sandbox/payment-listing/:DomesticVRPId        a drill: rewrite the bank's record
 *
 * The listing is what reconciliation (gateway/settlement/reconcile.ts) needs to find a
 * payment at the bank that no batch accounts for; a real bank offers that through its
 * account statement (AIS or camt.053), not through the payment API. The drill makes the
 * bank's record disagree with the ledger (another amount, status or EndToEndIdentification,
 * or the payment gone) so reconciliation can be tested against a real bank over HTTP.
 */
import type { FastifyInstance } from 'fastify';
import { formatMinor } from '../protocol/money.ts';
import { bodyDigest, type PaymentRecord, type PaymentStatus } from './bank-state.ts';
import { badRequest, OB_ERROR_CODES } from './ob-errors.ts';
import { isoTime, parseWireAmount, type SandboxContext } from './sandbox-context.ts';

/** A page of the listing: enough for a reconciliation run, small enough for one answer. */
const PAGE_MAX = 1_000;
/** Who owns a payment the drill made the bank forget: no TPP's token digest looks like this. */
const FORGOTTEN_OWNER = 'sandbox-drill:forgotten';
const STATUSES: readonly PaymentStatus[] = ['RCVD', 'RJCT', 'CANC', 'PDNG', 'ACTC', 'ACCP', 'ACFC', 'ACSP', 'ACWC', 'ACSC', 'ACWP', 'ACCC', 'BLCK'];

const listingQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    offset: { type: 'string', pattern: '^[0-9]{1,6}$' },
    limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
  },
} as const;

const listedPayment = {
  type: 'object',
  required: ['DomesticVRPId', 'ConsentId', 'Status', 'CreationDateTime', 'StatusUpdateDateTime', 'EndToEndIdentification', 'InstructedAmount'],
  properties: {
    DomesticVRPId: { type: 'string' },
    ConsentId: { type: 'string' },
    Status: { type: 'string' },
    CreationDateTime: { type: 'string' },
    StatusUpdateDateTime: { type: 'string' },
    EndToEndIdentification: { type: 'string' },
    InstructedAmount: { type: 'object', required: ['Amount', 'Currency'], properties: { Amount: { type: 'string' }, Currency: { type: 'string' } } },
  },
} as const;

const listingResponseSchema = {
  200: {
    type: 'object',
    required: ['Data', 'Meta'],
    properties: {
      Data: { type: 'object', required: ['Payments'], properties: { Payments: { type: 'array', items: listedPayment } } },
      Meta: { type: 'object', required: ['TotalRecords', 'NotPartOfTheSpec'], properties: { TotalRecords: { type: 'integer' }, NextOffset: { type: 'integer' }, NotPartOfTheSpec: { type: 'string' } } },
    },
  },
} as const;

const drillParamsSchema = { type: 'object', required: ['DomesticVRPId'], properties: { DomesticVRPId: { type: 'string', minLength: 1, maxLength: 40 } } } as const;
const drillBodySchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    Amount: { type: 'string', pattern: '^[0-9]{1,13}(\\.[0-9]{1,5})?$' },
    Status: { type: 'string', enum: STATUSES },
    EndToEndIdentification: { type: 'string', minLength: 1, maxLength: 35 },
    Forget: { type: 'boolean', const: true },
  },
} as const;

interface DrillBody { Amount?: string; Status?: PaymentStatus; EndToEndIdentification?: string; Forget?: true }

function listed(payment: PaymentRecord): object {
  const instruction = payment.request.Data.Instruction;
  return {
    DomesticVRPId: payment.paymentId,
    ConsentId: payment.consentId,
    Status: payment.status,
    CreationDateTime: isoTime(payment.createdMs),
    StatusUpdateDateTime: isoTime(payment.statusUpdatedMs),
    EndToEndIdentification: instruction.EndToEndIdentification,
    InstructedAmount: { Amount: instruction.InstructedAmount.Amount, Currency: instruction.InstructedAmount.Currency },
  };
}

/** The record after the drill; the amount changes in both places the bank reads it from. */
function drilled(payment: PaymentRecord, body: DrillBody, nowMs: number): PaymentRecord {
  let next: PaymentRecord = payment;
  if (body.Amount !== undefined) {
    const amountMinor = parseWireAmount({ Amount: body.Amount, Currency: payment.currency }, 'Amount');
    const { Data } = payment.request;
    const Instruction = { ...Data.Instruction, InstructedAmount: { ...Data.Instruction.InstructedAmount, Amount: formatMinor(amountMinor, payment.currency) } };
    next = { ...next, amountMinor, request: { ...payment.request, Data: { ...Data, Instruction } } };
  }
  if (body.EndToEndIdentification !== undefined) {
    const { Data } = next.request;
    next = { ...next, request: { ...next.request, Data: { ...Data, Instruction: { ...Data.Instruction, EndToEndIdentification: body.EndToEndIdentification } } } };
  }
  if (body.Status !== undefined) next = { ...next, status: body.Status, statusUpdatedMs: nowMs };
  if (body.Forget) next = { ...next, ownerId: FORGOTTEN_OWNER };
  return next;
}

export async function listingRoutes(app: FastifyInstance, ctx: SandboxContext): Promise<void> {
  app.get<{ Querystring: { offset?: string; limit?: string } }>('/sandbox/payment-listing', { schema: { querystring: listingQuerySchema, response: listingResponseSchema } }, async (request) => {
    const ownerId = ctx.ownerOf(request);
    const offset = Number(request.query.offset ?? '0');
    const limit = Number(request.query.limit ?? String(PAGE_MAX));
    if (limit < 1 || limit > PAGE_MAX) throw badRequest(OB_ERROR_CODES.fieldInvalid, `limit must be 1-${PAGE_MAX}`, 'limit');
    const mine = ctx.state.allPayments(ctx.clock()).filter((p) => p.ownerId === ownerId).sort((a, b) => a.createdMs - b.createdMs);
    const page = mine.slice(offset, offset + limit);
    const next = offset + page.length;
    return {
      Data: { Payments: page.map(listed) },
      Meta: { TotalRecords: mine.length, ...(next < mine.length ? { NextOffset: next } : {}), NotPartOfTheSpec: 'sandbox-only listing; a real bank reports payments in its account statement' },
    };
  });

  app.patch<{ Params: { DomesticVRPId: string }; Body: DrillBody }>('/sandbox/payment-listing/:DomesticVRPId', { schema: { params: drillParamsSchema, body: drillBodySchema } }, async (request, reply) => {
    const ownerId = ctx.ownerOf(request);
    const nowMs = ctx.clock();
    const payment = ctx.state.payment(ownerId, request.params.DomesticVRPId, nowMs);
    if (!payment) throw badRequest(OB_ERROR_CODES.notFound, `Payment ${request.params.DomesticVRPId} does not exist`, 'DomesticVRPId');
    // Stored under the digest of the body that created it, so a replay of that body still finds it.
    ctx.state.addPayment(drilled(payment, request.body, nowMs), bodyDigest(payment.request));
    return reply.code(204).send();
  });
}
