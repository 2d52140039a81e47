import { statSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../auth/password-hash.ts';
import {
  csrfTokenMatches, INVITES_MAX, LEGACY_OPERATOR_FILE, LoginLockout, OperatorAccounts, OPERATORS_FILE, SessionStore, UNUSABLE_OPERATOR_HASH, type AccountResult,
} from './operators.ts';

// scrypt at the operators' cost takes ~50 ms: this file hashes or verifies about ten times in all.
const LEGACY_PASSWORD = 'correct horse battery staple';
const DAY_MS = 24 * 3_600_000;
const MIN_MS = 60_000;
const T0 = Date.parse('2026-11-01T00:00:00.000Z');

describe('OperatorAccounts', () => {
  let dir: string;
  let nowMs: number;
  const clock = (): number => nowMs;
  let legacyHash: string;
  const file = (): string => path.join(dir, OPERATORS_FILE);
  /** An accounts file whose first operator `admin` came from the legacy login: no hashing needed. */
  const openWithAdmin = async (): Promise<OperatorAccounts> => {
    await writeFile(path.join(dir, LEGACY_OPERATOR_FILE), JSON.stringify({ username: 'admin', passwordHash: legacyHash }));
    return OperatorAccounts.open(dir, { clock });
  };

  beforeAll(async () => {
    legacyHash = await hashPassword(LEGACY_PASSWORD, 'operator');
  });
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'operators-'));
    nowMs = T0;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('setup link', () => {
    it('lets the first operator choose a name and password once, then stops working', async () => {
      const accounts = await OperatorAccounts.open(dir, { clock });
      expect(accounts.needsSetup).toBe(true);
      const { token, expiresAt } = await accounts.createSetupToken(DAY_MS);
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(expiresAt).toBe('2026-11-02T00:00:00.000Z');
      expect(await readFile(file(), 'utf8')).not.toContain(token);

      expect(await accounts.completeSetup(token, 'alice', 'a long password')).toEqual({ ok: true, username: 'alice' });
      expect(accounts.needsSetup).toBe(false);
      expect(accounts.list()).toEqual([{ username: 'alice', createdAt: '2026-11-01T00:00:00.000Z' }]);
      expect(await accounts.completeSetup(token, 'mallory', 'another long password')).toEqual({ ok: false, field: 'token', reason: 'setup is already done' });

      const reopened = await OperatorAccounts.open(dir, { clock });
      expect(reopened.list().map((o) => o.username)).toEqual(['alice']);
      expect(await reopened.verify('alice', 'a long password')).toBe(true);
    });

    it('refuses a wrong token and keeps the right one usable', async () => {
      const accounts = await OperatorAccounts.open(dir, { clock });
      const { token } = await accounts.createSetupToken(DAY_MS);
      const wrong = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
      for (const bad of [wrong, '', 'x'.repeat(10_000)]) {
        expect(await accounts.completeSetup(bad, 'alice', 'a long password')).toEqual({ ok: false, field: 'token', reason: 'setup link is not valid' });
      }
      expect(accounts.needsSetup).toBe(true);
      expect(await accounts.completeSetup(token, 'Alice', 'a long password')).toMatchObject({ ok: false, field: 'username' });
    });

    it('refuses an expired token and forgets it', async () => {
      const accounts = await OperatorAccounts.open(dir, { clock });
      const { token } = await accounts.createSetupToken(DAY_MS);
      nowMs = T0 + DAY_MS;
      expect(await accounts.completeSetup(token, 'alice', 'a long password')).toEqual({ ok: false, field: 'token', reason: 'setup link has expired' });
      nowMs = T0;
      expect(await accounts.completeSetup(token, 'alice', 'a long password')).toEqual({ ok: false, field: 'token', reason: 'setup link is not valid' });
      expect(JSON.parse(await readFile(file(), 'utf8'))).toMatchObject({ v: 1, setup: null });
    });

    it('replaces an earlier setup token with a new one', async () => {
      const accounts = await OperatorAccounts.open(dir, { clock });
      const first = await accounts.createSetupToken(DAY_MS);
      await accounts.createSetupToken(DAY_MS);
      expect(await accounts.completeSetup(first.token, 'alice', 'a long password')).toMatchObject({ ok: false, field: 'token', reason: 'setup link is not valid' });
    });

    it('makes no setup token once an operator exists', async () => {
      const accounts = await openWithAdmin();
      await expect(accounts.createSetupToken(DAY_MS)).rejects.toMatchObject({ code: 'MB_OPERATORS_SETUP_DONE' });
    });

    it('names the field and the bound that a name or password breaks', async () => {
      const accounts = await OperatorAccounts.open(dir, { clock });
      const { token } = await accounts.createSetupToken(DAY_MS);
      const cases: Array<[string, string, AccountResult]> = [
        ['', 'a long password', { ok: false, field: 'username', reason: expect.stringMatching(/^username must be 1 to 32 characters of a-z, 0-9/) as string }],
        ['-alice', 'a long password', { ok: false, field: 'username', reason: expect.stringContaining('starting with a letter or digit') as string }],
        ['a'.repeat(33), 'a long password', { ok: false, field: 'username', reason: expect.stringContaining('1 to 32') as string }],
        ['al ice', 'a long password', { ok: false, field: 'username', reason: expect.stringContaining('username must') as string }],
        ['alice', 'short pass1', { ok: false, field: 'password', reason: 'password must be at least 12 characters' }],
        ['alice', '🔑'.repeat(11), { ok: false, field: 'password', reason: 'password must be at least 12 characters' }],
        ['alice', 'p'.repeat(257), { ok: false, field: 'password', reason: 'password must be at most 256 characters' }],
        ['alice', 'p'.repeat(100_000), { ok: false, field: 'password', reason: 'password must be at most 256 characters' }],
      ];
      for (const [username, password, expected] of cases) expect(await accounts.completeSetup(token, username, password)).toEqual(expected);
      expect(accounts.needsSetup).toBe(true);
    });
  });

  describe('invitations', () => {
    it('lets an invited operator join once, recording who invited them', async () => {
      const accounts = await openWithAdmin();
      const { token, expiresAt } = await accounts.createInvite('admin', DAY_MS);
      expect(expiresAt).toBe('2026-11-02T00:00:00.000Z');
      nowMs = T0 + 1000;
      // Two submissions at once: only one may create an account.
      const results = await Promise.all([
        accounts.acceptInvite(token, 'bob', 'bobs long password'),
        accounts.acceptInvite(token, 'carol', 'carols long password'),
      ]);
      expect(results).toEqual([
        { ok: true, username: 'bob' },
        { ok: false, field: 'token', reason: 'invitation is not valid or was used already' },
      ]);
      expect(accounts.list()).toEqual([
        { username: 'admin', createdAt: '2026-11-01T00:00:00.000Z', note: 'imported' },
        { username: 'bob', createdAt: '2026-11-01T00:00:01.000Z', invitedBy: 'admin' },
      ]);
    });

    it('refuses an expired invitation', async () => {
      const accounts = await openWithAdmin();
      const { token } = await accounts.createInvite('admin', DAY_MS);
      nowMs = T0 + DAY_MS;
      expect(await accounts.acceptInvite(token, 'bob', 'bobs long password')).toEqual({ ok: false, field: 'token', reason: 'invitation has expired' });
      expect(JSON.parse(await readFile(file(), 'utf8'))).toMatchObject({ invites: [] });
    });

    it('refuses a name that is taken and keeps the invitation for another try', async () => {
      const accounts = await openWithAdmin();
      const { token } = await accounts.createInvite('admin', DAY_MS);
      expect(await accounts.acceptInvite(token, 'admin', 'a long password')).toEqual({ ok: false, field: 'username', reason: 'username is taken already' });
      expect(await accounts.acceptInvite(token, 'bob', 'short')).toEqual({ ok: false, field: 'password', reason: 'password must be at least 12 characters' });
      expect(JSON.parse(await readFile(file(), 'utf8'))).toMatchObject({ invites: [{ by: 'admin' }] });
    });

    it('keeps only the newest 20 open invitations', async () => {
      const accounts = await openWithAdmin();
      const first = await accounts.createInvite('admin', DAY_MS);
      for (let i = 0; i < INVITES_MAX; i++) await accounts.createInvite('admin', DAY_MS);
      expect((JSON.parse(await readFile(file(), 'utf8')) as { invites: unknown[] }).invites).toHaveLength(INVITES_MAX);
      expect(await accounts.acceptInvite(first.token, 'bob', 'bobs long password')).toMatchObject({ ok: false, field: 'token' });
    });

    it('refuses to invite for someone who is not an operator', async () => {
      const accounts = await openWithAdmin();
      await expect(accounts.createInvite('ghost', DAY_MS)).rejects.toMatchObject({ code: 'MB_OPERATORS_UNKNOWN_INVITER' });
    });
  });

  describe('verify', () => {
    it('accepts the right password and refuses a wrong one or an unknown user', async () => {
      const accounts = await openWithAdmin();
      expect(await accounts.verify('admin', LEGACY_PASSWORD)).toBe(true);
      expect(await accounts.verify('admin', 'wrong password here')).toBe(false);
      expect(await accounts.verify('nobody', LEGACY_PASSWORD)).toBe(false);
    });

    it('checks an unknown name against a stand-in hash at the operators\' full scrypt cost, so timing does not tell which names exist', async () => {
      // Its cost parameters are those of a real operator hash (a malformed or cheaper
      // stand-in would answer sooner), and it is well-formed: scrypt runs and refuses.
      const cost = (hash: string): string => hash.split('$').slice(0, 4).join('$');
      expect(cost(UNUSABLE_OPERATOR_HASH)).toBe(cost(await hashPassword('any password at all', 'operator')));
      expect(await verifyPassword(LEGACY_PASSWORD, UNUSABLE_OPERATOR_HASH)).toBe(false);
      expect(await verifyPassword('', UNUSABLE_OPERATOR_HASH)).toBe(false);
    });
  });

  describe('the legacy single login', () => {
    it('is imported as the first operator and written to operators.json, 0600', async () => {
      const accounts = await openWithAdmin();
      expect(accounts.needsSetup).toBe(false);
      expect(accounts.list()).toEqual([{ username: 'admin', createdAt: '2026-11-01T00:00:00.000Z', note: 'imported' }]);
      expect(statSync(file()).mode & 0o777).toBe(0o600);
      const stored = JSON.parse(await readFile(file(), 'utf8')) as { v: number; operators: Array<{ passwordHash: string }> };
      expect(stored.v).toBe(1);
      expect(stored.operators[0]?.passwordHash).toBe(legacyHash);
      expect((await readdir(dir)).sort()).toEqual([LEGACY_OPERATOR_FILE, OPERATORS_FILE]);
    });

    it('is refused with the file named when damaged', async () => {
      await writeFile(path.join(dir, LEGACY_OPERATOR_FILE), '{"username":"admin"}');
      await expect(OperatorAccounts.open(dir)).rejects.toThrow(`Cannot read ${path.join(dir, LEGACY_OPERATOR_FILE)}: not { username, passwordHash }`);
    });
  });

  describe('operators.json', () => {
    it('is refused with the file named when it is not JSON or not version 1', async () => {
      await writeFile(file(), '{"v":1,"operators":[');
      await expect(OperatorAccounts.open(dir)).rejects.toThrow(`Cannot read ${file()}: `);
      await writeFile(file(), '{"v":2,"operators":[],"invites":[],"setup":null}');
      await expect(OperatorAccounts.open(dir)).rejects.toMatchObject({ code: 'MB_OPERATORS_FILE_UNREADABLE', message: `Cannot read ${file()}: not a version 1 operators file` });
    });

    it('stays 0600 when written again', async () => {
      const accounts = await OperatorAccounts.open(dir, { clock });
      await accounts.createSetupToken(DAY_MS);
      await accounts.createSetupToken(DAY_MS);
      expect(statSync(file()).mode & 0o777).toBe(0o600);
      expect(await readdir(dir)).toEqual([OPERATORS_FILE]);
    });
  });

  describe('resetAll', () => {
    it('removes every operator and invitation, and the legacy login does not come back', async () => {
      const accounts = await openWithAdmin();
      const invite = await accounts.createInvite('admin', DAY_MS);
      await accounts.resetAll();
      expect(accounts.needsSetup).toBe(true);
      expect(accounts.list()).toEqual([]);
      expect(await accounts.acceptInvite(invite.token, 'bob', 'bobs long password')).toMatchObject({ ok: false, field: 'token' });

      const reopened = await OperatorAccounts.open(dir, { clock });
      expect(reopened.needsSetup).toBe(true);
      const { token } = await reopened.createSetupToken(DAY_MS);
      expect(await reopened.completeSetup(token, 'alice', 'a long password')).toEqual({ ok: true, username: 'alice' });
    });
  });
});

