/**
 * A local pay-by-bank bank in the shape of OBL VRP Profile 4.0.0, for demos and tests:
 * consents, payments with idempotency, lazy settlement and injectable faults, in memory.
 *
 * Not implemented (as a bank may choose, answered 404): PUT/PATCH of consents,
 * payment-details. Message signing (docs/bank-api.md): every answer is signed with the bank's
 * P-256 key (`signingJwk`); POSTs must be signed by a TPP key when `tppSigningKeys` is set.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { generateJwsKey, OB_TRUST_ANCHOR, publicJwkOf, type JwsKeyPair, type PublicJwk, type TrustedJwsKey } from '../gateway/settlement/jws.ts';
import { BankState, type ConsentRecord, type PaymentRecord } from './bank-state.ts';
import { consentRoutes, psuRoutes } from './consent-routes.ts';
import { EventNotifier } from './event-notifications.ts';
import { createFaultQueue, type FaultControl, type FaultQueue } from './faults.ts';
import { listingRoutes } from './listing-routes.ts';
import { installMessageSigning } from './message-signing.ts';
import { OB_ERROR_CODES, obErrorBody, SandboxError } from './ob-errors.ts';
import { paymentRoutes } from './payment-routes.ts';
import { sandboxRoutes } from './sandbox-routes.ts';
import { BASE_PATH, type SandboxContext } from './sandbox-context.ts';

export { BASE_PATH } from './sandbox-context.ts';
export type { FaultControl } from './faults.ts';

export interface BankSandboxOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** 0 picks a free port. Default 0. */
  port?: number;
  /** Bearer tokens the bank accepts, one per TPP; at least one. */
  accessTokens: readonly string[];
  /** Default true: a created consent is AUTH as soon as it is read back, as if the PSU approved. */
  autoAuthoriseConsents?: boolean;
  /** Default 2000: a payment is ACSC this long after creation (ACSP before). */
  settleAfterMs?: number;
  logger?: Logger;
  /** Epoch ms; default Date.now. Lets tests move time (idempotency window, periodic limits). */
  clock?: () => number;
  /** Called with every API exchange answered, e.g. to check it against the spec. */
  onExchange?: (exchange: SandboxExchange) => void;
  /** Signs the bank's answers. Default: a fresh key each start (see `signingJwk`). */
  signingKey?: JwsKeyPair;
  /** The bank's `http://openbanking.org.uk/iss`. Default 'meterbridge-sandbox-bank'. */
  signingIss?: string;
  /** `http://openbanking.org.uk/tan` both sides use. Default 'openbanking.org.uk'. */
  trustAnchor?: string;
  /**
   * TPP keys whose `x-jws-signature` the bank accepts. When set (even empty), every POST to
   * the API must be signed by one of them; when absent, request signatures are not checked.
   */
  tppSigningKeys?: readonly TrustedJwsKey[];
  /**
   * Where signed event notifications go when a payment is created or its status changes
   * (docs/bank-api.md). Default: none. Can be set later with `setCallbackUrl`.
   */
  callbackUrl?: string;
  /** Event notification delivery: retry base delay (default 250 ms) and attempts (default 5). */
  notificationRetryBaseMs?: number;
  notificationAttemptsMax?: number;
}

/** One answered request, as the sandbox saw it; header names are lower case. */
export interface SandboxExchange {
  method: string;
  url: string;
  requestHeaders: Readonly<Record<string, string | string[] | undefined>>;
  requestBody: unknown;
  statusCode: number;
  responseHeaders: Readonly<Record<string, string | string[] | number | undefined>>;
  responseBody: unknown;
}

export interface SandboxConsent {
  consentId: string;
  status: ConsentRecord['status'];
  creationDateTime: string;
  statusUpdateDateTime: string;
  currency: string;
  maxIndividualAmountMinor: bigint;
}

