/**
 * Operator accounts for the operator page (docs/operator-page.md): no default password; the
 * first operator comes through a one-time setup link, later ones through one-time
 * invitations. Only scrypt hashes of passwords and SHA-256 hashes of link tokens are kept,
 * in `<dataDir>/operators.json` (0600). Also the in-memory sessions, the login lockout and
 * the CSRF check the routes use.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomically } from '../atomic-file.ts';
import { hashPassword, isPasswordHash, SCRYPT_COST, verifyPassword } from '../auth/password-hash.ts';

export const OPERATORS_FILE = 'operators.json';
/** Written by gateways before operator accounts (one login); imported once as the first operator. */
export const LEGACY_OPERATOR_FILE = 'operator-login.json';
export const OPERATORS_MAX = 50;
export const INVITES_MAX = 20;
export const PASSWORD_CHARS_MIN = 12;
/** scrypt takes any length, but a bound keeps a megabyte "password" from being a cheap DoS. */
export const PASSWORD_CHARS_MAX = 256;
const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,31}$/;
const TOKEN_CHARS_MAX = 128;

/**
 * Matches no password (its key is all zeros) at the operators' scrypt cost: an unknown user
 * name costs what a known one does. UNUSABLE_PASSWORD_HASH is at the devices' lower cost,
 * so its faster answer would tell which user names exist.
 */
export const UNUSABLE_OPERATOR_HASH = `scrypt$${SCRYPT_COST.operator.N}$${SCRYPT_COST.operator.r}$${SCRYPT_COST.operator.p}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`;

export type AccountResult = { ok: true; username: string } | { ok: false; field: 'token' | 'username' | 'password'; reason: string };
export type AccountRefusal = Extract<AccountResult, { ok: false }>;
export interface OperatorSummary { username: string; createdAt: string; invitedBy?: string; note?: string }
export interface LinkToken { token: string; expiresAt: string }

export type OperatorAccountsErrorCode = 'MB_OPERATORS_FILE_UNREADABLE' | 'MB_OPERATORS_SETUP_DONE' | 'MB_OPERATORS_FULL' | 'MB_OPERATORS_UNKNOWN_INVITER';

export class OperatorAccountsError extends Error {
  readonly code: OperatorAccountsErrorCode;

  constructor(message: string, code: OperatorAccountsErrorCode, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'OperatorAccountsError';
    this.code = code;
  }
}

interface StoredOperator { username: string; passwordHash: string; createdAt: string; invitedBy?: string; note?: string }
interface StoredToken { tokenSha256: string; expiresAt: string }
interface StoredInvite extends StoredToken { by: string; createdAt: string }
interface OperatorsFileV1 { v: 1; operators: StoredOperator[]; invites: StoredInvite[]; setup: StoredToken | null }

