/**
 * Missing sequence numbers per device, for the operator: a device that jumps from seq 40
 * to 44 lost (or has not yet delivered) 41..43. Late arrivals fill their gap. Bounded:
 * at most `rangesMax` open ranges per device (the oldest are forgotten and counted).
 */
export interface SeqGap {
  from: number;
  to: number;
}

interface DeviceSeqs {
  highest: number;
  gaps: SeqGap[];
}

export class SequenceGaps {
  readonly #devices = new Map<string, DeviceSeqs>();
  readonly #rangesMax: number;
  #forgotten = 0;

  constructor(rangesMax = 100) {
    this.#rangesMax = rangesMax;
  }

  /** Notes an accepted seq of a device. */
  see(deviceId: string, seq: number): void {
    let device = this.#devices.get(deviceId);
    if (!device) {
      // The first seq we see starts the count: a device provisioned mid-life has no gap before it.
      this.#devices.set(deviceId, { highest: seq, gaps: [] });
      return;
    }
    if (seq > device.highest) {
      if (seq > device.highest + 1) {
        device.gaps.push({ from: device.highest + 1, to: seq - 1 });
        if (device.gaps.length > this.#rangesMax) {
          device.gaps.shift();
          this.#forgotten += 1;
        }
      }
      device.highest = seq;
      return;
    }
    this.#fill(device, seq);
  }

  #fill(device: DeviceSeqs, seq: number): void {
    const i = device.gaps.findIndex((g) => g.from <= seq && seq <= g.to);
    if (i < 0) return;
    const gap = device.gaps[i]!;
    const parts: SeqGap[] = [];
    if (gap.from < seq) parts.push({ from: gap.from, to: seq - 1 });
    if (seq < gap.to) parts.push({ from: seq + 1, to: gap.to });
    device.gaps.splice(i, 1, ...parts);
  }

  gaps(deviceId: string): readonly SeqGap[] {
    return this.#devices.get(deviceId)?.gaps ?? [];
  }

  /** Total missing sequence numbers over all devices. */
  missingTotal(): number {
    let total = 0;
    for (const device of this.#devices.values()) for (const gap of device.gaps) total += gap.to - gap.from + 1;
    return total;
  }

  get forgotten(): number {
    return this.#forgotten;
  }
}
