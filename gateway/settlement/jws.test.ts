import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import {
  generateJwsKey,
  JWS_CRIT,
  jwsKeyFromSecret,
  OB_CLAIMS,
  OB_TRUST_ANCHOR,
  publicJwkOf,
  signDetachedJws,
  trustedKeyFromJwk,
  verifyDetachedJws,
  verifyEs256,
  type JwsKeyPair,
  type JwsVerifyOptions,
} from './jws.ts';

const vector = JSON.parse(readFileSync(new URL('../../test/vectors/jws-es256.json', import.meta.url), 'utf8')) as {
  jwk: { kty: string; crv: string; x: string; y: string };
  signingInput: string;
  signature: string;
};

const NOW_S = 1_750_000_000;
const BODY = '{"Data":{"ConsentId":"vrpc-1","Instruction":{"InstructedAmount":{"Amount":"12.34","Currency":"GBP"}}},"Risk":{}}';
// A fixed key keeps failures reproducible.
const KEY = jwsKeyFromSecret(sha256(new TextEncoder().encode('meterbridge jws test key')));
const CLAIMS = { iss: 'meterbridge/demo-gateway', tan: OB_TRUST_ANCHOR, iatS: NOW_S };

function options(overrides: Partial<JwsVerifyOptions> = {}): JwsVerifyOptions {
  return { trustedKeys: [KEY], tan: OB_TRUST_ANCHOR, nowS: NOW_S, ...overrides };
}

