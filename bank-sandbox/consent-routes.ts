/**
 * OBIE VRP 4.0 domestic-vrp-consents: create (POST), read (GET), revoke (DELETE), confirm
 * funds (POST .../funds-confirmation), plus the sandbox-only PSU decisions
 * `POST /sandbox/consents/{ConsentId}/authorise` and `.../reject`.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { bodyDigest, type ConsentRecord } from './bank-state.ts';
import { badRequest, OB_ERROR_CODES } from './ob-errors.ts';
import { checkPeriodicLimit } from '../protocol/vrp-periodic-limits.ts';
import {
  checkAccount,
  isoTime,
  parseWireAmount,
  requireIdempotencyKey,
  selfLink,
  type SandboxContext,
} from './sandbox-context.ts';
import {
  consentIdParamsSchema,
  consentRequestSchema,
  fundsConfirmationRequestSchema,
  type ConsentRequestBody,
  type FundsConfirmationRequestBody,
  type WireCashAccount,
} from './schemas.ts';

/** What the sandbox PSU holds in each currency: funds are available up to this. */
export const SANDBOX_PSU_BALANCE_MINOR = 1_000_000_00n;

/** The account the sandbox PSU picks at the bank when the TPP named no DebtorAccount. */
export const SANDBOX_DEBTOR_ACCOUNT: WireCashAccount = Object.freeze({
  SchemeName: 'UK.OBIE.SortCodeAccountNumber',
  Identification: '40400412345678',
  Name: 'Sandbox PSU',
});

type ConsentParams = { ConsentId: string };

/** The account payments under the consent are taken from, once the PSU has authorised it. */
export function consentDebtorAccount(consent: ConsentRecord): WireCashAccount | undefined {
  if (consent.status === 'AWAU' || consent.status === 'RJCT') return undefined;
  return consent.request.Data.Initiation.DebtorAccount ?? SANDBOX_DEBTOR_ACCOUNT;
}

/** OBIE VRP 4.0: OBDomesticVRPConsentResponse. */
export function consentView(request: FastifyRequest, consent: ConsentRecord): object {
  const { Data, Risk } = consent.request;
  const debtorAccount = consentDebtorAccount(consent);
  return {
    Data: {
      ConsentId: consent.consentId,
      CreationDateTime: isoTime(consent.createdMs),
      Status: consent.status,
      StatusUpdateDateTime: isoTime(consent.statusUpdatedMs),
      ...(consent.statusReason.length > 0 ? { StatusReason: consent.statusReason } : {}),
      ...(Data.ReadRefundAccount ? { ReadRefundAccount: Data.ReadRefundAccount } : {}),
      ControlParameters: Data.ControlParameters,
      Initiation: Data.Initiation,
      ...(debtorAccount ? { DebtorAccount: debtorAccount } : {}),
    },
    Risk,
    Links: { Self: selfLink(request, `/domestic-vrp-consents/${encodeURIComponent(consent.consentId)}`) },
    Meta: {},
  };
}

/** Rules the schema cannot express; throws a 400 SandboxError naming the field. */
function checkConsentRequest(body: ConsentRequestBody): { currency: string; maxIndividualAmountMinor: bigint } {
  const { ControlParameters: control, Initiation: initiation } = body.Data;
  const controlPath = 'Data.ControlParameters';
  const maxIndividualAmountMinor = parseWireAmount(control.MaximumIndividualAmount, `${controlPath}.MaximumIndividualAmount`);
  const currency = control.MaximumIndividualAmount.Currency;
  control.PeriodicLimits.forEach((limit, index) => {
    const limitPath = `${controlPath}.PeriodicLimits[${index}]`;
    if (limit.Currency !== currency) {
      throw badRequest(OB_ERROR_CODES.fieldInvalid, `Currency must be ${currency}, as MaximumIndividualAmount`, `${limitPath}.Currency`);
    }
    const amountMinor = parseWireAmount(limit, limitPath);
    try {
      checkPeriodicLimit({ periodType: limit.PeriodType, periodAlignment: limit.PeriodAlignment, amountMinor });
    } catch (error) {
      throw badRequest(OB_ERROR_CODES.fieldInvalid, (error as Error).message, `${limitPath}.PeriodAlignment`);
    }
  });
  const { ValidFromDateTime: from, ValidToDateTime: to } = control;
  if (from !== undefined && to !== undefined && Date.parse(to) <= Date.parse(from)) {
    throw badRequest(OB_ERROR_CODES.fieldInvalidDate, 'ValidToDateTime must be after ValidFromDateTime', `${controlPath}.ValidToDateTime`);
  }
  if (initiation.DebtorAccount) checkAccount(initiation.DebtorAccount, 'Data.Initiation.DebtorAccount');
  if (initiation.CreditorAccount) checkAccount(initiation.CreditorAccount, 'Data.Initiation.CreditorAccount');
  return { currency, maxIndividualAmountMinor };
}

function consentOr400(ctx: SandboxContext, request: FastifyRequest<{ Params: ConsentParams }>): ConsentRecord {
  const consent = ctx.state.consent(ctx.ownerOf(request), request.params.ConsentId, ctx.clock());
  // OBIE R/W profile 4.0: an unknown resource id is a 400 (Bad Request), not a 404.
  if (!consent) throw badRequest(OB_ERROR_CODES.notFound, `Consent ${request.params.ConsentId} does not exist`, 'ConsentId');
  return consent;
}

