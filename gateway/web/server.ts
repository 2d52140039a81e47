/**
 * The gateway's local web server: /healthz and /metrics for machines, and the operator
 * page behind a login for people. Binds to 127.0.0.1 by default.
 */
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { renderDashboard, renderLogin } from './dashboard-page.ts';
import { checkOperatorLogin, LoginThrottle, SessionStore } from './operator-login.ts';
import type { Snapshot } from './snapshot.ts';

export interface WebServerOptions {
  host: string;
  port: number;
  dataDir: string;
  sessionTtlMs: number;
  logger: Logger;
  metrics: Registry;
  snapshot: () => Promise<Snapshot>;
  health: () => { ok: boolean; detail: Record<string, unknown> };
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

  const address = await app.listen({ host: options.host, port: options.port });
  return { app, url: address };
}
