/**
 * A payer's statement for one month: every record whose tariff period falls in it, the
 * tariffs that priced them, totals, and each record's batch with its settlement state
 * and payment reference. Rendered as JSON, CSV and a printable HTML page; the signed
 * proof bundle that goes with it is built from the same gathering (docs/receipts.md).
 */
import type { InclusionProof } from '../../protocol/merkle.ts';
import { buildProofBundle, type DeviceKey, type GatewayKey, type ProofBundle } from '../../protocol/proof-bundle.ts';
import { formatMinor, formatNano } from '../../protocol/money.ts';
import type { TariffVersion } from '../../protocol/tariff.ts';
import type { SignedBatchHeader, UsageRecord } from '../../protocol/usage-record.ts';
import type { Journal } from '../ledger/journal.ts';
import type { TariffBook } from '../ledger/tariff-book.ts';
import type { BatchBook, BatchStateName } from './batch-book.ts';

/** A month, `YYYY-MM`: statements cover calendar months (a daily tariff period `YYYY-MM-DD` falls in its month). */
export const STATEMENT_MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;
/** Larger statements are refused with a reason rather than built in memory on a small gateway. */
export const STATEMENT_RECORDS_MAX = 200_000;

export class StatementTooLargeError extends Error {
  readonly code = 'MB_STATEMENT_TOO_LARGE';
}

export interface StatementLine {
  index: number;
  deviceId: string;
  seq: number;
  meter: string;
  quantity: string;
  unit: string;
  deviceTime: string;
  period: string;
  tariff: string;
  amount: string;
  currency: string;
  batchId: string | null;
  state: BatchStateName | 'unsealed';
  paymentId: string | null;
}

export interface StatementBatch {
  batchId: string;
  currency: string;
  state: BatchStateName;
  recordCount: number;
  amountPaid: string;
  carriedOut: string;
  paymentId: string | null;
  merkleRoot: string;
  sealedAt: string;
}

export interface Statement {
  v: 1;
  gatewayId: string;
  payer: string;
  month: string;
  generatedAt: string;
  /** Per currency: what the month's records charge, and how much of it is settled, in sealed batches not yet paid, or not yet sealed. */
  totals: Array<{ currency: string; records: number; charged: string; inSettledBatches: string; inOpenBatches: string; unsealed: string }>;
  lines: StatementLine[];
  batches: StatementBatch[];
  tariffs: TariffVersion[];
}

/** Everything a statement and its proof bundle are made of. */
export interface StatementSources {
  statement: Statement;
  /** Each batch touching the month, with every one of its records and their inclusion proofs. */
  batches: Array<{ header: SignedBatchHeader; state: BatchStateName; paymentId: string | null; proofs: Array<{ record: UsageRecord; proof: InclusionProof }> }>;
  /** The month's records not yet sealed (no proof yet). */
  unsealed: UsageRecord[];
  tariffs: TariffVersion[];
}

const inMonth = (record: UsageRecord, month: string): boolean => (record.period ?? record.deviceTime.slice(0, 7)).startsWith(month);

