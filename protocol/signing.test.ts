import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyRuns } from '../test/vectors/property-seed.ts';
import { hex, nodePublicKey, nodeSha256, nodeSign, nodeVerify, utf8 } from '../test/vectors/reference.ts';
import { canonicalBytes } from './canonical-json.ts';
import { generateSigningKey, keyIdOf, type Signature, signingKeyFromSecret, signPayload, verifyPayload } from './signing.ts';

/** Fixed seeds: Ed25519 is deterministic, so every signature below is reproducible. */
const SEED_A = nodeSha256(utf8('meterbridge signing test key A'));
const SEED_B = nodeSha256(utf8('meterbridge signing test key B'));
const KEY_A = signingKeyFromSecret(SEED_A);
const KEY_B = signingKeyFromSecret(SEED_B);

const CHECKPOINT = { v: 1, gatewayId: 'gateway-1', index: 42, hash: 'ab'.repeat(32), time: '2026-11-27T15:00:00.000Z' };

/** Ed25519 group order L (RFC 8032 §5.1). */
const GROUP_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;

function withSignatureValue(signature: Signature, value: string): Signature {
  return { ...signature, value };
}

describe('signPayload and verifyPayload', () => {
  it('verifies a signature it made', () => {
    const signature = signPayload(CHECKPOINT, KEY_A);
    expect(signature.alg).toBe('Ed25519');
    expect(signature.keyId).toBe(KEY_A.keyId);
    expect(signature.value).toMatch(/^[0-9a-f]{128}$/);
    expect(verifyPayload(CHECKPOINT, signature, KEY_A.publicKey)).toBe(true);
  });

  it('signs deterministically: the same payload and key give the same signature', () => {
    expect(signPayload(CHECKPOINT, KEY_A)).toEqual(signPayload({ ...CHECKPOINT }, KEY_A));
  });

  it('signs the canonical bytes, so member order does not matter', () => {
    const reordered = { time: CHECKPOINT.time, hash: CHECKPOINT.hash, index: 42, gatewayId: 'gateway-1', v: 1 };
    expect(verifyPayload(reordered, signPayload(CHECKPOINT, KEY_A), KEY_A.publicKey)).toBe(true);
  });

  it('rejects a payload with one field changed', () => {
    const signature = signPayload(CHECKPOINT, KEY_A);
    expect(verifyPayload({ ...CHECKPOINT, index: 43 }, signature, KEY_A.publicKey)).toBe(false);
    expect(verifyPayload({ ...CHECKPOINT, hash: 'ac'.repeat(32) }, signature, KEY_A.publicKey)).toBe(false);
  });

  it('rejects a payload with a field added or removed', () => {
    const signature = signPayload(CHECKPOINT, KEY_A);
    expect(verifyPayload({ ...CHECKPOINT, extra: true }, signature, KEY_A.publicKey)).toBe(false);
    const { time: _time, ...withoutTime } = CHECKPOINT;
    expect(verifyPayload(withoutTime, signature, KEY_A.publicKey)).toBe(false);
  });

  it('rejects a signature checked against another key', () => {
    expect(verifyPayload(CHECKPOINT, signPayload(CHECKPOINT, KEY_A), KEY_B.publicKey)).toBe(false);
  });

  it('rejects a signature from another key relabelled with the expected keyId', () => {
    const forged = { ...signPayload(CHECKPOINT, KEY_B), keyId: KEY_A.keyId };
    expect(verifyPayload(CHECKPOINT, forged, KEY_A.publicKey)).toBe(false);
  });

  it('rejects a valid signature whose keyId names another key', () => {
    const relabelled = { ...signPayload(CHECKPOINT, KEY_A), keyId: KEY_B.keyId };
    expect(verifyPayload(CHECKPOINT, relabelled, KEY_A.publicKey)).toBe(false);
  });

  it('rejects a signature that claims another algorithm', () => {
    const signature = { ...signPayload(CHECKPOINT, KEY_A), alg: 'EdDSA' } as unknown as Signature;
    expect(verifyPayload(CHECKPOINT, signature, KEY_A.publicKey)).toBe(false);
  });

  it('rejects a signature with any single bit flipped', () => {
    const signature = signPayload(CHECKPOINT, KEY_A);
    const bytes = Buffer.from(signature.value, 'hex');
    for (let bit = 0; bit < 512; bit += 7) {
      const flipped = Buffer.from(bytes);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(verifyPayload(CHECKPOINT, withSignatureValue(signature, flipped.toString('hex')), KEY_A.publicKey), `bit ${bit}`).toBe(false);
    }
  });

  it('rejects the malleable twin with S + L in place of S, as RFC 8032 §5.1.7 requires', () => {
    const signature = signPayload(CHECKPOINT, KEY_A);
    const bytes = Buffer.from(signature.value, 'hex');
    const s = BigInt(`0x${Buffer.from(bytes.subarray(32)).reverse().toString('hex')}`);
    const twinS = Buffer.from((s + GROUP_ORDER).toString(16).padStart(64, '0'), 'hex').reverse();
    const twin = Buffer.concat([bytes.subarray(0, 32), twinS]);
    expect(verifyPayload(CHECKPOINT, withSignatureValue(signature, twin.toString('hex')), KEY_A.publicKey)).toBe(false);
    expect(nodeVerify(KEY_A.publicKey, canonicalBytes(CHECKPOINT), twin)).toBe(false);
  });

  it.each([
    ['upper-case hex', (value: string) => value.toUpperCase()],
    ['an odd number of digits', (value: string) => value.slice(1)],
    ['63 bytes', (value: string) => value.slice(2)],
    ['65 bytes', (value: string) => `${value}00`],
    ['a non-hex digit', (value: string) => `${value.slice(0, -1)}g`],
    ['an empty value', () => ''],
    ['a 0x prefix', (value: string) => `0x${value.slice(2)}`],
  ])('rejects a signature value with %s instead of throwing', (_name, mangle) => {
    const signature = signPayload(CHECKPOINT, KEY_A);
    expect(verifyPayload(CHECKPOINT, withSignatureValue(signature, mangle(signature.value)), KEY_A.publicKey)).toBe(false);
  });

  it('rejects a signature value that is not a string instead of throwing', () => {
    const signature = { ...signPayload(CHECKPOINT, KEY_A), value: 12 } as unknown as Signature;
    expect(verifyPayload(CHECKPOINT, signature, KEY_A.publicKey)).toBe(false);
  });

  it('verifies signatures over any JSON object, and rejects them under another key', () => {
    const payloads = fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.jsonValue({ stringUnit: 'binary', maxDepth: 2 }), { maxKeys: 6 });
    fc.assert(
      fc.property(payloads, (payload) => {
        const signature = signPayload(payload, KEY_A);
        expect(verifyPayload(payload, signature, KEY_A.publicKey)).toBe(true);
        expect(verifyPayload(payload, signature, KEY_B.publicKey)).toBe(false);
      }),
      propertyRuns(150),
    );
  });
});

