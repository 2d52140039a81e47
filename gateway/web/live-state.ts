/**
 * Server-sent events for the operator page: one snapshot every STATE_INTERVAL_MS (and at
 * once after an action), computed once and sent to every open page. Bounded: at most
 * STREAMS_MAX pages at a time; a stream ends when its session does.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Snapshot } from './snapshot.ts';

const STATE_INTERVAL_MS = 2_000;
const STREAMS_MAX = 16;
/** A comment line now and then keeps proxies and phones from closing an idle stream. */
const KEEPALIVE = ': keepalive\n\n';

interface Stream {
  reply: FastifyReply;
  stillAllowed: () => boolean;
}

export class LiveState {
  readonly #snapshot: () => Promise<Snapshot>;
  readonly #logger: Logger;
  readonly #streams = new Set<Stream>();
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> | undefined;

  constructor(snapshot: () => Promise<Snapshot>, logger: Logger) {
    this.#snapshot = snapshot;
    this.#logger = logger;
  }

  get streams(): number {
    return this.#streams.size;
  }

  /** Takes over the reply as an event stream. */
  async stream(request: FastifyRequest, reply: FastifyReply, stillAllowed: () => boolean): Promise<void> {
    if (this.#streams.size >= STREAMS_MAX) {
      await reply.code(503).send({ error: `at most ${STREAMS_MAX} live pages at a time; close one or reload later` });
      return;
    }
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
    reply.raw.write('retry: 3000\n\n');
    const stream: Stream = { reply, stillAllowed };
    this.#streams.add(stream);
    request.raw.on('close', () => {
      this.#streams.delete(stream);
      if (this.#streams.size === 0) this.#stop();
    });
    this.#start();
    this.poke();
  }

  /** Sends a fresh snapshot now (after an action), without waiting for the next tick. */
  poke(): void {
    if (this.#streams.size === 0) return;
    this.#sending ??= this.#send().finally(() => {
      this.#sending = undefined;
    });
  }

  close(): void {
    this.#stop();
    for (const stream of this.#streams) stream.reply.raw.end();
    this.#streams.clear();
  }

  #start(): void {
    this.#timer ??= setInterval(() => this.poke(), STATE_INTERVAL_MS);
    this.#timer.unref();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #send(): Promise<void> {
    let text: string;
    try {
      text = `event: state\ndata: ${JSON.stringify(await this.#snapshot())}\n\n`;
    } catch (error) {
      this.#logger.warn({ err: (error as Error).message }, 'could not take a snapshot for the live page');
      text = KEEPALIVE;
    }
    for (const stream of this.#streams) {
      if (!stream.stillAllowed()) {
        // Logged out or expired: the page reconnects, gets 401 and goes to the login page.
        stream.reply.raw.end();
        this.#streams.delete(stream);
        continue;
      }
      // A page that does not read is dropped rather than buffered without bound.
      if (stream.reply.raw.writableLength > 4 * 1024 * 1024) {
        stream.reply.raw.destroy();
        this.#streams.delete(stream);
        continue;
      }
      stream.reply.raw.write(text);
    }
  }
}