export class OperatorAccounts {
  readonly #file: string;
  readonly #clock: () => number;
  #state: OperatorsFileV1;
  /** Changes run one at a time, so two uses of one invitation cannot both pass the check. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(file: string, state: OperatorsFileV1, clock: () => number) {
    this.#file = file;
    this.#state = state;
    this.#clock = clock;
  }

  static async open(dataDir: string, options: { clock?: () => number } = {}): Promise<OperatorAccounts> {
    const clock = options.clock ?? Date.now;
    const file = path.join(dataDir, OPERATORS_FILE);
    const stored = await readJson(file);
    if (stored !== undefined) return new OperatorAccounts(file, parseOperatorsFile(file, stored), clock);
    const accounts = new OperatorAccounts(file, { v: 1, operators: [], invites: [], setup: null }, clock);
    const legacyFile = path.join(dataDir, LEGACY_OPERATOR_FILE);
    const legacy = await readJson(legacyFile);
    if (legacy !== undefined) {
      const { username, passwordHash } = parseLegacyFile(legacyFile, legacy);
      const operator: StoredOperator = { username, passwordHash, createdAt: new Date(clock()).toISOString(), note: 'imported' };
      // Written at once: from now on operators.json alone decides, even after resetAll.
      await accounts.#commit({ ...accounts.#state, operators: [operator] });
    }
    return accounts;
  }

  get needsSetup(): boolean {
    return this.#state.operators.length === 0;
  }

  list(): OperatorSummary[] {
    return this.#state.operators.map(({ username, createdAt, invitedBy, note }) => ({
      username, createdAt, ...(invitedBy === undefined ? {} : { invitedBy }), ...(note === undefined ? {} : { note }),
    }));
  }

  /** Replaces any earlier setup token. Throws MB_OPERATORS_SETUP_DONE once an operator exists. */
  async createSetupToken(ttlMs: number): Promise<LinkToken> {
    assertTtl(ttlMs);
    return this.#serial(async () => {
      if (!this.needsSetup) throw new OperatorAccountsError('Cannot create a setup link: an operator account exists already', 'MB_OPERATORS_SETUP_DONE');
      const { token, stored } = newToken(this.#clock() + ttlMs);
      await this.#commit({ ...this.#state, setup: stored });
      return { token, expiresAt: stored.expiresAt };
    });
  }

  async completeSetup(token: string, username: string, password: string): Promise<AccountResult> {
    return this.#serial(async () => {
      const nowMs = this.#clock();
      const setup = this.#state.setup;
      if (!this.needsSetup) return this.#refuse({ ...this.#state, setup: null }, 'token', 'setup is already done');
      if (setup === null) return refused('token', 'setup link is not valid');
      const matches = findToken([setup], token) !== undefined;
      if (isExpired(setup, nowMs)) return this.#refuse({ ...this.#state, setup: null }, 'token', matches ? 'setup link has expired' : 'setup link is not valid');
      if (!matches) return refused('token', 'setup link is not valid');
      const invalid = checkCredentials(username, password);
      if (invalid !== undefined) return invalid;
      const operator: StoredOperator = { username, passwordHash: await hashPassword(password, 'operator'), createdAt: new Date(nowMs).toISOString() };
      await this.#commit({ ...this.#state, operators: [operator], setup: null });
      return { ok: true, username };
    });
  }

  /** `by` must be an operator. Keeps the newest INVITES_MAX open invitations. */
  async createInvite(by: string, ttlMs: number): Promise<LinkToken> {
    assertTtl(ttlMs);
    return this.#serial(async () => {
      const nowMs = this.#clock();
      if (!this.#state.operators.some((o) => o.username === by)) {
        throw new OperatorAccountsError(`Cannot invite an operator for ${by}: no such operator`, 'MB_OPERATORS_UNKNOWN_INVITER');
      }
      if (this.#state.operators.length >= OPERATORS_MAX) {
        throw new OperatorAccountsError(`Cannot invite an operator: there are ${OPERATORS_MAX} already, the most allowed`, 'MB_OPERATORS_FULL');
      }
      const { token, stored } = newToken(nowMs + ttlMs);
      const openInvites = this.#state.invites.filter((invite) => !isExpired(invite, nowMs));
      const invites = [...openInvites, { ...stored, by, createdAt: new Date(nowMs).toISOString() }].slice(-INVITES_MAX);
      await this.#commit({ ...this.#state, invites });
      return { token, expiresAt: stored.expiresAt };
    });
  }

  async acceptInvite(token: string, username: string, password: string): Promise<AccountResult> {
    return this.#serial(async () => {
      const nowMs = this.#clock();
      const index = findToken(this.#state.invites, token);
      const openInvites = this.#state.invites.filter((invite) => !isExpired(invite, nowMs));
      const pruned = { ...this.#state, invites: openInvites };
      const invite = index === undefined ? undefined : this.#state.invites[index];
      if (invite === undefined) return this.#refuse(pruned, 'token', 'invitation is not valid or was used already');
      if (isExpired(invite, nowMs)) return this.#refuse(pruned, 'token', 'invitation has expired');
      const invalid = checkCredentials(username, password);
      if (invalid !== undefined) return this.#refuse(pruned, invalid.field, invalid.reason);
      if (this.#state.operators.some((o) => o.username === username)) return this.#refuse(pruned, 'username', 'username is taken already');
      if (this.#state.operators.length >= OPERATORS_MAX) return this.#refuse(pruned, 'token', `there are ${OPERATORS_MAX} operators already, the most allowed`);
      const operator: StoredOperator = {
        username, passwordHash: await hashPassword(password, 'operator'), createdAt: new Date(nowMs).toISOString(), invitedBy: invite.by,
      };
      await this.#commit({ ...pruned, operators: [...this.#state.operators, operator], invites: openInvites.filter((i) => i !== invite) });
      return { ok: true, username };
    });
  }

  /** Always runs one scrypt, for unknown users too, so the answer's timing does not tell who exists. */
  async verify(username: string, password: string): Promise<boolean> {
    if (typeof username !== 'string' || typeof password !== 'string' || password.length > 2 * PASSWORD_CHARS_MAX) return false;
    const operator = this.#state.operators.find((o) => o.username === username);
    const matches = await verifyPassword(password, operator?.passwordHash ?? UNUSABLE_OPERATOR_HASH);
    return operator !== undefined && matches;
  }

  /** Removes every operator, invitation and setup token; the caller then makes a new setup token. */
  async resetAll(): Promise<void> {
    await this.#serial(() => this.#commit({ v: 1, operators: [], invites: [], setup: null }));
  }

  #serial<T>(run: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** Saves `state` (dropping expired tokens seen on the way) when it differs, then refuses. */
  async #refuse(state: OperatorsFileV1, field: AccountRefusal['field'], reason: string): Promise<AccountRefusal> {
    if (state.setup !== this.#state.setup || state.invites.length !== this.#state.invites.length) await this.#commit(state);
    return refused(field, reason);
  }

  /** Memory changes only once the file has: a failed write leaves both as they were. */
  async #commit(state: OperatorsFileV1): Promise<void> {
    await writeFileAtomically(this.#file, `${JSON.stringify(state, null, 2)}\n`, { temporary: 'unique' });
    this.#state = state;
  }
}

function refused(field: AccountRefusal['field'], reason: string): AccountRefusal {
  return { ok: false, field, reason };
}

function checkCredentials(username: unknown, password: unknown): AccountRefusal | undefined {
  if (typeof username !== 'string' || !USERNAME_PATTERN.test(username)) {
    return refused('username', 'username must be 1 to 32 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit');
  }
  if (typeof password !== 'string') return refused('password', `password must be at least ${PASSWORD_CHARS_MIN} characters`);
  // Characters, not UTF-16 units: an emoji counts once. Skip the spread for absurd lengths.
  const chars = password.length > 2 * PASSWORD_CHARS_MAX ? Infinity : [...password].length;
  if (chars < PASSWORD_CHARS_MIN) return refused('password', `password must be at least ${PASSWORD_CHARS_MIN} characters`);
  if (chars > PASSWORD_CHARS_MAX) return refused('password', `password must be at most ${PASSWORD_CHARS_MAX} characters`);
  return undefined;
}

function assertTtl(ttlMs: number): void {
  assert(Number.isSafeInteger(ttlMs) && ttlMs > 0, `ttlMs must be a positive integer, got ${ttlMs}`);
}

function newToken(expiresMs: number): { token: string; stored: StoredToken } {
  const token = randomBytes(32).toString('base64url');
  return { token, stored: { tokenSha256: sha256Hex(token), expiresAt: new Date(expiresMs).toISOString() } };
}

/** Index of the entry whose hash matches; compares every entry in constant time. */
function findToken(entries: readonly StoredToken[], token: unknown): number | undefined {
  if (typeof token !== 'string' || token.length === 0 || token.length > TOKEN_CHARS_MAX) return undefined;
  const given = Buffer.from(sha256Hex(token), 'hex');
  let found: number | undefined;
  entries.forEach((entry, index) => {
    if (timingSafeEqual(Buffer.from(entry.tokenSha256, 'hex'), given)) found = index;
  });
  return found;
}

function isExpired(entry: StoredToken, nowMs: number): boolean {
  return Date.parse(entry.expiresAt) <= nowMs;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OperatorAccountsError(`Cannot read ${file}: ${(error as Error).message}`, 'MB_OPERATORS_FILE_UNREADABLE', error);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new OperatorAccountsError(`Cannot read ${file}: ${(error as Error).message}`, 'MB_OPERATORS_FILE_UNREADABLE', error);
  }
}