function decodeHeader(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split('.')[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Signs any header we like over BODY, the way a careless or hostile signer would. */
function signWithHeader(header: Record<string, unknown>, key: JwsKeyPair = KEY, payload = BODY): string {
  const protectedHeader = Buffer.from(JSON.stringify(header)).toString('base64url');
  const signature = p256.sign(new TextEncoder().encode(`${protectedHeader}.${payload}`), key.secretKey, { prehash: true, format: 'compact' });
  return `${protectedHeader}..${Buffer.from(signature).toString('base64url')}`;
}

function goodHeader(): Record<string, unknown> {
  return decodeHeader(signDetachedJws(BODY, KEY, CLAIMS));
}

describe('signDetachedJws', () => {
  it('writes a detached JWS whose protected header carries the OB claims and crit', () => {
    const jws = signDetachedJws(BODY, KEY, CLAIMS);
    expect(jws).toMatch(/^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]{86}$/);
    expect(decodeHeader(jws)).toEqual({
      alg: 'ES256', kid: KEY.kid, typ: 'JOSE', cty: 'application/json', b64: false,
      [OB_CLAIMS.iat]: NOW_S, [OB_CLAIMS.iss]: CLAIMS.iss, [OB_CLAIMS.tan]: OB_TRUST_ANCHOR,
      crit: ['b64', OB_CLAIMS.iat, OB_CLAIMS.iss, OB_CLAIMS.tan],
    });
  });

  it('is verified by the same body and key', () => {
    expect(verifyDetachedJws(signDetachedJws(BODY, KEY, CLAIMS), BODY, options())).toEqual({ ok: true, kid: KEY.kid, iss: CLAIMS.iss, iatS: NOW_S });
  });

  it('refuses claims it cannot put in a header', () => {
    expect(() => signDetachedJws(BODY, KEY, { ...CLAIMS, iss: '' })).toThrow(/^iss/);
    expect(() => signDetachedJws(BODY, KEY, { ...CLAIMS, iatS: 1.5 })).toThrow(/^iatS/);
  });
});

describe('ES256 against published vectors and node:crypto', () => {
  it('verifies the RFC 7515 A.3 example signature, and not a changed input', () => {
    const publicKey = trustedKeyFromJwk({ ...vector.jwk, kid: 'rfc7515' }).publicKey;
    const signature = new Uint8Array(Buffer.from(vector.signature, 'base64url'));
    expect(verifyEs256(new TextEncoder().encode(vector.signingInput), signature, publicKey)).toBe(true);
    expect(verifyEs256(new TextEncoder().encode(`${vector.signingInput}x`), signature, publicKey)).toBe(false);
  });

  it('makes signatures node:crypto verifies over header.body', () => {
    const publicKey = createPublicKey({ key: { ...publicJwkOf(KEY) } as JsonWebKey, format: 'jwk' });
    const jws = signDetachedJws(BODY, KEY, CLAIMS);
    const [header = '', , signature = ''] = jws.split('.');
    expect(nodeVerify('sha256', Buffer.from(`${header}.${BODY}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))).toBe(true);
  });

  it('accepts signatures node:crypto makes, high-S ones included (20 of them)', () => {
    const privateKey = createPrivateKey({ key: { ...publicJwkOf(KEY), d: Buffer.from(KEY.secretKey).toString('base64url') }, format: 'jwk' });
    const protectedHeader = Buffer.from(JSON.stringify(goodHeader())).toString('base64url');
    for (let i = 0; i < 20; i += 1) {
      const signature = nodeSign('sha256', Buffer.from(`${protectedHeader}.${BODY}`), { key: privateKey, dsaEncoding: 'ieee-p1363' });
      expect(verifyDetachedJws(`${protectedHeader}..${signature.toString('base64url')}`, BODY, options()).ok).toBe(true);
    }
  });
});

describe('verifyDetachedJws refuses', () => {
  const refusals: [string, () => string, string, RegExp][] = [
    ['a signature by a key it does not trust', () => signDetachedJws(BODY, generateJwsKey(), CLAIMS), 'invalid-claim', /is not a key we trust/],
    ['a trusted kid with another key’s signature', () => signWithHeader(goodHeader(), generateJwsKey()), 'invalid', /does not match the body/],
    ['a changed body', () => signDetachedJws(BODY.replace('12.34', '12.35'), KEY, CLAIMS), 'invalid', /does not match the body/],
    ['crit without the tan claim', () => signWithHeader({ ...goodHeader(), crit: JWS_CRIT.filter((n) => n !== OB_CLAIMS.tan) }), 'missing-claim', /crit does not list http:\/\/openbanking\.org\.uk\/tan/],
    ['a header without the iat claim', () => signWithHeader({ ...goodHeader(), [OB_CLAIMS.iat]: undefined }), 'missing-claim', /no http:\/\/openbanking\.org\.uk\/iat/],
    ['b64 true', () => signWithHeader({ ...goodHeader(), b64: true }), 'invalid-claim', /b64 must be false/],
    ['no b64 at all', () => signWithHeader({ ...goodHeader(), b64: undefined }), 'missing-claim', /no b64/],
    ['alg none', () => signWithHeader({ ...goodHeader(), alg: 'none' }), 'invalid-claim', /alg "none" is not ES256/],
    ['a crit name it does not understand', () => signWithHeader({ ...goodHeader(), crit: [...JWS_CRIT, 'exp'] }), 'invalid-claim', /crit lists exp/],
    ['another trust anchor', () => signDetachedJws(BODY, KEY, { ...CLAIMS, tan: 'evil.example' }), 'invalid-claim', /is not the trust anchor/],
    ['an iat six minutes old', () => signDetachedJws(BODY, KEY, { ...CLAIMS, iatS: NOW_S - 360 }), 'invalid-claim', /more than 300 s from now/],
    ['an attached payload', () => signDetachedJws(BODY, KEY, CLAIMS).replace('..', `.${Buffer.from(BODY).toString('base64url')}.`), 'malformed', /must be detached/],
    ['a signature that is not base64url', () => `${signDetachedJws(BODY, KEY, CLAIMS)}+`, 'malformed', /base64url/],
    ['a DER signature', () => signDetachedJws(BODY, KEY, CLAIMS).replace(/\.\.[^.]+$/, `..${Buffer.alloc(70).toString('base64url')}`), 'malformed', /64 bytes, got 70/],
    ['no signature', () => '', 'missing', /no x-jws-signature/],
  ];
  for (const [what, make, problem, detail] of refusals) {
    it(what, () => {
      const verdict = verifyDetachedJws(make(), BODY, options());
      expect(verdict).toEqual({ ok: false, problem, detail: expect.stringMatching(detail) });
    });
  }

  it('a key bound to one issuer used by another', () => {
    const verdict = verifyDetachedJws(signDetachedJws(BODY, KEY, CLAIMS), BODY, options({ trustedKeys: [{ ...KEY, iss: 'someone-else' }] }));
    expect(verdict).toMatchObject({ ok: false, problem: 'invalid-claim', detail: expect.stringMatching(/belongs to someone-else/) });
  });
});

describe('public JWKs', () => {
  it('reads back the key a JWK describes', () => {
    const key = generateJwsKey();
    const trusted = trustedKeyFromJwk(publicJwkOf(key));
    expect([trusted.kid, Buffer.from(trusted.publicKey).equals(Buffer.from(key.publicKey))]).toEqual([key.kid, true]);
  });

  it('refuses a point off the curve, another curve, and a missing kid', () => {
    const jwk = publicJwkOf(KEY);
    expect(() => trustedKeyFromJwk({ ...jwk, y: jwk.x })).toThrow(/not on P-256/);
    expect(() => trustedKeyFromJwk({ ...jwk, crv: 'P-384' })).toThrow(/P-256/);
    expect(() => trustedKeyFromJwk({ ...jwk, kid: undefined })).toThrow(/jwk\.kid/);
  });
});
