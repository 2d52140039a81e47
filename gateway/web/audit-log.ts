/**
 * What operators did on the operator page: who, when, what, to what, and how it ended,
 * kept in the ledger's LevelDB (fsynced, like everything that matters) and bounded: past
 * AUDIT_ENTRIES_MAX the oldest entries go.
 *
 * Actions are idempotent on double-click: the page sends one `x-action-id` per confirmed
 * action, and a repeated id gets the first answer back instead of a second action. The
 * ids of recent actions are remembered in memory (bounded); the audit log keeps them too.
 */
import { keys, writeDurably, type LedgerDb } from '../ledger/ledger-db.ts';

export interface AuditEntry {
  auditNo: number;
  at: string;
  by: string;
  action: string;
  target?: string;
  /** 'ok' or the error the operator saw. */
  outcome: string;
  detail?: string;
  actionId?: string;
}

const AUDIT_ENTRIES_MAX = 10_000;
const ANSWERS_KEPT_MAX = 256;
const ACTION_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface ActionAnswer {
  statusCode: number;
  body: unknown;
}

export class AuditLog {
  readonly #db: LedgerDb;
  readonly #clock: () => Date;
  #lastNo: number;
  #firstNo: number;
  /** Action id → its answer, or the promise of it while the action runs. */
  readonly #answers = new Map<string, Promise<ActionAnswer>>();
  #writing: Promise<unknown> = Promise.resolve();

  private constructor(db: LedgerDb, clock: () => Date, firstNo: number, lastNo: number) {
    this.#db = db;
    this.#clock = clock;
    this.#firstNo = firstNo;
    this.#lastNo = lastNo;
  }

  static async open(db: LedgerDb, options: { clock: () => Date }): Promise<AuditLog> {
    let first = 0;
    let last = 0;
    for await (const key of db.keys({ ...keys.auditRange, limit: 1 })) first = Number(key.slice(2));
    for await (const key of db.keys({ ...keys.auditRange, reverse: true, limit: 1 })) last = Number(key.slice(2));
    return new AuditLog(db, options.clock, first || last + 1, last);
  }

  static validActionId(id: unknown): id is string {
    return typeof id === 'string' && ACTION_ID.test(id);
  }

  /**
   * Runs `act` once per action id and audits it; a repeated id waits for and returns the
   * first answer. Without an id every call acts.
   */
  run(entry: Omit<AuditEntry, 'auditNo' | 'at' | 'outcome' | 'actionId'>, actionId: string | undefined, act: () => Promise<ActionAnswer>): Promise<ActionAnswer> {
    if (actionId !== undefined) {
      const earlier = this.#answers.get(actionId);
      if (earlier) return earlier;
    }
    const answer = (async (): Promise<ActionAnswer> => {
      let result: ActionAnswer;
      try {
        result = await act();
      } catch (error) {
        await this.append({ ...entry, outcome: `failed: ${(error as Error).message}`, ...(actionId ? { actionId } : {}) });
        throw error;
      }
      const outcome = result.statusCode < 400 ? 'ok' : `refused: ${String((result.body as { error?: unknown }).error ?? result.statusCode)}`;
      await this.append({ ...entry, outcome, ...(actionId ? { actionId } : {}) });
      return result;
    })();
    if (actionId !== undefined) {
      if (this.#answers.size >= ANSWERS_KEPT_MAX) this.#answers.delete(this.#answers.keys().next().value!);
      this.#answers.set(actionId, answer);
      // A failed action may be tried again under the same id.
      answer.catch(() => this.#answers.delete(actionId));
    }
    return answer;
  }

  /** Appends one entry (in order, one write at a time). */
  append(entry: Omit<AuditEntry, 'auditNo' | 'at'>): Promise<AuditEntry> {
    const written = this.#writing.then(async () => {
      const stored: AuditEntry = { auditNo: this.#lastNo + 1, at: this.#clock().toISOString(), ...entry };
      const ops: Parameters<typeof writeDurably>[1] = [{ type: 'put', key: keys.audit(stored.auditNo), value: stored }];
      const dropTo = stored.auditNo - AUDIT_ENTRIES_MAX;
      for (; this.#firstNo <= dropTo; this.#firstNo += 1) ops.push({ type: 'del', key: keys.audit(this.#firstNo) });
      await writeDurably(this.#db, ops);
      this.#lastNo = stored.auditNo;
      return stored;
    });
    this.#writing = written.catch(() => undefined);
    return written;
  }

  async latest(limit: number): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    for await (const value of this.#db.values({ ...keys.auditRange, reverse: true, limit })) out.push(value as AuditEntry);
    return out;
  }
}
