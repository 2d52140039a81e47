import { describe, expect, it } from 'vitest';
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
});
