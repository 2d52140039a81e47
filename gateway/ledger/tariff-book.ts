/**
 * The gateway's tariffs: config turned into one schedule of versions per meter
 * (protocol/tariff.ts), resolved per (meter, payer, usage time) with payer overrides
 * merged. Every resolved version is checked and hashed once, at start-up; pricing a
 * message is then a lookup.
 */
import { checkTariffVersion, resolveTariff, tariffHash, type TariffSchedule, type TariffVersion } from '../../protocol/tariff.ts';
import type { GatewayConfig } from '../config.ts';

const EPOCH = '1970-01-01T00:00:00.000Z';

export interface PricedTariff {
  tariff: TariffVersion;
  hash: string;
}

/** The schedules config describes, one per meter (the shorthand becomes one per-unit version). */
export function tariffSchedules(config: Pick<GatewayConfig, 'meters' | 'tariffs'>): Map<string, TariffSchedule> {
  const schedules = new Map<string, TariffSchedule>();
  for (const [meterId, t] of Object.entries(config.tariffs)) {
    const baseUnit = config.meters[meterId]?.unit ?? '';
    const versions: TariffSchedule['versions'] = t.versions
      ? t.versions.map((v) => ({
        v: 1 as const, version: v.version, effectiveFrom: new Date(v.effectiveFrom).toISOString(), currency: v.currency, priceUnit: v.priceUnit ?? baseUnit,
        period: v.period, timeZone: v.timeZone, rule: v.rule as unknown as TariffVersion['rule'],
        ...(v.minimumPerPeriod === undefined ? {} : { minimumPerPeriod: v.minimumPerPeriod }),
        ...(v.capPerPeriod === undefined ? {} : { capPerPeriod: v.capPerPeriod }),
        ...(Object.keys(v.overrides).length === 0 ? {} : { overrides: v.overrides as Record<string, { rule?: TariffVersion['rule']; minimumPerPeriod?: string; capPerPeriod?: string }> }),
      }))
      : [{ v: 1 as const, version: String(t.version ?? 1), effectiveFrom: EPOCH, currency: t.currency ?? '', priceUnit: baseUnit, period: 'month' as const, timeZone: 'UTC', rule: { type: 'per_unit' as const, unitPrice: t.unitPrice ?? '' } }];
    schedules.set(meterId, { meter: meterId, baseUnit, versions });
  }
  return schedules;
}

/** Every version of every schedule, as each payer would get it, checked; returns the problems naming the field. */
export function checkTariffs(config: Pick<GatewayConfig, 'meters' | 'tariffs' | 'payers'>): string[] {
  const problems: string[] = [];
  for (const [meterId, schedule] of tariffSchedules(config)) {
    const payers = ['', ...Object.keys(config.payers)];
    schedule.versions.forEach((version, i) => {
      for (const payer of payers) {
        try {
          const resolved = resolveTariff(schedule, payer, version.effectiveFrom);
          if (resolved) checkTariffVersion(resolved);
        } catch (error) {
          problems.push(`tariffs.${meterId}.versions.${i}: ${(error as Error).message}`);
          return;
        }
      }
    });
    const starts = schedule.versions.map((v) => v.effectiveFrom);
    if (new Set(starts).size !== starts.length) problems.push(`tariffs.${meterId}.versions: two versions take effect at the same instant`);
  }
  return problems;
}

/** Resolves the tariff for a usage; resolved versions are cached per (meter, payer, version). */
export class TariffBook {
  readonly #schedules: Map<string, TariffSchedule>;
  /** Per meter: versions sorted by start, as epoch ms, for the lookup. */
  readonly #startsMs = new Map<string, Array<{ fromMs: number; version: string; fromIso: string }>>();
  readonly #resolved = new Map<string, PricedTariff>();

  constructor(config: Pick<GatewayConfig, 'meters' | 'tariffs'>) {
    this.#schedules = tariffSchedules(config);
    for (const [meterId, schedule] of this.#schedules) {
      const starts = schedule.versions.map((v) => ({ fromMs: Date.parse(v.effectiveFrom), version: v.version, fromIso: v.effectiveFrom })).sort((a, b) => a.fromMs - b.fromMs);
      this.#startsMs.set(meterId, starts);
    }
  }

  /** The tariff in force for `payer` on `meter` at `atIso` (`parsedMs`: the same instant as epoch ms, when the caller has it); undefined before the first version or for an unknown meter. */
  tariffFor(meter: string, payer: string, atIso: string, parsedMs?: number): PricedTariff | undefined {
    const starts = this.#startsMs.get(meter);
    if (!starts) return undefined;
    const atMs = parsedMs ?? Date.parse(atIso);
    let start: (typeof starts)[number] | undefined;
    for (let i = starts.length - 1; i >= 0; i -= 1) {
      if (starts[i]!.fromMs <= atMs) {
        start = starts[i];
        break;
      }
    }
    if (!start) return undefined;
    const cacheKey = `${meter}\u0000${payer}\u0000${start.version}`;
    let priced = this.#resolved.get(cacheKey);
    if (!priced) {
      const tariff = resolveTariff(this.#schedules.get(meter)!, payer, start.fromIso);
      if (!tariff) return undefined;
      priced = { tariff, hash: tariffHash(tariff) };
      // Bounded by meters × payers × versions, all from config.
      this.#resolved.set(cacheKey, priced);
    }
    return priced;
  }

  /** The version a record names by its `tariff` id (`<meter>@<version>` or `<meter>@<version>/<payer>`), for statements and proof bundles. */
  byId(id: string): PricedTariff | undefined {
    const match = /^([^@]+)@([^/]+)(?:\/(.+))?$/.exec(id);
    if (!match) return undefined;
    const [, meter, version, payer] = match as unknown as [string, string, string, string | undefined];
    const start = this.#startsMs.get(meter)?.find((s) => s.version === version);
    if (!start) return undefined;
    const priced = this.tariffFor(meter, payer ?? '', start.fromIso);
    return priced?.tariff.id === id ? priced : undefined;
  }
}
