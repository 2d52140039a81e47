/**
 * Ed25519 verification of the gateway's own signed objects (§8) through node:crypto
 * (OpenSSL): about 100 µs a signature against ~1.5 ms for protocol/signing.ts's
 * @noble/curves verifier, which matters at start-up with a checkpoint every thousand
 * records. Same checks as verifyPayload: `alg`, `keyId`, 128 lower-case hex digits, then
 * the signature over the canonical bytes without `sig`. OpenSSL refuses S ≥ L too, and
 * is no more lenient about point encodings, so it accepts nothing verifyPayload refuses
 * among signatures the gateway makes. Node-only; the browser verifier keeps noble.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalBytes } from '../../protocol/canonical-json.ts';
import { keyIdOf, type Signature, type SigningKey } from '../../protocol/signing.ts';

const SIGNATURE_HEX = /^[0-9a-f]{128}$/;

export type SignatureVerifier = (payload: object, signature: Signature | undefined) => boolean;

export function signatureVerifier(publicKey: Uint8Array): SignatureVerifier {
  const keyId = keyIdOf(publicKey);
  const keyObject: KeyObject = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
  return (payload, signature) => {
    if (!signature || signature.alg !== 'Ed25519' || signature.keyId !== keyId) return false;
    if (typeof signature.value !== 'string' || !SIGNATURE_HEX.test(signature.value)) return false;
    try {
      return verify(null, canonicalBytes(payload), keyObject, Buffer.from(signature.value, 'hex'));
    } catch {
      return false;
    }
  };
}

/** PKCS #8 DER prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const privateKeys = new WeakMap<SigningKey, KeyObject>();

/**
 * protocol/signing.ts signPayload's signature (Ed25519 is deterministic: the same bytes)
 * made by node:crypto: about 3 times faster on an 11 MB upload part (OpenSSL's SHA-512),
 * which the gateway's event loop would otherwise wait for. Node-only.
 */
export function nodeSignPayload(payload: object, key: SigningKey): Signature {
  let privateKey = privateKeys.get(key);
  if (!privateKey) {
    privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, key.secretKey]), format: 'der', type: 'pkcs8' });
    privateKeys.set(key, privateKey);
  }
  return { alg: 'Ed25519', keyId: key.keyId, value: sign(null, canonicalBytes(payload), privateKey).toString('hex') };
}