export interface SandboxPayment {
  paymentId: string;
  consentId: string;
  idempotencyKey: string;
  status: PaymentRecord['status'];
  creationDateTime: string;
  statusUpdateDateTime: string;
  amountMinor: bigint;
  currency: string;
  instructionIdentification: string;
  endToEndIdentification: string;
}

export interface BankSandbox {
  /** e.g. http://127.0.0.1:41234/open-banking/v4.0/pisp */
  url: string;
  port: number;
  close(): Promise<void>;
  faults: FaultControl;
  listPayments(): SandboxPayment[];
  listConsents(): SandboxConsent[];
  /** The public key of the bank's answers, for the TPP's `settlement.bank.publicKeyFile`. */
  signingJwk: PublicJwk;
  /** Registers the TPP's event notification URL (undefined: send none). */
  setCallbackUrl(url: string | undefined): void;
  /** Event notifications delivered, given up after retries, dropped from a full queue. */
  notificationCounts(): { delivered: number; failed: number; dropped: number };
}

/** Limits: one place, each with a reason. */
const BODY_BYTES_MAX = 64 * 1024; // a VRP request is ~2 KiB; 413 beyond this
const PAYMENTS_MAX = 100_000;
const CONSENTS_MAX = 10_000;
const TOKENS_MAX = 100;
const SETTLE_AFTER_MS_MAX = 24 * 60 * 60 * 1000;
const INTERACTION_ID_MAX = 128;

interface CheckedOptions {
  host: string;
  port: number;
  tokenDigests: readonly Buffer[];
  autoAuthoriseConsents: boolean;
  settleAfterMs: number;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function checkOptions(options: BankSandboxOptions): Readonly<CheckedOptions> {
  const { accessTokens, port = 0, settleAfterMs = 2000 } = options;
  if (!Array.isArray(accessTokens) || accessTokens.length === 0 || accessTokens.length > TOKENS_MAX) {
    throw new RangeError(`accessTokens: must hold 1 to ${TOKENS_MAX} tokens; the sandbox has no open doors`);
  }
  accessTokens.forEach((token, index) => {
    if (typeof token !== 'string' || !/^[\x21-\x7e]{8,512}$/.test(token)) {
      throw new RangeError(`accessTokens[${index}]: must be 8-512 visible ASCII characters`);
    }
  });
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new RangeError(`port: ${port} must be 0-65535`);
  if (!Number.isSafeInteger(settleAfterMs) || settleAfterMs < 0 || settleAfterMs > SETTLE_AFTER_MS_MAX) {
    throw new RangeError(`settleAfterMs: ${settleAfterMs} must be an integer from 0 to ${SETTLE_AFTER_MS_MAX}`);
  }
  return Object.freeze({
    host: options.host ?? '127.0.0.1',
    port,
    tokenDigests: accessTokens.map(digest),
    autoAuthoriseConsents: options.autoAuthoriseConsents ?? true,
    settleAfterMs,
  });
}

/** The TPP id (token digest prefix) of a valid `Authorization: Bearer` header, else undefined. */
function authenticate(header: string | undefined, tokenDigests: readonly Buffer[]): string | undefined {
  const match = /^Bearer ([\x21-\x7e]+)$/.exec(header ?? '');
  if (!match?.[1]) return undefined;
  const presented = digest(match[1]);
  const known = tokenDigests.find((candidate) => timingSafeEqual(candidate, presented));
  return known?.toString('hex').slice(0, 16);
}

function interactionId(request: FastifyRequest): string {
  const given = request.headers['x-fapi-interaction-id'];
  // FAPI: the ASPSP plays back the TPP's x-fapi-interaction-id, else issues its own.
  return typeof given === 'string' && given.length > 0 && given.length <= INTERACTION_ID_MAX ? given : randomUUID();
}

function sendFault(reply: FastifyReply, httpStatus: number): FastifyReply {
  if (httpStatus === 429) reply.header('retry-after', '1');
  const code = OB_ERROR_CODES.unexpected;
  return reply.code(httpStatus).send(obErrorBody(code, `Sandbox fault: the bank answers ${httpStatus} and did nothing`));
}

function installGuards(app: FastifyInstance, checked: CheckedOptions, ctx: { faults: FaultQueue; owners: WeakMap<FastifyRequest, string> }): void {
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-fapi-interaction-id', interactionId(request));
    const ownerId = authenticate(request.headers.authorization, checked.tokenDigests);
    if (ownerId === undefined) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send(obErrorBody(OB_ERROR_CODES.headerInvalid, 'Authorization: Bearer <access token> is missing or not valid', 'Authorization'));
    }
    ctx.owners.set(request, ownerId);
    if (!request.url.startsWith(`${BASE_PATH}/`)) return undefined;
    const failure = ctx.faults.takeFailure();
    return failure === undefined ? undefined : sendFault(reply, failure);
  });
}

