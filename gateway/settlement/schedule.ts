/**
 * Per-payer settlement schedules that survive clocks (docs/settlement.md).
 *
 * Each payer's next due time is computed from its cron expression in its time zone
 * (cron-next.ts) and kept in LevelDB (keys.due), not in a timer's memory. A timer of
 * our own looks every few seconds, so a clock that jumps is noticed on the next look:
 *   - a due time in the past runs exactly once, however far past (a week off: one
 *     catch-up run, not 168), and the next due time is counted from now;
 *   - a clock that jumps back finds the stored due time still ahead: nothing re-runs;
 *   - `settleAtBalance` runs as soon as the open balance reaches it;
 *   - `minimumPayment` holds a due run (nothing sealed, the reason stored) until the
 *     balance reaches it.
 * A run seals the payer's open records (BatchBook.seal({ payers })); the settler pays them.
 */
import type { Logger } from 'pino';
import { formatNano, nanoPerMinor, parseMinor } from '../../protocol/money.ts';
import type { GatewayConfig } from '../config.ts';
import { keys, writeDurably, type LedgerDb } from '../ledger/ledger-db.ts';
import { compileCron, nextCronTime, type CronSchedule } from './cron-next.ts';
import { carryKey } from './seal-batches.ts';

/** A payer's schedule, resolved from the config with the global defaults filled in. */
export interface SettlementPlan {
  payer: string;
  currency: string;
  cron: CronSchedule;
  settleAtBalanceNano?: bigint;
  minimumPaymentNano?: bigint;
}

export type RunReason = 'due' | 'balance reached settleAtBalance' | 'balance reached minimumPayment';

/** What is stored per payer under keys.due(payer). */
export interface StoredDue {
  v: 1;
  /** When the next scheduled run falls due (UTC, RFC 3339). */
  dueAt: string;
  /** What dueAt was computed from: a changed schedule recomputes a due time still ahead. */
  cron: string;
  timeZone: string;
  /** A due run found the balance below minimumPayment: nothing sealed until it reaches it. */
  held?: { since: string; reason: string };
  /** A run whose next due time is stored but whose seal may not have happened (see #run). */
  running?: { reason: RunReason; at: string; batchNoBefore: number };
}

/** One look at a payer: what to store, and whether to run. */
export type ScheduleStep =
  | { kind: 'wait' }
  | { kind: 'store'; due: StoredDue; note: string }
  | { kind: 'run'; due: StoredDue; reason: RunReason };

/** What the schedule needs of the batch book (open-balances.ts: bookSeals). */
export interface PayerSeals {
  /** Seals the payer's open records into batches (none if it has no open records). */
  sealPayer(payer: string): Promise<void>;
  /** Carried + unsealed nano per carryKey(payer, currency). */
  openBalancesNano(): Promise<ReadonlyMap<string, bigint>>;
  /** The last batch number used. */
  lastBatchNo(): Promise<number>;
  /** Whether the payer has a batch numbered above `batchNo`. */
  sealedSince(payer: string, batchNo: number): Promise<boolean>;
}

/** Every payer's plan: its own `settlement` fields, else settlement.sealCron and settlement.timezone. */
export function settlementPlans(config: Pick<GatewayConfig, 'payers' | 'settlement'>): SettlementPlan[] {
  return Object.entries(config.payers).map(([payer, p]) => {
    const own = p.settlement;
    const field = `payers.${payer}.settlement`;
    const amount = (text: string | undefined, name: string): bigint | undefined => (text === undefined ? undefined : parseMinor(text, p.currency, `${field}.${name}`) * nanoPerMinor(p.currency));
    const settleAt = amount(own?.settleAtBalance, 'settleAtBalance');
    const minimum = amount(own?.minimumPayment, 'minimumPayment');
    return {
      payer, currency: p.currency,
      cron: compileCron(own?.cron ?? config.settlement.sealCron, own?.timeZone ?? config.settlement.timezone, `${field}.cron`),
      ...(settleAt === undefined ? {} : { settleAtBalanceNano: settleAt }),
      ...(minimum === undefined || minimum === 0n ? {} : { minimumPaymentNano: minimum }),
    };
  });
}

const withoutHold = ({ held: _held, ...due }: StoredDue): StoredDue => due;

/**
 * Pure: what one look at a payer at `now` does, given its stored state and open balance
 * (undefined when the plan has no thresholds). The next due time is always counted from
 * now, never from the missed due time, so any number of missed periods is one run.
 */
