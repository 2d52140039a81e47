/**
 * Metric aliases and datatypes learned from birth certificates. Sparkplug 3.0
 * [tck-id-payloads-alias-data-cmd-requirement]: DATA messages name a metric only by the
 * alias its DBIRTH gave it, and [tck-id-payloads-metric-datatype-not-req] leaves the
 * datatype out too, so billing a DDATA needs the device's last DBIRTH.
 *
 * Only metrics some mapping bills are kept, so the table never holds more entries than
 * there are mappings, whatever the edge nodes send. A DBIRTH replaces what its device
 * had; an NBIRTH forgets all devices of its node, whose DBIRTHs must follow it in the new
 * session ([tck-id-message-flow-device-birth-publish-nbirth-wait],
 * [tck-id-operational-behavior-data-commands-rebirth-action-2]).
 */
import type { SparkplugMetric } from './payload.ts';

export interface LearnedMetric {
  name: string;
  datatype?: number;
}

/** A problem with a birth certificate, for the operator; the rest of the birth is still learned. */
export interface BirthProblem {
  metric: string;
  detail: string;
}

interface DeviceAliases {
  byAlias: Map<bigint, LearnedMetric>;
  byName: Map<string, LearnedMetric>;
}

/** `<group>/<node>/<device>`: unambiguous, since ids cannot contain `/`. */
function deviceKey(group: string, node: string, device: string): string {
  return `${group}/${node}/${device}`;
}

export class SparkplugAliasTable {
  readonly #devices = new Map<string, DeviceAliases>();

  /**
   * Replaces what `group/node/device` had with the mapped metrics of its DBIRTH.
   * `isMapped` says which metric names are billed; others are not kept.
   */
  learnBirth(group: string, node: string, device: string, metrics: readonly SparkplugMetric[], isMapped: (name: string) => boolean): BirthProblem[] {
    const key = deviceKey(group, node, device);
    this.#devices.delete(key);
    const problems: BirthProblem[] = [];
    // [tck-id-payloads-alias-uniqueness]: an alias names one metric; one used twice names neither.
    const namesByAlias = new Map<bigint, string[]>();
    for (const metric of metrics) {
      if (metric.alias === undefined || metric.name === undefined) continue;
      const names = namesByAlias.get(metric.alias) ?? [];
      names.push(metric.name);
      namesByAlias.set(metric.alias, names);
    }
    const learned: DeviceAliases = { byAlias: new Map(), byName: new Map() };
    for (const metric of metrics) {
      if (metric.name === undefined || !isMapped(metric.name)) continue;
      const entry: LearnedMetric = metric.datatype === undefined ? { name: metric.name } : { name: metric.name, datatype: metric.datatype };
      learned.byName.set(metric.name, entry);
      if (metric.alias === undefined) continue;
      const names = namesByAlias.get(metric.alias) ?? [];
      if (names.length > 1) {
        problems.push({ metric: metric.name, detail: `DBIRTH of ${key} gives alias ${metric.alias} to ${names.length} metrics (${names.slice(0, 3).map((n) => JSON.stringify(n)).join(', ')}); DDATA by that alias cannot be billed` });
        continue;
      }
      learned.byAlias.set(metric.alias, entry);
    }
    if (learned.byName.size > 0) this.#devices.set(key, learned);
    return problems;
  }

  /** An NBIRTH starts a new session: every device of the node must send a new DBIRTH. */
  forgetNode(group: string, node: string): void {
    const prefix = `${group}/${node}/`;
    for (const key of this.#devices.keys()) if (key.startsWith(prefix)) this.#devices.delete(key);
  }

  byAlias(group: string, node: string, device: string, alias: bigint): LearnedMetric | undefined {
    return this.#devices.get(deviceKey(group, node, device))?.byAlias.get(alias);
  }

  byName(group: string, node: string, device: string, name: string): LearnedMetric | undefined {
    return this.#devices.get(deviceKey(group, node, device))?.byName.get(name);
  }

  /** Metrics kept, over all devices: at most the number of mappings. */
  get size(): number {
    let size = 0;
    for (const device of this.#devices.values()) size += device.byName.size;
    return size;
  }
}