export async function gatherStatement(sources: { gatewayId: string; journal: Journal; batches: BatchBook; tariffs: TariffBook; clock: () => Date }, payer: string, month: string): Promise<StatementSources> {
  if (!STATEMENT_MONTH.test(month)) throw new RangeError(`month: ${month} is not a month like 2026-11`);
  const batches: StatementSources['batches'] = [];
  const batchOf = new Map<number, { batchId: string; state: BatchStateName; paymentId: string | null }>();
  let recordsSeen = 0;
  for await (const stored of sources.batches.all()) {
    if (stored.header.payer !== payer) continue;
    const records = await sources.batches.records(stored.header);
    if (!records.some((r) => inMonth(r, month))) continue;
    recordsSeen += records.length;
    if (recordsSeen > STATEMENT_RECORDS_MAX) throw new StatementTooLargeError(`Cannot build the statement of ${payer} for ${month}: more than ${STATEMENT_RECORDS_MAX} records`);
    const proofs = await sources.batches.proofs(stored.header);
    batches.push({ header: stored.header, state: stored.state, paymentId: stored.paymentId ?? null, proofs });
    for (const { record } of proofs) batchOf.set(record.index, { batchId: stored.header.batchId, state: stored.state, paymentId: stored.paymentId ?? null });
  }
  const unsealed: UsageRecord[] = [];
  const head = sources.journal.head.index;
  for await (const entry of sources.journal.entries(sources.batches.sealedThrough + 1, head)) {
    // Above sealedThrough a record may already be sealed: its payer is sealed on its own schedule.
    if (entry.record.payer !== payer || !inMonth(entry.record, month) || batchOf.has(entry.record.index)) continue;
    if (unsealed.length + recordsSeen >= STATEMENT_RECORDS_MAX) throw new StatementTooLargeError(`Cannot build the statement of ${payer} for ${month}: more than ${STATEMENT_RECORDS_MAX} records`);
    unsealed.push(entry.record);
  }

  const monthRecords = [...batches.flatMap((b) => b.proofs.map((p) => p.record)), ...unsealed].filter((r) => inMonth(r, month)).sort((a, b) => a.index - b.index);
  const tariffIds = [...new Set([...batches.flatMap((b) => b.proofs.map((p) => p.record.tariff)), ...unsealed.map((r) => r.tariff)])].sort();
  const tariffs = tariffIds.map((id) => sources.tariffs.byId(id)?.tariff).filter((t): t is TariffVersion => t !== undefined);

  const totals = new Map<string, { records: number; charged: bigint; settled: bigint; open: bigint; unsealed: bigint }>();
  const lines: StatementLine[] = monthRecords.map((r) => {
    const batch = batchOf.get(r.index);
    const total = totals.get(r.currency) ?? { records: 0, charged: 0n, settled: 0n, open: 0n, unsealed: 0n };
    const amount = BigInt(r.amountNano);
    total.records += 1;
    total.charged += amount;
    if (!batch) total.unsealed += amount;
    else if (batch.state === 'settled') total.settled += amount;
    else total.open += amount;
    totals.set(r.currency, total);
    return {
      index: r.index, deviceId: r.deviceId, seq: r.seq, meter: r.meter, quantity: r.quantity, unit: r.unit, deviceTime: r.deviceTime, period: r.period ?? '',
      tariff: r.tariff, amount: formatNano(amount), currency: r.currency, batchId: batch?.batchId ?? null, state: batch?.state ?? 'unsealed', paymentId: batch?.paymentId ?? null,
    };
  });
  const statement: Statement = {
    v: 1, gatewayId: sources.gatewayId, payer, month, generatedAt: sources.clock().toISOString(),
    totals: [...totals].sort(([a], [b]) => a.localeCompare(b)).map(([currency, t]) => ({
      currency, records: t.records, charged: formatNano(t.charged), inSettledBatches: formatNano(t.settled), inOpenBatches: formatNano(t.open), unsealed: formatNano(t.unsealed),
    })),
    lines,
    batches: batches.map((b) => ({
      batchId: b.header.batchId, currency: b.header.currency, state: b.state, recordCount: b.header.recordCount,
      amountPaid: formatMinor(BigInt(b.header.amountMinor), b.header.currency), carriedOut: formatNano(BigInt(b.header.carriedOutNano)),
      paymentId: b.paymentId, merkleRoot: b.header.merkleRoot, sealedAt: b.header.sealedAt,
    })),
    tariffs,
  };
  return { statement, batches, unsealed, tariffs };
}

/** RFC 4180 CSV: one row per record; fields quoted when they need it. */
export function statementCsv(statement: Statement): string {
  const header = ['index', 'deviceId', 'seq', 'meter', 'quantity', 'unit', 'deviceTime', 'period', 'tariff', 'amount', 'currency', 'batchId', 'state', 'paymentId'] as const;
  const cell = (value: string | number | null): string => {
    const text = value === null ? '' : String(value);
    // A leading = + - @ would be a formula to a spreadsheet: prefix it (OWASP CSV injection).
    const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d/.test(text) ? `'${text}` : text;
    return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
  };
  const rows = statement.lines.map((line) => header.map((key) => cell(line[key])).join(','));
  return `${[header.join(','), ...rows].join('\r\n')}\r\n`;
}

