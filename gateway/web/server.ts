/**
 * The gateway's local web server: /healthz and /metrics for machines, the operator page
 * and its API for people (docs/operator-page.md), the payer statements and the offline
 * verifier. Binds to http.host only (127.0.0.1 by default). Everything the page loads
 * comes from here: gateways are often offline, so no CDN.
 */
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { apiRoutes } from './api-routes.ts';
import type { AuditLog } from './audit-log.ts';
import { OperatorAuth } from './auth-routes.ts';
import { bankEvents, type BankEventsOptions } from './bank-events.ts';
import { LiveState } from './live-state.ts';
import type { OperatorActions } from './operator-actions.ts';
import { LoginLockout, SessionStore, type OperatorAccounts } from './operators.ts';
import type { Snapshot } from './snapshot.ts';
import { statementCsv, statementHtml, StatementTooLargeError, STATEMENT_MONTH, type Statement } from '../settlement/statement.ts';

/** The payer statement and its proof bundle (docs/receipts.md), built on request. */
export interface StatementService {
  statement(payer: string, month: string): Promise<Statement | undefined>;
  proofBundle(payer: string, month: string): Promise<unknown | undefined>;
}

/** The offline verifier page, built by `npm run build:verifier` and shipped in the repository. */
const VERIFIER_PAGE = path.join(import.meta.dirname, 'static', 'verifier.html');
const UPLOT_DIST = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));

const UI_DIR = path.join(import.meta.dirname, 'ui');
/** The page's modules and styles in ui/: plain names only, so a request can never leave the folder. */
const UI_FILE = /^[a-z][a-z0-9-]{0,40}\.(js|css)$/;
const UI_TYPES: Readonly<Record<string, string>> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/** Files from elsewhere the page loads, and the form pages' style: name → where it is and what it is. */
const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/ui/uplot.js': { file: path.join(UPLOT_DIST, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/uplot.css': { file: path.join(UPLOT_DIST, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
  '/pages/forms.css': { file: path.join(import.meta.dirname, 'pages', 'forms.css'), type: 'text/css; charset=utf-8' },
};
const INDEX_PAGE = path.join(UI_DIR, 'index.html');

export interface WebServerOptions {
  host: string;
  port: number;
  sessionTtlMs: number;
  logger: Logger;
  metrics: Registry;
  snapshot: () => Promise<Snapshot>;
  health: () => { ok: boolean; detail: Record<string, unknown> };
  accounts: OperatorAccounts;
  audit: AuditLog;
  actions: OperatorActions;
  /** With it, /healthz and /metrics need `Authorization: Bearer <token>`. */
  metricsToken?: string;
  statements?: StatementService;
  /** The bank's signed event notifications, POST /bank/events (bank-events.ts). */
  bankEvents?: Omit<BankEventsOptions, 'metrics'>;
}

export interface WebServer {
  app: FastifyInstance;
  url: string;
  live: LiveState;
  sessions: SessionStore;
}

/** The statement page and the verifier are self-contained files with inline style (and the verifier an inline script). */
const STATEMENT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const VERIFIER_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export async function startWebServer(options: WebServerOptions): Promise<WebServer> {
  // Per-request logs are noise on a gateway; keep fastify at warn unless the logger is quieter.
  const level = options.logger.levelVal > 40 ? options.logger.level : 'warn';
  // Request lines lose their query: setup and invitation links carry one-time tokens there.
  const serializers = { req: (request: { method?: string; url?: string }) => ({ method: request.method, url: request.url?.split('?')[0] }) };
  const app: FastifyInstance = Fastify({ loggerInstance: options.logger.child({}, { level, serializers }) as FastifyBaseLogger, bodyLimit: 16 * 1024 });
  await app.register(cookie);
  await app.register(formbody);
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'], connectSrc: ["'self'"],
        fontSrc: ["'self'"], objectSrc: ["'none'"], baseUri: ["'none'"], formAction: ["'self'"], frameAncestors: ["'none'"],
      },
    },
    // Plain HTTP on a plant network: an HSTS or upgrade-insecure-requests header would lock operators out.
    strictTransportSecurity: false,
    referrerPolicy: { policy: 'no-referrer' },
  });
  app.addHook('onSend', async (request, reply) => {
    if (!request.url.startsWith('/ui/') && !request.url.startsWith('/pages/')) reply.header('cache-control', 'no-store');
  });

  const sessions = new SessionStore(options.sessionTtlMs);
  const auth = new OperatorAuth({ accounts: options.accounts, sessions, lockout: new LoginLockout(), sessionTtlMs: options.sessionTtlMs, audit: options.audit, logger: options.logger });
  const live = new LiveState(options.snapshot, options.logger);
  app.addHook('onClose', async () => live.close());

  const machineRoute = metricsGuard(options.metricsToken);
  app.get('/healthz', { preHandler: machineRoute, schema: { response: { 200: { type: 'object', additionalProperties: true }, 503: { type: 'object', additionalProperties: true } } } }, async (_request, reply) => {
    const health = options.health();
    return reply.code(health.ok ? 200 : 503).send({ status: health.ok ? 'ok' : 'degraded', ...health.detail });
  });
  app.get('/metrics', { preHandler: machineRoute }, async (_request, reply) => reply.type(options.metrics.contentType).send(await options.metrics.metrics()));

  auth.routes(app);
  app.get('/', { preHandler: auth.requireOperator }, async (_request, reply) => reply.type('text/html; charset=utf-8').send(await readFile(INDEX_PAGE, 'utf8')));
  for (const [url, asset] of Object.entries(ASSETS)) {
    app.get(url, async (_request, reply) => reply.type(asset.type).header('cache-control', 'no-cache').send(await readFile(asset.file)));
  }
  app.get<{ Params: { file: string } }>('/ui/:file', async (request, reply) => {
    const { file } = request.params;
    const match = UI_FILE.exec(file);
    const body = match ? await readFile(path.join(UI_DIR, file)).catch(() => undefined) : undefined;
    if (!match || !body) return reply.code(404).send({ error: `no file ${file}` });
    return reply.type(UI_TYPES[match[1]!]!).header('cache-control', 'no-cache').send(body);
  });
  apiRoutes(app, {
    auth, accounts: options.accounts, actions: options.actions, audit: options.audit, snapshot: options.snapshot, live,
    inviteLink: (request, token) => `${request.protocol}://${request.host}/invite?token=${token}`,
  });

  // The verifier holds no secrets and runs in the payer's browser: no login.
  app.get('/verify', async (_request, reply) => {
    const page = await readFile(VERIFIER_PAGE, 'utf8').catch(() => undefined);
    if (!page) return reply.code(404).type('text/plain').send('verifier page not built: run npm run build:verifier');
    return reply.type('text/html').header('content-security-policy', VERIFIER_CSP).send(page);
  });

  if (options.bankEvents) await app.register(bankEvents, { ...options.bankEvents, metrics: options.metrics });
  if (options.statements) statementRoutes(app, options.statements, auth);

  const address = await app.listen({ host: options.host, port: options.port });
  return { app, url: address, live, sessions };
}

