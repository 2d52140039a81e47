/** What the operator page and /api/state show: one read of the gateway's state (docs/operator-page.md). */
import { formatMinor, formatNano } from '../../protocol/money.ts';
import type { DeviceRegistry } from '../ingest/device-registry.ts';
import type { IngestRates } from '../ingest/ingest-rate.ts';
import type { Intake, DeviceActivity } from '../ingest/intake.ts';
import type { Rejection, RejectionLog } from '../ingest/rejection-log.ts';
import type { Journal } from '../ledger/journal.ts';
import type { ChainReport } from '../ledger/verify-chain.ts';
import type { BatchBook, BatchStateName } from '../settlement/batch-book.ts';
import type { PayerScheduleStatus } from '../settlement/schedule.ts';
import { carryKey } from '../settlement/seal-batches.ts';
import type { BankReach } from '../settlement/vrp-client.ts';
import { findProblems, type Problem } from './problems.ts';
import type { UplinkStatus } from '../uplink/start-uplink.ts';

export type DeviceStatus = 'online' | 'silent' | 'never' | 'revoked';

export interface DeviceRow extends DeviceActivity {
  id: string;
  payer: string;
  meters: string[];
  connected: boolean;
  revoked: boolean;
  status: DeviceStatus;
  silentForS?: number;
  usageToday: Record<string, string>;
  gaps: Array<{ from: number; to: number }>;
  /** Messages must carry its Ed25519 signature (a public key is registered). */
  signed: boolean;
}

export interface Health {
  version: string;
  startedAt: string;
  uptimeS: number;
  mqttMode: 'embedded' | 'external';
  brokerConnected: boolean;
  devicesConnected: number;
  /** Records per minute over the last hour, oldest first; the last is the current minute. */
  ingestPerMinute: number[];
  intakeQueue: number;
  diskFreeBytes: number;
  diskFloorBytes: number;
  bank: BankReach;
  uplink: { configured: false } | UplinkStatus;
  clock: { ok: boolean; now: string; detail: string };
}

export interface PayerRow {
  payer: string;
  name: string;
  currency: string;
  /** Carried remainder plus records not yet in a batch. */
  openBalance: string;
  carried: string;
  nextSettlement: { at?: string; rule: string; held?: { since: string; reason: string } };
  consent: { maxIndividualAmount: string; status?: string };
  statement: { month: string; html: string; csv: string; json: string; bundle: string };
}

export interface BatchRow {
  batchNo: number;
  payer: string;
  currency: string;
  records: number;
  total: string;
  amount: string;
  carriedOut: string;
  state: BatchStateName;
  paymentId?: string;
  bankStatus?: string;
  lastError?: string;
  /** The latest transition's reason (why a batch is held, what the bank said). */
  reason?: string;
  sealedAt: string;
  merkleRoot: string;
  /** What the operator may do with it now. */
  actions: Array<'retry'>;
}

export interface Snapshot {
  gatewayId: string;
  keyId: string;
  publicKey: string;
  health: Health;
  /** Worst first, each with what to do. */
  problems: Problem[];
  rejectionsByReason: Record<string, number>;
  chain: Pick<ChainReport, 'ok' | 'problems'> & { headIndex: number; headHash: string; sealedThrough: number };
  devices: DeviceRow[];
  payers: PayerRow[];
  records: Array<{ index: number; deviceId: string; seq: number; meter: string; quantity: string; unit: string; payer: string; amount: string; currency: string; receivedAt: string }>;
  /** The latest double-entry accounts entries, newest first: what a correction names. */
  entries: Array<{ no: number; at: string; kind: string; currency: string; batchId?: string; corrects?: number; operator?: string; reason?: string; lines: Array<{ account: string; debit?: string; credit?: string }> }>;
  batches: BatchRow[];
  carried: Array<{ payer: string; currency: string; amount: string }>;
  rejections: Rejection[];
  rejectionsDropped: number;
  settled: Array<{ currency: string; amount: string }>;
  /** Sparkplug B gaps, births and deaths (empty without Sparkplug mappings). */
  sparkplugEvents: unknown[];
  /** Reconciliation alerts not yet acknowledged (ledger vs the bank's record), newest first. */
  alerts: Array<{ alertNo: number; at: string; kind: string; batchId?: string; detail: string }>;
}

