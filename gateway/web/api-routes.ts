/**
 * The operator page's JSON API (docs/operator-page.md): state, live events, and the actions.
 * Every action needs a session and its CSRF token, is written to the audit log, and is
 * idempotent per `x-action-id` (audit-log.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ID_PATTERN } from '../../protocol/usage-message.ts';
import { AuditLog, type ActionAnswer } from './audit-log.ts';
import { INVITE_TTL_MS, type OperatorAuth } from './auth-routes.ts';
import { ActionError, type OperatorActions } from './operator-actions.ts';
import type { OperatorAccounts } from './operators.ts';
import type { LiveState } from './live-state.ts';
import type { Snapshot } from './snapshot.ts';

export interface ApiRoutesOptions {
  auth: OperatorAuth;
  accounts: OperatorAccounts;
  actions: OperatorActions;
  audit: AuditLog;
  snapshot: () => Promise<Snapshot>;
  live: LiveState;
  /** Where invitation links point: the page's own origin as the operator reached it. */
  inviteLink: (request: FastifyRequest, token: string) => string;
}

const ID = { type: 'string', pattern: ID_PATTERN.source } as const;
const NUMBER_PARAM = { type: 'object', required: ['no'], properties: { no: { type: 'integer', minimum: 1 } } } as const;
const ID_PARAM = { type: 'object', required: ['id'], properties: { id: ID } } as const;
const ERROR_REPLY = { type: 'object', properties: { error: { type: 'string' } } } as const;

export function apiRoutes(app: FastifyInstance, o: ApiRoutesOptions): void {
  const { auth } = o;
  const read = { preHandler: auth.requireOperator };
  const write = { preHandler: auth.requireCsrf };

  /** Runs an action once per action id, audited; ActionErrors become their status and message. */
  const act = async (request: FastifyRequest, reply: FastifyReply, what: { action: string; target?: string }, run: () => Promise<unknown>): Promise<FastifyReply> => {
    const by = auth.session(request)!.username;
    const actionId = request.headers['x-action-id'];
    if (actionId !== undefined && !AuditLog.validActionId(actionId)) return reply.code(400).send({ error: 'x-action-id: 1-64 of A-Z a-z 0-9 _ -' });
    const answer: ActionAnswer = await o.audit.run({ by, ...what }, actionId, async () => {
      try {
        return { statusCode: 200, body: (await run()) ?? { ok: true } };
      } catch (error) {
        if (error instanceof ActionError) return { statusCode: error.statusCode, body: { error: error.message } };
        throw error;
      }
    });
    o.live.poke(); // the page sees the change at once
    return reply.code(answer.statusCode).send(answer.body);
  };

  app.get('/api/session', read, async (request) => {
    const session = auth.session(request)!;
    return { username: session.username, csrfToken: session.csrfToken };
  });
  app.get('/api/state', read, async () => o.snapshot());
  app.get('/api/events', read, async (request, reply) => o.live.stream(request, reply, () => auth.session(request) !== undefined));
  app.get<{ Params: { id: string } }>('/api/devices/:id', { ...read, schema: { params: ID_PARAM } }, async (request, reply) => {
    const detail = o.actions.deviceDetail(request.params.id);
    if (!detail) return reply.code(404).send({ error: `no device ${request.params.id}` });
    const device = (await o.snapshot()).devices.find((d) => d.id === request.params.id);
    return { device, usagePerMinute: detail.usagePerMinute, rejections: detail.rejections };
  });
  app.get('/api/audit', read, async () => ({ entries: await o.audit.latest(100) }));

  app.post<{ Body: { id: string; payer: string; meters: string[]; description?: string; publicKey?: string } }>('/api/devices', {
    ...write,
    schema: {
      body: {
        type: 'object', required: ['id', 'payer', 'meters'], additionalProperties: false,
        properties: { id: ID, payer: ID, meters: { type: 'array', minItems: 1, maxItems: 16, items: ID }, description: { type: 'string', maxLength: 200 }, publicKey: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
      },
      response: { 400: ERROR_REPLY },
    },
  }, async (request, reply) => {
    const { id, payer, meters, description, publicKey } = request.body;
    return act(request, reply, { action: 'provision device', target: id }, () => o.actions.provisionDevice({
      id, payer, meters, ...(description ? { description } : {}), ...(publicKey ? { publicKey } : {}),
    }));
  });
  app.post<{ Params: { id: string } }>('/api/devices/:id/rotate', { ...write, schema: { params: ID_PARAM } }, async (request, reply) =>
    act(request, reply, { action: 'rotate device password', target: request.params.id }, () => o.actions.rotateDevice(request.params.id)));
  app.post<{ Params: { id: string } }>('/api/devices/:id/revoke', { ...write, schema: { params: ID_PARAM } }, async (request, reply) =>
    act(request, reply, { action: 'revoke device', target: request.params.id }, async () => {
      await o.actions.revokeDevice(request.params.id);
      return { id: request.params.id, revoked: true };
    }));
  app.post('/api/seal', write, async (request, reply) => act(request, reply, { action: 'seal now' }, async () => ({ batches: await o.actions.sealNow() })));
  app.post('/api/settle', write, async (request, reply) => act(request, reply, { action: 'settle now' }, async () => {
    await o.actions.settleNow();
    return { ok: true };
  }));
  app.post<{ Params: { no: number } }>('/api/batches/:no/retry', { ...write, schema: { params: NUMBER_PARAM } }, async (request, reply) =>
    act(request, reply, { action: 'retry held batch', target: `batch ${request.params.no}` }, () => o.actions.retryBatch(request.params.no, auth.session(request)!.username)));
  app.post<{ Params: { no: number } }>('/api/alerts/:no/ack', { ...write, schema: { params: NUMBER_PARAM } }, async (request, reply) =>
    act(request, reply, { action: 'acknowledge alert', target: `alert ${request.params.no}` }, async () => {
      await o.actions.acknowledgeAlert(request.params.no, auth.session(request)!.username);
      return { alertNo: request.params.no };
    }));
  app.post<{ Body: { entryNo: number; reason: string } }>('/api/corrections', {
    ...write,
    schema: { body: { type: 'object', required: ['entryNo', 'reason'], additionalProperties: false, properties: { entryNo: { type: 'integer', minimum: 1 }, reason: { type: 'string', minLength: 1, maxLength: 500 } } } },
  }, async (request, reply) => act(request, reply, { action: 'correct entry (reversal)', target: `entry ${request.body.entryNo}` },
    () => o.actions.correct(request.body.entryNo, request.body.reason, auth.session(request)!.username)));
  app.post('/api/invites', write, async (request, reply) => act(request, reply, { action: 'invite operator' }, async () => {
    const invite = await o.accounts.createInvite(auth.session(request)!.username, INVITE_TTL_MS).catch((error: unknown) => {
      throw new ActionError(`Cannot invite: ${(error as Error).message}`, 409);
    });
    return { link: o.inviteLink(request, invite.token), expiresAt: invite.expiresAt };
  }));
}
