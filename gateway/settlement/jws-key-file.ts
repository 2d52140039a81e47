/**
 * P-256 message-signing keys on disk (docs/bank-api.md): the secret scalar as hex in a 0600
 * file, and beside it the public JWK (`<secret file>.jwk.json`, world-readable) to hand to
 * the other side: the gateway's to the bank, the bank's to the gateway
 * (`settlement.bank.publicKeyFile`). Separate from the ledger's Ed25519 key: a bank key
 * must never be able to sign ledger checkpoints, nor the other way round.
 */
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fromHex, toHex } from '../../protocol/hash.ts';
import { generateJwsKey, jwsKeyFromSecret, publicJwkOf, trustedKeyFromJwk, type JwsKeyPair, type TrustedJwsKey } from './jws.ts';

/** In the gateway's data dir, beside `gateway-ed25519.key`. */
export const GATEWAY_JWS_KEY_FILE = 'gateway-ob-signing-p256.key';
const PUBLIC_SUFFIX = '.jwk.json';
const PUBLIC_FILE_BYTES_MAX = 16 * 1024;

/** Where the public JWK of the key in `secretFile` is written. */
export function publicJwkFileOf(secretFile: string): string {
  return `${secretFile.replace(/\.key$/, '')}${PUBLIC_SUFFIX}`;
}

async function readSecret(file: string): Promise<JwsKeyPair | undefined> {
  let text: string;
  try {
    const info = await stat(file);
    // Someone loosened it; tighten rather than keep serving a readable secret.
    if ((info.mode & 0o077) !== 0) await chmod(file, 0o600);
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`Cannot load signing key ${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return jwsKeyFromSecret(fromHex(text.trim(), path.basename(file), 32));
  } catch (error) {
    throw new Error(`Cannot load signing key ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * The key in `secretFile`, made on first use. Writes the public JWK every time, so a deleted
 * or stale one is put right. Safe against a second process creating it at the same moment.
 */
export async function loadOrCreateJwsKey(secretFile: string): Promise<{ key: JwsKeyPair; created: boolean; publicFile: string }> {
  let key = await readSecret(secretFile);
  let created = false;
  if (!key) {
    await mkdir(path.dirname(secretFile), { recursive: true, mode: 0o700 });
    const fresh = generateJwsKey();
    try {
      // 'wx': never overwrite a key another process created in the meantime.
      await writeFile(secretFile, `${toHex(fresh.secretKey)}\n`, { mode: 0o600, flag: 'wx' });
      key = fresh;
      created = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`Cannot create signing key ${secretFile}: ${(error as Error).message}`, { cause: error });
      key = await readSecret(secretFile);
      if (!key) throw new Error(`Cannot load signing key ${secretFile}: it vanished while being created`);
    }
  }
  const publicFile = publicJwkFileOf(secretFile);
  await writeFile(publicFile, `${JSON.stringify(publicJwkOf(key), null, 2)}\n`, { mode: 0o644 });
  return { key, created, publicFile };
}

/** A public JWK file (one key, or a JWKS `{ keys: [...] }`) as keys to trust. */
export async function readTrustedJwkFile(file: string): Promise<TrustedJwsKey[]> {
  let parsed: unknown;
  try {
    const text = await readFile(file, 'utf8');
    if (text.length > PUBLIC_FILE_BYTES_MAX) throw new RangeError(`larger than ${PUBLIC_FILE_BYTES_MAX} bytes`);
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`Cannot read public key ${file}: ${(error as Error).message}`, { cause: error });
  }
  const listed = (parsed as { keys?: unknown } | null)?.keys;
  const jwks = Array.isArray(listed) ? listed : [parsed];
  try {
    return jwks.map((jwk) => trustedKeyFromJwk(jwk));
  } catch (error) {
    throw new Error(`Cannot read public key ${file}: ${(error as Error).message}`, { cause: error });
  }
}
