/**
 * The pulse counter's durable state: its count and epoch in one small JSON file.
 *
 * The file is replaced atomically (temp file, fsync, rename, fsync of the directory), so
 * after a crash it holds either the old or the new state, never a torn one. That is why a
 * file that does not parse is refused rather than reset: it was not written by us.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { ID_PATTERN } from '../../../protocol/usage-message.ts';
import { GpioError } from './gpio-error.ts';

export interface PulseCounterState {
  /**
   * Names one unbroken run of the count; a new epoch means the count restarted at 0.
   * A random UUID: it fits the `epoch` of a counter reading message (ID_PATTERN).
   */
  readonly epoch: string;
  readonly count: bigint;
}

/** On disk: `{"v":1,"epoch":"…","count":"123"}`; the count is a decimal string (bigint). */
interface StateFileV1 {
  v: 1;
  epoch: string;
  count: string;
}

const COUNT_PATTERN = /^(0|[1-9][0-9]{0,39})$/;

/**
 * Reads the state, or, when there is no file, starts a new epoch at 0 and writes it before
 * returning: an epoch is only ever used after it is on disk.
 * @throws GpioError MB_PULSE_STATE_INVALID when the file exists but is not a state file.
 */
export async function loadPulseCounterState(file: string): Promise<{ state: PulseCounterState; created: boolean }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const state: PulseCounterState = { epoch: randomUUID(), count: 0n };
    await mkdir(path.dirname(file), { recursive: true });
    await savePulseCounterState(file, state);
    return { state, created: true };
  }
  return { state: parseState(file, text), created: false };
}

function parseState(file: string, text: string): PulseCounterState {
  const refuse = (why: string): never => {
    throw new GpioError(
      `Cannot load pulse counter state ${file}: ${why}; delete it to start a new epoch at 0 (the intake then sees a counter reset)`,
      'MB_PULSE_STATE_INVALID',
    );
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return refuse('not JSON');
  }
  const state = raw as Partial<StateFileV1> | null;
  if (typeof state !== 'object' || state === null || state.v !== 1) return refuse('not a version 1 state file');
  if (typeof state.epoch !== 'string' || !ID_PATTERN.test(state.epoch)) return refuse('epoch is missing or malformed');
  if (typeof state.count !== 'string' || !COUNT_PATTERN.test(state.count)) return refuse('count is not a non-negative integer string');
  return { epoch: state.epoch, count: BigInt(state.count) };
}

/** Replaces the state file atomically and durably; resolves only once it is on disk. */
export async function savePulseCounterState(file: string, state: PulseCounterState): Promise<void> {
  const body: StateFileV1 = { v: 1, epoch: state.epoch, count: state.count.toString() };
  await writeFileAtomic(file, `${JSON.stringify(body)}\n`);
}

/** Write temp + fsync + rename + fsync dir: readers see the old or the new file, whole. */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const temp = `${file}.tmp`;
  const handle = await open(temp, 'w', 0o644);
  try {
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  // The rename is only durable once the directory entry is; without this a power cut can
  // bring back the old file after we reported the new count.
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