export function nextStep(plan: SettlementPlan, stored: StoredDue | undefined, now: Date, balanceNano: bigint | undefined): ScheduleStep {
  const fresh = (): StoredDue => ({ v: 1, dueAt: nextCronTime(plan.cron, now).toISOString(), cron: plan.cron.expression, timeZone: plan.cron.timeZone });
  if (!stored) return { kind: 'store', due: fresh(), note: 'first due time' };
  const short = plan.minimumPaymentNano !== undefined && balanceNano !== undefined && balanceNano < plan.minimumPaymentNano;
  if (Date.parse(stored.dueAt) <= now.getTime()) {
    if (!short) return { kind: 'run', due: fresh(), reason: 'due' };
    const reason = `open balance ${formatNano(balanceNano!)} ${plan.currency} is below minimumPayment ${formatNano(plan.minimumPaymentNano!)}: nothing sealed until it reaches it`;
    return { kind: 'store', due: { ...fresh(), held: { since: stored.held?.since ?? now.toISOString(), reason } }, note: 'due run held' };
  }
  if (stored.cron !== plan.cron.expression || stored.timeZone !== plan.cron.timeZone) {
    return { kind: 'store', due: { ...fresh(), ...(stored.held ? { held: stored.held } : {}) }, note: 'schedule changed' };
  }
  if (stored.held && !short) return { kind: 'run', due: withoutHold(stored), reason: 'balance reached minimumPayment' };
  if (plan.settleAtBalanceNano !== undefined && balanceNano !== undefined && balanceNano >= plan.settleAtBalanceNano && !short) {
    return { kind: 'run', due: withoutHold(stored), reason: 'balance reached settleAtBalance' };
  }
  return { kind: 'wait' };
}

export interface SettlementScheduleOptions {
  db: LedgerDb;
  plans: readonly SettlementPlan[];
  seals: PayerSeals;
  clock: () => Date;
  logger: Logger;
  /** After a run sealed something: e.g. tick the settler so the payment leaves now. */
  afterRun?: () => Promise<void>;
  /** Longest wait between looks: how late a clock jump is noticed. */
  lookIntervalMsMax?: number;
  /** False: no timer, the caller drives tick() (tests with a fake clock). */
  timer?: boolean;
}

const LOOK_INTERVAL_MS_MAX = 5_000;
const LOOK_INTERVAL_MS_MIN = 10;

export interface PayerScheduleStatus {
  payer: string;
  cron: string;
  timeZone: string;
  dueAt?: string;
  held?: { since: string; reason: string };
}

export class SettlementSchedule {
  readonly #o: SettlementScheduleOptions;
  readonly #dues = new Map<string, StoredDue>();
  readonly #warnedBehind = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #looking: Promise<void> | undefined;
  #stopped = false;

  constructor(options: SettlementScheduleOptions) {
    this.#o = options;
  }

