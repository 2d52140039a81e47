/** A simulated fleet: several machines of each kind reporting to one gateway. */
import { MACHINES, seededRandom } from './machines.ts';
import { SimDevice, type SimDeviceConfig } from './sim-device.ts';

export interface FleetOptions {
  mqttUrl: string;
  devices: readonly SimDeviceConfig[];
  speed?: number;
  seed?: number;
  stateDir?: string;
  onRejection?: (deviceId: string, notice: unknown) => void;
}

export interface Fleet {
  devices: SimDevice[];
  seed: number;
  stats(): { sent: number; acked: number };
  stop(): Promise<void>;
}

export function startFleet(options: FleetOptions): Fleet {
  const seed = options.seed ?? Date.now() % 2 ** 31;
  const random = seededRandom(seed);
  const devices = options.devices.map((config) => {
    if (!MACHINES[config.kind]) throw new RangeError(`devices: ${config.id} has unknown kind ${String(config.kind)}`);
    return new SimDevice(config, {
      mqttUrl: options.mqttUrl, speed: options.speed ?? 1, random,
      ...(options.stateDir ? { stateDir: options.stateDir } : {}),
      ...(options.onRejection ? { onRejection: options.onRejection } : {}),
    });
  });
  for (const device of devices) device.start();
  return {
    devices,
    seed,
    stats: () => ({ sent: devices.reduce((n, d) => n + d.sent, 0), acked: devices.reduce((n, d) => n + d.acked.size, 0) }),
    async stop() {
      await Promise.all(devices.map((d) => d.stop()));
    },
  };
}
