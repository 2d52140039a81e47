/**
 * All-or-nothing file writes for the gateway's small state files (trusted head, keys,
 * operator accounts): write a temporary file (0600), fsync it, rename it over the old
 * one, fsync the folder. A crash leaves the old file or the new one, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export interface AtomicWriteOptions {
  /**
   * `fixed` (default): the temporary is `<file>.tmp`, a name a caller can look for after
   * a crash (gateway-key.ts removes leftovers holding secrets). `unique`: a fresh name
   * created exclusively, so a leftover temporary can never lend its own mode to the file.
   */
  temporary?: 'fixed' | 'unique';
}

export async function writeFileAtomically(file: string, text: string, options: AtomicWriteOptions = {}): Promise<void> {
  const unique = options.temporary === 'unique';
  const temporary = unique ? `${file}.${randomBytes(6).toString('hex')}.tmp` : `${file}.tmp`;
  const handle = await open(temporary, unique ? 'wx' : 'w', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, file);
  // The rename is durable only once the folder's entry is.
  const folder = await open(path.dirname(file), 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
