/**
 * What each payer owes and has not yet had sealed: carried remainder + records not in a
 * batch, per (payer, currency) in nano. The settlement schedule reads it every tick for
 * `settleAtBalance` and `minimumPayment`, so it is kept incrementally: each refresh folds
 * only the records appended since the last, and a group that was sealed since starts over
 * from its new seal mark (BatchBook.sealedThroughOf).
 */
import type { Journal } from '../ledger/journal.ts';
import { keys, type LedgerDb } from '../ledger/ledger-db.ts';
import type { BatchBook, StoredBatch } from './batch-book.ts';
import type { PayerSeals } from './schedule.ts';
import { carryKey, sealItemOfCanonical } from './seal-batches.ts';

interface Group {
  payer: string;
  currency: string;
  /** The group's seal mark when `unsealedNano` was counted. */
  sealedThrough: number;
  /** Sum of the group's records above `sealedThrough`, up to the balances' countedThrough. */
  unsealedNano: bigint;
}

type JournalReader = Pick<Journal, 'head' | 'canonicalRecords'>;
type BookReader = Pick<BatchBook, 'sealedThrough' | 'sealedThroughOf' | 'carried'>;

export class OpenBalances {
  readonly #journal: JournalReader;
  readonly #book: BookReader;
  readonly #groups = new Map<string, Group>();
  #countedThrough: number | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(journal: JournalReader, book: BookReader) {
    this.#journal = journal;
    this.#book = book;
  }

  /** Carried + unsealed nano per carryKey(payer, currency); groups owing nothing may be absent. */
  async balancesNano(): Promise<Map<string, bigint>> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    await this.#refreshing;
    const balances = await this.#book.carried();
    for (const [key, group] of this.#groups) balances.set(key, (balances.get(key) ?? 0n) + group.unsealedNano);
    return balances;
  }

  async #refresh(): Promise<void> {
    let countedThrough = this.#countedThrough ?? this.#book.sealedThrough;
    // Sealed since the last refresh: what was counted up to the new mark is in a batch now.
    for (const group of this.#groups.values()) {
      const mark = this.#book.sealedThroughOf(group.payer, group.currency);
      if (mark <= group.sealedThrough) continue;
      group.sealedThrough = mark;
      group.unsealedNano = mark >= countedThrough ? 0n : await this.#sum(group, mark, countedThrough);
    }
    const head = this.#journal.head.index;
    if (head > countedThrough) {
      for await (const chunk of this.#journal.canonicalRecords(countedThrough + 1, head)) {
        for (const canonical of chunk) {
          const item = sealItemOfCanonical(canonical);
          const group = this.#group(item.payer, item.currency);
          if (item.index > group.sealedThrough) group.unsealedNano += BigInt(item.amountNano);
        }
      }
      countedThrough = head;
    }
    this.#countedThrough = countedThrough;
  }

  #group(payer: string, currency: string): Group {
    const key = carryKey(payer, currency);
    let group = this.#groups.get(key);
    if (!group) {
      group = { payer, currency, sealedThrough: this.#book.sealedThroughOf(payer, currency), unsealedNano: 0n };
      this.#groups.set(key, group);
    }
    return group;
  }

  /** The group's records in (from, to]: a recount after a seal that stopped short of what was counted. */
  async #sum(group: Group, from: number, to: number): Promise<bigint> {
    let sum = 0n;
    for await (const chunk of this.#journal.canonicalRecords(from + 1, to)) {
      for (const canonical of chunk) {
        const item = sealItemOfCanonical(canonical);
        if (item.payer === group.payer && item.currency === group.currency) sum += BigInt(item.amountNano);
      }
    }
    return sum;
  }
}

/** The schedule's view of the gateway's batch book: seal one payer, read balances and batches. */
export function bookSeals(parts: { db: LedgerDb; book: BatchBook; journal: JournalReader }): PayerSeals {
  const balances = new OpenBalances(parts.journal, parts.book);
  return {
    async sealPayer(payer) {
      await parts.book.seal({ payers: new Set([payer]) });
    },
    openBalancesNano: () => balances.balancesNano(),
    async lastBatchNo() {
      return ((await parts.db.get(keys.batchNo)) as number | undefined) ?? 0;
    },
    async sealedSince(payer, batchNo) {
      for await (const value of parts.db.values({ gt: keys.batch(batchNo), lt: keys.batchRange.lt })) {
        if ((value as StoredBatch).header.payer === payer) return true;
      }
      return false;
    },
  };
}
