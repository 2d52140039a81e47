/**
 * The operator's login: no default password. On first start (or on request) a random
 * one is made, shown once to whoever started the gateway, and only its scrypt hash is
 * kept (0600). Sessions are random tokens held in memory, bounded and expiring.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateSecret, hashPassword, verifyPassword } from '../auth/password-hash.ts';

export const OPERATOR_FILE = 'operator-login.json';
export const OPERATOR_USERNAME = 'operator';

interface OperatorFile {
  username: string;
  passwordHash: string;
}

/** Returns the password only when it was just made: the caller shows it once. */
export async function ensureOperatorLogin(dataDir: string, options: { reset: boolean }): Promise<{ username: string; password?: string }> {
  const file = path.join(dataDir, OPERATOR_FILE);
  if (!options.reset) {
    try {
      const stored = JSON.parse(await readFile(file, 'utf8')) as OperatorFile;
      return { username: stored.username };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`Cannot read ${file}: ${(error as Error).message}`, { cause: error });
    }
  }
  const password = generateSecret();
  const stored: OperatorFile = { username: OPERATOR_USERNAME, passwordHash: await hashPassword(password, 'operator') };
  await writeFile(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600 });
  return { username: OPERATOR_USERNAME, password };
}

export async function checkOperatorLogin(dataDir: string, username: string, password: string): Promise<boolean> {
  const stored = JSON.parse(await readFile(path.join(dataDir, OPERATOR_FILE), 'utf8')) as OperatorFile;
  const sameUser = username.length === stored.username.length && timingSafeEqual(Buffer.from(username), Buffer.from(stored.username));
  const passwordOk = await verifyPassword(password, stored.passwordHash);
  return sameUser && passwordOk;
}

export class SessionStore {
  readonly #sessions = new Map<string, number>();
  readonly #ttlMs: number;
  readonly #max: number;

  constructor(ttlMs: number, max = 64) {
    this.#ttlMs = ttlMs;
    this.#max = max;
  }

  create(nowMs: number): string {
    this.#expire(nowMs);
    if (this.#sessions.size >= this.#max) {
      // Oldest session goes first; Map keeps insertion order.
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#sessions.delete(oldest);
    }
    const token = randomBytes(32).toString('base64url');
    this.#sessions.set(token, nowMs + this.#ttlMs);
    return token;
  }

  valid(token: string | undefined, nowMs: number): boolean {
    if (!token) return false;
    const expiresMs = this.#sessions.get(token);
    if (expiresMs === undefined) return false;
    if (expiresMs <= nowMs) {
      this.#sessions.delete(token);
      return false;
    }
    return true;
  }

  delete(token: string | undefined): void {
    if (token) this.#sessions.delete(token);
  }

  #expire(nowMs: number): void {
    for (const [token, expiresMs] of this.#sessions) if (expiresMs <= nowMs) this.#sessions.delete(token);
  }
}

/** Failed logins per client address, to slow guessing: at most `max` per window. */
export class LoginThrottle {
  readonly #failures = new Map<string, number[]>();
  constructor(readonly max = 10, readonly windowMs = 5 * 60_000) {}

  blocked(address: string, nowMs: number): boolean {
    const recent = (this.#failures.get(address) ?? []).filter((t) => t > nowMs - this.windowMs);
    this.#failures.set(address, recent);
    return recent.length >= this.max;
  }

  fail(address: string, nowMs: number): void {
    if (this.#failures.size > 10_000) this.#failures.clear();
    this.#failures.set(address, [...(this.#failures.get(address) ?? []), nowMs]);
  }
}