function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | SandboxError, request, reply) => {
    if (error instanceof SandboxError) return reply.code(error.httpStatus).send(error.body());
    if (error.validation) {
      const first = error.validation[0];
      const errorPath = first?.instancePath.replace(/^\//, '').replaceAll('/', '.') || error.validationContext;
      return reply.code(400).send(obErrorBody(OB_ERROR_CODES.invalidFormat, error.message, errorPath));
    }
    const status = error.statusCode ?? 500;
    if (status >= 500) request.log.error({ err: error }, 'sandbox request failed');
    const code = status >= 500 ? OB_ERROR_CODES.unexpected : OB_ERROR_CODES.invalidFormat;
    return reply.code(status).send(obErrorBody(code, status >= 500 ? 'Unexpected error in the sandbox' : error.message));
  });
  // OBIE R/W profile 4.0: an endpoint a bank has not implemented answers 404.
  app.setNotFoundHandler((request, reply) => reply.code(404).send());
}

function installExchangeHook(app: FastifyInstance, onExchange: NonNullable<BankSandboxOptions['onExchange']>): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const isJson = String(reply.getHeader('content-type') ?? '').startsWith('application/json');
    const responseBody = isJson && typeof payload === 'string' && payload.length > 0 ? JSON.parse(payload) : undefined;
    onExchange({
      method: request.method,
      url: request.url,
      requestHeaders: request.headers,
      requestBody: request.body,
      statusCode: reply.statusCode,
      responseHeaders: reply.getHeaders(),
      responseBody,
    });
    return payload;
  });
}

function holdTimers(): { hold(delayMs: number): Promise<void>; releaseAll(): void } {
  const pending = new Set<() => void>();
  return {
    hold: (delayMs) =>
      new Promise<void>((resolve) => {
        const release = () => {
          clearTimeout(timer);
          pending.delete(release);
          resolve();
        };
        const timer = setTimeout(release, delayMs);
        pending.add(release);
      }),
    releaseAll: () => [...pending].forEach((release) => release()),
  };
}

function toSandboxPayment(p: PaymentRecord): SandboxPayment {
  const instruction = p.request.Data.Instruction;
  return {
    paymentId: p.paymentId,
    consentId: p.consentId,
    idempotencyKey: p.idempotencyKey,
    status: p.status,
    creationDateTime: new Date(p.createdMs).toISOString(),
    statusUpdateDateTime: new Date(p.statusUpdatedMs).toISOString(),
    amountMinor: p.amountMinor,
    currency: p.currency,
    instructionIdentification: instruction.InstructionIdentification,
    endToEndIdentification: instruction.EndToEndIdentification,
  };
}

function toSandboxConsent(c: ConsentRecord): SandboxConsent {
  return {
    consentId: c.consentId,
    status: c.status,
    creationDateTime: new Date(c.createdMs).toISOString(),
    statusUpdateDateTime: new Date(c.statusUpdatedMs).toISOString(),
    currency: c.currency,
    maxIndividualAmountMinor: c.maxIndividualAmountMinor,
  };
}

