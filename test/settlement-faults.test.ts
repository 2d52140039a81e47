/**
 * Settlement never pays twice, whatever the bank does: many seeded runs per fault kind, each a
 * few batches driven to a final state through faults, outages and restarts (support/settler-run.ts).
 *
 * MB_FAULT_SEEDS=n runs n seeds per kind (default 30: 210 runs); MB_FAULT_SEED=k runs only seed k,
 * e.g. to replay one a failure printed.
 */
import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, runSeeded, startFaultBank, type FaultKind, type RunReport } from './support/settler-run.ts';

const SEEDS_PER_KIND = Number(process.env.MB_FAULT_SEEDS ?? 30);
const ONLY_SEED = process.env.MB_FAULT_SEED === undefined ? undefined : Number(process.env.MB_FAULT_SEED);
const seeds = ONLY_SEED === undefined ? Array.from({ length: SEEDS_PER_KIND }, (_, i) => i + 1) : [ONLY_SEED];

/** What must hold at the end of every run; returns the broken promises (empty when none). */
function problemsOf(report: RunReport): string[] {
  const problems: string[] = [];
  const { batches, bankPayments } = report;
  const byEndToEnd = new Map<string, number>();
  for (const p of bankPayments) byEndToEnd.set(p.endToEndIdentification, (byEndToEnd.get(p.endToEndIdentification) ?? 0) + 1);
  for (const [e2e, count] of byEndToEnd) if (count > 1) problems.push(`EndToEndIdentification ${e2e} used by ${count} payments`);
  const open = bankPayments.filter((p) => !['ACSC', 'RJCT'].includes(p.status));
  if (open.length > 0) problems.push(`payments not final at the bank: ${open.map((p) => `${p.endToEndIdentification} ${p.status}`).join(', ')}`);
  for (const batch of batches) {
    const mine = bankPayments.filter((p) => new RegExp(`^MB${batch.batchNo}[.-]`).test(p.endToEndIdentification));
    const paid = mine.filter((p) => p.status === 'ACSC');
    const paidMinor = paid.reduce((sum, p) => sum + p.amountMinor, 0n);
    if (batch.state === 'settled') {
      const parts = batch.parts ?? [];
      if (paidMinor !== BigInt(batch.header.amountMinor)) problems.push(`batch ${batch.batchNo} settled at ${batch.header.amountMinor} but the bank paid ${paidMinor}`);
      if (paid.length !== parts.length) problems.push(`batch ${batch.batchNo} has ${parts.length} parts and ${paid.length} paid payments`);
      for (const part of parts) {
        const atBank = paid.filter((p) => p.endToEndIdentification === part.endToEndId);
        if (atBank.length !== 1) problems.push(`batch ${batch.batchNo} part ${part.partNo} has ${atBank.length} paid payments under ${part.endToEndId}`);
      }
    } else if (paid.length > 0) {
      problems.push(`batch ${batch.batchNo} is ${batch.state} but the bank paid ${paidMinor} for it`);
    }
  }
  const bankPaidMinor = bankPayments.filter((p) => p.status === 'ACSC').reduce((sum, p) => sum + p.amountMinor, 0n);
  if (bankPaidMinor !== report.ledgerSettledMinor) problems.push(`the bank paid ${bankPaidMinor} minor units, the ledger settled ${report.ledgerSettledMinor}`);
  return problems;
}

async function runKind(kind: FaultKind): Promise<void> {
  const failures: string[] = [];
  const stats = { runs: 0, batches: 0, parts: 0, held: 0, unknown: 0, foundAfterUnknown: 0, resentNewKey: 0, restarts: 0, rejected: 0 };
  const shared = await startFaultBank();
  for (const seed of seeds) {
    let problems: string[];
    try {
      const report = await runSeeded(kind, seed, shared);
      problems = problemsOf(report);
      stats.runs += 1;
      stats.batches += report.batches.length;
      stats.parts += report.batches.reduce((n, b) => n + (b.parts?.length ?? 0), 0);
      stats.held += report.batches.filter((b) => b.transitions.some((t) => t.state === 'held')).length;
      stats.unknown += report.batches.filter((b) => b.transitions.some((t) => t.state === 'unknown')).length;
      const details = report.batches.flatMap((b) => b.transitions.map((t) => t.detail ?? ''));
      stats.foundAfterUnknown += details.filter((d) => d.startsWith('found at the bank')).length;
      stats.resentNewKey += details.filter((d) => d.includes('sending again is safe')).length;
      stats.rejected += report.batches.filter((b) => b.state === 'rejected').length;
      stats.restarts += report.restarts;
    } catch (error) {
      problems = [(error as Error).stack ?? String(error)];
    }
    if (problems.length > 0) failures.push(`seed ${seed} (${kind}; rerun with MB_FAULT_SEED=${seed}): ${problems.join('; ')}`);
  }
  await shared.bank.close();
  console.info(`${kind}: ${JSON.stringify(stats)}`);
  expect(failures).toEqual([]);
}

// Concurrent: each kind has its own bank and clock, and a run mostly waits (fsync, timeouts).
describe.concurrent('settlement under bank faults, over seeded runs', () => {
  for (const kind of FAULT_KINDS) {
    it(`pays each batch exactly once and agrees with the bank to the minor unit: ${kind}`, () => runKind(kind), 120_000);
  }
});