export interface PayerInfo {
  name: string;
  currency: string;
  maxIndividualAmount: string;
  settleAtBalance?: string;
}

export interface SnapshotSources {
  gatewayId: string;
  keyId: string;
  publicKeyHex: string;
  version: string;
  startedAtMs: number;
  clock: () => Date;
  chainReport: ChainReport;
  registry: DeviceRegistry;
  intake: Intake;
  rates: IngestRates;
  journal: Journal;
  batches: BatchBook;
  rejections: RejectionLog;
  mqttMode: 'embedded' | 'external';
  brokerConnected: () => boolean;
  connectedDevices: () => string[];
  sparkplugEvents: () => unknown[];
  alerts: () => Promise<Snapshot['alerts']>;
  disk: () => { freeBytes: number; floorBytes: number };
  bankReach: () => BankReach;
  uplink: () => UplinkStatus | undefined;
  payers: Readonly<Record<string, PayerInfo>>;
  schedule: () => PayerScheduleStatus[];
  openBalancesNano: () => Promise<ReadonlyMap<string, bigint>>;
  consentStatus: (payer: string) => Promise<string | undefined>;
}

/** A device that reported within this is online; after it, silent. */
const ONLINE_WINDOW_MS = 5 * 60_000;
/** Earlier than this the gateway's clock cannot be right (the software did not exist). */
const CLOCK_FLOOR_MS = Date.UTC(2026, 0, 1);

export async function takeSnapshot(s: SnapshotSources, limit = 50): Promise<Snapshot> {
  const now = s.clock();
  const nowMs = now.getTime();
  const connected = new Set(s.connectedDevices());
  const head = s.journal.head;
  const records = await s.journal.latest(limit);
  const clockOk = nowMs >= CLOCK_FLOOR_MS && (records[0] === undefined || Date.parse(records[0].record.receivedAt) <= nowMs + 60_000);
  const disk = s.disk();
  const health: Health = {
    version: s.version, startedAt: new Date(s.startedAtMs).toISOString(), uptimeS: Math.floor((Date.now() - s.startedAtMs) / 1000),
    mqttMode: s.mqttMode, brokerConnected: s.brokerConnected(), devicesConnected: connected.size,
    ingestPerMinute: s.rates.total.series(Date.now()), intakeQueue: s.journal.queueLength,
    diskFreeBytes: Number.isFinite(disk.freeBytes) ? disk.freeBytes : -1, diskFloorBytes: disk.floorBytes,
    bank: s.bankReach(), uplink: s.uplink() ?? { configured: false },
    clock: { ok: clockOk, now: now.toISOString(), detail: clockOk ? 'plausible' : 'the gateway clock is before 2026 or behind the newest record: check NTP' },
  };
  const devices = s.registry.list().map((d): DeviceRow => {
    const activity = s.intake.activity(d.id);
    const revoked = d.revoked ?? false;
    const seenMs = activity.lastSeenAt === undefined ? undefined : Date.parse(activity.lastSeenAt);
    const status: DeviceStatus = revoked ? 'revoked' : seenMs === undefined ? (connected.has(d.id) ? 'online' : 'never') : Date.now() - seenMs < ONLINE_WINDOW_MS ? 'online' : 'silent';
    return {
      id: d.id, payer: d.payer, meters: d.meters, connected: connected.has(d.id), revoked, status,
      ...(status === 'silent' && seenMs !== undefined ? { silentForS: Math.floor((Date.now() - seenMs) / 1000) } : {}),
      usageToday: s.rates.today(d.id, Date.now()), gaps: [...s.intake.gaps.gaps(d.id)].slice(-10), signed: d.publicKey !== undefined, ...activity,
    };
  });
  const batches = (await s.batches.latest(limit)).map((b): BatchRow => ({
    batchNo: b.batchNo, payer: b.header.payer, currency: b.header.currency, records: b.header.recordCount,
    total: formatNano(BigInt(b.header.totalNano)), amount: formatMinor(BigInt(b.header.amountMinor), b.header.currency),
    carriedOut: formatNano(BigInt(b.header.carriedOutNano)), state: b.state, sealedAt: b.header.sealedAt, merkleRoot: b.header.merkleRoot,
    ...(b.paymentId ? { paymentId: b.paymentId } : {}), ...(b.bankStatus ? { bankStatus: b.bankStatus } : {}), ...(b.lastError ? { lastError: b.lastError } : {}),
    ...(b.transitions.at(-1)?.detail ? { reason: b.transitions.at(-1)!.detail! } : {}),
    actions: b.state === 'held' ? ['retry'] : [],
  }));
  const carriedByGroup = await s.batches.carried();
  const payers = await payerRows(s, carriedByGroup, now);
  const alerts = await s.alerts();
  const snapshot: Snapshot = {
    gatewayId: s.gatewayId,
    keyId: s.keyId,
    publicKey: s.publicKeyHex,
    health,
    problems: [],
    rejectionsByReason: Object.fromEntries(s.rejections.countsByReason()),
    chain: { ok: s.chainReport.ok, problems: s.chainReport.problems, headIndex: head.index, headHash: head.hash, sealedThrough: s.batches.sealedThrough },
    devices,
    payers,
    records: records.map(({ record: r }) => ({
      index: r.index, deviceId: r.deviceId, seq: r.seq, meter: r.meter, quantity: r.quantity, unit: r.unit, payer: r.payer,
      amount: formatNano(BigInt(r.amountNano)), currency: r.currency, receivedAt: r.receivedAt,
    })),
    entries: await latestEntries(s.batches, ENTRIES_SHOWN),
    batches,
    carried: [...carriedByGroup].map(([group, nano]) => {
      const [payer, currency] = group.split('!') as [string, string];
      return { payer, currency, amount: formatNano(nano) };
    }),
    rejections: s.rejections.recent(limit),
    rejectionsDropped: s.rejections.dropped,
    settled: [...s.batches.settledMinorByCurrency()].map(([currency, minor]) => ({ currency, amount: formatMinor(minor, currency) })),
    sparkplugEvents: s.sparkplugEvents(),
    alerts,
  };
  snapshot.problems = findProblems(snapshot);
  return snapshot;
}

