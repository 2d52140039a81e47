/**
 * Refuses new usage when the data disk is nearly full, with a clear reason, rather than
 * accept what cannot be stored. Free space is read with statfs at most once a second.
 */
import { statfs } from 'node:fs/promises';

export class StorageLowError extends Error {
  readonly code = 'MB_STORAGE_LOW';
}

export class StorageGuard {
  readonly #dir: string;
  readonly #freeBytesMin: number;
  #checkedAtMs = 0;
  #freeBytes = Number.POSITIVE_INFINITY;
  #checking: Promise<void> | undefined;

  constructor(dir: string, freeBytesMin: number) {
    this.#dir = dir;
    this.#freeBytesMin = freeBytesMin;
  }

  get freeBytes(): number {
    return this.#freeBytes;
  }

  /**
   * Throws (or rejects with) StorageLowError when free space is under the floor. Returns
   * nothing, synchronously, while the last reading is fresh and fine: it runs for every
   * usage message, and an await per message costs a promise and a microtask.
   */
  check(): Promise<void> | undefined {
    if (Date.now() - this.#checkedAtMs <= 1_000) {
      this.#throwIfLow();
      return undefined;
    }
    this.#checking ??= statfs(this.#dir).then((stats) => {
      this.#freeBytes = Number(stats.bavail) * Number(stats.bsize);
      this.#checkedAtMs = Date.now();
    }).finally(() => {
      this.#checking = undefined;
    });
    return this.#checking.then(() => this.#throwIfLow());
  }

  #throwIfLow(): void {
    if (this.#freeBytes < this.#freeBytesMin) {
      throw new StorageLowError(`Cannot accept usage: ${Math.floor(this.#freeBytes / 1_048_576)} MiB free on the data disk, the floor is ${Math.floor(this.#freeBytesMin / 1_048_576)} MiB`);
    }
  }
}
