import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateJwsKey, publicJwkOf } from '../gateway/settlement/jws.ts';
import { BANK_SANDBOX_USAGE, bankSandboxCommand } from './cli.ts';

function sink() {
  const sink = { text: '', write: (chunk: string) => ((sink.text += chunk), true) };
  return sink;
}

describe('bankSandboxCommand', () => {
  it('prints its usage with options and environment on --help and exits 0', async () => {
    const stdout = sink();
    expect(await bankSandboxCommand(['--help'], { stdout, env: {} })).toBe(0);
    expect(stdout.text).toBe(BANK_SANDBOX_USAGE);
    expect(stdout.text).toMatch(/--token[\s\S]*--settle-after-ms[\s\S]*--no-auto-authorise[\s\S]*MB_BANK_TOKEN/);
  });

  it('refuses to start without a token, saying how to give one, and exits 2', async () => {
    const stderr = sink();
    expect(await bankSandboxCommand(['--port', '0'], { stderr, env: {} })).toBe(2);
    expect(stderr.text).toMatch(/^bank-sandbox: no access token: set MB_BANK_TOKEN or pass --token/);
  });

  it('refuses an unknown option and a port out of range with exit 2', async () => {
    expect(await bankSandboxCommand(['--bogus'], { stderr: sink(), env: { MB_BANK_TOKEN: 'cli-test-token' } })).toBe(2);
    expect(await bankSandboxCommand(['--port', '70000'], { stderr: sink(), env: { MB_BANK_TOKEN: 'cli-test-token' } })).toBe(2);
  });

  it('serves with the token from MB_BANK_TOKEN until stopped, then exits 0', async () => {
    const stdout = sink();
    const stop = new AbortController();
    const running = bankSandboxCommand(['--port', '0', '--settle-after-ms', '10'], { stdout, stderr: sink(), env: { MB_BANK_TOKEN: 'cli-test-token' }, signal: stop.signal });
    await expect.poll(() => stdout.text).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+\/open-banking\/v4\.0\/pisp/);
    const url = /on (\S+)/.exec(stdout.text)?.[1] ?? '';
    const authorised = await fetch(`${url}/domestic-vrps/x`, { headers: { authorization: 'Bearer cli-test-token' } });
    const anonymous = await fetch(`${url}/domestic-vrps/x`);
    expect([authorised.status, anonymous.status]).toEqual([400, 401]);
    stop.abort();
    expect(await running).toBe(0);
  });

  it('signs with the key file it is given, writes its public JWK, and refuses unsigned POSTs when given TPP keys', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mb-bank-cli-'));
    try {
      const tppKeyFile = path.join(dir, 'tpp.jwk.json');
      await writeFile(tppKeyFile, JSON.stringify(publicJwkOf(generateJwsKey())));
      const stdout = sink();
      const stop = new AbortController();
      const argv = ['--port', '0', '--signing-key', path.join(dir, 'bank.key'), '--tpp-key', tppKeyFile];
      const running = bankSandboxCommand(argv, { stdout, stderr: sink(), env: { MB_BANK_TOKEN: 'cli-test-token' }, signal: stop.signal });
      await expect.poll(() => stdout.text).toMatch(/requests must be signed by one of 1 TPP key/);
      const jwk = JSON.parse(await readFile(path.join(dir, 'bank.jwk.json'), 'utf8')) as { kid: string };
      expect(stdout.text).toContain(`bank signing key ${jwk.kid}`);
      const url = /on (\S+)/.exec(stdout.text)?.[1] ?? '';
      const unsigned = await fetch(`${url}/domestic-vrp-consents`, { method: 'POST', headers: { authorization: 'Bearer cli-test-token', 'content-type': 'application/json', 'x-idempotency-key': 'k1' }, body: '{}' });
      expect([unsigned.status, ((await unsigned.json()) as { Errors: { ErrorCode: string }[] }).Errors[0]?.ErrorCode]).toEqual([400, 'U018']);
      expect(unsigned.headers.get('x-jws-signature')).toMatch(/^[\w-]+\.\.[\w-]+$/);
      stop.abort();
      expect(await running).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a TPP key file that is not a key, naming it, and exits 1', async () => {
    const stderr = sink();
    expect(await bankSandboxCommand(['--port', '0', '--tpp-key', '/nonexistent/tpp.jwk.json'], { stderr, env: { MB_BANK_TOKEN: 'cli-test-token' } })).toBe(1);
    expect(stderr.text).toMatch(/^bank-sandbox: Cannot read public key \/nonexistent\/tpp\.jwk\.json/);
  });
});
