/**
 * Drops a connection that announces an MQTT packet larger than allowed, before the
 * broker buffers it: aedes has no packet size limit of its own. Reads only the fixed
 * header (MQTT 3.1.1 §2.2: one type byte, then a 1–4 byte remaining length) and skips
 * the body, so it costs a few operations per packet.
 *
 * aedes pulls bytes with `socket.read()` on 'readable'; the guard wraps that one method
 * of the socket instead of putting a second stream in front of it, so writes (acks) go
 * straight to the socket with no extra hop.
 */
import type { Socket } from 'node:net';

export class PacketTooLargeError extends Error {
  readonly code = 'MB_PACKET_TOO_LARGE';
}

export class MqttFrameInspector {
  readonly #bytesMax: number;
  #state: 'type' | 'length' | 'body' = 'type';
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #remaining = 0;

  constructor(bytesMax: number) {
    this.#bytesMax = bytesMax;
  }

  /** Feeds the next bytes of the stream; returns an error at the first oversized packet. */
  inspect(chunk: Uint8Array): PacketTooLargeError | undefined {
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

/** Inspects every chunk the broker reads from `socket`; destroys the socket on a violation. */
export function guardPacketSize(socket: Socket, bytesMax: number, onTooLarge: (error: PacketTooLargeError) => void): void {
  const inspector = new MqttFrameInspector(bytesMax);
  const read = socket.read.bind(socket);
  socket.read = (size?: number) => {
    const chunk = read(size) as Buffer | null;
    if (chunk === null) return null;
    const problem = inspector.inspect(chunk);
    if (!problem) return chunk;
    onTooLarge(problem);
    socket.destroy();
    return null;
  };
}