function listeningUrl(app: FastifyInstance): { url: string; port: number } {
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `http://${host}:${address.port}${BASE_PATH}`, port: address.port };
}

export async function startBankSandbox(options: BankSandboxOptions): Promise<BankSandbox> {
  const checked = checkOptions(options);
  const clock = options.clock ?? Date.now;
  const faults = createFaultQueue();
  const owners = new WeakMap<FastifyRequest, string>();
  const holds = holdTimers();
  const state = new BankState({ consentsMax: CONSENTS_MAX, paymentsMax: PAYMENTS_MAX, settleAfterMs: checked.settleAfterMs });
  const signingKey = options.signingKey ?? generateJwsKey();
  const signingIss = options.signingIss ?? 'meterbridge-sandbox-bank';
  const trustAnchor = options.trustAnchor ?? OB_TRUST_ANCHOR;
  let baseUrl = '';
  const notifier = new EventNotifier({
    signing: { key: signingKey, iss: signingIss, tan: trustAnchor },
    clock,
    read: (payment) => state.payment(payment.ownerId, payment.paymentId, clock()),
    linkOf: (paymentId) => `${baseUrl}/domestic-vrps/${encodeURIComponent(paymentId)}`,
    settleAfterMs: checked.settleAfterMs,
    ...(options.callbackUrl === undefined ? {} : { callbackUrl: options.callbackUrl }),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.notificationRetryBaseMs === undefined ? {} : { retryBaseMs: options.notificationRetryBaseMs }),
    ...(options.notificationAttemptsMax === undefined ? {} : { attemptsMax: options.notificationAttemptsMax }),
  });
  const ctx: SandboxContext = {
    state,
    faults,
    clock,
    autoAuthoriseConsents: checked.autoAuthoriseConsents,
    settleAfterMs: checked.settleAfterMs,
    ownerOf: (request) => owners.get(request) ?? assertNever('request was not authenticated'),
    hold: holds.hold,
    paymentCreated: (payment) => notifier.created(payment),
  };
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger as FastifyBaseLogger } : { logger: false }),
    bodyLimit: BODY_BYTES_MAX,
    // close() means closed: also connections whose response a fault swallowed.
    forceCloseConnections: true,
    // Amounts are strings on the wire: no type coercion, nothing silently removed.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
  });
  installGuards(app, checked, { faults, owners });
  installErrorHandlers(app);
  // Before the exchange hook, so what it records carries the signature.
  installMessageSigning(app, {
    key: signingKey,
    iss: signingIss,
    tan: trustAnchor,
    tppKeys: options.tppSigningKeys,
    clock,
  });
  if (options.onExchange) installExchangeHook(app, options.onExchange);
  await app.register(async (api) => consentRoutes(api, ctx), { prefix: BASE_PATH });
  await app.register(async (api) => paymentRoutes(api, ctx), { prefix: BASE_PATH });
  await app.register(async (api) => psuRoutes(api, ctx));
  await app.register(async (api) => listingRoutes(api, ctx)); // sandbox-only, not OB spec
  await app.register(async (api) => sandboxRoutes(api, ctx));
  await app.listen({ host: checked.host, port: checked.port });
  const { url, port } = listeningUrl(app);
  baseUrl = url;
  options.logger?.info({ url }, 'bank sandbox listening');
  return {
    url,
    port,
    faults,
    close: async () => {
      holds.releaseAll();
      await notifier.close();
      await app.close();
    },
    listPayments: () => state.allPayments(clock()).map(toSandboxPayment),
    listConsents: () => state.allConsents(clock()).map(toSandboxConsent),
    signingJwk: publicJwkOf(signingKey),
    setCallbackUrl: (callbackUrl) => notifier.setCallbackUrl(callbackUrl),
    notificationCounts: () => ({ ...notifier.counts }),
  };
}

function assertNever(message: string): never {
  throw new Error(`Invariant broken: ${message}`);
}
