/**
 * Password hashes for devices and operators: scrypt from node:crypto, stored as
 * `scrypt$N$r$p$saltB64$hashB64`, compared in constant time.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/** N=2^14 costs ~16 MiB and tens of ms on a Pi-class core: slow for guessing, fine per connect. */
const COST = { N: 16_384, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const MAXMEM = 64 * 1024 * 1024;

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, KEY_BYTES, { ...COST, maxmem: MAXMEM });
  return `scrypt$${COST.N}$${COST.r}$${COST.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, saltB64, hashB64] = parts as [string, string, string, string, string, string];
  const params = { N: Number(n), r: Number(r), p: Number(p), maxmem: MAXMEM };
  if (![params.N, params.r, params.p].every((x) => Number.isSafeInteger(x) && x > 0) || params.N > 1 << 20) return false;
  const expected = Buffer.from(hashB64, 'base64');
  if (expected.length !== KEY_BYTES) return false;
  const actual = await scryptAsync(password, Buffer.from(saltB64, 'base64'), KEY_BYTES, params);
  return timingSafeEqual(actual, expected);
}

/** A random secret that survives copy and paste: 24 bytes, base64url. */
export function generateSecret(): string {
  return randomBytes(24).toString('base64url');
}

export function isPasswordHash(text: string): boolean {
  return /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/.test(text);
}