describe('SessionStore', () => {
  it('finds a session until its ttl ends, then forgets it', () => {
    const sessions = new SessionStore(30 * MIN_MS);
    const { token, csrfToken } = sessions.create('alice', T0);
    expect(token).not.toBe(csrfToken);
    expect(sessions.get(token, T0 + 30 * MIN_MS - 1)).toEqual({ username: 'alice', csrfToken });
    expect(sessions.get(token, T0 + 30 * MIN_MS)).toBeUndefined();
    expect(sessions.get(token, T0)).toBeUndefined();
    expect(sessions.get(undefined, T0)).toBeUndefined();
    expect(sessions.get('', T0)).toBeUndefined();
  });

  it('drops the oldest session when full', () => {
    const sessions = new SessionStore(MIN_MS, 2);
    const a = sessions.create('a', T0);
    const b = sessions.create('b', T0 + 1);
    const c = sessions.create('c', T0 + 2);
    expect(sessions.get(a.token, T0 + 3)).toBeUndefined();
    expect(sessions.get(b.token, T0 + 3)?.username).toBe('b');
    expect(sessions.get(c.token, T0 + 3)?.username).toBe('c');
  });

  it('deletes one session, or every session of a user', () => {
    const sessions = new SessionStore(MIN_MS);
    const a1 = sessions.create('alice', T0);
    const a2 = sessions.create('alice', T0);
    const b = sessions.create('bob', T0);
    sessions.delete(b.token);
    sessions.delete(undefined);
    expect(sessions.get(b.token, T0)).toBeUndefined();
    expect(sessions.get(a1.token, T0)).toBeDefined();
    sessions.deleteUser('alice');
    expect(sessions.get(a1.token, T0)).toBeUndefined();
    expect(sessions.get(a2.token, T0)).toBeUndefined();
  });
});

