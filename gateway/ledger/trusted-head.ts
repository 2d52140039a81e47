/**
 * The trusted head: the latest signed checkpoint, kept in a small file beside the ledger
 * (`<dataDir>/ledger-head.json`) rather than inside it. LevelDB may drop a damaged log
 * tail when it opens, and the head key goes with the records, so nothing left inside
 * LevelDB can show that records were lost; this file still names the last checkpoint the
 * gateway made, and start-up verification (verify-chain.ts) checks the ledger against it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomically } from '../atomic-file.ts';
import type { SignedCheckpoint } from '../../protocol/usage-record.ts';

export const TRUSTED_HEAD_FILE = 'ledger-head.json';

export const trustedHeadPath = (dataDir: string): string => path.join(dataDir, TRUSTED_HEAD_FILE);

export type TrustedHeadRead =
  | { status: 'absent' }
  | { status: 'read'; checkpoint: SignedCheckpoint }
  | { status: 'unreadable'; detail: string };

/** Reads the file; a missing file is `absent` (a new gateway, or one from before the file existed). */
export async function readTrustedHead(file: string): Promise<TrustedHeadRead> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'absent' };
    return { status: 'unreadable', detail: (error as Error).message };
  }
  try {
    const checkpoint = JSON.parse(text) as SignedCheckpoint;
    if (typeof checkpoint !== 'object' || checkpoint === null || !Number.isSafeInteger(checkpoint.index) || typeof checkpoint.hash !== 'string' || typeof checkpoint.sig !== 'object') {
      return { status: 'unreadable', detail: 'not a signed checkpoint' };
    }
    return { status: 'read', checkpoint };
  } catch (error) {
    return { status: 'unreadable', detail: (error as Error).message };
  }
}

/**
 * Keeps the file at the newest checkpoint it is given. `record` never blocks the journal:
 * writes run one at a time, and checkpoints arriving meanwhile collapse into the newest.
 * A file lagging a checkpoint behind is still sound (it proves less, never anything false).
 */
export class TrustedHeadFile {
  readonly #file: string;
  readonly #onError: (error: unknown) => void;
  #newest: SignedCheckpoint | undefined;
  #writtenIndex = 0;
  #writing: Promise<void> | undefined;

  constructor(file: string, onError: (error: unknown) => void) {
    this.#file = file;
    this.#onError = onError;
  }

  get writtenIndex(): number {
    return this.#writtenIndex;
  }

  /** Schedules `checkpoint` to be written unless a newer one already is or will be. */
  record(checkpoint: SignedCheckpoint): void {
    if (checkpoint.index <= Math.max(this.#writtenIndex, this.#newest?.index ?? 0)) return;
    this.#newest = checkpoint;
    this.#writing ??= this.#writeAll();
  }

  /** Resolves when everything recorded so far has been written (or has failed and been reported). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #writeAll(): Promise<void> {
    try {
      for (let checkpoint = this.#newest; checkpoint; checkpoint = this.#newest) {
        this.#newest = undefined;
        try {
          await writeFileAtomically(this.#file, `${JSON.stringify(checkpoint)}\n`);
          this.#writtenIndex = checkpoint.index;
        } catch (error) {
          this.#onError(error);
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }
}
