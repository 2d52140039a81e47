import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GATEWAY_KEYS_FILE, loadKeyring, verifyKeyEndorsement, type KeyHistory } from '../gateway/ledger/gateway-key.ts';
import { openLedgerDb } from '../gateway/ledger/ledger-db.ts';
import { demoGatewayConfig } from './demo-setup.ts';
import { keyCommand } from './key-command.ts';
import { main } from './main.ts';
import { runCaptured } from '../test/support/captured-command.ts';

const run = (argv: string[]): Promise<{ status: number; out: string; err: string }> => runCaptured(keyCommand, argv);

describe('meterbridge key', () => {
  let dir: string;
  let dataDir: string;
  let configFile: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'key-command-'));
    dataDir = path.join(dir, 'data');
    configFile = path.join(dir, 'gateway.json');
    await writeFile(configFile, JSON.stringify({ ...demoGatewayConfig({ mqtt: 0, http: 0, bank: 1 }, '0 0 1 1 *'), dataDir, devicesFile: path.join(dir, 'devices.json') }));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints help for the command and each subcommand, and usage with status 2 without one', async () => {
    const help = await run(['--help']);
    expect(help).toMatchObject({ status: 0, out: expect.stringContaining('meterbridge key rotate --config FILE') });
    expect((await run(['show', '--help'])).out).toMatch(/^Usage: meterbridge key show --config FILE/);
    expect((await run(['rotate', '-h'])).out).toMatch(/^Usage: meterbridge key rotate --config FILE[\s\S]*Stop the gateway first/);
    expect((await run([])).status).toBe(2);
    expect((await run(['burn'])).status).toBe(2);
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await main(['--help'])).toBe(0);
      expect(stdout.mock.calls.map((c) => String(c[0])).join('')).toMatch(/\n {2}key +show or rotate the gateway's signing key/);
    } finally {
      stdout.mockRestore();
    }
  });

  it('shows the current key and the history', async () => {
    const { current } = await loadKeyring(dataDir);
    const { status, out } = await run(['show', '--config', configFile]);
    expect(status).toBe(0);
    expect(out).toContain(`keyId       ${current.keyId}`);
    expect(out).toContain(`public key  ${Buffer.from(current.publicKey).toString('hex')}`);
    expect(out).toContain('Key history (1 key, oldest first)');
    expect(out).toContain('valid 1970-01-01T00:00:00.000Z to now (current) · first key');
  });

  it('says there is no key before the gateway first started, with status 1', async () => {
    for (const action of ['show', 'rotate']) {
      const { status, err } = await run([action, '--config', configFile]);
      expect(status).toBe(1);
      expect(err).toContain('holds no key history yet');
    }
  });

  it('refuses to rotate while a gateway holds the ledger lock, and changes nothing', async () => {
    const { current } = await loadKeyring(dataDir);
    const before = await readFile(path.join(dataDir, GATEWAY_KEYS_FILE), 'utf8');
    const db = await openLedgerDb(path.join(dataDir, 'ledger'));
    try {
      const { status, out, err } = await run(['rotate', '--config', configFile]);
      expect(status).toBe(1);
      expect(out).toBe('');
      expect(err).toMatch(/is in use by a running gateway; stop the gateway first/);
    } finally {
      await db.close();
    }
    expect(await readFile(path.join(dataDir, GATEWAY_KEYS_FILE), 'utf8')).toBe(before);
    expect((await loadKeyring(dataDir)).current.keyId).toBe(current.keyId);
  });

  it('rotates with the gateway stopped: prints the new key, and show lists both', async () => {
    const old = (await loadKeyring(dataDir)).current;
    const { status, out } = await run(['rotate', '--config', configFile]);
    expect(status).toBe(0);
    const history = JSON.parse(await readFile(path.join(dataDir, GATEWAY_KEYS_FILE), 'utf8')) as KeyHistory;
    const fresh = history.keys[1]!;
    expect(out).toContain(`new public key  ${fresh.publicKey}`);
    expect(out).toContain(`Receipts signed before stay verifiable with the old key ${old.keyId}`);
    expect(verifyKeyEndorsement(history.endorsements[0]!, history.keys[0]!.publicKey)).toBe(true);
    expect((await loadKeyring(dataDir)).current.keyId).toBe(fresh.keyId);
    const shown = (await run(['show', '--config', configFile])).out;
    expect(shown).toContain(`keyId       ${fresh.keyId}`);
    expect(shown).toContain('Key history (2 keys, oldest first)');
    expect(shown).toContain(`${old.keyId}  ${history.keys[0]!.publicKey}`);
    expect(shown).toContain(`endorsed by ${old.keyId}`);
  });
});