describe('cross-checks with node:crypto', () => {
  it('derives the same public key from a seed as OpenSSL does', () => {
    expect(hex(KEY_A.publicKey)).toBe(hex(nodePublicKey(SEED_A)));
    expect(hex(KEY_B.publicKey)).toBe(hex(nodePublicKey(SEED_B)));
  });

  it('accepts a signature made by node:crypto over the canonical bytes', () => {
    const value = hex(nodeSign(SEED_A, canonicalBytes(CHECKPOINT)));
    const signature: Signature = { alg: 'Ed25519', keyId: KEY_A.keyId, value };
    expect(verifyPayload(CHECKPOINT, signature, KEY_A.publicKey)).toBe(true);
  });

  it('rejects a node:crypto signature over other bytes', () => {
    const value = hex(nodeSign(SEED_A, canonicalBytes({ ...CHECKPOINT, index: 43 })));
    expect(verifyPayload(CHECKPOINT, { alg: 'Ed25519', keyId: KEY_A.keyId, value }, KEY_A.publicKey)).toBe(false);
  });

  it('makes signatures node:crypto accepts, byte for byte the ones node:crypto makes', () => {
    const signature = signPayload(CHECKPOINT, KEY_A);
    const bytes = Buffer.from(signature.value, 'hex');
    expect(nodeVerify(KEY_A.publicKey, canonicalBytes(CHECKPOINT), bytes)).toBe(true);
    expect(signature.value).toBe(hex(nodeSign(SEED_A, canonicalBytes(CHECKPOINT))));
  });

  it('makes signatures node:crypto rejects under another key or payload', () => {
    const bytes = Buffer.from(signPayload(CHECKPOINT, KEY_A).value, 'hex');
    expect(nodeVerify(KEY_B.publicKey, canonicalBytes(CHECKPOINT), bytes)).toBe(false);
    expect(nodeVerify(KEY_A.publicKey, canonicalBytes({ ...CHECKPOINT, index: 43 }), bytes)).toBe(false);
  });
});

describe('keys', () => {
  it('names a key by the first 16 hex digits of SHA-256 of its public key', () => {
    expect(KEY_A.keyId).toBe(hex(nodeSha256(KEY_A.publicKey)).slice(0, 16));
    expect(keyIdOf(KEY_B.publicKey)).toBe(hex(nodeSha256(KEY_B.publicKey)).slice(0, 16));
    expect(KEY_A.keyId).not.toBe(KEY_B.keyId);
  });

  it('builds a key from a 32-byte secret', () => {
    expect(signingKeyFromSecret(new Uint8Array(32).fill(7)).publicKey).toHaveLength(32);
  });

  it.each([0, 31, 33, 64])('refuses a %i-byte secret, naming the field', (length) => {
    expect(() => signingKeyFromSecret(new Uint8Array(length))).toThrow(RangeError);
    expect(() => signingKeyFromSecret(new Uint8Array(length))).toThrow(/^secretKey: expected 32 bytes/);
  });

  it('generates fresh keys that sign and verify, and differ from each other', () => {
    const first = generateSigningKey();
    const second = generateSigningKey();
    expect(first.keyId).not.toBe(second.keyId);
    expect(verifyPayload(CHECKPOINT, signPayload(CHECKPOINT, first), first.publicKey)).toBe(true);
    expect(verifyPayload(CHECKPOINT, signPayload(CHECKPOINT, first), second.publicKey)).toBe(false);
    expect(hex(nodePublicKey(first.secretKey))).toBe(hex(first.publicKey));
  });
});