function statementRoutes(app: FastifyInstance, statements: StatementService, auth: OperatorAuth): void {
  const params = { type: 'object', required: ['payer', 'month', 'file'], properties: { payer: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' }, month: { type: 'string', pattern: STATEMENT_MONTH.source }, file: { type: 'string', enum: ['statement.json', 'statement.csv', 'statement.html', 'bundle.json'] } } } as const;
  app.get<{ Params: { payer: string; month: string; file: string } }>('/statements/:payer/:month/:file', { preHandler: auth.requireOperator, schema: { params } }, async (request, reply) => {
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
      if (file === 'statement.html') return reply.type('text/html').header('content-security-policy', STATEMENT_CSP).send(statementHtml(statement, { proofBundleHref: `/statements/${payer}/${month}/bundle.json`, verifierHref: '/verify' }));
      return reply.type('application/json').send(statement);
    } catch (error) {
      if (error instanceof StatementTooLargeError) return reply.code(413).send({ error: error.message });
      throw error;
    }
  });
}

/** /healthz and /metrics: open, or locked to a bearer token (compared in constant time). */
function metricsGuard(token: string | undefined): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (request, reply) => {
    if (token === undefined) return;
    const given = Buffer.from(/^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? '');
    const expected = Buffer.from(token);
    const ok = given.length === expected.length && timingSafeEqual(given, expected);
    if (!ok) await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'this endpoint needs Authorization: Bearer <the token in http.metricsTokenFile>' });
  };
}