  /** Loads the stored due times, runs whatever fell due while we were down (once), then looks on a timer. */
  async start(): Promise<void> {
    for (const { payer } of this.#o.plans) {
      const stored = (await this.#o.db.get(keys.due(payer))) as StoredDue | undefined;
      if (stored) this.#dues.set(payer, stored);
    }
    await this.tick();
    this.#arm();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#looking;
  }

  /** One look at every payer. Overlapping calls share the look in progress. */
  tick(): Promise<void> {
    this.#looking ??= this.#look().finally(() => {
      this.#looking = undefined;
    });
    return this.#looking;
  }

  status(): PayerScheduleStatus[] {
    return this.#o.plans.map(({ payer, cron }) => {
      const due = this.#dues.get(payer);
      return { payer, cron: cron.expression, timeZone: cron.timeZone, ...(due ? { dueAt: due.dueAt } : {}), ...(due?.held ? { held: due.held } : {}) };
    });
  }

  #arm(): void {
    if (this.#stopped || this.#o.timer === false) return;
    const nowMs = this.#o.clock().getTime();
    const soonestMs = Math.min(...[...this.#dues.values()].map((due) => Date.parse(due.dueAt)));
    const delayMs = Math.max(LOOK_INTERVAL_MS_MIN, Math.min(this.#o.lookIntervalMsMax ?? LOOK_INTERVAL_MS_MAX, soonestMs - nowMs));
    this.#timer = setTimeout(() => {
      this.tick().catch((error: unknown) => this.#o.logger.error({ err: (error as Error).message }, 'settlement schedule look failed')).finally(() => this.#arm());
    }, delayMs);
    this.#timer.unref();
  }

  async #look(): Promise<void> {
    const now = this.#o.clock();
    const needsBalance = this.#o.plans.some((p) => p.settleAtBalanceNano !== undefined || p.minimumPaymentNano !== undefined);
    let balances: ReadonlyMap<string, bigint> | undefined;
    try {
      if (needsBalance) balances = await this.#o.seals.openBalancesNano();
    } catch (error) {
      this.#o.logger.error({ err: (error as Error).message }, 'settlement schedule could not read the open balances');
      return;
    }
    for (const plan of this.#o.plans) {
      try {
        await this.#lookAt(plan, now, balances);
      } catch (error) {
        // Stored state is unchanged or records the run in progress: the next look tries again.
        this.#o.logger.error({ payer: plan.payer, err: (error as Error).message }, 'settlement schedule could not run');
      }
    }
  }

  async #lookAt(plan: SettlementPlan, now: Date, balances: ReadonlyMap<string, bigint> | undefined): Promise<void> {
    const stored = this.#dues.get(plan.payer);
    if (stored?.running) {
      await this.#finishRun(plan.payer, stored);
      return; // the balance read before the run is stale: look again next time
    }
    const balanceNano = balances ? (balances.get(carryKey(plan.payer, plan.currency)) ?? 0n) : undefined;
    const step = nextStep(plan, stored, now, balanceNano);
    if (step.kind === 'wait') return this.#noticeClockBehind(plan, stored!, now);
    if (step.kind === 'store') {
      await this.#store(plan.payer, step.due);
      const level = step.note === 'due run held' ? 'warn' : 'info';
      this.#o.logger[level]({ payer: plan.payer, dueAt: step.due.dueAt, ...(step.due.held ? { held: step.due.held.reason } : {}) }, `settlement schedule: ${step.note}`);
      return;
    }
    await this.#run(plan.payer, step.due, step.reason, now);
  }

  /**
   * A run, in this order, so that each due period seals at most once and never zero times:
   *   1. one durable write: the NEXT due time together with the intent to run
   *      (`running`, with the last batch number before it). From here the period is
   *      spent: no restart will start it again from the old due time.
   *   2. the seal: one atomic write in the batch book.
   *   3. a durable write clearing the intent.
   * Crash before 1: the old due time is still past, so the restart runs it (once).
   * Crash between 1 and 2: the restart finds the intent and no batch of the payer above
   * batchNoBefore, and seals: one run. Crash between 2 and 3: the restart finds the
   * intent and the batch, and only clears the intent: still one run.
   */
  async #run(payer: string, next: StoredDue, reason: RunReason, now: Date): Promise<void> {
    const batchNoBefore = await this.#o.seals.lastBatchNo();
    const intent: StoredDue = { ...next, running: { reason, at: now.toISOString(), batchNoBefore } };
    await this.#store(payer, intent);
    this.#o.logger.info({ payer, reason, nextDueAt: next.dueAt }, 'settlement run');
    await this.#finishRun(payer, intent);
  }

  async #finishRun(payer: string, stored: StoredDue & { running?: StoredDue['running'] }): Promise<void> {
    const running = stored.running!;
    if (!(await this.#o.seals.sealedSince(payer, running.batchNoBefore))) await this.#o.seals.sealPayer(payer);
    const { running: _done, ...next } = stored;
    await this.#store(payer, next);
    await this.#o.afterRun?.().catch((error: unknown) => this.#o.logger.warn({ err: (error as Error).message }, 'after a settlement run'));
  }

  async #store(payer: string, due: StoredDue): Promise<void> {
    await writeDurably(this.#o.db, [{ type: 'put', key: keys.due(payer), value: due }]);
    this.#dues.set(payer, due);
  }

  /**
   * The stored due time is further ahead than the schedule could put it from now: the
   * clock went back (or was ahead when the last run happened). Nothing re-runs; settling
   * waits for the stored time, so say so once.
   */
  #noticeClockBehind(plan: SettlementPlan, stored: StoredDue, now: Date): void {
    const twoAhead = nextCronTime(plan.cron, nextCronTime(plan.cron, now));
    if (Date.parse(stored.dueAt) <= twoAhead.getTime()) {
      this.#warnedBehind.delete(plan.payer);
      return;
    }
    if (this.#warnedBehind.has(plan.payer)) return;
    this.#warnedBehind.add(plan.payer);
    this.#o.logger.warn({ payer: plan.payer, dueAt: stored.dueAt, now: now.toISOString() }, 'settlement schedule: the clock is behind the stored due time (it went back?); the period already run is not run again, the next run waits for the stored time');
  }
}
