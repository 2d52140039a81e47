/**
 * Drops a connection that announces an MQTT packet larger than allowed, before the
 * broker buffers it: aedes has no packet size limit of its own. Reads only the fixed
 * header (MQTT 3.1.1 §2.2: one type byte, then a 1–4 byte remaining length) and skips
 * the body, so it costs a few operations per packet.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

export class PacketTooLargeError extends Error {
  readonly code = 'MB_PACKET_TOO_LARGE';
}

export class PacketSizeGuard extends Duplex {
  readonly #socket: Socket;
  readonly #bytesMax: number;
  #state: 'type' | 'length' | 'body' = 'type';
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #remaining = 0;

  constructor(socket: Socket, bytesMax: number, onTooLarge: (error: PacketTooLargeError) => void) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#bytesMax = bytesMax;
    socket.on('data', (chunk: Buffer) => {
      const problem = this.#inspect(chunk);
      if (problem) {
        onTooLarge(problem);
        socket.destroy();
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    socket.on('error', (error) => this.destroy(error));
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }

  setNoDelay(noDelay?: boolean): this {
    this.#socket.setNoDelay(noDelay);
    return this;
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.#socket.write(chunk, done);
  }

  override _final(done: (error?: Error | null) => void): void {
    this.#socket.end(done);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.#socket.destroy();
    done(error);
  }

  #inspect(chunk: Buffer): PacketTooLargeError | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 'type') {
        i += 1;
        this.#state = 'length';
        this.#length = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
      } else if (this.#state === 'length') {
        const byte = chunk[i++]!;
        this.#length += (byte & 0x7f) * this.#multiplier;
        this.#multiplier *= 128;
        this.#lengthBytes += 1;
        if (this.#length > this.#bytesMax) return new PacketTooLargeError(`packet of more than ${this.#bytesMax} bytes announced`);
        if ((byte & 0x80) === 0) {
          this.#remaining = this.#length;
          this.#state = this.#remaining === 0 ? 'type' : 'body';
        } else if (this.#lengthBytes === 4) {
          return new PacketTooLargeError('malformed remaining length (MQTT-2.2.3: at most 4 bytes)');
        }
      } else {
        const skip = Math.min(this.#remaining, chunk.length - i);
        i += skip;
        this.#remaining -= skip;
        if (this.#remaining === 0) this.#state = 'type';
      }
    }
    return undefined;
  }
}
