import { describe, expect, it } from 'vitest';
import { gpioPulseInputSchema } from './gpio-pulse-config.ts';

describe('gpioPulseInputSchema', () => {
  it('fills every default from a line and a state file', () => {
    expect(gpioPulseInputSchema.parse({ line: 17, stateFile: 'gpio17.json' })).toEqual({
      line: 17, stateFile: 'gpio17.json', edge: 'rising', debounceTimeoutMs: 0, sysfsRoot: '/sys/class/gpio',
      debounceMs: 10, maxRateHz: 50, reportEveryMs: 10_000,
    });
  });

  it('refuses out-of-bounds limits and unknown keys, naming each key', () => {
    const result = gpioPulseInputSchema.safeParse({ line: 17, stateFile: 'x.json', maxRateHz: 0, reportEveryMs: 50, edge: 'both', pin: 17 });
    expect(result.success).toBe(false);
    const keys = result.error!.issues.flatMap((issue) => (issue.path.length > 0 ? issue.path.map(String) : (issue as { keys?: string[] }).keys ?? []));
    expect(keys.sort()).toEqual(['edge', 'maxRateHz', 'pin', 'reportEveryMs']);
  });

  it('requires the line and the state file', () => {
    const result = gpioPulseInputSchema.safeParse({});
    expect(result.error?.issues.map((issue) => issue.path.join('.')).sort()).toEqual(['line', 'stateFile']);
  });
});
