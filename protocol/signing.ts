/**
 * Ed25519 signatures over canonical JSON (RFC 8032 via @noble/curves, RFC 8785 bytes).
 *
 * A signed object is `{ ...payload, sig: { alg: 'Ed25519', keyId, value } }` where the
 * signature covers the canonical bytes of the payload without `sig`.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { canonicalBytes } from './canonical-json.ts';
import { fromHex, sha256, toHex } from './hash.ts';

export interface Signature {
  alg: 'Ed25519';
  /** First 16 hex chars of SHA-256 of the public key: names the key across rotations. */
  keyId: string;
  /** 64-byte signature, hex. */
  value: string;
}

export interface SigningKey {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  keyId: string;
}

export function keyIdOf(publicKey: Uint8Array): string {
  return toHex(sha256(publicKey)).slice(0, 16);
}

export function generateSigningKey(): SigningKey {
  const secretKey = ed25519.utils.randomSecretKey();
  return signingKeyFromSecret(secretKey);
}

export function signingKeyFromSecret(secretKey: Uint8Array): SigningKey {
  if (secretKey.length !== 32) throw new RangeError(`secretKey: expected 32 bytes, got ${secretKey.length}`);
  const publicKey = ed25519.getPublicKey(secretKey);
  return { secretKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** Signs the canonical bytes of `payload`. */
export function signPayload(payload: object, key: SigningKey): Signature {
  const value = ed25519.sign(canonicalBytes(payload), key.secretKey);
  return { alg: 'Ed25519', keyId: key.keyId, value: toHex(value) };
}

/** True when `signature` is a valid Ed25519 signature of `payload` by `publicKey`. */
export function verifyPayload(payload: object, signature: Signature, publicKey: Uint8Array): boolean {
  if (signature.alg !== 'Ed25519') return false;
  if (signature.keyId !== keyIdOf(publicKey)) return false;
  let sigBytes: Uint8Array;
  try {
    sigBytes = fromHex(signature.value, 'sig.value', 64);
  } catch {
    return false;
  }
  return ed25519.verify(sigBytes, canonicalBytes(payload), publicKey);
}
