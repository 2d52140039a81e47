/**
 * Independent reference implementations the protocol tests cross-check against.
 *
 * Everything here is built on `node:crypto` (OpenSSL) and written straight from the
 * RFC text, sharing no code with `protocol/`: when both agree, neither is likely wrong
 * in the same way. Test-only; never imported by production code.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export function nodeSha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export function unhex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export function utf8(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'utf8'));
}

// RFC 8410 §7: the DER of a PKCS#8 Ed25519 private key is this prefix then the 32-byte seed;
// the SubjectPublicKeyInfo is its prefix then the 32-byte public key.
const PKCS8_ED25519_PREFIX = '302e020100300506032b657004220420';
const SPKI_ED25519_PREFIX = '302a300506032b6570032100';

export function nodePrivateKey(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new RangeError(`seed: expected 32 bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([Buffer.from(PKCS8_ED25519_PREFIX, 'hex'), seed]), format: 'der', type: 'pkcs8' });
}

export function nodePublicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([Buffer.from(SPKI_ED25519_PREFIX, 'hex'), publicKey]), format: 'der', type: 'spki' });
}

/** The raw 32-byte Ed25519 public key OpenSSL derives from `seed`. */
export function nodePublicKey(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(nodePrivateKey(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

export function nodeSign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, nodePrivateKey(seed)));
}

export function nodeVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return verify(null, message, nodePublicKeyObject(publicKey), signature);
}

/** Largest power of two strictly less than `n` (n >= 2): RFC 9162 §2.1.1's split point k. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const LEAF = Uint8Array.of(0x00);
const NODE = Uint8Array.of(0x01);

/** RFC 9162 §2.1.1 MTH(D[n]), recursively, exactly as the RFC writes it. */
export function referenceMth(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return nodeSha256();
  if (leaves.length === 1) return nodeSha256(LEAF, leaves[0]!);
  const k = splitPoint(leaves.length);
  return nodeSha256(NODE, referenceMth(leaves.slice(0, k)), referenceMth(leaves.slice(k)));
}

/** RFC 9162 §2.1.3.1 PATH(m, D[n]): the inclusion path of leaf m, from the leaf up. */
export function referencePath(m: number, leaves: readonly Uint8Array[]): Uint8Array[] {
  if (leaves.length <= 1) return [];
  const k = splitPoint(leaves.length);
  if (m < k) return [...referencePath(m, leaves.slice(0, k)), referenceMth(leaves.slice(k))];
  return [...referencePath(m - k, leaves.slice(k)), referenceMth(leaves.slice(0, k))];
}
