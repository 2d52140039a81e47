/**
 * The hash-chained usage journal. Appends are queued and written in groups: one
 * LevelDB batch with fsync per group, so a device's ack (which waits for `append`)
 * always follows a durable write, at ~batch cost rather than per-record fsync cost.
 */
import { canonicalRecordJson } from '../../protocol/canonical-usage.ts';
import { ZERO_HASH_HEX } from '../../protocol/hash.ts';
import { signPayload, type SigningKey } from '../../protocol/signing.ts';
import { marginalChargeNano, minimumTopUpNano, type TariffVersion } from '../../protocol/tariff.ts';
import { chainHashOfCanonical, type Checkpoint, type SignedCheckpoint, type UsageRecord } from '../../protocol/usage-record.ts';
import { keys, writeDurably, writeStringsDurably, type LedgerDb } from './ledger-db.ts';

/**
 * A record before the journal gives it a place. Counter drafts get their quantity here;
 * with a tariff, every draft gets its periodQtyBefore and charge here too.
 */
export type RecordDraft = Omit<UsageRecord, 'index' | 'gatewayId' | 'receivedAt'> & {
  counter?: { reading: string; epoch: string; wrapAt?: string };
};

export type AppendResult =
  /** `quantity`: the record's, in base units (a counter reading's is its delta). */
  | { status: 'accepted'; index: number; quantity: string }
  | { status: 'duplicate'; index: number }
  | { status: 'conflict'; index: number }
  | { status: 'refused'; reason: 'counter_decreased' | 'stale_reading'; detail: string }
  /** A period-close draft for a period that is already closed or has no usage. */
  | { status: 'not_needed'; detail: string };

/** The last accepted reading of a (device, meter) register. */
export interface CounterState {
  epoch: string;
  reading: string;
  seq: number;
}

export interface JournalEntry {
  record: UsageRecord;
  prevHash: string;
  hash: string;
}

export interface ChainHead {
  index: number;
  hash: string;
}

interface DedupEntry {
  index: number;
  messageHash: string;
}

const ENTRY_HEAD = '{"record":';
const PREV_HASH_MEMBER = ',"prevHash":"';

/** The canonical record text inside a stored journal entry (re-canonicalised if another writer laid it out differently). */
function canonicalOfEntry(text: string): string {
  const end = text.lastIndexOf(PREV_HASH_MEMBER);
  if (text.startsWith(ENTRY_HEAD) && end > ENTRY_HEAD.length) return text.slice(ENTRY_HEAD.length, end);
  return canonicalRecordJson((JSON.parse(text) as JournalEntry).record);
}

/** Period states kept in memory; past it the cache starts again (reads refill it). */
const PERIODS_CACHED_MAX = 10_000;

/** What marginal pricing starts from: base units recorded in a (payer, tariff, period), and whether its minimum is booked. */
export interface PeriodState {
  quantity: bigint;
  closed: boolean;
}

/** A period state as LevelDB's JSON encoding reads it back: `{ q, closed? }` (or, first written, a bare quantity string). */
export function parsePeriodState(stored: unknown): PeriodState {
  if (stored === undefined) return { quantity: 0n, closed: false };
  if (typeof stored === 'string') return { quantity: BigInt(stored), closed: false };
  const value = stored as { q: string; closed?: boolean };
  return { quantity: BigInt(value.q), closed: value.closed === true };
}

export class JournalFullError extends Error {
  readonly code = 'MB_JOURNAL_FULL';
}

export interface JournalOptions {
  gatewayId: string;
  signingKey: SigningKey;
  clock: () => Date;
  queueMax: number;
  batchMax: number;
  checkpointEveryRecords: number;
  checkpointIntervalMs: number;
  /** Test seam: awaited before each durable write, to prove acks wait for it. */
  beforeWrite?: () => Promise<void>;
  /**
   * The highest seq of every device in the journal, from a scan of all of it (start-up
   * verification makes one). With it, a seq above a device's highest needs no dedup read:
   * it cannot have been recorded. Without it every append reads its dedup key.
   */
  highestSeqByDevice?: Map<string, number>;
  /**
   * Called with each checkpoint once it is durable in LevelDB (main.ts keeps the trusted
   * head file, trusted-head.ts, from it). Must not throw and must not block: the journal
   * does not wait for it.
   */
  onCheckpointWritten?: (checkpoint: SignedCheckpoint) => void;
}

