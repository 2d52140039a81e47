/**
 * Protocol Buffers wire format, read side only (https://protobuf.dev/programming-guides/encoding/).
 * Just what a Sparkplug B payload needs, and strict about hostile bytes: every length is
 * checked against the bytes left, varints longer than 64 bits are refused, and every
 * failure is a {@link WireError} (never an out-of-bounds read or a RangeError).
 */

/** Wire types (protobuf encoding: "Message Structure"). Groups (3, 4) are not used by Sparkplug. */
export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const WIRE_NAMES = ['VARINT', 'I64', 'LEN', 'SGROUP', 'EGROUP', 'I32', '6', '7'];
const FIELD_NUMBER_MAX = 2 ** 29 - 1;
const UINT32_MAX = 0xffff_ffffn;
const UPPER_32_ONES = 0xffff_ffff_0000_0000n;

/** Bad bytes: the decoder turns this into a `malformed_payload` result, never lets it escape. */
export class WireError extends Error {
  override readonly name = 'WireError';
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface Tag {
  field: number;
  wireType: number;
}

/** A cursor over `bytes[start, end)`. Sub-messages get their own reader over their slice. */
export class WireReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #end: number;
  #pos: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#pos = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#pos >= this.#end;
  }

  get position(): number {
    return this.#pos;
  }

  tag(): Tag {
    const at = this.#pos;
    const key = this.varint();
    if (key > UINT32_MAX) throw new WireError(`field key at byte ${at} is wider than 32 bits`);
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (field < 1 || field > FIELD_NUMBER_MAX) throw new WireError(`field number ${field} at byte ${at} is outside 1..2^29-1`);
    if (wireType !== WIRE_VARINT && wireType !== WIRE_I64 && wireType !== WIRE_LEN && wireType !== WIRE_I32) {
      throw new WireError(`field ${field} at byte ${at} has wire type ${WIRE_NAMES[wireType]}, which Sparkplug B does not use`);
    }
    return { field, wireType };
  }

  /** Base-128 varint, at most 10 bytes, at most 64 bits. */
  varint(): bigint {
    const at = this.#pos;
    let value = 0n;
    for (let i = 0; i < 10; i += 1) {
      if (this.#pos >= this.#end) throw new WireError(`varint at byte ${at} runs past the end of its message`);
      const byte = this.#bytes[this.#pos]!;
      this.#pos += 1;
      if (i === 9 && byte > 1) throw new WireError(`varint at byte ${at} is wider than 64 bits`);
      value |= BigInt(byte & 0x7f) << BigInt(7 * i);
      if (byte < 0x80) return value;
    }
    throw new WireError(`varint at byte ${at} is longer than 10 bytes`);
  }

  /**
   * A `uint32` field. Encoders that wrote a negative int32 sign-extend it to 64 bits (a
   * 10-byte varint); protobuf keeps the low 32 bits then, and so do we. Any other value
   * above 32 bits is garbage, not a number, and refused rather than silently truncated.
   */
  uint32(): bigint {
    const at = this.#pos;
    const value = this.varint();
    if (value <= UINT32_MAX) return value;
    if ((value & UPPER_32_ONES) === UPPER_32_ONES) return value & UINT32_MAX;
    throw new WireError(`uint32 varint at byte ${at} carries ${value}, more than 32 bits`);
  }

  uint64(): bigint {
    return this.varint();
  }

  bool(): boolean {
    return this.varint() !== 0n;
  }

  float(): number {
    return this.#view.getFloat32(this.#take(4), true);
  }

  double(): number {
    return this.#view.getFloat64(this.#take(8), true);
  }

  /** A copy, so a decoded payload never pins the MQTT packet buffer. */
  bytes(bytesMax: number, what: string): Uint8Array {
    const length = this.#length(what);
    if (length > bytesMax) throw new WireError(`${what} is ${length} bytes, at most ${bytesMax} allowed`);
    const start = this.#take(length);
    return this.#bytes.slice(start, start + length);
  }

  /** UTF-8 text; invalid UTF-8 is refused (protobuf `string` must be valid UTF-8). */
  string(bytesMax: number, what: string): string {
    const length = this.#length(what);
    if (length > bytesMax) throw new WireError(`${what} is ${length} bytes, at most ${bytesMax} allowed`);
    const start = this.#take(length);
    try {
      return utf8.decode(this.#bytes.subarray(start, start + length));
    } catch {
      throw new WireError(`${what} at byte ${start} is not valid UTF-8`);
    }
  }

  /** A reader over the next length-delimited field, which this reader then skips. */
  message(what: string): WireReader {
    const length = this.#length(what);
    const start = this.#take(length);
    return new WireReader(this.#bytes, start, start + length);
  }

  /** Skips a field this decoder does not know (protobuf: unknown fields are kept or ignored). */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.#take(8);
        return;
      case WIRE_LEN:
        this.#take(this.#length('unknown field'));
        return;
      case WIRE_I32:
        this.#take(4);
        return;
      default:
        throw new WireError(`cannot skip wire type ${wireType}`);
    }
  }

  #length(what: string): number {
    const at = this.#pos;
    const length = this.varint();
    if (length > BigInt(this.#end - this.#pos)) throw new WireError(`${what} at byte ${at} claims ${length} bytes but only ${this.#end - this.#pos} are left`);
    return Number(length);
  }

  #take(length: number): number {
    if (length > this.#end - this.#pos) throw new WireError(`field at byte ${this.#pos} needs ${length} bytes but only ${this.#end - this.#pos} are left`);
    const start = this.#pos;
    this.#pos += length;
    return start;
  }
}

/** Throws unless `tag` has the wire type the schema gives its field. */
export function expectWireType(tag: Tag, wireType: number, what: string): void {
  if (tag.wireType !== wireType) {
    throw new WireError(`${what} (field ${tag.field}) has wire type ${WIRE_NAMES[tag.wireType]}, expected ${WIRE_NAMES[wireType]}`);
  }
}
