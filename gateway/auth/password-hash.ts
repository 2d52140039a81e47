/**
 * Password hashes for devices and operators: scrypt from node:crypto, stored as
 * `scrypt$N$r$p$saltB64$hashB64`, compared in constant time.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/**
 * Scrypt memory is 128·N·r bytes. Operators: N=2^14 (16 MiB, tens of ms on a Pi core).
 * Devices: their passwords are 192 random bits made by `device add`, so guessing is
 * hopeless at any cost; N=2^12 (4 MiB) keeps a reconnect storm of hundreds of devices
 * from pinning 16 MiB per libuv thread (glibc keeps such blocks in its arenas).
 */
export const SCRYPT_COST = {
  operator: { N: 16_384, r: 8, p: 1 },
  device: { N: 4_096, r: 8, p: 1 },
} as const;
const KEY_BYTES = 32;
const MAXMEM = 64 * 1024 * 1024;

/**
 * One scrypt at a time: it runs on the libuv pool, which LevelDB's fsynced writes share;
 * a burst of logins must not delay acknowledgements.
 */
let scryptQueue: Promise<unknown> = Promise.resolve();
function serialScrypt(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const run = scryptQueue.then(() => scryptAsync(password, salt, KEY_BYTES, { ...params, maxmem: MAXMEM }));
  scryptQueue = run.catch(() => undefined);
  return run;
}

export async function hashPassword(password: string, kind: keyof typeof SCRYPT_COST = 'device'): Promise<string> {
  const cost = SCRYPT_COST[kind];
  const salt = randomBytes(16);
  const hash = await serialScrypt(password, salt, cost);
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, saltB64, hashB64] = parts as [string, string, string, string, string, string];
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  if (![params.N, params.r, params.p].every((x) => Number.isSafeInteger(x) && x > 0) || params.N > 1 << 20) return false;
  const expected = Buffer.from(hashB64, 'base64');
  if (expected.length !== KEY_BYTES) return false;
  const actual = await serialScrypt(password, Buffer.from(saltB64, 'base64'), params);
  return timingSafeEqual(actual, expected);
}

/**
 * A well-formed hash that no password matches (its key is all zeros): it stands in for
 * unknown devices, so they cost the same scrypt as known ones, and for revoked ones.
 */
export const UNUSABLE_PASSWORD_HASH = 'scrypt$4096$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** A random secret that survives copy and paste: 24 bytes, base64url. */
export function generateSecret(): string {
  return randomBytes(24).toString('base64url');
}

export function isPasswordHash(text: string): boolean {
  return /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/.test(text);
}
