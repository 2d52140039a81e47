/**
 * The gateway's Ed25519 signing key: created on first start, stored hex-encoded with
 * 0600 permissions. It signs chain checkpoints and batch roots.
 */
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fromHex, toHex } from '../../protocol/hash.ts';
import { generateSigningKey, signingKeyFromSecret, type SigningKey } from '../../protocol/signing.ts';

export const GATEWAY_KEY_FILE = 'gateway-ed25519.key';

export async function loadOrCreateGatewayKey(dataDir: string): Promise<{ key: SigningKey; created: boolean; file: string }> {
  const file = path.join(dataDir, GATEWAY_KEY_FILE);
  try {
    const info = await stat(file);
    if ((info.mode & 0o077) !== 0) {
      // Someone loosened it; tighten rather than keep serving a readable secret.
      await chmod(file, 0o600);
    }
    const secret = fromHex((await readFile(file, 'utf8')).trim(), GATEWAY_KEY_FILE, 32);
    return { key: signingKeyFromSecret(secret), created: false, file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`Cannot load gateway key ${file}: ${(error as Error).message}`, { cause: error });
    }
  }
  const key = generateSigningKey();
  // 'wx': never overwrite a key another process created in the meantime.
  await writeFile(file, `${toHex(key.secretKey)}\n`, { mode: 0o600, flag: 'wx' });
  return { key, created: true, file };
}
