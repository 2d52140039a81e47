/**
 * A VRP consent's caps, enforced by the gateway before it asks the bank: a payment the consent
 * forbids is never sent. MaximumIndividualAmount splits a batch into parts; PeriodicLimits
 * hold a part until the period that has room for it.
 *
 * The bank counts a payment in the period of the moment it receives it, by its own clock and
 * (for a UK bank) Europe/London days, while protocol/vrp-periodic-limits.ts works in UTC days.
 * So a payment is counted in every period that holds any instant within BOUNDARY_MARGIN_MS of
 * when it is sent: near a boundary both periods must have room. Conservative on purpose.
 *
 * Pure: amounts in minor units, instants in epoch ms, no I/O.
 */
import { periodWindow, type PeriodicLimit, type PeriodWindow } from '../../protocol/vrp-periodic-limits.ts';

/** An hour for British Summer Time plus five minutes of clock skew. */
export const BOUNDARY_MARGIN_MS = 65 * 60_000;

export interface ConsentCaps {
  consentId: string;
  /** When the bank created the consent: Consent-aligned periods start on its (UTC) day. */
  createdMs: number;
  currency: string;
  maxIndividualMinor: bigint;
  periodicLimits: readonly PeriodicLimit[];
}

/** What has been sent under a consent, per period: `limitIndex@startMs` -> minor units. */
export type SpendBook = Readonly<Record<string, { endMs: number; paidMinor: string }>>;

interface CountedWindow {
  id: string;
  limit: PeriodicLimit;
  window: PeriodWindow;
}

/** The periods a payment sent at `atMs` may be counted in by the bank, per limit. */
export function windowsAround(caps: ConsentCaps, atMs: number): CountedWindow[] {
  const out = new Map<string, CountedWindow>();
  caps.periodicLimits.forEach((limit, index) => {
    for (const instantMs of [atMs - BOUNDARY_MARGIN_MS, atMs, atMs + BOUNDARY_MARGIN_MS]) {
      const window = periodWindow(limit, caps.createdMs, instantMs);
      out.set(`${index}@${window.startMs}`, { id: `${index}@${window.startMs}`, limit, window });
    }
  });
  return [...out.values()];
}

/** The most one payment may carry: no part may exceed the individual cap or a whole period's limit. */
export function partCapMinor(caps: ConsentCaps): bigint {
  return caps.periodicLimits.reduce((cap, limit) => (limit.amountMinor < cap ? limit.amountMinor : cap), caps.maxIndividualMinor);
}

/** `amountMinor` as near-equal parts of at most `capMinor`, larger first; undefined beyond `partsMax`. */
export function splitAmount(amountMinor: bigint, capMinor: bigint, partsMax: number): bigint[] | undefined {
  if (amountMinor <= 0n || capMinor <= 0n) throw new RangeError(`Cannot split ${amountMinor} into parts of at most ${capMinor}: both must be positive`);
  const count = (amountMinor + capMinor - 1n) / capMinor;
  if (count > BigInt(partsMax)) return undefined;
  const base = amountMinor / count;
  const extra = amountMinor % count;
  return Array.from({ length: Number(count) }, (_, i) => base + (BigInt(i) < extra ? 1n : 0n));
}

export type LimitCheck =
  | { ok: true; windowIds: string[] }
  | { ok: false; untilMs: number; reason: string };

/**
 * Whether `amountMinor` sent at `nowMs` fits every periodic limit, given what was sent. When
 * it does not: the first instant worth trying again (after the fullest period and its margin)
 * and why, for the operator.
 */
export function checkLimits(caps: ConsentCaps, spent: SpendBook, amountMinor: bigint, nowMs: number, format: (minor: bigint) => string): LimitCheck {
  if (amountMinor > caps.maxIndividualMinor) {
    return { ok: false, untilMs: nowMs + 3_600_000, reason: `${format(amountMinor)} exceeds the consent's MaximumIndividualAmount of ${format(caps.maxIndividualMinor)}` };
  }
  const windows = windowsAround(caps, nowMs);
  let untilMs = 0;
  const reasons: string[] = [];
  for (const { id, limit, window } of windows) {
    const paidMinor = BigInt(spent[id]?.paidMinor ?? '0');
    if (paidMinor + amountMinor <= window.limitMinor) continue;
    untilMs = Math.max(untilMs, window.endMs + BOUNDARY_MARGIN_MS);
    const period = `${new Date(window.startMs).toISOString().slice(0, 10)} to ${new Date(window.endMs).toISOString().slice(0, 10)}`;
    reasons.push(`the ${limit.periodType} limit (${limit.periodAlignment} aligned) of ${format(window.limitMinor)} for ${period} has ${format(paidMinor)} paid, so ${format(amountMinor)} more would exceed it`);
  }
  if (reasons.length > 0) return { ok: false, untilMs, reason: reasons.join('; ') };
  return { ok: true, windowIds: windows.map((w) => w.id) };
}

/** Adds `amountMinor` to the periods `windowIds` of `caps` (ids from windowsAround). */
export function addSpend(caps: ConsentCaps, spent: SpendBook, windowIds: readonly string[], amountMinor: bigint): SpendBook {
  const next: Record<string, { endMs: number; paidMinor: string }> = { ...spent };
  for (const id of windowIds) {
    const [index, startMs] = id.split('@').map(Number) as [number, number];
    const limit = caps.periodicLimits[index];
    if (!limit) continue;
    const endMs = next[id]?.endMs ?? periodWindow(limit, caps.createdMs, startMs).endMs;
    next[id] = { endMs, paidMinor: String(BigInt(next[id]?.paidMinor ?? '0') + amountMinor) };
  }
  return next;
}

/** Takes back a payment the bank did not make (rejected, refused, not found) from the periods it was counted in. */
export function removeSpend(spent: SpendBook, windowIds: readonly string[], amountMinor: bigint): SpendBook {
  const next: Record<string, { endMs: number; paidMinor: string }> = { ...spent };
  for (const id of windowIds) {
    const entry = next[id];
    if (!entry) continue;
    const paid = BigInt(entry.paidMinor) - amountMinor;
    next[id] = { endMs: entry.endMs, paidMinor: String(paid > 0n ? paid : 0n) };
  }
  return next;
}

/** Drops periods that ended (with their margin) before `nowMs`: the book stays a few entries per limit. */
export function pruneSpend(spent: SpendBook, nowMs: number): SpendBook {
  return Object.fromEntries(Object.entries(spent).filter(([, entry]) => entry.endMs + BOUNDARY_MARGIN_MS > nowMs));
}