interface PreparedGroup {
  /** The first group prepared into this write (more than one when groups were merged). */
  firstGroupNo: number;
  groupNo: number;
  generation: number;
  ops: Array<{ type: 'put'; key: string; value: string }>;
  results: AppendResult[];
  head: ChainHead;
  checkpoint?: SignedCheckpoint;
}

/** One write of two groups prepared one after the other (the second on the first's tip); later puts of a key win. */
function mergePrepared(first: PreparedGroup, second: PreparedGroup): PreparedGroup {
  const checkpoint = second.checkpoint ?? first.checkpoint;
  return {
    firstGroupNo: first.firstGroupNo,
    groupNo: second.groupNo,
    generation: second.generation,
    ops: first.ops.concat(second.ops),
    results: first.results.concat(second.results),
    head: second.head,
    ...(checkpoint ? { checkpoint } : {}),
  };
}

interface Pending {
  /** Dropped once its write is under way (see #commit). */
  draft: RecordDraft | undefined;
  tariff: TariffVersion | undefined;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

export class Journal {
  readonly #db: LedgerDb;
  readonly #options: JournalOptions;
  #head: ChainHead;
  /** Head after every prepared group; equals #head when nothing is in flight. */
  #tip: ChainHead;
  #queue: Pending[] = [];
  /** Appends taken from the queue into a write not yet settled. */
  #taken = 0;
  /** Dedup entries prepared but perhaps not yet readable from LevelDB. */
  readonly #pendingDedup = new Map<string, { entry: DedupEntry; groupNo: number }>();
  /** Counter states prepared but perhaps not yet readable from LevelDB. */
  readonly #pendingCounters = new Map<string, { state: CounterState; groupNo: number }>();
  /** Period states (base units per payer, tariff, period) prepared but perhaps not yet written. */
  readonly #pendingPeriods = new Map<string, PeriodState & { groupNo: number }>();
  /** Written period states, so most groups read none: only the journal writes them. Bounded. */
  readonly #writtenPeriods = new Map<string, PeriodState>();
  #preparedGroupNo = 0;
  #committedGroupNo = 0;
  /** Bumped when a write fails: groups prepared on top of it are rebuilt. */
  #generation = 0;
  #flushing: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #lastCheckpoint: { index: number; atMs: number };
  #latestCheckpoint: SignedCheckpoint | undefined;

  private constructor(db: LedgerDb, options: JournalOptions, head: ChainHead, checkpoint: SignedCheckpoint | undefined) {
    this.#db = db;
    this.#options = options;
    this.#head = head;
    this.#tip = head;
    this.#latestCheckpoint = checkpoint;
    this.#lastCheckpoint = { index: checkpoint?.index ?? 0, atMs: options.clock().getTime() };
  }

  static async open(db: LedgerDb, options: JournalOptions): Promise<Journal> {
    const head = ((await db.get(keys.head)) as ChainHead | undefined) ?? { index: 0, hash: ZERO_HASH_HEX };
    let checkpoint: SignedCheckpoint | undefined;
    for await (const value of db.values({ ...keys.checkpointRange, reverse: true, limit: 1 })) checkpoint = value as SignedCheckpoint;
    return new Journal(db, options, head, checkpoint);
  }

