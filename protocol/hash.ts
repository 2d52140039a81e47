/** SHA-256 and hex helpers shared by the chain, Merkle trees and signatures. */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes as nobleHexToBytes } from '@noble/hashes/utils.js';

type NodeCrypto = typeof import('node:crypto');

// On Node, node:crypto's SHA-256 is about twice as fast; in a browser (the offline
// verifier) there is no `process`, and @noble/hashes computes the same bytes.
const nodeCrypto = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;

/** SHA-256 of the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (nodeCrypto) {
    const hash = nodeCrypto.createHash('sha256');
    for (const part of parts) hash.update(part);
    return new Uint8Array(hash.digest());
  }
  if (parts.length === 1) return nobleSha256(parts[0]!);
  const hash = nobleSha256.create();
  for (const part of parts) hash.update(part);
  return hash.digest();
}

const utf8 = new TextEncoder();
/** Reused input buffer of sha256HexOf (prefix bytes, then the text): one allocation, not two per hash. */
const scratch: Buffer = nodeCrypto ? (globalThis as unknown as { Buffer: typeof Buffer }).Buffer.allocUnsafe(16 * 1024) : (undefined as unknown as Buffer);

/**
 * SHA-256 (hex) of `prefixHex` as bytes followed by `text` as UTF-8: the shape of every
 * chain and message hash. On Node it never materialises the intermediate byte arrays.
 */
export function sha256HexOf(prefixHex: string | undefined, text: string): string {
  if (nodeCrypto) {
    // One-shot crypto.hash (Node 20.12+) skips the Hash object createHash builds: about
    // half the cost on a record-sized input, and this runs twice for every usage message.
    const oneShot = nodeCrypto.hash;
    if (typeof oneShot === 'function') {
      if (prefixHex === undefined) return oneShot('sha256', text, 'hex');
      if ((prefixHex.length >> 1) + text.length * 3 <= scratch.length) {
        const at = scratch.write(prefixHex, 0, 'hex');
        const end = at + scratch.write(text, at, 'utf8');
        return oneShot('sha256', scratch.subarray(0, end), 'hex');
      }
    }
    const hash = nodeCrypto.createHash('sha256');
    if (prefixHex !== undefined) hash.update(prefixHex, 'hex');
    return hash.update(text, 'utf8').digest('hex');
  }
  const bytes = utf8.encode(text);
  return toHex(prefixHex === undefined ? sha256(bytes) : sha256(fromHex(prefixHex, 'prefix'), bytes));
}

export function toHex(bytes: Uint8Array): string {
  return bytesToHex(bytes);
}

const HEX = /^(?:[0-9a-f]{2})*$/;

/** Lower-case hex to bytes; throws a RangeError naming `field` on anything else. */
export function fromHex(hex: string, field: string, bytesExpected?: number): Uint8Array {
  if (typeof hex !== 'string' || !HEX.test(hex)) throw new RangeError(`${field}: not lower-case hex`);
  if (bytesExpected !== undefined && hex.length !== bytesExpected * 2) {
    throw new RangeError(`${field}: expected ${bytesExpected} bytes, got ${hex.length / 2}`);
  }
  return nobleHexToBytes(hex);
}

export const ZERO_HASH_HEX = '0'.repeat(64);
