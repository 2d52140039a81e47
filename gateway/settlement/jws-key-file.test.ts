import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GATEWAY_JWS_KEY_FILE, loadOrCreateJwsKey, publicJwkFileOf, readTrustedJwkFile } from './jws-key-file.ts';
import { publicJwkOf } from './jws.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mb-jws-key-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadOrCreateJwsKey', () => {
  it('makes a 0600 secret and a public JWK beside it, and loads the same key again', async () => {
    const file = path.join(dir, 'data', GATEWAY_JWS_KEY_FILE);
    const first = await loadOrCreateJwsKey(file);
    expect(first.created).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(first.publicFile).toBe(path.join(dir, 'data', 'gateway-ob-signing-p256.jwk.json'));
    expect(JSON.parse(await readFile(first.publicFile, 'utf8'))).toEqual(publicJwkOf(first.key));
    const again = await loadOrCreateJwsKey(file);
    expect([again.created, again.key.kid]).toEqual([false, first.key.kid]);
  });

  it('tightens a secret someone made readable', async () => {
    const file = path.join(dir, 'bank.key');
    await loadOrCreateJwsKey(file);
    await chmod(file, 0o644);
    await loadOrCreateJwsKey(file);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('refuses a secret file that does not hold a key, naming the file', async () => {
    const file = path.join(dir, 'bank.key');
    await writeFile(file, 'not hex\n', { mode: 0o600 });
    await expect(loadOrCreateJwsKey(file)).rejects.toThrow(/^Cannot load signing key .*bank\.key/);
  });
});

describe('readTrustedJwkFile', () => {
  it('reads a single JWK and a JWKS', async () => {
    const { key } = await loadOrCreateJwsKey(path.join(dir, 'bank.key'));
    expect((await readTrustedJwkFile(publicJwkFileOf(path.join(dir, 'bank.key')))).map((k) => k.kid)).toEqual([key.kid]);
    const jwks = path.join(dir, 'jwks.json');
    await writeFile(jwks, JSON.stringify({ keys: [publicJwkOf(key)] }));
    expect((await readTrustedJwkFile(jwks)).map((k) => k.kid)).toEqual([key.kid]);
  });

  it('refuses a file that is not a P-256 JWK', async () => {
    const file = path.join(dir, 'bad.json');
    await writeFile(file, JSON.stringify({ kty: 'RSA', n: 'x', e: 'AQAB', kid: 'k' }));
    await expect(readTrustedJwkFile(file)).rejects.toThrow(/^Cannot read public key .*bad\.json: jwk: must be kty EC/);
  });
});
