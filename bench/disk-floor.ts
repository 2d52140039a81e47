/**
 * The disk's own floor under the ingest latency: fsynced LevelDB writes of 100 records,
 * one at a time at ~100 writes/s, with nothing else running. A record is acknowledged
 * after group commit, so it can wait for the write in flight and then its own: its
 * latency cannot be below about two of these, whatever the gateway does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openLedgerDb, writeStringsDurably } from '../gateway/ledger/ledger-db.ts';

export interface DiskFloor {
  writes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const RECORD_TEXT = 'x'.repeat(600); // about one stored journal entry

export async function measureDiskFloor(durationMs = 5_000): Promise<DiskFloor> {
  const dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-disk-'));
  const db = await openLedgerDb(dir);
  try {
    const latencies: number[] = [];
    let index = 0;
    const startedMs = performance.now();
    while (performance.now() - startedMs < durationMs) {
      const ops = Array.from({ length: 100 }, () => ({ type: 'put' as const, key: `r!${String((index += 1)).padStart(12, '0')}`, value: RECORD_TEXT }));
      const writeStartedMs = performance.now();
      await writeStringsDurably(db, ops);
      latencies.push(performance.now() - writeStartedMs);
      await new Promise((resolve) => setTimeout(resolve, 8));
    }
    latencies.sort((a, b) => a - b);
    const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))]! * 100) / 100;
    return { writes: latencies.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}
