/**
 * Closes tariff periods that are over: for each (payer, tariff, period) with usage whose
 * tariff has a minimum charge, once the period has ended in the tariff's time zone, the
 * journal books one `minimum` record that tops the period's charge up to its minimum
 * (zero when the usage already reached it). From then on, late usage in that period is
 * priced with the minimum applied, so the period's records always add up to the charge of
 * the closed period (docs/tariffs.md, Minimum and cap). Run before each seal, so a
 * period's top-up is paid with the first batch after it ends.
 */
import { canonicalJson } from '../../protocol/canonical-json.ts';
import { sha256HexOf } from '../../protocol/hash.ts';
import { parsePriceNano } from '../../protocol/money.ts';
import { periodOf, tariffHash, type TariffVersion } from '../../protocol/tariff.ts';
import type { Journal, RecordDraft } from './journal.ts';
import { parsePeriodState } from './journal.ts';
import { keys, type LedgerDb } from './ledger-db.ts';
import type { TariffBook } from './tariff-book.ts';

/** The draft of a period close: not usage, so no device and no sequence number. */
export function periodCloseDraft(tariff: TariffVersion, payer: string, period: string, closedAt: string): RecordDraft {
  return {
    v: 1, deviceId: '', seq: 0, meter: tariff.meter, quantity: '0', unit: tariff.baseUnit, deviceTime: closedAt, payer,
    tariff: tariff.id, tariffHash: tariffHash(tariff), period, periodQtyBefore: '0', currency: tariff.currency, amountNano: '0',
    // Names what is closed, so the record's identity does not depend on when it was booked.
    messageHash: sha256HexOf(undefined, canonicalJson({ kind: 'minimum', payer, tariff: tariff.id, period })),
    kind: 'minimum',
  };
}

function hasMinimum(tariff: TariffVersion): boolean {
  return tariff.minimumPerPeriod !== undefined && parsePriceNano(tariff.minimumPerPeriod, 'minimumPerPeriod') > 0n;
}

/** Books the close of every period that has ended; returns how many were closed. */
export async function closeEndedPeriods(db: LedgerDb, journal: Journal, tariffs: TariffBook, now: Date): Promise<number> {
  const nowIso = now.toISOString();
  const due: Array<{ tariff: TariffVersion; payer: string; period: string }> = [];
  for await (const [key, value] of db.iterator(keys.periodRange)) {
    const [, payer, tariffId, period] = (key as string).split('!') as [string, string, string, string];
    if (parsePeriodState(value).closed) continue;
    const tariff = tariffs.byId(tariffId)?.tariff;
    // A tariff no longer in config cannot be closed here; its records still verify from their hash.
    if (!tariff || !hasMinimum(tariff)) continue;
    if (periodOf(tariff, nowIso) <= period) continue; // periods of one tariff compare as text
    due.push({ tariff, payer, period });
  }
  let closed = 0;
  for (const { tariff, payer, period } of due) {
    const result = await journal.append(periodCloseDraft(tariff, payer, period, nowIso), tariff);
    if (result.status === 'accepted') closed += 1;
  }
  return closed;
}