export async function consentRoutes(app: FastifyInstance, ctx: SandboxContext): Promise<void> {
  app.post<{ Body: ConsentRequestBody }>('/domestic-vrp-consents', { schema: { body: consentRequestSchema } }, async (request, reply) => {
    const key = requireIdempotencyKey(request);
    const ownerId = ctx.ownerOf(request);
    const digest = bodyDigest(request.body);
    const nowMs = ctx.clock();
    const existingId = ctx.state.replay(ownerId, 'consent', key, digest, nowMs);
    const existing = existingId === undefined ? undefined : ctx.state.consent(ownerId, existingId, nowMs);
    if (existing) return reply.code(201).send(consentView(request, existing));
    const record: ConsentRecord = {
      consentId: `vrpc-${randomUUID()}`,
      ownerId,
      createdMs: nowMs,
      // OBIE VRP 4.0: "AWAU and RJCT only can be returned on initial submission".
      status: 'AWAU',
      statusUpdatedMs: nowMs,
      statusReason: [],
      request: request.body,
      autoAuthorise: ctx.autoAuthoriseConsents,
      ...checkConsentRequest(request.body),
    };
    ctx.state.addConsent(record, key, digest);
    return reply.code(201).send(consentView(request, record));
  });

  const withParams = { schema: { params: consentIdParamsSchema } };
  app.get<{ Params: ConsentParams }>('/domestic-vrp-consents/:ConsentId', withParams, async (request) => {
    return consentView(request, consentOr400(ctx, request));
  });

  app.post<{ Params: ConsentParams; Body: FundsConfirmationRequestBody }>(
    '/domestic-vrp-consents/:ConsentId/funds-confirmation',
    { schema: { params: consentIdParamsSchema, body: fundsConfirmationRequestSchema } },
    async (request, reply) => reply.code(201).send(fundsConfirmation(ctx, request, consentOr400(ctx, request))),
  );

  app.delete<{ Params: ConsentParams }>('/domestic-vrp-consents/:ConsentId', withParams, async (request, reply) => {
    const consent = consentOr400(ctx, request);
    if (consent.status !== 'CANC') {
      const reason = { StatusReasonDescription: 'Revoked by the TPP (DELETE domestic-vrp-consents)' };
      ctx.state.replaceConsent({ ...consent, status: 'CANC', statusUpdatedMs: ctx.clock(), statusReason: [reason] });
    }
    return reply.code(204).send();
  });
}

/** OBIE VRP 4.0: OBVRPFundsConfirmationResponse; only an AUTH consent can confirm funds. */
function fundsConfirmation(ctx: SandboxContext, request: FastifyRequest<{ Params: ConsentParams; Body: FundsConfirmationRequestBody }>, consent: ConsentRecord): object {
  const { Data } = request.body;
  if (Data.ConsentId !== consent.consentId) {
    throw badRequest(OB_ERROR_CODES.fieldInvalid, `ConsentId ${Data.ConsentId} is not the consent in the path`, 'Data.ConsentId');
  }
  if (consent.status !== 'AUTH') {
    throw badRequest(OB_ERROR_CODES.invalidConsentStatus, `Consent ${consent.consentId} is ${consent.status}, not AUTH`, 'Data.ConsentId');
  }
  if (Data.InstructedAmount.Currency !== consent.currency) {
    throw badRequest(OB_ERROR_CODES.fieldInvalid, `Currency must be ${consent.currency}, as the consent`, 'Data.InstructedAmount.Currency');
  }
  const amountMinor = parseWireAmount(Data.InstructedAmount, 'Data.InstructedAmount');
  const nowIso = isoTime(ctx.clock());
  return {
    Data: {
      FundsConfirmationId: randomUUID(),
      ConsentId: consent.consentId,
      CreationDateTime: nowIso,
      ...(Data.Reference === undefined ? {} : { Reference: Data.Reference }),
      FundsAvailableResult: { FundsAvailableDateTime: nowIso, FundsAvailable: amountMinor <= SANDBOX_PSU_BALANCE_MINOR ? 'Available' : 'NotAvailable' },
      InstructedAmount: Data.InstructedAmount,
    },
    Links: { Self: selfLink(request, `/domestic-vrp-consents/${encodeURIComponent(consent.consentId)}/funds-confirmation`) },
    Meta: {},
  };
}

/** Sandbox only: the PSU approves (AUTH) or refuses (RJCT) the consent at the bank. */
export async function psuRoutes(app: FastifyInstance, ctx: SandboxContext): Promise<void> {
  const withParams = { schema: { params: consentIdParamsSchema } };
  const decide = (request: FastifyRequest<{ Params: ConsentParams }>, status: 'AUTH' | 'RJCT') => {
    const consent = consentOr400(ctx, request);
    if (consent.status !== 'AWAU') {
      throw badRequest(OB_ERROR_CODES.invalidConsentStatus, `Consent ${consent.consentId} is ${consent.status}, not AWAU`, 'Status');
    }
    const reason = status === 'RJCT' ? [{ StatusReasonDescription: 'The PSU refused the consent at the bank' }] : [];
    const decided: ConsentRecord = { ...consent, status, statusUpdatedMs: ctx.clock(), statusReason: reason };
    ctx.state.replaceConsent(decided);
    return consentView(request, decided);
  };
  app.post<{ Params: ConsentParams }>('/sandbox/consents/:ConsentId/authorise', withParams, async (request) => decide(request, 'AUTH'));
  app.post<{ Params: ConsentParams }>('/sandbox/consents/:ConsentId/reject', withParams, async (request) => decide(request, 'RJCT'));
}