const ENTRIES_SHOWN = 20;

async function latestEntries(batches: BatchBook, limit: number): Promise<Snapshot['entries']> {
  const out: Snapshot['entries'] = [];
  for (let no = batches.accounts.lastEntryNo; no >= 1 && out.length < limit; no -= 1) {
    const entry = await batches.accounts.get(no);
    if (!entry) continue;
    out.push({
      no: entry.no, at: entry.at, kind: entry.kind, currency: entry.currency,
      ...(entry.ref.batchId === undefined ? {} : { batchId: entry.ref.batchId }), ...(entry.ref.corrects === undefined ? {} : { corrects: entry.ref.corrects }),
      ...(entry.operator === undefined ? {} : { operator: entry.operator }), ...(entry.reason === undefined ? {} : { reason: entry.reason }),
      lines: entry.lines.map((line) => ('debitNano' in line ? { account: line.account, debit: formatNano(BigInt(line.debitNano)) } : { account: line.account, credit: formatNano(BigInt(line.creditNano)) })),
    });
  }
  return out;
}

async function payerRows(s: SnapshotSources, carried: ReadonlyMap<string, bigint>, now: Date): Promise<PayerRow[]> {
  const balances = await s.openBalancesNano();
  const schedule = new Map(s.schedule().map((status) => [status.payer, status]));
  const month = now.toISOString().slice(0, 7);
  return Promise.all(Object.entries(s.payers).map(async ([payer, info]): Promise<PayerRow> => {
    const group = carryKey(payer, info.currency);
    const due = schedule.get(payer);
    const rule = `${due ? `cron "${due.cron}" (${due.timeZone})` : 'the gateway schedule'}${info.settleAtBalance ? `, or at a balance of ${info.settleAtBalance} ${info.currency}` : ''}`;
    const consentStatus = await s.consentStatus(payer);
    const base = `/statements/${payer}/${month}`;
    return {
      payer, name: info.name, currency: info.currency,
      openBalance: formatNano(balances.get(group) ?? carried.get(group) ?? 0n), carried: formatNano(carried.get(group) ?? 0n),
      nextSettlement: { ...(due?.dueAt ? { at: due.dueAt } : {}), rule, ...(due?.held ? { held: due.held } : {}) },
      consent: { maxIndividualAmount: info.maxIndividualAmount, ...(consentStatus ? { status: consentStatus } : {}) },
      statement: { month, html: `${base}/statement.html`, csv: `${base}/statement.csv`, json: `${base}/statement.json`, bundle: `${base}/bundle.json` },
    };
  }));
}
