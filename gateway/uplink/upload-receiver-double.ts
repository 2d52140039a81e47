/**
 * A test double of cloud-sync's upload route for the uplink tests: real HTTP(S) on port 0,
 * applying the contract's seq rules (protocol/upload.ts) to one gateway's envelopes:
 *
 *   seq = last + 1                        → stored, `accepted`
 *   seq ≤ last, same digest               → `duplicate`; other digest → `conflict`
 *   seq ≤ last, no longer held (pruned)   → `out_of_order`, expectedSeq last + 1
 *   seq > last + 1                        → `out_of_order`, expectedSeq last + 1
 *   bad signature                         → `bad_signature`
 *
 * It can be told to fail: answer 500, hang, trickle, reset the connection (before or after storing),
 * refuse one seq with a reason, or stop listening. Not the real service (cloud-sync/).
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { verifyPayload } from '../../protocol/signing.ts';
import { unsignedOf, uploadDigest, type UploadAnswer, type UploadEnvelope, type UploadRefusal } from '../../protocol/upload.ts';

export type ReceiverFault =
  | { kind: 'status500' }
  | { kind: 'hang' }
  /** Answers a byte every 50 ms and never ends: only a timeout over the whole exchange stops it. */
  | { kind: 'trickle' }
  /** Drops the connection without an answer; `afterStoring`: the item is stored first (the ack is lost). */
  | { kind: 'reset'; afterStoring?: boolean };

export class UploadReceiverDouble {
  readonly #server: http.Server;
  readonly #publicKey: Uint8Array;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  /** Stored envelopes by seq; pruned ones are gone but still counted in lastSeq. */
  readonly stored = new Map<number, UploadEnvelope>();
  /** Every seq stored, in the order stored: a repeat or a gap here is a bug in the sender. */
  readonly storedOrder: number[] = [];
  lastSeq = 0;
  requests = 0;
  /** Answers given, by status or refusal reason. */
  readonly answered = new Map<string, number>();
  /** Applied to every request while set; `times` counts down to 0 and then clears it. */
  fault: (ReceiverFault & { times?: number }) | undefined;
  /** Refuses this seq with this reason (until cleared). */
  refuse: { seq: number; reason: UploadRefusal } | undefined;
  /** Called after an item is stored. */
  onStored: ((envelope: UploadEnvelope) => void) | undefined;

  private constructor(server: http.Server, publicKey: Uint8Array) {
    this.#server = server;
    this.#publicKey = publicKey;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** Listens on 127.0.0.1, port 0; with `tls`, HTTPS (requestCert etc. as given). */
  static async start(publicKey: Uint8Array, tls?: https.ServerOptions): Promise<UploadReceiverDouble> {
    const handler = (request: http.IncomingMessage, response: http.ServerResponse): void => receiver.#handle(request, response);
    const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
    const receiver = new UploadReceiverDouble(server, publicKey);
    await receiver.up();
    return receiver;
  }

  get url(): string {
    return `${this.#server instanceof https.Server ? 'https' : 'http'}://127.0.0.1:${this.#port}`;
  }

  /** Listens (again, on the same port once it had one). */
  up(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        this.#port = (this.#server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  /** Stops listening and drops every connection: the sender sees connections refused. */
  down(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    return closed;
  }

  /** Loses everything after `seq` (a cloud restored from an older backup). */
  loseAfter(seq: number): void {
    for (const stored of this.stored.keys()) if (stored > seq) this.stored.delete(stored);
    this.lastSeq = seq;
  }

  #handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    this.requests += 1;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const fault = this.fault;
      if (fault?.times !== undefined && --fault.times <= 0) this.fault = undefined;
      if (fault?.kind === 'hang') return;
      if (fault?.kind === 'trickle') {
        response.writeHead(200, { 'content-type': 'application/json' });
        const timer = setInterval(() => response.write(' '), 50);
        response.on('close', () => clearInterval(timer));
        return;
      }
      if (fault?.kind === 'status500') return void response.writeHead(500, { 'content-type': 'text/plain' }).end('internal error');
      let envelope: UploadEnvelope;
      try {
        envelope = JSON.parse(Buffer.concat(chunks).toString('utf8')) as UploadEnvelope;
      } catch {
        return this.#answer(response, { status: 'refused', reason: 'malformed', detail: 'not JSON' });
      }
      if (fault?.kind === 'reset' && !fault.afterStoring) return void request.socket.destroy();
      const answer = this.#apply(envelope);
      if (fault?.kind === 'reset') return void request.socket.destroy();
      this.#answer(response, answer);
    });
  }

  #apply(envelope: UploadEnvelope): UploadAnswer {
    if (!verifyPayload(unsignedOf(envelope), envelope.sig, this.#publicKey)) return { status: 'refused', reason: 'bad_signature', detail: `item ${envelope.seq}: signature does not verify` };
    if (this.refuse?.seq === envelope.seq) return { status: 'refused', reason: this.refuse.reason, detail: `item ${envelope.seq} refused by the test` };
    const seq = envelope.seq;
    if (seq <= this.lastSeq) {
      const held = this.stored.get(seq);
      if (held === undefined) return { status: 'refused', reason: 'out_of_order', detail: `item ${seq} is no longer held`, expectedSeq: this.lastSeq + 1 };
      return uploadDigest(held) === uploadDigest(envelope) ? { status: 'duplicate', seq } : { status: 'refused', reason: 'conflict', detail: `item ${seq} differs from the one stored` };
    }
    if (seq > this.lastSeq + 1) return { status: 'refused', reason: 'out_of_order', detail: `expected item ${this.lastSeq + 1}`, expectedSeq: this.lastSeq + 1 };
    this.stored.set(seq, envelope);
    this.storedOrder.push(seq);
    this.lastSeq = seq;
    this.onStored?.(envelope);
    return { status: 'accepted', seq };
  }

  #answer(response: http.ServerResponse, answer: UploadAnswer): void {
    const name = answer.status === 'refused' ? answer.reason : answer.status;
    this.answered.set(name, (this.answered.get(name) ?? 0) + 1);
    response.writeHead(answer.status === 'refused' ? 409 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  async close(): Promise<void> {
    if (this.#server.listening) await this.down();
  }
}
