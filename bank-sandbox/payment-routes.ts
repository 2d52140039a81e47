/**
 * OBIE VRP 4.0 domestic-vrps: create a payment under an authorised consent (POST) and read
 * its status (GET). The create path is where "never pay twice" lives: one x-idempotency-key,
 * one payment, whatever the network did to the first response.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { periodWindow } from '../protocol/vrp-periodic-limits.ts';
import { bodyDigest, type ConsentRecord, type PaymentRecord } from './bank-state.ts';
import { consentDebtorAccount } from './consent-routes.ts';
import { badRequest, OB_ERROR_CODES } from './ob-errors.ts';
import {
  checkAccount,
  isoTime,
  parseWireAmount,
  requireIdempotencyKey,
  selfLink,
  type SandboxContext,
} from './sandbox-context.ts';
import { paymentIdParamsSchema, paymentRequestSchema, type PaymentRequestBody } from './schemas.ts';

type PaymentParams = { DomesticVRPId: string };

/** OBIE VRP 4.0: OBDomesticVRPResponse. */
export function paymentView(request: FastifyRequest, payment: PaymentRecord, consent: ConsentRecord | undefined, settleAfterMs: number): object {
  const { Data, Risk } = payment.request;
  const debtorAccount = consent ? consentDebtorAccount(consent) : undefined;
  const refund = consent?.request.Data.ReadRefundAccount === 'Yes' ? debtorAccount : undefined;
  return {
    Data: {
      DomesticVRPId: payment.paymentId,
      ConsentId: payment.consentId,
      CreationDateTime: isoTime(payment.createdMs),
      Status: payment.status,
      StatusUpdateDateTime: isoTime(payment.statusUpdatedMs),
      ...(payment.statusReason.length > 0 ? { StatusReason: payment.statusReason } : {}),
      ...(payment.status === 'RJCT' ? {} : { ExpectedSettlementDateTime: isoTime(payment.createdMs + settleAfterMs) }),
      // OBIE VRP 4.0: Data.Refund only when the consent asked for ReadRefundAccount = Yes.
      ...(refund ? { Refund: refund } : {}),
      Initiation: Data.Initiation,
      Instruction: Data.Instruction,
      ...(debtorAccount ? { DebtorAccount: debtorAccount } : {}),
    },
    Risk,
    Links: { Self: selfLink(request, `/domestic-vrps/${encodeURIComponent(payment.paymentId)}`) },
    Meta: {},
  };
}

/** OBIE VRP 4.0: Initiation and Risk must match the consent; remittance too if it set one. */
function checkMatchesConsent(body: PaymentRequestBody, consent: ConsentRecord): void {
  const mismatch = (what: string, path: string) =>
    badRequest(OB_ERROR_CODES.consentMismatch, `${what} does not match consent ${consent.consentId}`, path);
  const consentInitiation = consent.request.Data.Initiation;
  if (!isDeepStrictEqual(body.Data.Initiation, consentInitiation)) throw mismatch('Initiation', 'Data.Initiation');
  if (!isDeepStrictEqual(body.Risk, consent.request.Risk)) throw mismatch('Risk', 'Risk');
  const instruction = body.Data.Instruction;
  if (consentInitiation.CreditorAccount && !isDeepStrictEqual(instruction.CreditorAccount, consentInitiation.CreditorAccount)) {
    throw mismatch('Instruction.CreditorAccount', 'Data.Instruction.CreditorAccount');
  }
  checkAccount(instruction.CreditorAccount, 'Data.Instruction.CreditorAccount');
  const consentRemittance = consentInitiation.RemittanceInformation;
  if (consentRemittance && !isDeepStrictEqual(instruction.RemittanceInformation, consentRemittance)) {
    throw mismatch('Instruction.RemittanceInformation', 'Data.Instruction.RemittanceInformation');
  }
}

