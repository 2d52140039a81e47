/**
 * Usage over time for the operator page: records per minute over the last hour (the
 * gateway's and each device's), and each device's usage today (UTC) per meter. In memory,
 * bounded by the number of devices: a restart starts the charts afresh.
 */
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
export const RATE_MINUTES = 60;

/** Counts per minute in a ring of RATE_MINUTES. */
export class MinuteCounts {
  readonly #counts = new Float64Array(RATE_MINUTES);
  /** The minute (epoch ms / MINUTE_MS) the ring's newest slot holds. */
  #minute = 0;

  add(n: number, nowMs: number): void {
    this.#advance(Math.floor(nowMs / MINUTE_MS));
    this.#counts[this.#minute % RATE_MINUTES]! += n;
  }

  /** Oldest first; the last is the current minute. */
  series(nowMs: number): number[] {
    this.#advance(Math.floor(nowMs / MINUTE_MS));
    const out: number[] = [];
    for (let m = this.#minute - RATE_MINUTES + 1; m <= this.#minute; m += 1) out.push(this.#counts[((m % RATE_MINUTES) + RATE_MINUTES) % RATE_MINUTES]!);
    return out;
  }

  #advance(minute: number): void {
    if (minute <= this.#minute) return;
    // Minutes that passed without records are zero; a jump of an hour or more clears all.
    for (let m = Math.max(this.#minute + 1, minute - RATE_MINUTES + 1); m <= minute; m += 1) this.#counts[m % RATE_MINUTES] = 0;
    this.#minute = minute;
  }
}

interface DeviceUsage {
  perMinute: MinuteCounts;
  day: number;
  /** Base units per meter on `day`. */
  today: Map<string, bigint>;
}

export class IngestRates {
  readonly total = new MinuteCounts();
  readonly #devices = new Map<string, DeviceUsage>();
  readonly #devicesMax: number;

  constructor(devicesMax: number) {
    this.#devicesMax = devicesMax;
  }

  record(deviceId: string, meter: string, quantity: string, nowMs: number): void {
    this.total.add(1, nowMs);
    let usage = this.#devices.get(deviceId);
    if (!usage) {
      if (this.#devices.size >= this.#devicesMax) return; // the registry bounds devices; this is a guard
      usage = { perMinute: new MinuteCounts(), day: 0, today: new Map() };
      this.#devices.set(deviceId, usage);
    }
    usage.perMinute.add(1, nowMs);
    const day = Math.floor(nowMs / DAY_MS);
    if (day !== usage.day) {
      usage.day = day;
      usage.today.clear();
    }
    usage.today.set(meter, (usage.today.get(meter) ?? 0n) + BigInt(quantity));
  }

  perMinute(deviceId: string, nowMs: number): number[] {
    return this.#devices.get(deviceId)?.perMinute.series(nowMs) ?? new Array<number>(RATE_MINUTES).fill(0);
  }

  /** Base units per meter today (UTC), as decimal strings. */
  today(deviceId: string, nowMs: number): Record<string, string> {
    const usage = this.#devices.get(deviceId);
    if (!usage || usage.day !== Math.floor(nowMs / DAY_MS)) return {};
    return Object.fromEntries([...usage.today].map(([meter, quantity]) => [meter, quantity.toString()]));
  }
}
