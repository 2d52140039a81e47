/** `meterbridge sim`: simulated machines publishing usage to a gateway. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startFleet } from '../firmware-sim/fleet.ts';
import type { SimDeviceConfig } from '../firmware-sim/sim-device.ts';
import { untilSignal } from './signals.ts';

const HELP = `Usage: meterbridge sim --devices FILE [--url mqtt://HOST:PORT] [--speed N] [--seed N] [--state-dir DIR]

Runs simulated machines (CNC billed per cycle, truck per metre, container yard per
slot-second, compressor reporting an energy counter in Wh) that publish usage v1 over
MQTT with QoS 1 and their own credentials.

Options:
  --devices FILE   JSON list of { id, password, kind: cnc|truck|yard|compressor } (or MB_SIM_DEVICES)
  --url URL        gateway broker (default mqtt://127.0.0.1:1883, or MB_SIM_URL)
  --speed N        report N times as often (default 1)
  --seed N         random seed, to replay a run
  --state-dir DIR  keep sequence counters here so restarts never reuse a seq
  -h, --help       show this help
`;

export async function simCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { devices: { type: 'string' }, url: { type: 'string' }, speed: { type: 'string' }, seed: { type: 'string' }, 'state-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const file = values.devices ?? process.env.MB_SIM_DEVICES;
  if (!file) {
    process.stderr.write('meterbridge sim: --devices FILE is required (see --help)\n');
    return 2;
  }
  const devices = JSON.parse(readFileSync(file, 'utf8')) as SimDeviceConfig[];
  const speed = Number(values.speed ?? '1');
  if (!(speed > 0 && speed <= 1000)) throw new RangeError(`--speed: ${values.speed} must be a number in (0, 1000]`);
  const fleet = startFleet({
    mqttUrl: values.url ?? process.env.MB_SIM_URL ?? 'mqtt://127.0.0.1:1883', devices, speed,
    ...(values.seed ? { seed: Number(values.seed) } : {}),
    ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
    onRejection: (deviceId, notice) => process.stdout.write(`${deviceId}: refused ${JSON.stringify(notice)}\n`),
  });
  process.stdout.write(`simulating ${devices.length} machines (seed ${fleet.seed}); Ctrl-C to stop\n`);
  const progress = setInterval(() => {
    const { sent, acked } = fleet.stats();
    process.stdout.write(`sent ${sent}, acknowledged ${acked}\n`);
  }, 10_000);
  await untilSignal();
  clearInterval(progress);
  await fleet.stop();
  return 0;
}
