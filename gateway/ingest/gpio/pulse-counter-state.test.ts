import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ID_PATTERN } from '../../../protocol/usage-message.ts';
import { loadPulseCounterState, savePulseCounterState } from './pulse-counter-state.ts';

describe('pulse counter state file', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pulse-state-'));
    file = path.join(dir, 'press-7.pulses.json');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts a new epoch at 0 and writes it to disk when there is no file', async () => {
    const { state, created } = await loadPulseCounterState(file);
    expect(created).toBe(true);
    expect(state.count).toBe(0n);
    expect(state.epoch).toMatch(ID_PATTERN); // what a counter reading message requires
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ v: 1, epoch: state.epoch, count: '0' });
  });

  it('keeps the epoch and count of an existing file instead of starting a new one', async () => {
    await writeFile(file, '{"v":1,"epoch":"e-1","count":"41"}\n');
    expect(await loadPulseCounterState(file)).toEqual({ state: { epoch: 'e-1', count: 41n }, created: false });
  });

  it('gives each lost state a different epoch', async () => {
    const first = (await loadPulseCounterState(file)).state.epoch;
    await rm(file);
    expect((await loadPulseCounterState(file)).state.epoch).not.toBe(first);
  });

  it('creates the state file directory when it is missing', async () => {
    const nested = path.join(dir, 'gpio', 'counters', 'line17.json');
    expect((await loadPulseCounterState(nested)).created).toBe(true);
    expect(await readdir(path.dirname(nested))).toEqual(['line17.json']);
  });

  it.each([
    ['not JSON', '{"v":1,"epoch":'],
    ['not a version 1 state file', '{"v":2,"epoch":"e-1","count":"1"}'],
    ['epoch is missing or malformed', '{"v":1,"epoch":"../x","count":"1"}'],
    ['count is not a non-negative integer string', '{"v":1,"epoch":"e-1","count":-1}'],
    ['count is not a non-negative integer string', '{"v":1,"epoch":"e-1","count":"01"}'],
  ])('refuses a state file whose %s, rather than silently restarting the count', async (why, text) => {
    await writeFile(file, text);
    await expect(loadPulseCounterState(file)).rejects.toMatchObject({
      code: 'MB_PULSE_STATE_INVALID', message: `Cannot load pulse counter state ${file}: ${why}; delete it to start a new epoch at 0 (the intake then sees a counter reset)`,
    });
  });

  it('round-trips counts beyond 2^53 exactly', async () => {
    await savePulseCounterState(file, { epoch: 'e-1', count: 2n ** 70n + 1n });
    expect((await loadPulseCounterState(file)).state.count).toBe(2n ** 70n + 1n);
  });

  it('replaces the file whole and leaves no temp file behind', async () => {
    await savePulseCounterState(file, { epoch: 'e-1', count: 1n });
    await savePulseCounterState(file, { epoch: 'e-1', count: 2n });
    expect(await readdir(dir)).toEqual(['press-7.pulses.json']);
    expect(await readFile(file, 'utf8')).toBe('{"v":1,"epoch":"e-1","count":"2"}\n');
  });

  it('rejects a save into a directory that is gone, leaving the caller to retry', async () => {
    await rm(dir, { recursive: true });
    await expect(savePulseCounterState(file, { epoch: 'e-1', count: 1n })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