describe('LoginLockout', () => {
  const keys = ['ip:10.0.0.1', 'user:alice'] as const;

  it('allows five failures, then locks for 1, 2, 4 … minutes up to an hour', () => {
    const lockout = new LoginLockout();
    let nowMs = T0;
    for (let i = 0; i < 5; i++) {
      expect(lockout.lockedForMs(keys, nowMs)).toBe(0);
      lockout.fail(keys, nowMs);
    }
    expect(lockout.lockedForMs(keys, nowMs)).toBe(0);
    const locksMin: number[] = [];
    for (let i = 0; i < 9; i++) {
      lockout.fail(keys, nowMs);
      const lockedMs = lockout.lockedForMs(keys, nowMs);
      locksMin.push(lockedMs / MIN_MS);
      // A patient guesser waits out each lock: the locks must keep growing anyway.
      nowMs += lockedMs;
      expect(lockout.lockedForMs(keys, nowMs)).toBe(0);
    }
    expect(locksMin).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
  });

  it('forgets failures after a quiet window', () => {
    const lockout = new LoginLockout();
    for (let i = 0; i < 5; i++) lockout.fail(keys, T0 + i);
    lockout.fail(keys, T0 + 15 * MIN_MS + 10);
    expect(lockout.lockedForMs(keys, T0 + 15 * MIN_MS + 10)).toBe(0);

    for (let i = 0; i < 5; i++) lockout.fail(keys, T0 + 20 * MIN_MS);
    expect(lockout.lockedForMs(keys, T0 + 20 * MIN_MS)).toBe(MIN_MS);
    // Quiet for a window after the lock ended: free failures again.
    const laterMs = T0 + 21 * MIN_MS + 15 * MIN_MS;
    lockout.fail(keys, laterMs);
    expect(lockout.lockedForMs(keys, laterMs)).toBe(0);
  });

  it('forgets a key on success', () => {
    const lockout = new LoginLockout();
    for (let i = 0; i < 6; i++) lockout.fail(keys, T0);
    expect(lockout.lockedForMs(keys, T0)).toBe(MIN_MS);
    lockout.succeed(keys);
    expect(lockout.lockedForMs(keys, T0)).toBe(0);
    lockout.fail(keys, T0);
    expect(lockout.lockedForMs(keys, T0)).toBe(0);
  });

  it('keeps keys apart and reports the longest lock over the keys asked', () => {
    const lockout = new LoginLockout({ freeFailures: 1 });
    lockout.fail(['ip:a', 'user:x'], T0);
    lockout.fail(['ip:a', 'user:x'], T0);
    lockout.fail(['ip:a'], T0);
    expect(lockout.lockedForMs(['ip:a'], T0)).toBe(2 * MIN_MS);
    expect(lockout.lockedForMs(['user:x'], T0)).toBe(MIN_MS);
    expect(lockout.lockedForMs(['ip:b', 'user:y'], T0)).toBe(0);
    expect(lockout.lockedForMs(['ip:b', 'user:x'], T0 + 30_000)).toBe(30_000);
  });

  it('tracks at most keysMax keys, dropping the oldest', () => {
    const lockout = new LoginLockout({ freeFailures: 0, keysMax: 2 });
    lockout.fail(['ip:a'], T0);
    lockout.fail(['ip:b'], T0);
    lockout.fail(['ip:c'], T0);
    expect(lockout.lockedForMs(['ip:a'], T0)).toBe(0);
    expect(lockout.lockedForMs(['ip:b'], T0)).toBe(MIN_MS);
    expect(lockout.lockedForMs(['ip:c'], T0)).toBe(MIN_MS);
  });
});

describe('csrfTokenMatches', () => {
  it('matches only the same string', () => {
    expect(csrfTokenMatches('abc123', 'abc123')).toBe(true);
    expect(csrfTokenMatches('abc123', 'abc124')).toBe(false);
    expect(csrfTokenMatches('abc123', 'abc12')).toBe(false);
    expect(csrfTokenMatches('abc123', undefined)).toBe(false);
    expect(csrfTokenMatches('abc123', ['abc123'])).toBe(false);
    expect(csrfTokenMatches(undefined, 'abc123')).toBe(false);
    expect(csrfTokenMatches('', '')).toBe(false);
    expect(csrfTokenMatches('é', 'ab')).toBe(false);
  });
});
