/**
 * The gateway's one LevelDB: journal, dedup index, batches, payments and carried
 * remainders share it so that a seal or a state change is one atomic, fsynced batch.
 *
 * Key layout (all values JSON):
 *   r!<index:12>            journal entry { record, prevHash, hash }
 *   d!<deviceId>!<seq:16>   dedup index   { index, messageHash }
 *   c!<index:12>            signed checkpoint of the chain head
 *   b!<batchNo:10>          batch state (header, settlement state, transitions)
 *   k!<payer>!<currency>    carried remainder in nano, decimal string
 *   s!<deviceId>!<meter>    last accepted counter reading { epoch, reading, seq }
 *   q!<payer>!<tariff>!<period>  base units recorded so far in a tariff period (marginal pricing)
 *   p!consent!<payer>       bank consent of a payer
 *   e!<entryNo:12>          double-entry accounts entry (gateway/ledger/accounts.ts)
 *   x!<kind>!<ref>          entry number posted once for (kind, ref): idempotent postings
 *   a!<alertNo:10>          reconciliation alert (gateway/settlement/reconcile.ts)
 *   o!<auditNo:10>          operator action: who, when, what, outcome (gateway/web/audit-log.ts)
 *   u!<seq:12>              signed upload envelope waiting for cloud-sync's ack (gateway/uplink/outbox.ts)
 *   m!head                  { index, hash } of the journal head
 *   m!sealedThrough         highest journal index already sealed into a batch
 *   m!batchNo               last batch number used
 *   m!entryNo               last accounts entry number used
 *   m!due!<payer>           the payer's next settlement due time (gateway/settlement/schedule.ts)
 *   m!outbox                uplink outbox counters: next seq, acked seq, items, bytes (gateway/uplink/outbox.ts)
 *   m!uplinkBatches         sealed batches queued for upload so far (gateway/uplink/batch-uploads.ts)
 */
import { Level } from 'level';

export type LedgerDb = Level<string, unknown>;
export type LedgerOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

export async function openLedgerDb(dir: string): Promise<LedgerDb> {
  // A 2 MB block cache instead of LevelDB's 8 MB: ingest reads only the odd dedup key,
  // and chain checks and seals read each block once. A smaller write buffer was tried
  // too: it saved no memory under full load and cost ~15% of the ingest rate.
  const db = new Level<string, unknown>(dir, { valueEncoding: 'json', cacheSize: 2 * 1024 * 1024 });
  await db.open();
  return db;
}

/** Every write that matters goes through here: atomic and fsynced before it resolves. */
export async function writeDurably(db: LedgerDb, ops: LedgerOp[]): Promise<void> {
  await db.batch(ops, { sync: true });
}

type StringOp = { type: 'put'; key: string; value: string };
type ImplementationBatch = { _batch?: (ops: StringOp[], options: { sync: boolean }) => Promise<void> };

/**
 * The journal's hot write: every key and value is already a UTF-8 string (values JSON
 * text). abstract-level's public batch() spends ~7 µs per operation on hooks, events and
 * encodings we do not use; its implementation method `_batch` (abstract-level's API for
 * storage implementations; classic-level hands strings straight to LevelDB) does the same
 * fsynced write at about half the cost. Falls back to the public batch when unavailable.
 * Takes the operations: the array is emptied.
 */
export async function writeStringsDurably(db: LedgerDb, ops: StringOp[]): Promise<void> {
  const implementation = db as unknown as ImplementationBatch;
  if (db.status === 'open' && typeof implementation._batch === 'function') {
    const written = implementation._batch.call(db, ops, { sync: true });
    // classic-level copied every key and value into its WriteBatch before returning;
    // letting go of them now, rather than after the fsync, keeps them from surviving
    // into V8's old generation (a write takes several young-generation collections).
    ops.length = 0;
    await written;
    return;
  }
  await db.batch(ops, { sync: true, valueEncoding: 'utf8' });
}

const pad = (n: number, width: number): string => {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`key index ${n} is not a non-negative integer`);
  return n.toString().padStart(width, '0');
};

export const keys = {
  record: (index: number) => `r!${pad(index, 12)}`,
  recordRange: { gt: 'r!', lt: 'r!~' },
  dedup: (deviceId: string, seq: number) => `d!${deviceId}!${pad(seq, 16)}`,
  checkpoint: (index: number) => `c!${pad(index, 12)}`,
  checkpointRange: { gt: 'c!', lt: 'c!~' },
  batch: (batchNo: number) => `b!${pad(batchNo, 10)}`,
  batchRange: { gt: 'b!', lt: 'b!~' },
  carry: (payer: string, currency: string) => `k!${payer}!${currency}`,
  carryRange: { gt: 'k!', lt: 'k!~' },
  consent: (payer: string) => `p!consent!${payer}`,
  counter: (deviceId: string, meter: string) => `s!${deviceId}!${meter}`,
  /** Base units recorded so far for a (payer, tariff, period): what marginal pricing starts from. */
  period: (payer: string, tariff: string, period: string) => `q!${payer}!${tariff}!${period}`,
  periodRange: { gt: 'q!', lt: 'q!~' },
  head: 'm!head',
  sealedThrough: 'm!sealedThrough',
  batchNo: 'm!batchNo',
  entry: (entryNo: number) => `e!${pad(entryNo, 12)}`,
  entryRange: { gt: 'e!', lt: 'e!~' },
  entryOnce: (kind: string, ref: string) => `x!${kind}!${ref}`,
  entryNo: 'm!entryNo',
  /** A payer's settlement schedule: next due time, a held run, a run in progress. */
  due: (payer: string) => `m!due!${payer}`,
  /** An operator alert from reconciling the batches with the bank's record. */
  alert: (alertNo: number) => `a!${pad(alertNo, 10)}`,
  alertRange: { gt: 'a!', lt: 'a!~' },
  /** What an operator did on the operator page (gateway/web/audit-log.ts). */
  audit: (auditNo: number) => `o!${pad(auditNo, 10)}`,
  auditRange: { gt: 'o!', lt: 'o!~' },
  /** A signed envelope in the uplink outbox, until cloud-sync acknowledges it (gateway/uplink/outbox.ts). */
  outboxItem: (seq: number) => `u!${pad(seq, 12)}`,
  outboxRange: { gt: 'u!', lt: 'u!~' },
  outboxCounters: 'm!outbox',
  /** Which sealed batches are in the outbox already: the last one, and a batch whose parts are half queued. */
  uplinkBatches: 'm!uplinkBatches',
} as const;
