/**
 * The gateway's local web server: /healthz and /metrics for machines, and the operator
 * page behind a login for people. Binds to 127.0.0.1 by default.
 */
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { bankEvents, type BankEventsOptions } from './bank-events.ts';
import { renderDashboard, renderLogin } from './dashboard-page.ts';
import { checkOperatorLogin, LoginThrottle, SessionStore } from './operator-login.ts';
import type { Snapshot } from './snapshot.ts';
import { statementCsv, statementHtml, StatementTooLargeError, STATEMENT_MONTH, type Statement } from '../settlement/statement.ts';

/** The payer statement and its proof bundle (docs/receipts.md), built on request. */
export interface StatementService {
  statement(payer: string, month: string): Promise<Statement | undefined>;
  proofBundle(payer: string, month: string): Promise<unknown | undefined>;
}

/** The offline verifier page, built by `npm run build:verifier` and shipped in the repository. */
const VERIFIER_PAGE = path.join(import.meta.dirname, 'static', 'verifier.html');

export interface WebServerOptions {
  host: string;
  port: number;
  dataDir: string;
  sessionTtlMs: number;
  logger: Logger;
  metrics: Registry;
  snapshot: () => Promise<Snapshot>;
  health: () => { ok: boolean; detail: Record<string, unknown> };
  statements?: StatementService;
  /** The bank's signed event notifications, POST /bank/events (bank-events.ts). */
  bankEvents?: Omit<BankEventsOptions, 'metrics'>;
}

const SESSION_COOKIE = 'mb_session';
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export async function startWebServer(options: WebServerOptions): Promise<{ app: FastifyInstance; url: string }> {
  // Per-request logs are noise on a gateway; keep fastify at warn unless the logger is quieter.
  const level = options.logger.levelVal > 40 ? options.logger.level : 'warn';
  const app: FastifyInstance = Fastify({ loggerInstance: options.logger.child({}, { level }) as FastifyBaseLogger, bodyLimit: 16 * 1024 });
  await app.register(cookie);
  await app.register(formbody);
  const sessions = new SessionStore(options.sessionTtlMs);
  const throttle = new LoginThrottle();
  app.addHook('onSend', async (_request, reply) => {
    reply.headers(SECURITY_HEADERS);
  });

  const loggedIn = (request: FastifyRequest): boolean => sessions.valid(request.cookies[SESSION_COOKIE], Date.now());
  const requireLogin = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (loggedIn(request)) return;
    if (request.url.startsWith('/api/')) await reply.code(401).send({ error: 'login required' });
    else await reply.redirect('/login', 303);
  };

  app.get('/healthz', { schema: { response: { 200: { type: 'object', additionalProperties: true }, 503: { type: 'object', additionalProperties: true } } } }, async (_request, reply) => {
    const health = options.health();
    return reply.code(health.ok ? 200 : 503).send({ status: health.ok ? 'ok' : 'degraded', ...health.detail });
  });

  app.get('/metrics', async (_request, reply) => {
    return reply.type(options.metrics.contentType).send(await options.metrics.metrics());
  });

  app.get('/login', async (_request, reply) => reply.type('text/html').send(renderLogin()));

  app.post<{ Body: { username: string; password: string } }>('/login', {
    schema: { body: { type: 'object', required: ['username', 'password'], properties: { username: { type: 'string', maxLength: 64 }, password: { type: 'string', maxLength: 256 } } } },
  }, async (request, reply) => {
    const nowMs = Date.now();
    if (throttle.blocked(request.ip, nowMs)) return reply.code(429).type('text/html').send(renderLogin('Too many failed logins; wait five minutes.'));
    if (!(await checkOperatorLogin(options.dataDir, request.body.username, request.body.password))) {
      throttle.fail(request.ip, nowMs);
      options.logger.warn({ ip: request.ip }, 'operator login failed');
      return reply.code(401).type('text/html').send(renderLogin('Wrong user or password.'));
    }
    const token = sessions.create(nowMs);
    reply.setCookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/', maxAge: Math.floor(options.sessionTtlMs / 1000) });
    return reply.redirect('/', 303);
  });

  app.post('/logout', async (request, reply) => {
    sessions.delete(request.cookies[SESSION_COOKIE]);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.redirect('/login', 303);
  });

  app.get('/', { preHandler: requireLogin }, async (_request, reply) => reply.type('text/html').send(renderDashboard(await options.snapshot())));
  app.get('/api/state', { preHandler: requireLogin }, async () => options.snapshot());

  // The verifier holds no secrets and runs in the payer's browser: no login, and its own
  // CSP (it runs an inline script, and reads the bundle the payer drops on it).
  app.get('/verify', async (_request, reply) => {
    const page = await readFile(VERIFIER_PAGE, 'utf8').catch(() => undefined);
    if (!page) return reply.code(404).type('text/plain').send('verifier page not built: run npm run build:verifier');
    return reply.type('text/html').header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'").send(page);
  });

  if (options.bankEvents) await app.register(bankEvents, { ...options.bankEvents, metrics: options.metrics });

  const statements = options.statements;
  if (statements) {
    const params = { type: 'object', required: ['payer', 'month', 'file'], properties: { payer: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' }, month: { type: 'string', pattern: STATEMENT_MONTH.source }, file: { type: 'string', enum: ['statement.json', 'statement.csv', 'statement.html', 'bundle.json'] } } } as const;
    app.get<{ Params: { payer: string; month: string; file: string } }>('/statements/:payer/:month/:file', { preHandler: requireLogin, schema: { params } }, async (request, reply) => {
      const { payer, month, file } = request.params;
      try {
        const name = `statement-${payer}-${month}`;
        if (file === 'bundle.json') {
          const bundle = await statements.proofBundle(payer, month);
          if (!bundle) return reply.code(404).send({ error: `no payer ${payer}` });
          return reply.type('application/json').header('content-disposition', `attachment; filename="${name}.bundle.json"`).send(JSON.stringify(bundle));
        }
        const statement = await statements.statement(payer, month);
        if (!statement) return reply.code(404).send({ error: `no payer ${payer}` });
        if (file === 'statement.csv') return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}.csv"`).send(statementCsv(statement));
        if (file === 'statement.html') return reply.type('text/html').send(statementHtml(statement, { proofBundleHref: `/statements/${payer}/${month}/bundle.json`, verifierHref: '/verify' }));
        return reply.type('application/json').send(statement);
      } catch (error) {
        if (error instanceof StatementTooLargeError) return reply.code(413).send({ error: error.message });
        throw error;
      }
    });
  }

  const address = await app.listen({ host: options.host, port: options.port });
  return { app, url: address };
}