/** OBIE VRP 4.0: a payment breaching a ControlParameter fails with U014 naming that parameter. */
function checkControlParameters(ctx: SandboxContext, body: PaymentRequestBody, consent: ConsentRecord, nowMs: number): bigint {
  const control = consent.request.Data.ControlParameters;
  const fails = (message: string, parameter: string) =>
    badRequest(OB_ERROR_CODES.failsControlParameters, message, `Data.ControlParameters.${parameter}`);
  if (!control.VRPType.includes(body.Data.VRPType)) throw fails(`VRPType ${body.Data.VRPType} is not allowed`, 'VRPType');
  if (!control.PSUAuthenticationMethods.includes(body.Data.PSUAuthenticationMethod)) {
    throw fails(`PSUAuthenticationMethod ${body.Data.PSUAuthenticationMethod} is not allowed`, 'PSUAuthenticationMethods');
  }
  const interaction = body.Data.PSUInteractionType ?? 'OffSession';
  if (!(control.PSUInteractionTypes ?? ['OffSession']).includes(interaction)) {
    throw fails(`PSUInteractionType ${interaction} is not allowed`, 'PSUInteractionTypes');
  }
  if (control.ValidFromDateTime !== undefined && nowMs < Date.parse(control.ValidFromDateTime)) {
    throw fails('the consent is not valid yet', 'ValidFromDateTime');
  }
  const instructed = body.Data.Instruction.InstructedAmount;
  if (instructed.Currency !== consent.currency) {
    throw fails(`Currency ${instructed.Currency} is not the consent's ${consent.currency}`, 'MaximumIndividualAmount.Currency');
  }
  const amountMinor = parseWireAmount(instructed, 'Data.Instruction.InstructedAmount');
  if (amountMinor > consent.maxIndividualAmountMinor) {
    throw fails(`Amount ${instructed.Amount} exceeds MaximumIndividualAmount ${control.MaximumIndividualAmount.Amount}`, 'MaximumIndividualAmount');
  }
  control.PeriodicLimits.forEach((limit, index) => {
    const periodicLimit = { periodType: limit.PeriodType, periodAlignment: limit.PeriodAlignment, amountMinor: parseWireAmount(limit, 'limit') };
    const window = periodWindow(periodicLimit, consent.createdMs, nowMs);
    const paidMinor = ctx.state.paidInWindow(consent.consentId, window.startMs, window.endMs);
    if (paidMinor + amountMinor > window.limitMinor) {
      throw fails(`Amount ${instructed.Amount} would exceed the ${limit.PeriodType} limit of this period`, `PeriodicLimits[${index}]`);
    }
  });
  return amountMinor;
}

function authorisedConsent(ctx: SandboxContext, ownerId: string, consentId: string, nowMs: number): ConsentRecord {
  const consent = ctx.state.consent(ownerId, consentId, nowMs);
  if (!consent) throw badRequest(OB_ERROR_CODES.notFound, `Consent ${consentId} does not exist`, 'Data.ConsentId');
  // OBIE VRP 4.0: a domestic-vrps can only be created if its consent has the Status AUTH.
  if (consent.status !== 'AUTH') {
    throw badRequest(OB_ERROR_CODES.invalidConsentStatus, `Consent ${consentId} is ${consent.status}, not AUTH`, 'Data.ConsentId');
  }
  return consent;
}

function newPayment(ctx: SandboxContext, request: FastifyRequest<{ Body: PaymentRequestBody }>, key: string, nowMs: number): PaymentRecord {
  const ownerId = ctx.ownerOf(request);
  if (ctx.faults.takeConsentExpiry()) expireConsent(ctx, ownerId, request.body.Data.ConsentId, nowMs);
  const consent = authorisedConsent(ctx, ownerId, request.body.Data.ConsentId, nowMs);
  checkMatchesConsent(request.body, consent);
  const amountMinor = checkControlParameters(ctx, request.body, consent, nowMs);
  const rejection = ctx.faults.takeRejection();
  const hold = rejection ? undefined : ctx.faults.takePendingHold();
  return {
    paymentId: randomUUID(),
    ownerId,
    consentId: consent.consentId,
    idempotencyKey: key,
    createdMs: nowMs,
    // OBIE VRP 4.0: a created domestic-vrps has Status RCVD, PDNG, ACTC or RJCT.
    status: rejection ? 'RJCT' : hold ? 'PDNG' : 'RCVD',
    statusUpdatedMs: nowMs,
    statusReason: rejection ? [rejection] : [],
    request: request.body,
    amountMinor,
    currency: request.body.Data.Instruction.InstructedAmount.Currency,
    ...(hold?.forMs === undefined ? {} : { pendingUntilMs: nowMs + hold.forMs }),
    ...(hold?.reads === undefined ? {} : { pendingReadsLeft: hold.reads }),
  };
}

