/**
 * Sends the outbox to cloud-sync, `POST <cloudUrl>/v1/uploads`, one envelope at a time in
 * seq order: the cloud stores item n only after n−1 (protocol/upload.ts), so sending the
 * next before the first is acknowledged would only earn `out_of_order`.
 *
 *   accepted | duplicate                  → acknowledged: deleted from the outbox, next item
 *   out_of_order, expects a later seq     → the cloud has our first items already: acknowledged
 *   out_of_order, expects an acked seq    → the cloud lost items it acknowledged: stopped, alert
 *   network error, timeout, 408/429/5xx   → retried with capped exponential backoff, full jitter
 *   any other refusal or HTTP status      → stopped (an operator must act), retried slowly
 *
 * Nothing is ever dropped without the cloud's acknowledgement. Transport is node:http(s)
 * rather than fetch: Node 20's fetch takes TLS client certificates only through an undici
 * Agent, and the undici package is not installed; an https.Agent does mutual TLS as is.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import type { UploadAnswer, UploadEnvelope, UploadRefusal } from '../../protocol/upload.ts';
import type { Outbox } from './outbox.ts';

/** PEM texts for mutual TLS: the CA that signed cloud-sync's certificate, this gateway's certificate and key. */
export interface UplinkTls {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface UplinkSenderOptions {
  outbox: Outbox;
  /** cloud-sync's base URL; uploads go to `<cloudUrl>/v1/uploads`. */
  cloudUrl: string;
  logger: Logger;
  /** No byte sent or received for this long: the request failed. Default 30 s. */
  idleTimeoutMs?: number;
  /** The whole exchange, however slowly it moves (a 16 MiB part over a slow link). Default 10 min. */
  requestTimeoutMs?: number;
  /** First backoff ceiling after a transient failure; doubles per failure. Default 1 s. */
  retryBaseMs?: number;
  /** Highest backoff ceiling. Default 5 min. */
  retryCapMs?: number;
  /** Wait after a refusal that needs an operator (bad signature, unknown gateway, …). Default 15 min. */
  operatorRetryMs?: number;
  tls?: UplinkTls;
  clock?: () => Date;
  /** In [0, 1): the jitter. Tests pass a fixed one. */
  random?: () => number;
  /** Waits `ms` or until `signal` aborts (then resolves). Tests pass one that records the delays. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** For the operator page. `acked`: highest seq the cloud acknowledged; `waiting`: items not yet acknowledged. */
export interface UplinkState {
  state: 'ok' | 'retrying' | 'stopped';
  lastError?: string;
  lastOkAt?: string;
  nextAttemptAt?: string;
  acked: number;
  waiting: number;
  /** The cloud's alerts with its latest acknowledgement. */
  cloudAlerts?: string[];
}

const LIMITS = {
  idleTimeoutMs: [100, 600_000, 30_000],
  requestTimeoutMs: [100, 3_600_000, 600_000],
  retryBaseMs: [1, 60_000, 1_000],
  retryCapMs: [1, 3_600_000, 300_000],
  operatorRetryMs: [1, 86_400_000, 900_000],
} as const;
/** An answer is a few hundred bytes; more is not cloud-sync. */
const ANSWER_BYTES_MAX = 64 * 1024;
const CLOUD_ALERTS_MAX = 20;
const TEXT_MAX = 500;
/** Retriable HTTP statuses without an UploadAnswer: timeouts, rate limits, server trouble. */
const TRANSIENT_HTTP = (status: number): boolean => status === 408 || status === 429 || status >= 500;

/** What to do after one attempt. */
type Outcome =
  | { next: 'now' }
  | { next: 'backoff'; error: string }
  | { next: 'operator'; error: string };

export class UplinkSender {
  readonly #outbox: Outbox;
  readonly #url: URL;
  readonly #log: Logger;
  readonly #agent: http.Agent;
  readonly #limits: Record<keyof typeof LIMITS, number>;
  readonly #clock: () => Date;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  #state: UplinkState['state'] = 'ok';
  #lastError: string | undefined;
  #lastOkAt: string | undefined;
  #nextAttemptAt: string | undefined;
  #cloudAlerts: string[] = [];
  /** Transient failures in a row: the backoff exponent. */
  #failures = 0;
  #loop: Promise<void> | undefined;
  #running = false;
  #kicked = false;
  #wake: (() => void) | undefined;
  #waitAbort: AbortController | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(options: UplinkSenderOptions) {
    this.#outbox = options.outbox;
    this.#url = uploadsUrl(options.cloudUrl);
    this.#log = options.logger;
    const limit = (name: keyof typeof LIMITS): number => {
      const [min, max, fallback] = LIMITS[name];
      const value = options[name] ?? fallback;
      if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name}: expected an integer from ${min} to ${max}, got ${value}`);
      return value;
    };
    this.#limits = { idleTimeoutMs: limit('idleTimeoutMs'), requestTimeoutMs: limit('requestTimeoutMs'), retryBaseMs: limit('retryBaseMs'), retryCapMs: limit('retryCapMs'), operatorRetryMs: limit('operatorRetryMs') };
    if (this.#limits.retryCapMs < this.#limits.retryBaseMs) throw new RangeError(`retryCapMs: expected at least retryBaseMs (${this.#limits.retryBaseMs}), got ${this.#limits.retryCapMs}`);
    const tls = options.tls ?? {};
    if (this.#url.protocol === 'http:' && Object.keys(tls).length > 0) throw new RangeError(`tls: cloudUrl ${options.cloudUrl} is not https`);
    if ((tls.cert === undefined) !== (tls.key === undefined)) throw new RangeError('tls: a client certificate needs its key, and a key its certificate');
    // One socket kept open: items go one at a time anyway.
    this.#agent = this.#url.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 1, ...tls }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.#clock = options.clock ?? (() => new Date());
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? sleepUnlessAborted;
    this.#lastOkAt = options.outbox.lastAckAt;
  }

  state(): UplinkState {
    return {
      state: this.#state, acked: this.#outbox.ackedSeq, waiting: this.#outbox.waiting,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }), ...(this.#lastOkAt === undefined ? {} : { lastOkAt: this.#lastOkAt }),
      ...(this.#nextAttemptAt === undefined ? {} : { nextAttemptAt: this.#nextAttemptAt }), ...(this.#cloudAlerts.length === 0 ? {} : { cloudAlerts: [...this.#cloudAlerts] }),
    };
  }

  /** Starts sending, and sends again whenever the outbox gets an item. */
  start(): void {
    if (this.#loop) return;
    this.#running = true;
    this.#unsubscribe = this.#outbox.onEnqueue(() => this.kick());
    this.#loop = this.#run();
  }

  /** Stops after the request in flight (bounded by idleTimeoutMs and requestTimeoutMs) and closes the connection. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#unsubscribe?.();
    this.#waitAbort?.abort();
    this.#wake?.();
    await this.#loop;
    this.#loop = undefined;
    this.#agent.destroy();
  }

  /** Sends now if idle (e.g. after an enqueue). Does not cut a backoff short: that is retryNow's job. */
  kick(): void {
    this.#kicked = true;
    this.#wake?.();
  }

  /** Ends the current wait, backoff or operator pause (the operator fixed something). */
  retryNow(): void {
    this.#failures = 0;
    this.#waitAbort?.abort();
    this.kick();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      this.#kicked = false;
      let outcome: Outcome;
      try {
        const envelope = await this.#outbox.first();
        if (envelope === undefined) {
          await this.#idle();
          continue;
        }
        outcome = await this.#send(envelope);
      } catch (error) {
        // The ledger failed to read or to write the ack: the item is still there, try again later.
        outcome = { next: 'backoff', error: `the outbox could not be read or updated: ${(error as Error).message}` };
      }
      if (outcome.next === 'now') continue;
      await this.#wait(outcome);
    }
  }

  async #send(envelope: UploadEnvelope): Promise<Outcome> {
    let reply: { status: number; text: string };
    try {
      reply = await postJson(this.#url, JSON.stringify(envelope), { agent: this.#agent, idleTimeoutMs: this.#limits.idleTimeoutMs, requestTimeoutMs: this.#limits.requestTimeoutMs });
    } catch (error) {
      return { next: 'backoff', error: `cloud-sync unreachable (item ${envelope.seq}): ${clip((error as Error).message)}` };
    }
    const answer = parseAnswer(reply.text);
    if (answer === undefined) {
      const why = `cloud-sync answered item ${envelope.seq} with HTTP ${reply.status} and no upload answer: ${clip(reply.text)}`;
      return TRANSIENT_HTTP(reply.status) ? { next: 'backoff', error: why } : { next: 'operator', error: why };
    }
    if (answer.status !== 'refused') {
      if (answer.seq !== envelope.seq) return { next: 'operator', error: `cloud-sync acknowledged item ${answer.seq} when sent item ${envelope.seq}` };
      await this.#outbox.ackThrough(envelope.seq);
      this.#succeeded(answer.alerts);
      return { next: 'now' };
    }
    if (answer.reason === 'out_of_order') return this.#outOfOrder(envelope.seq, answer.expectedSeq, answer.detail);
    return { next: 'operator', error: `cloud-sync refused item ${envelope.seq} (${envelope.kind}): ${answer.reason}: ${clip(answer.detail)}` };
  }

  /** `seq` is the first waiting item; the cloud says which it expects instead. */
  async #outOfOrder(seq: number, expectedSeq: number | undefined, detail: string): Promise<Outcome> {
    if (expectedSeq === undefined || expectedSeq === seq) return { next: 'backoff', error: `cloud-sync refused item ${seq} as out of order (expecting ${expectedSeq ?? 'no seq'}): ${clip(detail)}` };
    if (expectedSeq < seq) {
      return { next: 'operator', error: `cloud-sync expects item ${expectedSeq}, but it acknowledged every item up to ${seq - 1} before and this gateway no longer holds them: cloud-sync lost items ${expectedSeq}–${seq - 1}` };
    }
    // Claims to hold items this gateway never made: what it holds is not ours, so nothing is acknowledged.
    const lastMade = this.#outbox.nextSeq - 1;
    if (expectedSeq - 1 > lastMade) {
      return { next: 'operator', error: `cloud-sync expects item ${expectedSeq}, but this gateway made items only up to ${lastMade}: another gateway uses this id, or this ledger was restored from an older copy` };
    }
    // The cloud holds our first items and no longer keeps them to compare (otherwise it
    // answers duplicate or conflict): they are done.
    await this.#outbox.ackThrough(expectedSeq - 1);
    this.#succeeded(undefined);
    this.#log.info({ through: expectedSeq - 1 }, 'cloud-sync already held the first waiting items: acknowledged');
    return { next: 'now' };
  }

  #succeeded(alerts: string[] | undefined): void {
    this.#failures = 0;
    this.#state = 'ok';
    this.#lastError = undefined;
    this.#nextAttemptAt = undefined;
    this.#lastOkAt = this.#clock().toISOString();
    if (alerts !== undefined) this.#cloudAlerts = alerts.slice(0, CLOUD_ALERTS_MAX).map(clip);
  }

  /** Full jitter (a random wait up to the ceiling) keeps many gateways from retrying in step after an outage. */
  async #wait(outcome: Exclude<Outcome, { next: 'now' }>): Promise<void> {
    let delayMs: number;
    if (outcome.next === 'backoff') {
      const ceilingMs = Math.min(this.#limits.retryCapMs, this.#limits.retryBaseMs * 2 ** Math.min(this.#failures, 40));
      delayMs = Math.floor(this.#random() * ceilingMs);
      this.#failures += 1;
      this.#state = 'retrying';
    } else {
      delayMs = this.#limits.operatorRetryMs;
      this.#state = 'stopped';
    }
    this.#lastError = outcome.error;
    this.#nextAttemptAt = new Date(this.#clock().getTime() + delayMs).toISOString();
    this.#log.warn({ err: outcome.error, state: this.#state, failures: this.#failures, delayMs }, 'upload to cloud-sync failed; trying again later');
    const abort = new AbortController();
    this.#waitAbort = abort;
    if (this.#running) await this.#sleep(delayMs, abort.signal);
    this.#waitAbort = undefined;
    this.#nextAttemptAt = undefined;
  }

  async #idle(): Promise<void> {
    if (this.#kicked || !this.#running) return;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
    this.#wake = undefined;
  }
}

function uploadsUrl(cloudUrl: string): URL {
  let base: URL;
  try {
    base = new URL(cloudUrl.endsWith('/') ? cloudUrl : `${cloudUrl}/`);
  } catch {
    throw new RangeError(`cloudUrl: not a URL: ${cloudUrl}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new RangeError(`cloudUrl: expected http or https, got ${base.protocol}`);
  return new URL('v1/uploads', base);
}

function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

interface PostOptions {
  agent: http.Agent;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
}

/** One POST; rejects on network errors, on either timeout, and on an answer over ANSWER_BYTES_MAX. */
function postJson(url: URL, body: string, { agent, idleTimeoutMs, requestTimeoutMs }: PostOptions): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, value?: { status: number; text: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(value!);
    };
    const send = url.protocol === 'https:' ? https.request : http.request;
    const request = send(url, { method: 'POST', agent, timeout: idleTimeoutMs, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (response) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > ANSWER_BYTES_MAX) request.destroy(new Error(`answer larger than ${ANSWER_BYTES_MAX} bytes`));
        else chunks.push(chunk);
      });
      response.on('end', () => finish(undefined, { status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', (error) => finish(error));
    });
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${requestTimeoutMs} ms`)), requestTimeoutMs);
    request.on('timeout', () => request.destroy(new Error(`nothing moved for ${idleTimeoutMs} ms`)));
    request.on('error', (error) => finish(error));
    request.on('close', () => finish(new Error('connection closed before the answer ended')));
    request.end(body);
  });
}

const REFUSALS: ReadonlySet<UploadRefusal> = new Set(['unknown_gateway', 'bad_signature', 'malformed', 'out_of_order', 'conflict', 'bad_batch', 'too_large']);

/** An UploadAnswer from a reply body, or undefined when it is none (a proxy's error page, garbage). */
export function parseAnswer(text: string): UploadAnswer | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const answer = value as Record<string, unknown>;
  const isSeq = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 1;
  if (answer.status === 'accepted' || answer.status === 'duplicate') {
    if (!isSeq(answer.seq)) return undefined;
    const alerts = Array.isArray(answer.alerts) ? answer.alerts.filter((a): a is string => typeof a === 'string') : undefined;
    return { status: answer.status, seq: answer.seq, ...(alerts === undefined ? {} : { alerts }) };
  }
  if (answer.status !== 'refused' || !REFUSALS.has(answer.reason as UploadRefusal)) return undefined;
  const detail = typeof answer.detail === 'string' ? answer.detail : '';
  return { status: 'refused', reason: answer.reason as UploadRefusal, detail, ...(isSeq(answer.expectedSeq) ? { expectedSeq: answer.expectedSeq } : {}) };
}

const clip = (text: string): string => (text.length > TEXT_MAX ? `${text.slice(0, TEXT_MAX)}…` : text);