function parseOperatorsFile(file: string, value: unknown): OperatorsFileV1 {
  const fail = (detail: string): never => {
    throw new OperatorAccountsError(`Cannot read ${file}: ${detail}`, 'MB_OPERATORS_FILE_UNREADABLE');
  };
  if (!isRecord(value) || value.v !== 1) return fail('not a version 1 operators file');
  const { operators, invites, setup } = value;
  if (!Array.isArray(operators) || !operators.every(isStoredOperator)) return fail('operators must be a list of { username, passwordHash, createdAt }');
  if (!Array.isArray(invites) || !invites.every(isStoredInvite)) {
    return fail('invites must be a list of { tokenSha256, expiresAt, by, createdAt }');
  }
  if (setup !== null && !isStoredToken(setup)) return fail('setup must be null or { tokenSha256, expiresAt }');
  return { v: 1, operators, invites, setup };
}

function parseLegacyFile(file: string, value: unknown): { username: string; passwordHash: string } {
  if (!isRecord(value) || typeof value.username !== 'string' || typeof value.passwordHash !== 'string' || !isPasswordHash(value.passwordHash)) {
    throw new OperatorAccountsError(`Cannot read ${file}: not { username, passwordHash }`, 'MB_OPERATORS_FILE_UNREADABLE');
  }
  return { username: value.username, passwordHash: value.passwordHash };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStoredOperator(value: unknown): value is StoredOperator {
  return isRecord(value) && typeof value.username === 'string' && typeof value.passwordHash === 'string' && isPasswordHash(value.passwordHash)
    && typeof value.createdAt === 'string' && (value.invitedBy === undefined || typeof value.invitedBy === 'string')
    && (value.note === undefined || typeof value.note === 'string');
}

function isStoredInvite(value: unknown): value is StoredInvite {
  return isStoredToken(value) && isRecord(value) && typeof value.by === 'string' && typeof value.createdAt === 'string';
}

function isStoredToken(value: unknown): value is StoredToken {
  return isRecord(value) && typeof value.tokenSha256 === 'string' && /^[0-9a-f]{64}$/.test(value.tokenSha256)
    && typeof value.expiresAt === 'string' && !Number.isNaN(Date.parse(value.expiresAt));
}

/** Logged-in sessions, in memory: a restart logs everyone out, which is fine for a few operators. */
export class SessionStore {
  readonly #sessions = new Map<string, { username: string; csrfToken: string; expiresMs: number }>();
  readonly #ttlMs: number;
  readonly #max: number;

  constructor(ttlMs: number, max = 64) {
    assert(ttlMs > 0 && Number.isSafeInteger(max) && max > 0, 'SessionStore needs ttlMs > 0 and max >= 1');
    this.#ttlMs = ttlMs;
    this.#max = max;
  }

  create(username: string, nowMs: number): { token: string; csrfToken: string } {
    for (const [token, session] of this.#sessions) if (session.expiresMs <= nowMs) this.#sessions.delete(token);
    if (this.#sessions.size >= this.#max) {
      // Map keeps insertion order: the first key is the oldest session.
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#sessions.delete(oldest);
    }
    const token = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    this.#sessions.set(token, { username, csrfToken, expiresMs: nowMs + this.#ttlMs });
    return { token, csrfToken };
  }

  get(token: string | undefined, nowMs: number): { username: string; csrfToken: string } | undefined {
    if (typeof token !== 'string' || token.length === 0) return undefined;
    const session = this.#sessions.get(token);
    if (session === undefined) return undefined;
    if (session.expiresMs <= nowMs) {
      this.#sessions.delete(token);
      return undefined;
    }
    return { username: session.username, csrfToken: session.csrfToken };
  }

  delete(token: string | undefined): void {
    if (typeof token === 'string') this.#sessions.delete(token);
  }

  deleteUser(username: string): void {
    for (const [token, session] of this.#sessions) if (session.username === username) this.#sessions.delete(token);
  }
}

export interface LoginLockoutOptions {
  freeFailures?: number;
  windowMs?: number;
  firstLockMs?: number;
  lockMsMax?: number;
  keysMax?: number;
}

interface LockoutState { failuresMs: number[]; locks: number; lockedUntilMs: number }

/**
 * Growing lockouts per key (`ip:<address>`, `user:<name>`): `freeFailures` failures within
 * `windowMs` are free; each one after that locks for firstLockMs, then twice as long each
 * time, up to lockMsMax. Once locked, the key stays escalated until it has been quiet for
 * `windowMs` after its lock ended: a plain sliding window would forget a patient guesser's
 * failures while they wait out the locks and hand them fresh free failures.
 */
export class LoginLockout {
  readonly #keys = new Map<string, LockoutState>();
  readonly #freeFailures: number;
  readonly #windowMs: number;
  readonly #firstLockMs: number;
  readonly #lockMsMax: number;
  readonly #keysMax: number;

  constructor(options: LoginLockoutOptions = {}) {
    this.#freeFailures = options.freeFailures ?? 5;
    this.#windowMs = options.windowMs ?? 15 * 60_000;
    this.#firstLockMs = options.firstLockMs ?? 60_000;
    this.#lockMsMax = options.lockMsMax ?? 3_600_000;
    this.#keysMax = options.keysMax ?? 10_000;
    assert(Number.isSafeInteger(this.#freeFailures) && this.#freeFailures >= 0, 'freeFailures must be an integer >= 0');
    assert(this.#windowMs > 0 && this.#firstLockMs > 0 && this.#lockMsMax >= this.#firstLockMs, 'LoginLockout needs windowMs > 0 and 0 < firstLockMs <= lockMsMax');
    assert(Number.isSafeInteger(this.#keysMax) && this.#keysMax > 0, 'keysMax must be an integer >= 1');
  }

  /** 0 when every key is free, else the longest remaining lock. */
  lockedForMs(keys: readonly string[], nowMs: number): number {
    let lockedMs = 0;
    for (const key of keys) lockedMs = Math.max(lockedMs, (this.#keys.get(key)?.lockedUntilMs ?? 0) - nowMs);
    return lockedMs;
  }

  fail(keys: readonly string[], nowMs: number): void {
    for (const key of keys) {
      const state = this.#keys.get(key) ?? { failuresMs: [], locks: 0, lockedUntilMs: 0 };
      if (state.locks > 0 && nowMs >= state.lockedUntilMs + this.#windowMs) {
        state.locks = 0;
        state.failuresMs = [];
      }
      state.failuresMs = state.failuresMs.filter((atMs) => atMs > nowMs - this.#windowMs);
      // Only the count up to the first lock matters; bounded so a flood cannot grow it.
      if (state.failuresMs.length <= this.#freeFailures) state.failuresMs.push(nowMs);
      if (state.locks > 0 || state.failuresMs.length > this.#freeFailures) {
        state.locks += 1;
        const lockMs = Math.min(this.#firstLockMs * 2 ** Math.min(state.locks - 1, 40), this.#lockMsMax);
        state.lockedUntilMs = Math.max(state.lockedUntilMs, nowMs + lockMs);
      }
      // Re-inserted so Map order is least recently failed first, for the eviction below.
      this.#keys.delete(key);
      this.#keys.set(key, state);
      if (this.#keys.size > this.#keysMax) {
        const oldest = this.#keys.keys().next().value;
        if (oldest !== undefined) this.#keys.delete(oldest);
      }
    }
  }

  succeed(keys: readonly string[]): void {
    for (const key of keys) this.#keys.delete(key);
  }
}

/** Timing-safe; false when either token is missing, not a string, or of another length. */
export function csrfTokenMatches(expected: string | undefined, given: unknown): boolean {
  if (typeof expected !== 'string' || expected.length === 0 || typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
