import { describe, expect, it } from 'vitest';
import { generateSigningKey, signPayload, verifyPayload } from '../../protocol/signing.ts';
import { nodeSignPayload, signatureVerifier } from './node-signature.ts';

const key = generateSigningKey();
const payload = { v: 1, gatewayId: 'gw', index: 1000, hash: 'ab'.repeat(32), time: '2026-11-27T12:00:00.000Z' };

describe('signatureVerifier', () => {
  it('accepts what verifyPayload accepts: the gateway\'s signature over the canonical payload, in any member order', () => {
    const sig = signPayload(payload, key);
    const verifies = signatureVerifier(key.publicKey);
    expect(verifyPayload({ ...payload }, sig, key.publicKey)).toBe(true);
    expect(verifies({ time: payload.time, index: 1000, hash: payload.hash, gatewayId: 'gw', v: 1 }, sig)).toBe(true);
  });

  it('refuses a changed payload, another key, a wrong keyId or alg, upper-case or short hex, and no signature', () => {
    const sig = signPayload(payload, key);
    const verifies = signatureVerifier(key.publicKey);
    expect(verifies({ ...payload, index: 1001 }, sig)).toBe(false);
    expect(signatureVerifier(generateSigningKey().publicKey)(payload, sig)).toBe(false);
    expect(verifies(payload, { ...sig, keyId: '0'.repeat(16) })).toBe(false);
    expect(verifies(payload, { ...sig, alg: 'EdDSA' as 'Ed25519' })).toBe(false);
    expect(verifies(payload, { ...sig, value: sig.value.toUpperCase() })).toBe(false);
    expect(verifies(payload, { ...sig, value: sig.value.slice(2) })).toBe(false);
    expect(verifies(payload, undefined)).toBe(false);
  });

  it('refuses a non-reduced S (S + L), as verifyPayload does, so signatures cannot be made malleable', () => {
    const sig = signPayload(payload, key);
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const bytes = Buffer.from(sig.value, 'hex');
    const s = BigInt(`0x${Buffer.from(bytes.subarray(32)).reverse().toString('hex')}`);
    const widened = Buffer.from((s + L).toString(16).padStart(64, '0'), 'hex').reverse();
    const malleated = { ...sig, value: Buffer.concat([bytes.subarray(0, 32), widened]).toString('hex') };
    expect(verifyPayload(payload, malleated, key.publicKey)).toBe(false);
    expect(signatureVerifier(key.publicKey)(payload, malleated)).toBe(false);
  });
});

describe('nodeSignPayload', () => {
  it('makes exactly signPayload\'s signature (Ed25519 is deterministic), for small and non-ASCII payloads and under several keys', () => {
    for (const signer of [key, generateSigningKey(), generateSigningKey()]) {
      for (const p of [payload, { note: 'Zürich ☃ \u{1F600}', list: ['a', 1, null], nested: { b: 2, a: 1 } }, {}]) {
        expect(nodeSignPayload(p, signer)).toEqual(signPayload(p, signer));
      }
    }
  });
});
