/**
 * Who may use the operator page (docs/operator-page.md): first-run setup link, invitations,
 * login with growing lockouts, sessions made new at every login, and CSRF tokens.
 *
 * Two kinds of CSRF token: before a session, each form (login, setup, invitation) carries a
 * random token that must match a cookie set with the form (double submit, SameSite=Strict);
 * with a session, every state-changing request must carry the session's own token in
 * `x-csrf-token` (or a `_csrf` form field).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AuditLog } from './audit-log.ts';
import { renderAccountForm, renderLinkProblem, renderLogin } from './login-pages.ts';
import { csrfTokenMatches, type LoginLockout, type OperatorAccounts, type SessionStore } from './operators.ts';

export const SESSION_COOKIE = 'mb_session';
const FORM_COOKIE = 'mb_form';
const FORM_TOKEN_TTL_S = 3_600;
/** Invitations made on the page work this long. */
export const INVITE_TTL_MS = 24 * 3_600_000;

export interface OperatorSession {
  token: string;
  username: string;
  csrfToken: string;
}

export interface OperatorAuthOptions {
  accounts: OperatorAccounts;
  sessions: SessionStore;
  lockout: LoginLockout;
  sessionTtlMs: number;
  audit: AuditLog;
  logger: Logger;
}

type FormBody = Record<string, unknown>;
const text = (body: FormBody, field: string): string => (typeof body[field] === 'string' ? body[field] : '');

export class OperatorAuth {
  readonly #o: OperatorAuthOptions;

  constructor(options: OperatorAuthOptions) {
    this.#o = options;
  }

  /** The request's valid session, if any. */
  session(request: FastifyRequest): OperatorSession | undefined {
    const token = request.cookies[SESSION_COOKIE];
    const session = this.#o.sessions.get(token, Date.now());
    return session && token ? { token, ...session } : undefined;
  }

