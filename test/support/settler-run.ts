/**
 * One seeded settlement run for the fault suite: a real sandbox bank over HTTP, a real
 * LevelDB ledger in a temp dir, the real BatchBook and Settler driven tick by tick on a
 * virtual clock both the bank and the gateway read. Faults come from the seed; so do the
 * usage amounts, the clock's steps and the restarts (the ledger closed and opened again).
 */
import { seededRandom } from '../../firmware-sim/machines.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startBankSandbox, type BankSandbox } from '../../bank-sandbox/server.ts';
import type { GatewayConfig } from '../../gateway/config.ts';
import { Journal, type RecordDraft } from '../../gateway/ledger/journal.ts';
import { openLedgerDb } from '../../gateway/ledger/ledger-db.ts';
import { BatchBook, FINAL_STATES, type StoredBatch } from '../../gateway/settlement/batch-book.ts';
import { Settler } from '../../gateway/settlement/settler.ts';
import { VrpClient, type VrpPeriodicLimit } from '../../gateway/settlement/vrp-client.ts';
import { toHex } from '../../protocol/hash.ts';
import { generateSigningKey } from '../../protocol/signing.ts';

export const FAULT_KINDS = ['timeout-after-accept', 'fail-500', 'answer-twice', 'answer-slowly', 'insufficient-funds', 'expire-consent', 'hold-pending'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** mulberry32, the simulator's: the same sequence for the same seed everywhere. */
export { seededRandom };

const TOKEN = 'fault-suite-token';
const KEY = generateSigningKey();
/** Client timeout: short, so a held answer costs little wall time. Slow faults hold longer. */
const CLIENT_TIMEOUT_MS = 60;
const SLOW_MS = 90;
const TICKS_MAX = Number(process.env.MB_FAULT_TICKS ?? 3_000);
const MINUTE_MS = 60_000;
const silent = pino({ level: process.env.MB_FAULT_DEBUG ? 'debug' : 'silent' });

const PAYERS = {
  // A small individual cap (batches split) and a daily limit (batches held to the next day).
  acme: { name: 'Acme', currency: 'GBP', maxIndividualAmount: '6.00' },
  north: { name: 'Northline', currency: 'GBP', maxIndividualAmount: '100.00' },
} as const;
const PERIODIC_LIMITS: Record<string, VrpPeriodicLimit[]> = {
  acme: [{ periodType: 'Day', periodAlignment: 'Calendar', amountMinor: 25_00n }],
};

/** A virtual clock, read by the bank and the gateway alike. */
export interface VirtualClock {
  nowMs: number;
}

/**
 * One sandbox bank for many runs (starting one costs more than a run): each run has its own
 * gateway id, hence its own consents and keys, and sets the shared clock when it starts.
 */
export async function startFaultBank(): Promise<{ bank: BankSandbox; clock: VirtualClock }> {
  const clock: VirtualClock = { nowMs: Date.parse('2026-03-02T08:00:00Z') };
  const bank = await startBankSandbox({ accessTokens: [TOKEN], settleAfterMs: 2_000, clock: () => clock.nowMs });
  return { bank, clock };
}

export interface RunReport {
  batches: StoredBatch[];
  bankPayments: ReturnType<BankSandbox['listPayments']>;
  ledgerSettledMinor: bigint;
  ticks: number;
  restarts: number;
}

export interface SettlerRigOptions {
  bank: BankSandbox;
  clock: VirtualClock;
  gatewayId: string;
  random?: () => number;
  payers?: Record<string, { name: string; currency: string; maxIndividualAmount: string }>;
  periodicLimits?: Record<string, VrpPeriodicLimit[]>;
  clientTimeoutMs?: number;
  partsMax?: number;
}

/**
 * The settling half of a gateway with nothing else: journal, batch book and settler on a
 * LevelDB in a temp dir, against `bank`, on the virtual clock. `restart` closes the ledger and
 * opens it again, as a process restart would (in-memory backoff state is lost).
 */
export interface SettlerRig {
  readonly book: BatchBook;
  readonly settler: Settler;
  /** Records usage of `amountMinor` (GBP) for the payer. */
  use(payer: string, amountMinor: number): Promise<void>;
  seal(): Promise<StoredBatch[]>;
  restart(): Promise<void>;
  batches(): Promise<StoredBatch[]>;
  close(): Promise<void>;
}

export async function openSettlerRig(options: SettlerRigOptions): Promise<SettlerRig> {
  const { bank, clock, gatewayId } = options;
  const dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-settler-'));
  const config = {
    gatewayId,
    payers: options.payers ?? PAYERS,
    payee: { name: 'Meterbridge Ltd', account: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677', name: 'Meterbridge Ltd' } },
  } as unknown as Pick<GatewayConfig, 'gatewayId' | 'payers' | 'payee'>;
  const client = new VrpClient({ baseUrl: bank.url, accessToken: TOKEN, timeoutMs: options.clientTimeoutMs ?? CLIENT_TIMEOUT_MS });
  const open = async () => {
    const db = await openLedgerDb(path.join(dir, 'ledger'));
    const journal = await Journal.open(db, { gatewayId, signingKey: KEY, clock: () => new Date(clock.nowMs), queueMax: 1_000, batchMax: 100, checkpointEveryRecords: 1_000, checkpointIntervalMs: 3_600_000 });
    const book = await BatchBook.open(db, journal, { gatewayId, key: KEY, clock: () => new Date(clock.nowMs), logger: silent });
    const settler = new Settler({
      db, book, client, config, pollIntervalMs: 1_000, logger: silent, enabled: () => true, clock: () => clock.nowMs,
      ...(options.random ? { random: options.random } : {}), ...(options.partsMax ? { partsMax: options.partsMax } : {}), periodicLimits: options.periodicLimits ?? PERIODIC_LIMITS,
    });
    return { db, journal, book, settler };
  };
  let parts = await open();
  const close = async (): Promise<void> => {
    await parts.settler.stop();
    await parts.journal.drain();
    await parts.db.close();
  };
  let seq = 0;
  return {
    get book() {
      return parts.book;
    },
    get settler() {
      return parts.settler;
    },
    async use(payer, amountMinor) {
      seq += 1;
      const draft: RecordDraft = {
        v: 1, deviceId: `meter-${payer}`, seq, meter: 'cycles', quantity: '1', unit: 'cycle', deviceTime: new Date(clock.nowMs).toISOString(), payer,
        tariff: 'cycles@1', tariffHash: '00'.repeat(32), period: '2026-03', periodQtyBefore: '0', currency: 'GBP',
        amountNano: String(BigInt(amountMinor) * 10_000_000n), messageHash: toHex(new Uint8Array(30).fill(seq % 256)) + seq.toString(16).padStart(4, '0'),
      };
      const result = await parts.journal.append(draft);
      if (result.status !== 'accepted') throw new Error(`usage not accepted: ${JSON.stringify(result)}`);
    },
    seal: () => parts.book.seal(),
    async restart() {
      await close();
      parts = await open();
    },
    async batches() {
      const out: StoredBatch[] = [];
      for await (const batch of parts.book.all()) out.push(batch);
      return out;
    },
    async close() {
      await close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function runSeeded(kind: FaultKind, seed: number, shared: { bank: BankSandbox; clock: VirtualClock }): Promise<RunReport> {
  const random = seededRandom(seed * 7919 + FAULT_KINDS.indexOf(kind));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const { bank, clock } = shared;
  bank.faults.clear();
  clock.nowMs = Date.parse('2026-03-02T08:00:00Z') + Math.floor(random() * 16 * 60) * MINUTE_MS;
  const before = new Set(bank.listPayments().map((p) => p.paymentId));
  const rig = await openSettlerRig({ bank, clock, gatewayId: `gw-${kind}-${seed}`, random });
  const sealSome = async (): Promise<void> => {
    for (const payer of ['acme', 'north'] as const) if (random() < 0.8) await rig.use(payer, 50 + Math.floor(random() * 1_600));
    await rig.seal();
  };

  let restarts = 0;
  let ticks = 0;
  let slowUntilRealMs = 0;
  try {
    await sealSome();
    let secondSeal = true;
    for (; ticks < TICKS_MAX; ticks += 1) {
      // Consents end rarely (each costs a new consent and a few ticks); other faults are common.
      if (random() < (kind === 'expire-consent' ? 0.06 : 0.3)) injectFault(bank, kind, random, pick);
      if (random() < 0.02) bank.faults.failNext(10 + Math.floor(random() * 40), 503); // an outage: keys age without answers
      if (secondSeal && random() < 0.1) {
        secondSeal = false;
        await sealSome();
      }
      if (random() < 0.04) {
        await rig.restart();
        restarts += 1;
      }
      const tickStartMs = Date.now();
      await rig.settler.tick();
      // A request that timed out may be held at the bank for up to SLOW_MS more.
      if (Date.now() - tickStartMs >= CLIENT_TIMEOUT_MS - 5) slowUntilRealMs = Date.now() + SLOW_MS + 150;
      if (!secondSeal && rig.book.openBatches().length === 0) break;
      const stepMs = pick([2_000, 20_000, 5 * MINUTE_MS, 30 * MINUTE_MS, 90 * MINUTE_MS, 6 * 60 * MINUTE_MS]);
      // A bank does not work on a request for hours: let the held ones finish before time leaps.
      if (stepMs >= 5 * MINUTE_MS && Date.now() < slowUntilRealMs) await new Promise((resolve) => setTimeout(resolve, slowUntilRealMs - Date.now() + 5));
      clock.nowMs += stepMs;
    }
    const batches = await rig.batches();
    const stillOpen = batches.filter((b) => !FINAL_STATES.has(b.state));
    if (stillOpen.length > 0) throw new Error(`batches still open after ${ticks} ticks: ${JSON.stringify(stillOpen.map((b) => [b.batchNo, b.state, b.lastError, b.transitions.slice(-8).map((t) => `${t.at} ${t.state}: ${t.detail ?? ''}`)]), null, 1)}`);
    const ledgerSettledMinor = [...rig.book.settledMinorByCurrency().values()].reduce((a, b) => a + b, 0n);
    // Held answers may still be on their way: the bank's record is read once they are done.
    if (Date.now() < slowUntilRealMs) await new Promise((resolve) => setTimeout(resolve, slowUntilRealMs - Date.now() + 5));
    bank.faults.clear();
    // Runs follow each other and each waits for its held requests: what is new is this run's.
    const bankPayments = bank.listPayments().filter((p) => !before.has(p.paymentId));
    return { batches, bankPayments, ledgerSettledMinor, ticks, restarts };
  } finally {
    await rig.close();
  }
}

/** Arms one fault of the run's kind for the next request(s) it applies to. */
function injectFault(bank: BankSandbox, kind: FaultKind, random: () => number, pick: <T>(items: readonly T[]) => T): void {
  const count = 1 + Math.floor(random() * 2);
  switch (kind) {
    case 'timeout-after-accept':
      bank.faults.timeoutAfterAcceptNext(count, SLOW_MS);
      return;
    case 'fail-500':
      bank.faults.failNext(count + 1, pick([500, 502, 503]));
      return;
    case 'answer-twice':
      bank.faults.acceptSlowlyNext(1, SLOW_MS);
      return;
    case 'answer-slowly':
      bank.faults.answerSlowlyNext(count, SLOW_MS);
      return;
    case 'insufficient-funds':
      bank.faults.rejectNextPayments(1, 'insufficient-funds');
      return;
    case 'expire-consent':
      bank.faults.expireConsentNext(1);
      return;
    case 'hold-pending':
      bank.faults.holdPendingNext(count, random() < 0.5 ? { forMs: pick([MINUTE_MS, 30 * MINUTE_MS, 6 * 60 * MINUTE_MS]) } : { reads: 1 + Math.floor(random() * 4) });
      return;
  }
}
