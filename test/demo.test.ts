import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Snapshot } from '../gateway/web/snapshot.ts';
import { setUpOperator } from './support/operator-session.ts';

const REPO = path.resolve(import.meta.dirname, '..');

describe('meterbridge demo (what npm start runs)', () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prints the dashboard and a one-time setup link, shows usage flowing and a batch settled, and stops on Ctrl-C', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-demo-'));
    child = spawn(process.execPath, ['bin/meterbridge.mjs', 'demo', '--dir', dir, '--http-port', '0', '--mqtt-port', '0', '--bank-port', '0', '--speed', '4', '--seal-cron', '*/2 * * * * *'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const deadline = Date.now() + 30_000;
    let match: RegExpExecArray | null = null;
    while (!(match = /Dashboard\s+(http:\/\/\S+?)\/?\s[\s\S]*Set up login\s+(http:\/\/\S+)/.exec(out))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`demo did not start:\n${out}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const [, url, setupLink] = match;
    const { cookie } = await setUpOperator(setupLink!);
    let state: Snapshot | undefined;
    while (!state?.batches.some((b) => b.state === 'settled')) {
      if (Date.now() > deadline) throw new Error(`no batch settled within 30 s: ${JSON.stringify(state?.batches)}\n${out}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      state = (await (await fetch(`${url}/api/state`, { headers: { cookie } })).json()) as Snapshot;
    }
    expect(state.chain.headIndex).toBeGreaterThan(0);
    expect(out).toMatch(/fault\s+the bank accepts the first payment but its answer is lost/);
    expect(out).toMatch(/fault\s+the bank holds the first 2 payments PDNG/);
    expect(state.devices.filter((d) => d.connected).map((d) => d.id).sort()).toEqual(['cnc-1', 'cnc-2', 'compressor-1', 'truck-1', 'truck-2', 'yard-1']);
    expect(out).not.toMatch(/"level":[56]0/); // no error or fatal log lines
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  }, 45_000);
});