  /** preHandler: a session, or 401 (API) / a redirect to the login page. */
  readonly requireOperator = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (this.session(request)) return;
    if (request.url.startsWith('/api/')) await reply.code(401).send({ error: 'login required' });
    else await reply.redirect('/login', 303);
  };

  /** preHandler for every state change: the session and its CSRF token, or 401/403 and nothing happens. */
  readonly requireCsrf = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const session = this.session(request);
    if (!session) {
      await reply.code(401).send({ error: 'login required' });
      return;
    }
    const given = request.headers['x-csrf-token'] ?? (request.body as FormBody | undefined)?._csrf;
    if (!csrfTokenMatches(session.csrfToken, given)) await reply.code(403).send({ error: 'missing or wrong CSRF token: reload the page' });
  };

  routes(app: FastifyInstance): void {
    const formSchema = (fields: string[]) => ({
      body: { type: 'object', required: fields, properties: Object.fromEntries(fields.map((f) => [f, { type: 'string', maxLength: f === 'password' ? 256 : 128 }])) },
    });

    app.get('/login', async (request, reply) => {
      if (this.#o.accounts.needsSetup) return reply.type('text/html').send(renderLinkProblem('No operator is set up yet: open the setup link the gateway printed when it started.'));
      return reply.type('text/html').send(renderLogin(this.#formToken(reply)));
    });

    app.post<{ Body: FormBody }>('/login', { schema: formSchema(['username', 'password', '_csrf']) }, async (request, reply) => {
      const username = text(request.body, 'username').trim().toLowerCase();
      if (!this.#formTokenOk(request)) return reply.code(403).type('text/html').send(renderLogin(this.#formToken(reply), { message: 'The form expired: please try again.', username }));
      const lockKeys = [`ip:${request.ip}`, `user:${username}`];
      const lockedMs = this.#o.lockout.lockedForMs(lockKeys, Date.now());
      if (lockedMs > 0) {
        return reply.code(429).header('retry-after', Math.ceil(lockedMs / 1000)).type('text/html')
          .send(renderLogin(this.#formToken(reply), { message: `Too many failed logins: try again in ${waitText(lockedMs)}.`, username }));
      }
      if (!(await this.#o.accounts.verify(username, text(request.body, 'password')))) {
        this.#o.lockout.fail(lockKeys, Date.now());
        this.#o.logger.warn({ ip: request.ip, username }, 'operator login failed');
        return reply.code(401).type('text/html').send(renderLogin(this.#formToken(reply), { message: 'Wrong user or password.', username }));
      }
      this.#o.lockout.succeed(lockKeys);
      await this.#o.audit.append({ by: username, action: 'login', outcome: 'ok', detail: `from ${request.ip}` });
      return this.#startSession(request, reply, username);
    });

    for (const kind of ['setup', 'invite'] as const) {
      app.get<{ Querystring: { token?: string } }>(`/${kind}`, async (request, reply) => {
        const token = typeof request.query.token === 'string' ? request.query.token : '';
        if (kind === 'setup' && !this.#o.accounts.needsSetup) return reply.code(410).type('text/html').send(renderLinkProblem('The first operator is already set up: log in, or ask an operator for an invitation.'));
        if (token === '') return reply.code(400).type('text/html').send(renderLinkProblem('The link has no token: copy the whole link.'));
        return reply.type('text/html').send(renderAccountForm(kind, this.#formToken(reply), token));
      });

      app.post<{ Body: FormBody }>(`/${kind}`, { schema: formSchema(['token', 'username', 'password', '_csrf']) }, async (request, reply) => {
        const username = text(request.body, 'username').trim();
        const token = text(request.body, 'token');
        if (!this.#formTokenOk(request)) return reply.code(403).type('text/html').send(renderAccountForm(kind, this.#formToken(reply), token, { message: 'The form expired: please try again.', username }));
        const result = kind === 'setup'
          ? await this.#o.accounts.completeSetup(token, username, text(request.body, 'password'))
          : await this.#o.accounts.acceptInvite(token, username, text(request.body, 'password'));
        if (!result.ok) {
          if (result.field === 'token') return reply.code(410).type('text/html').send(renderLinkProblem(result.reason));
          return reply.code(400).type('text/html').send(renderAccountForm(kind, this.#formToken(reply), token, { message: `${result.field}: ${result.reason}`, username }));
        }
        await this.#o.audit.append({ by: result.username, action: kind === 'setup' ? 'first operator set up' : 'invitation accepted', target: result.username, outcome: 'ok' });
        return this.#startSession(request, reply, result.username);
      });
    }

    app.post('/logout', { preHandler: this.requireCsrf }, async (request, reply) => {
      const session = this.session(request);
      this.#o.sessions.delete(session?.token);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      if (session) await this.#o.audit.append({ by: session.username, action: 'logout', outcome: 'ok' });
      if (request.headers.accept?.includes('application/json')) return reply.send({ ok: true });
      return reply.redirect('/login', 303);
    });
  }

  /** A new session at every login: a token planted before is worthless, and the old one ends. */
  async #startSession(request: FastifyRequest, reply: FastifyReply, username: string): Promise<FastifyReply> {
    this.#o.sessions.delete(request.cookies[SESSION_COOKIE]);
    const { token } = this.#o.sessions.create(username, Date.now());
    reply.setCookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/', maxAge: Math.floor(this.#o.sessionTtlMs / 1000) });
    reply.clearCookie(FORM_COOKIE, { path: '/' });
    return reply.redirect('/', 303);
  }

  #formToken(reply: FastifyReply): string {
    const token = randomBytes(24).toString('base64url');
    reply.setCookie(FORM_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/', maxAge: FORM_TOKEN_TTL_S });
    return token;
  }

  #formTokenOk(request: FastifyRequest<{ Body: FormBody }>): boolean {
    return csrfTokenMatches(request.cookies[FORM_COOKIE], request.body._csrf);
  }
}

function waitText(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return s < 120 ? `${s} s` : `${Math.ceil(s / 60)} minutes`;
}
