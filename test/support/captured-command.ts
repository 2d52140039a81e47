/** Runs a CLI subcommand in this process, returning its exit status and what it wrote to stdout and stderr. */
import { vi } from 'vitest';

export async function runCaptured(command: (argv: string[]) => Promise<number>, argv: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
  try {
    return { status: await command(argv), out, err };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
}