  get head(): ChainHead {
    return { ...this.#head };
  }

  /** Appends not yet settled: queued, or taken into a write that is being prepared or is in flight. */
  get queueLength(): number {
    return this.#queue.length + this.#taken;
  }

  get latestCheckpoint(): SignedCheckpoint | undefined {
    return this.#latestCheckpoint;
  }

  /**
   * Resolves once the record is durable (or found to be a duplicate/conflict). With a
   * tariff, the journal prices the record against what its (payer, tariff, period)
   * already holds; without one (tests, imports) the draft's amountNano stands.
   */
  append(draft: RecordDraft, tariff?: TariffVersion): Promise<AppendResult> {
    if (this.#queue.length >= this.#options.queueMax) {
      return Promise.reject(new JournalFullError(`Cannot append usage from ${draft.deviceId}: ${this.#queue.length} records already wait for disk`));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ draft, tariff, resolve, reject });
      this.#wake?.();
      this.#flushing ??= this.#flushLoop();
    });
  }

  /** Waits until every queued append has been written or failed. */
  async drain(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  /**
   * Write groups in order, one write in flight at a time, while the next group is
   * prepared (dedup lookups, pricing already done, chain hashes): CPU work overlaps the
   * fsync. A group is acknowledged only when its own write is durable.
   */
  async #flushLoop(): Promise<void> {
    // Yield once so appends arriving in the same tick share one write.
    await new Promise<void>((resolve) => setImmediate(resolve));
    let inFlight: Promise<void> | undefined;
    try {
      for (;;) {
        if (this.#queue.length === 0) {
          if (!inFlight) break;
          // Wait for the write in flight or for new appends, whichever comes first, so
          // the next group is prepared while the disk is busy.
          const arrived = new Promise<void>((resolve) => (this.#wake = resolve));
          const writeDone = inFlight.then(() => true);
          if (await Promise.race([writeDone, arrived.then(() => false)])) inFlight = undefined;
          this.#wake = undefined;
          continue;
        }
        const group = this.#queue.splice(0, this.#options.batchMax);
        this.#taken += group.length;
        try {
          let prepared = await this.#prepareGroup(group);
          if (inFlight) await inFlight;
          // The write before ours failed: our chain was built on it, so build it again.
          if (prepared.generation !== this.#generation) prepared = await this.#prepareGroup(group);
          // What arrived while the write before was in flight joins this write rather
          // than wait for a whole further write (group commit).
          while (this.#queue.length > 0 && group.length < this.#options.batchMax) {
            const more = this.#queue.splice(0, this.#options.batchMax - group.length);
            this.#taken += more.length;
            let morePrepared: PreparedGroup;
            try {
              morePrepared = await this.#prepareGroup(more);
            } catch (error) {
              // A prepare fails before it changes any state (its reads come first): only
              // these are refused, and what is prepared already is written.
              this.#taken -= more.length;
              for (const pending of more) pending.reject(error);
              break;
            }
            group.push(...more);
            prepared = mergePrepared(prepared, morePrepared);
          }
          inFlight = this.#commit(prepared, group);
        } catch (error) {
          this.#taken -= group.length;
          for (const pending of group) pending.reject(error);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  #prepareGroup(group: Pending[]): Promise<PreparedGroup> {
    const drafts = group.map((p) => {
      if (!p.draft) throw new Error('a draft was prepared again after its write had started');
      return p.draft;
    });
    return this.#prepare(drafts, group.map((p) => p.tariff));
  }

  async #prepare(drafts: RecordDraft[], tariffs: Array<TariffVersion | undefined>): Promise<PreparedGroup> {
    // Entries of committed groups are now visible to getMany; drop them before reading.
    for (const [key, pending] of this.#pendingDedup) if (pending.groupNo <= this.#committedGroupNo) this.#pendingDedup.delete(key);
    for (const [key, pending] of this.#pendingCounters) if (pending.groupNo <= this.#committedGroupNo) this.#pendingCounters.delete(key);
    for (const [key, pending] of this.#pendingPeriods) {
      if (pending.groupNo > this.#committedGroupNo) continue;
      this.#pendingPeriods.delete(key);
      if (this.#writtenPeriods.size >= PERIODS_CACHED_MAX) this.#writtenPeriods.clear();
      this.#writtenPeriods.set(key, { quantity: pending.quantity, closed: pending.closed });
    }
    const dedupKeys = drafts.map((d) => keys.dedup(d.deviceId, d.seq));
    const highest = this.#options.highestSeqByDevice;
    // Only seqs at or below a device's highest can be repeats: read just those.
    // A period close is not a device's message: it has no dedup entry (the period state guards it).
    const lookups = dedupKeys.filter((_key, i) => drafts[i]!.kind !== 'minimum' && (!highest || drafts[i]!.seq <= (highest.get(drafts[i]!.deviceId) ?? 0)));
    const counterKeys = [...new Set(drafts.filter((d) => d.counter).map((d) => keys.counter(d.deviceId, d.meter)))];
    const periodKeys = drafts.map((d, i) => (tariffs[i] ? keys.period(d.payer, d.tariff, d.period ?? '') : ''));
    const periodReads = [...new Set(periodKeys.filter((k) => k !== '' && !this.#pendingPeriods.has(k) && !this.#writtenPeriods.has(k)))];
    const [found, storedCounters, storedPeriods] = await Promise.all([
      lookups.length > 0 ? this.#db.getMany(lookups) : [],
      counterKeys.length > 0 ? this.#db.getMany(counterKeys) : [],
      periodReads.length > 0 ? this.#db.getMany(periodReads) : [],
    ]);
    periodReads.forEach((key, i) => {
      if (this.#writtenPeriods.size >= PERIODS_CACHED_MAX) this.#writtenPeriods.clear();
      this.#writtenPeriods.set(key, parsePeriodState(storedPeriods[i]));
    });
    const stored = new Map<string, DedupEntry | undefined>(lookups.map((key, i) => [key, found[i] as DedupEntry | undefined]));
    const counterStates = new Map<string, CounterState | undefined>(counterKeys.map((key, i) => [key, storedCounters[i] as CounterState | undefined]));
    const groupNo = ++this.#preparedGroupNo;
    const ops: PreparedGroup['ops'] = [];
    const results: AppendResult[] = [];
    const base = this.#tip;
    let head = base;
    const receivedAt = this.#options.clock().toISOString();
    // Counter and period states are written once per group, their last value: records of
    // one payer's period share a key, and a put per record cost LevelDB work for nothing.
    const groupStates = new Map<string, string>();
    drafts.forEach((draft, i) => {
      const dedupKey = dedupKeys[i]!;
      const closing = draft.kind === 'minimum';
      const existing = closing ? undefined : this.#pendingDedup.get(dedupKey)?.entry ?? stored.get(dedupKey);
      if (existing) {
        results.push({ status: existing.messageHash === draft.messageHash ? 'duplicate' : 'conflict', index: existing.index });
        return;
      }
      let priced: Omit<UsageRecord, 'index' | 'gatewayId' | 'receivedAt'> = draft;
      if (draft.counter) {
        const counterKey = keys.counter(draft.deviceId, draft.meter);
        const outcome = applyReading(this.#pendingCounters.get(counterKey)?.state ?? counterStates.get(counterKey), draft);
        if (outcome.status === 'refused') {
          results.push(outcome);
          return;
        }
        priced = outcome.record;
        const state: CounterState = { epoch: draft.counter.epoch, reading: draft.counter.reading, seq: draft.seq };
        this.#pendingCounters.set(counterKey, { state, groupNo });
        groupStates.set(counterKey, JSON.stringify(state));
      }
      const tariff = tariffs[i];
      if (tariff) {
        // Marginal pricing: the charge of the period's total with this record minus
        // without it, so a period's records sum exactly to the charge of its total.
        // Once the period is closed (its minimum booked), later records are priced with
        // the minimum applied, so the total stays the charge of the closed period.
        const periodKey = periodKeys[i]!;
        const state = this.#pendingPeriods.get(periodKey) ?? this.#writtenPeriods.get(periodKey) ?? { quantity: 0n, closed: false };
        const before = state.quantity;
        if (closing && (state.closed || before === 0n)) {
          results.push({ status: 'not_needed', detail: state.closed ? `period ${draft.period ?? ''} of ${draft.tariff} for ${draft.payer} is already closed` : `period ${draft.period ?? ''} of ${draft.tariff} for ${draft.payer} has no usage` });
          return;
        }
        const quantity = BigInt(priced.quantity);
        priced.periodQtyBefore = before.toString();
        priced.amountNano = (closing ? minimumTopUpNano(tariff, before) : marginalChargeNano(tariff, before, quantity, state.closed)).toString();
        const next: PeriodState = { quantity: before + quantity, closed: state.closed || closing };
        this.#pendingPeriods.set(periodKey, { ...next, groupNo });
        groupStates.set(periodKey, next.closed ? `{"q":"${next.quantity}","closed":true}` : `{"q":"${next.quantity}"}`);
      }
      // The draft is ours alone (made by priceUsage for this append): complete it in place
      // rather than copy a 17-field object per record.
      const record = priced as UsageRecord;
      record.index = head.index + 1;
      record.gatewayId = this.#options.gatewayId;
      record.receivedAt = receivedAt;
      const canonical = canonicalRecordJson(record);
      const hash = chainHashOfCanonical(head.hash, canonical);
      // The entry is stored as JSON text built around the canonical record we just hashed,
      // so the record is serialised once per append (it reads back as a JournalEntry).
      const entryJson = `{"record":${canonical},"prevHash":"${head.hash}","hash":"${hash}"}`;
      const entry: DedupEntry = { index: record.index, messageHash: draft.messageHash };
      ops.push({ type: 'put', key: keys.record(record.index), value: entryJson });
      if (!closing) {
        ops.push({ type: 'put', key: dedupKey, value: `{"index":${entry.index},"messageHash":"${entry.messageHash}"}` });
        this.#pendingDedup.set(dedupKey, { entry, groupNo });
      }
      // Raised when prepared: a later copy of this seq then reads (and finds it pending or
      // written). If the write fails the mark stays high, which only costs a read.
      if (highest && draft.seq > (highest.get(draft.deviceId) ?? 0)) highest.set(draft.deviceId, draft.seq);
      head = { index: record.index, hash };
      results.push({ status: 'accepted', index: record.index, quantity: record.quantity });
    });
    for (const [key, value] of groupStates) ops.push({ type: 'put', key, value });
    let checkpoint: SignedCheckpoint | undefined;
    if (ops.length > 0) {
      ops.push({ type: 'put', key: keys.head, value: JSON.stringify(head) });
      checkpoint = this.#checkpointIfDue(head);
      if (checkpoint) ops.push({ type: 'put', key: keys.checkpoint(checkpoint.index), value: JSON.stringify(checkpoint) });
    }
    this.#tip = head;
    return { firstGroupNo: groupNo, groupNo, generation: this.#generation, ops, results, head, ...(checkpoint ? { checkpoint } : {}) };
  }

  async #commit(prepared: PreparedGroup, group: Pending[]): Promise<void> {
    try {
      if (prepared.ops.length > 0) {
        if (this.#options.beforeWrite) await this.#options.beforeWrite();
        // Every value is JSON text already (see writeStringsDurably).
        const written = writeStringsDurably(this.#db, prepared.ops);
        // The drafts are in the write now; dropped, they die young instead of being
        // copied and promoted by the collections that run during the fsync.
        for (const pending of group) pending.draft = undefined;
        await written;
        // Only a durable write moves the head.
        this.#head = prepared.head;
        if (prepared.checkpoint) {
          this.#latestCheckpoint = prepared.checkpoint;
          this.#options.onCheckpointWritten?.(prepared.checkpoint);
        }
      }
      this.#committedGroupNo = prepared.groupNo;
      this.#taken -= group.length;
      group.forEach((pending, i) => pending.resolve(prepared.results[i]!));
    } catch (error) {
      for (const [key, pending] of this.#pendingDedup) if (pending.groupNo >= prepared.firstGroupNo) this.#pendingDedup.delete(key);
      for (const [key, pending] of this.#pendingCounters) if (pending.groupNo >= prepared.firstGroupNo) this.#pendingCounters.delete(key);
      for (const [key, pending] of this.#pendingPeriods) if (pending.groupNo >= prepared.firstGroupNo) this.#pendingPeriods.delete(key);
      this.#tip = this.#head;
      this.#generation += 1;
      this.#committedGroupNo = prepared.groupNo;
      this.#taken -= group.length;
      for (const pending of group) pending.reject(error);
    }
  }

  #checkpointIfDue(head: ChainHead): SignedCheckpoint | undefined {
    const nowMs = this.#options.clock().getTime();
    const dueByCount = head.index - this.#lastCheckpoint.index >= this.#options.checkpointEveryRecords;
    const dueByTime = nowMs - this.#lastCheckpoint.atMs >= this.#options.checkpointIntervalMs;
    if (!dueByCount && !dueByTime) return undefined;
    this.#lastCheckpoint = { index: head.index, atMs: nowMs };
    return this.signCheckpoint(head);
  }

  signCheckpoint(head: ChainHead): SignedCheckpoint {
    const checkpoint: Checkpoint = { v: 1, gatewayId: this.#options.gatewayId, index: head.index, hash: head.hash, time: this.#options.clock().toISOString() };
    return { ...checkpoint, sig: signPayload(checkpoint, this.#options.signingKey) };
  }

  /** Signs and stores a checkpoint of the current head now (on shutdown, at seal time). */
  async checkpointNow(): Promise<SignedCheckpoint | undefined> {
    if (this.#head.index === 0 || this.#latestCheckpoint?.index === this.#head.index) return this.#latestCheckpoint;
    const checkpoint = this.signCheckpoint(this.#head);
    await writeDurably(this.#db, [{ type: 'put', key: keys.checkpoint(checkpoint.index), value: checkpoint }]);
    this.#latestCheckpoint = checkpoint;
    this.#lastCheckpoint = { index: checkpoint.index, atMs: Date.parse(checkpoint.time) };
    this.#options.onCheckpointWritten?.(checkpoint);
    return checkpoint;
  }

  async get(index: number): Promise<JournalEntry | undefined> {
    return (await this.#db.get(keys.record(index))) as JournalEntry | undefined;
  }

  /** Entries with index in [from, to], in order. */
  async *entries(from: number, to: number): AsyncGenerator<JournalEntry> {
    if (to < from) return;
    for await (const value of this.#db.values({ gte: keys.record(from), lte: keys.record(to) })) yield value as JournalEntry;
  }

  /**
   * The canonical text of the records with index in [from, to], in order, a chunk at a
   * time and without parsing them: entries are stored as `{"record":<canonical>,"prevHash":…}`
   * (see #prepare), and the canonical text is what chains and Merkle trees hash.
   */
  async *canonicalRecords(from: number, to: number, chunkEntries = 1_000): AsyncGenerator<string[]> {
    if (to < from) return;
    const iterator = this.#db.iterator<string, string>({ gte: keys.record(from), lte: keys.record(to), keyEncoding: 'utf8', valueEncoding: 'utf8' });
    // LevelDB reads the next chunk on libuv's thread pool while the caller works on this one.
    let next = iterator.nextv(chunkEntries);
    try {
      for (let entries = await next; entries.length > 0; entries = await next) {
        next = iterator.nextv(chunkEntries);
        yield entries.map(([, text]) => canonicalOfEntry(text));
      }
    } finally {
      await next.catch(() => []);
      await iterator.close();
    }
  }

  async latest(limit: number): Promise<JournalEntry[]> {
    const out: JournalEntry[] = [];
    for await (const value of this.#db.values({ ...keys.recordRange, reverse: true, limit })) out.push(value as JournalEntry);
    return out;
  }
}

type ReadingOutcome =
  | { status: 'priced'; record: Omit<UsageRecord, 'index' | 'gatewayId' | 'receivedAt'> }
  | { status: 'refused'; reason: 'counter_decreased' | 'stale_reading'; detail: string };

/**
 * Usage from a counter reading: the difference to the last accepted reading of the same
 * register. A lost reading merges into the next delta, so nothing is lost; a new epoch
 * is a reset (usage = the reading itself); a drop within one epoch is a wrap only when
 * the meter declares where it wraps, and refused otherwise.
 */
export function applyReading(previous: CounterState | undefined, draft: RecordDraft): ReadingOutcome {
  const { counter, counter: { reading, epoch } = { reading: '0', epoch: '' }, ...rest } = draft;
  if (!counter) throw new Error('applyReading needs a counter draft'); // a bug, not an input
  const base = { ...rest, kind: 'counter' as const, reading, epoch };
  if (counter.wrapAt && BigInt(reading) >= BigInt(counter.wrapAt)) {
    return { status: 'refused', reason: 'counter_decreased', detail: `reading ${reading} is not below the meter's wrap point ${counter.wrapAt}` };
  }
  let delta: bigint;
  let extra: Partial<UsageRecord>;
  if (!previous) {
    delta = 0n;
    extra = { counterEvent: 'baseline' };
  } else if (draft.seq < previous.seq) {
    return { status: 'refused', reason: 'stale_reading', detail: `reading seq ${draft.seq} is older than the accepted seq ${previous.seq}; its usage is already in the later reading` };
  } else if (epoch !== previous.epoch) {
    delta = BigInt(reading);
    extra = { counterEvent: 'reset', prevReading: previous.reading, prevEpoch: previous.epoch };
  } else if (BigInt(reading) >= BigInt(previous.reading)) {
    delta = BigInt(reading) - BigInt(previous.reading);
    extra = { counterEvent: 'delta', prevReading: previous.reading };
  } else if (counter.wrapAt && BigInt(reading) < BigInt(counter.wrapAt) / 2n && BigInt(previous.reading) >= BigInt(counter.wrapAt) / 2n && BigInt(previous.reading) < BigInt(counter.wrapAt)) {
    // A wrap only from the upper half to the lower half of the register: a register that
    // restarted from 0 without a new epoch must not be billed as almost a full turn.
    delta = BigInt(counter.wrapAt) - BigInt(previous.reading) + BigInt(reading);
    extra = { counterEvent: 'wrap', prevReading: previous.reading };
  } else {
    return { status: 'refused', reason: 'counter_decreased', detail: `reading ${reading} is below the previous ${previous.reading} in the same epoch ${epoch}, and the meter does not wrap` };
  }
  // The journal prices the quantity against the tariff when there is one.
  return { status: 'priced', record: { ...base, ...extra, quantity: delta.toString() } };
}