/** Sandbox fault expire-consent: the consent reaches its end just before this payment. */
function expireConsent(ctx: SandboxContext, ownerId: string, consentId: string, nowMs: number): void {
  const consent = ctx.state.consent(ownerId, consentId, nowMs);
  if (!consent || (consent.status !== 'AUTH' && consent.status !== 'AWAU')) return;
  ctx.state.replaceConsent({ ...consent, status: 'EXPD', statusUpdatedMs: nowMs, statusReason: [{ StatusReasonDescription: 'Expired (sandbox fault)' }] });
}

/** The bank stored the payment, then the answer is lost: held, and the connection dropped. */
async function loseResponse(ctx: SandboxContext, reply: FastifyReply, delayMs: number): Promise<void> {
  reply.hijack();
  await ctx.hold(delayMs);
  reply.raw.destroy();
}

/**
 * The payment this key already created (OBIE R/W profile 4.0: an idempotent request gets the
 * current status and a 201), else a new one. A request repeating a key still being processed
 * waits for that one first, so the two can never make two payments.
 */
async function createOnce(ctx: SandboxContext, request: FastifyRequest<{ Body: PaymentRequestBody }>, key: string): Promise<{ payment: PaymentRecord; created: boolean }> {
  const ownerId = ctx.ownerOf(request);
  const digest = bodyDigest(request.body);
  await ctx.state.inFlight(ownerId, 'payment', key)?.catch(() => undefined);
  const existingId = ctx.state.replay(ownerId, 'payment', key, digest, ctx.clock());
  const existing = existingId === undefined ? undefined : ctx.state.payment(ownerId, existingId, ctx.clock());
  if (existing) return { payment: existing, created: false };
  return ctx.state.processOnce(ownerId, 'payment', key, async () => {
    const acceptDelayMs = ctx.faults.takeAcceptDelay();
    if (acceptDelayMs !== undefined) await ctx.hold(acceptDelayMs);
    const payment = newPayment(ctx, request, key, ctx.clock());
    ctx.state.addPayment(payment, digest);
    return { payment, created: true };
  });
}

export async function paymentRoutes(app: FastifyInstance, ctx: SandboxContext): Promise<void> {
  const consentOf = (ownerId: string, payment: PaymentRecord) => ctx.state.consent(ownerId, payment.consentId, ctx.clock());

  app.post<{ Body: PaymentRequestBody }>('/domestic-vrps', { schema: { body: paymentRequestSchema } }, async (request, reply) => {
    const key = requireIdempotencyKey(request);
    const ownerId = ctx.ownerOf(request);
    const { payment, created } = await createOnce(ctx, request, key);
    if (created) ctx.paymentCreated(payment);
    const lostAfterMs = created ? ctx.faults.takeTimeoutAfterAccept() : undefined;
    if (lostAfterMs !== undefined) return loseResponse(ctx, reply, lostAfterMs);
    await answerSlowly(ctx);
    return reply.code(201).send(paymentView(request, payment, consentOf(ownerId, payment), ctx.settleAfterMs));
  });

  app.get<{ Params: PaymentParams }>('/domestic-vrps/:DomesticVRPId', { schema: { params: paymentIdParamsSchema } }, async (request) => {
    const ownerId = ctx.ownerOf(request);
    const payment = ctx.state.payment(ownerId, request.params.DomesticVRPId, ctx.clock());
    // OBIE R/W profile 4.0: an unknown resource id is a 400 (Bad Request), not a 404.
    if (!payment) throw badRequest(OB_ERROR_CODES.notFound, `Payment ${request.params.DomesticVRPId} does not exist`, 'DomesticVRPId');
    ctx.state.notePaymentRead(payment.paymentId);
    await answerSlowly(ctx);
    return paymentView(request, payment, consentOf(ownerId, payment), ctx.settleAfterMs);
  });
}

/** Sandbox fault answer-slowly: what was asked is done; the answer leaves late. */
async function answerSlowly(ctx: SandboxContext): Promise<void> {
  const delayMs = ctx.faults.takeAnswerDelay();
  if (delayMs !== undefined) await ctx.hold(delayMs);
}
