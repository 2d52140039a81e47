import { p256 } from '@noble/curves/nist.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateJwsKey, OB_TRUST_ANCHOR, signDetachedJws, trustedKeyFromJwk, verifyDetachedJws, type JwsKeyPair } from '../gateway/settlement/jws.ts';
import { consentBody, TEST_TOKEN } from './sandbox-fixtures.ts';
import { startBankSandbox, type BankSandbox } from './server.ts';

const tpp = generateJwsKey();
let bank: BankSandbox;
let keysMade = 0;

beforeAll(async () => {
  bank = await startBankSandbox({ accessTokens: [TEST_TOKEN], tppSigningKeys: [tpp] });
});
afterAll(async () => {
  await bank.close();
});

const nowS = () => Math.floor(Date.now() / 1000);
const sign = (body: string, key: JwsKeyPair = tpp) => signDetachedJws(body, key, { iss: 'test-tpp', tan: OB_TRUST_ANCHOR, iatS: nowS() });

async function postConsent(body: string, signature: string | undefined) {
  keysMade += 1;
  const headers: Record<string, string> = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json', 'x-idempotency-key': `sig-test-${keysMade}` };
  if (signature !== undefined) headers['x-jws-signature'] = signature;
  const response = await fetch(`${bank.url}/domestic-vrp-consents`, { method: 'POST', headers, body });
  const text = await response.text();
  return { status: response.status, text, signature: response.headers.get('x-jws-signature'), error: (JSON.parse(text) as { Errors?: { ErrorCode: string; Message: string }[] }).Errors?.[0] };
}

/** A header we choose, signed properly: what a careless TPP library might send. */
function signWithHeader(body: string, change: (header: Record<string, unknown>) => void): string {
  const header = JSON.parse(Buffer.from(sign(body).split('.')[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  change(header);
  const encoded = Buffer.from(JSON.stringify(header)).toString('base64url');
  const signature = p256.sign(new TextEncoder().encode(`${encoded}.${body}`), tpp.secretKey, { prehash: true });
  return `${encoded}..${Buffer.from(signature).toString('base64url')}`;
}

describe('request signatures at the sandbox bank', () => {
  const body = JSON.stringify(consentBody());

  it('accepts a consent signed by the TPP over the exact body, and signs its answer', async () => {
    const answer = await postConsent(body, sign(body));
    expect(answer.status).toBe(201);
    const verdict = verifyDetachedJws(answer.signature ?? undefined, answer.text, { trustedKeys: [trustedKeyFromJwk(bank.signingJwk)], tan: OB_TRUST_ANCHOR, nowS: nowS() });
    expect(verdict).toMatchObject({ ok: true, iss: 'meterbridge-sandbox-bank' });
  });

  const refusals: [string, () => string | undefined, string, RegExp][] = [
    ['no signature', () => undefined, 'U018', /there is no x-jws-signature/],
    ['a signature by a key the bank does not know', () => sign(body, generateJwsKey()), 'U016', /is not a key we trust/],
    ['a signature over another body', () => sign(body.replace('100.00', '100.01')), 'U015', /does not match the body/],
    ['b64 true', () => signWithHeader(body, (h) => void (h.b64 = true)), 'U016', /b64 must be false/],
    ['crit without the iss claim', () => signWithHeader(body, (h) => void (h.crit = (h.crit as string[]).filter((n) => !n.endsWith('/iss')))), 'U019', /crit does not list http:\/\/openbanking\.org\.uk\/iss/],
    ['an attached payload', () => sign(body).replace('..', '.e30.'), 'U017', /must be detached/],
  ];
  for (const [what, signature, code, message] of refusals) {
    it(`refuses ${what} with ${code} naming the problem, creating nothing`, async () => {
      const before = bank.listConsents().length;
      const answer = await postConsent(body, signature());
      expect([answer.status, answer.error?.ErrorCode]).toEqual([400, code]);
      expect(answer.error?.Message).toMatch(message);
      expect(answer.signature).not.toBeNull(); // OBIE VRP 4.0: a 400 answer is signed too
      expect(bank.listConsents()).toHaveLength(before);
    });
  }

  it('does not ask GETs for a signature', async () => {
    const answer = await fetch(`${bank.url}/domestic-vrps/none`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(((await answer.json()) as { Errors: { ErrorCode: string }[] }).Errors[0]?.ErrorCode).toBe('U011');
  });
});