/** Text made safe for HTML content and quoted attribute values (the statement page, the login forms). */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A printable page: totals and batches first, then every record. Self-contained (no scripts, inline CSS). */
export function statementHtml(statement: Statement, options: { proofBundleHref?: string; verifierHref?: string } = {}): string {
  const e = escapeHtml;
  const totals = statement.totals.map((t) => `<tr><td>${e(t.currency)}</td><td class="n">${t.records}</td><td class="n">${e(t.charged)}</td><td class="n">${e(t.inSettledBatches)}</td><td class="n">${e(t.inOpenBatches)}</td><td class="n">${e(t.unsealed)}</td></tr>`).join('');
  const batches = statement.batches.map((b) => `<tr><td>${e(b.batchId)}</td><td>${e(b.state)}</td><td class="n">${b.recordCount}</td><td class="n">${e(b.amountPaid)} ${e(b.currency)}</td><td>${e(b.paymentId ?? '')}</td><td class="h">${e(b.merkleRoot)}</td></tr>`).join('');
  const tariffs = statement.tariffs.map((t) => `<li><b>${e(t.id)}</b> from ${e(t.effectiveFrom)}: ${e(JSON.stringify(t.rule))} per ${e(t.priceUnit)} in ${e(t.currency)}, ${e(t.period)} periods (${e(t.timeZone)})${t.minimumPerPeriod ? `, minimum ${e(t.minimumPerPeriod)}` : ''}${t.capPerPeriod ? `, cap ${e(t.capPerPeriod)}` : ''}</li>`).join('');
  const lines = statement.lines.map((l) => `<tr><td class="n">${l.index}</td><td>${e(l.deviceId)}</td><td class="n">${l.seq}</td><td>${e(l.meter)}</td><td class="n">${e(l.quantity)} ${e(l.unit)}</td><td>${e(l.deviceTime)}</td><td>${e(l.tariff)}</td><td class="n">${e(l.amount)} ${e(l.currency)}</td><td>${e(l.batchId ?? '')}</td><td>${e(l.state)}</td></tr>`).join('');
  const links = [options.proofBundleHref ? `<a href="${e(options.proofBundleHref)}">proof bundle (JSON)</a>` : '', options.verifierHref ? `<a href="${e(options.verifierHref)}">offline verifier</a>` : ''].filter(Boolean).join(' · ');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Statement ${e(statement.payer)} ${e(statement.month)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#111}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}td.h{font-family:monospace;font-size:11px}@media print{a{display:none}}</style></head><body>
<h1>Statement: ${e(statement.payer)}, ${e(statement.month)}</h1>
<p>Gateway ${e(statement.gatewayId)} · generated ${e(statement.generatedAt)}${links ? ` · ${links}` : ''}</p>
<p>Amounts are exact to 1e-9 of the currency; payments are rounded down to whole minor units and the remainder is carried into the next payment. Check every figure yourself with the proof bundle.</p>
<h2>Totals</h2><table><tr><th>currency</th><th>records</th><th>charged</th><th>in settled batches</th><th>in open batches</th><th>not yet sealed</th></tr>${totals}</table>
<h2>Batches</h2><table><tr><th>batch</th><th>state</th><th>records</th><th>paid</th><th>payment</th><th>Merkle root</th></tr>${batches}</table>
<h2>Tariffs</h2><ul>${tariffs}</ul>
<h2>Records</h2><table><tr><th>#</th><th>device</th><th>seq</th><th>meter</th><th>quantity</th><th>time</th><th>tariff</th><th>amount</th><th>batch</th><th>state</th></tr>${lines}</table>
</body></html>`;
}

export interface StatementServiceSources {
  gatewayId: string;
  journal: Journal;
  batches: BatchBook;
  tariffs: TariffBook;
  clock: () => Date;
  /** The gateway's signing keys, current and retired, with when each was in use. */
  gatewayKeys: () => GatewayKey[];
  /** Registered device keys, for records the devices signed. */
  deviceKeys: () => DeviceKey[];
  /** Payers this gateway bills. */
  payers: ReadonlySet<string>;
}

/** What the web page serves: a payer's statement for a month, and its proof bundle (docs/receipts.md). */
export function statementService(sources: StatementServiceSources): { statement(payer: string, month: string): Promise<Statement | undefined>; proofBundle(payer: string, month: string): Promise<ProofBundle | undefined> } {
  return {
    async statement(payer, month) {
      if (!sources.payers.has(payer)) return undefined;
      return (await gatherStatement(sources, payer, month)).statement;
    },
    async proofBundle(payer, month) {
      if (!sources.payers.has(payer)) return undefined;
      const gathered = await gatherStatement(sources, payer, month);
      return buildProofBundle({
        gatewayId: sources.gatewayId, payer, period: month, createdAt: gathered.statement.generatedAt,
        batches: gathered.batches.map((b) => ({ header: b.header, entries: b.proofs })),
        gatewayKeys: sources.gatewayKeys(), tariffs: gathered.tariffs, deviceKeys: sources.deviceKeys(), omitWholeBatchProofs: true,
      });
    },
  };
}
