/** What the operator page and /api/state show: one read of the gateway's state. */
import { formatMinor, formatNano } from '../../protocol/money.ts';
import type { DeviceRegistry } from '../ingest/device-registry.ts';
import type { Intake, DeviceActivity } from '../ingest/intake.ts';
import type { Rejection, RejectionLog } from '../ingest/rejection-log.ts';
import type { Journal } from '../ledger/journal.ts';
import type { ChainReport } from '../ledger/verify-chain.ts';
import type { BatchBook, BatchStateName } from '../settlement/batch-book.ts';

export interface Snapshot {
  gatewayId: string;
  keyId: string;
  publicKey: string;
  chain: Pick<ChainReport, 'ok' | 'problems'> & { headIndex: number; headHash: string; sealedThrough: number };
  devices: Array<{ id: string; payer: string; meters: string[]; connected: boolean; revoked: boolean; gaps: Array<{ from: number; to: number }> } & DeviceActivity>;
  records: Array<{ index: number; deviceId: string; seq: number; meter: string; quantity: string; unit: string; payer: string; amount: string; currency: string; receivedAt: string }>;
  batches: Array<{ batchNo: number; payer: string; currency: string; records: number; total: string; amount: string; carriedOut: string; state: BatchStateName; paymentId?: string; bankStatus?: string; lastError?: string; /** The latest transition's reason (why a batch is held, what the bank said). */ reason?: string; sealedAt: string; merkleRoot: string }>;
  carried: Array<{ payer: string; currency: string; amount: string }>;
  rejections: Rejection[];
  rejectionsDropped: number;
  settled: Array<{ currency: string; amount: string }>;
  /** Sparkplug B gaps, births and deaths (empty without Sparkplug mappings). */
  sparkplugEvents: unknown[];
  /** Reconciliation alerts not yet acknowledged (ledger vs the bank's record), newest first. */
  alerts: Array<{ alertNo: number; at: string; kind: string; batchId?: string; detail: string }>;
}

export interface SnapshotSources {
  gatewayId: string;
  keyId: string;
  publicKeyHex: string;
  chainReport: ChainReport;
  registry: DeviceRegistry;
  intake: Intake;
  journal: Journal;
  batches: BatchBook;
  rejections: RejectionLog;
  connectedDevices: () => string[];
  sparkplugEvents: () => unknown[];
  alerts: () => Promise<Snapshot['alerts']>;
}

export async function takeSnapshot(s: SnapshotSources, limit = 50): Promise<Snapshot> {
  const connected = new Set(s.connectedDevices());
  const head = s.journal.head;
  return {
    gatewayId: s.gatewayId,
    keyId: s.keyId,
    publicKey: s.publicKeyHex,
    chain: { ok: s.chainReport.ok, problems: s.chainReport.problems, headIndex: head.index, headHash: head.hash, sealedThrough: s.batches.sealedThrough },
    devices: s.registry.list().map((d) => ({ id: d.id, payer: d.payer, meters: d.meters, connected: connected.has(d.id), revoked: d.revoked ?? false, gaps: [...s.intake.gaps.gaps(d.id)].slice(-10), ...s.intake.activity(d.id) })),
    records: (await s.journal.latest(limit)).map(({ record: r }) => ({
      index: r.index, deviceId: r.deviceId, seq: r.seq, meter: r.meter, quantity: r.quantity, unit: r.unit, payer: r.payer,
      amount: formatNano(BigInt(r.amountNano)), currency: r.currency, receivedAt: r.receivedAt,
    })),
    batches: (await s.batches.latest(limit)).map((b) => ({
      batchNo: b.batchNo, payer: b.header.payer, currency: b.header.currency, records: b.header.recordCount,
      total: formatNano(BigInt(b.header.totalNano)), amount: formatMinor(BigInt(b.header.amountMinor), b.header.currency),
      carriedOut: formatNano(BigInt(b.header.carriedOutNano)), state: b.state, sealedAt: b.header.sealedAt, merkleRoot: b.header.merkleRoot,
      ...(b.paymentId ? { paymentId: b.paymentId } : {}), ...(b.bankStatus ? { bankStatus: b.bankStatus } : {}), ...(b.lastError ? { lastError: b.lastError } : {}),
      ...(b.transitions.at(-1)?.detail ? { reason: b.transitions.at(-1)!.detail! } : {}),
    })),
    carried: [...(await s.batches.carried())].map(([group, nano]) => {
      const [payer, currency] = group.split('!') as [string, string];
      return { payer, currency, amount: formatNano(nano) };
    }),
    rejections: s.rejections.recent(limit),
    rejectionsDropped: s.rejections.dropped,
    settled: [...s.batches.settledMinorByCurrency()].map(([currency, minor]) => ({ currency, amount: formatMinor(minor, currency) })),
    sparkplugEvents: s.sparkplugEvents(),
    alerts: await s.alerts(),
  };
}
