/**
 * GPIO pulse inputs into the one intake: each configured input counts edges (onoff on a
 * Pi, a simulated pin elsewhere) and reports its persisted count as counter readings of
 * a provisioned device. seq is the reading's time in ms, kept strictly increasing.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.ts';
import type { DeviceRegistry } from './device-registry.ts';
import { openOnoffPulseInput } from './gpio/onoff-pulse-input.ts';
import { PulseCounter } from './gpio/pulse-counter.ts';
import type { PulseInput } from './gpio/pulse-input.ts';
import { SimulatedPulseInput } from './gpio/simulated-pulse-input.ts';
import type { Intake } from './intake.ts';
// driver "simulated" (demo, CI, a bench without GPIO) reuses the firmware simulator's pulse plan.
import { startPulseDriver } from '../../firmware-sim/pulse-driver.ts';

export interface GpioInputs {
  close(): Promise<void>;
}

export async function startGpioInputs(config: Readonly<GatewayConfig>, parts: { registry: DeviceRegistry; intake: Intake; logger: Logger }): Promise<GpioInputs> {
  const counters: PulseCounter[] = [];
  const drivers: Array<{ stop(): void }> = [];
  for (const [name, input] of Object.entries(config.gpio.pulseInputs)) {
    const device = parts.registry.get(input.deviceId);
    if (!device) throw new Error(`Cannot start GPIO input ${name}: device ${input.deviceId} is not provisioned`);
    const unit = config.meters[input.meter]?.unit;
    if (!unit || !device.meters.includes(input.meter)) throw new Error(`Cannot start GPIO input ${name}: device ${input.deviceId} is not provisioned for meter ${input.meter}`);
    let pin: PulseInput;
    if (input.driver === 'simulated') {
      const simulated = new SimulatedPulseInput({ description: `simulated pin for ${name}` });
      drivers.push(startPulseDriver(simulated, { rateHz: input.simulatedRateHz, seed: 1 }));
      pin = simulated;
    } else {
      pin = await openOnoffPulseInput(input.line, {
        edge: input.edge, debounceTimeoutMs: input.debounceTimeoutMs, sysfsRoot: input.sysfsRoot,
        ...(input.chipLabel ? { chipLabel: input.chipLabel } : {}), ...(input.sysfsBase !== undefined ? { sysfsBase: input.sysfsBase } : {}),
        onError: (error) => parts.logger.warn({ input: name, err: error.message }, 'GPIO error'),
      });
    }
    let lastSeq = 0;
    const counter = await PulseCounter.open(pin, {
      stateFile: path.resolve(config.dataDir, input.stateFile),
      debounceMs: input.debounceMs, maxRateHz: input.maxRateHz, reportEveryMs: input.reportEveryMs,
      onError: (error) => parts.logger.error({ input: name, err: (error as Error).message }, 'GPIO pulse counter could not persist its count'),
      onReading: (reading) => {
        if (reading.dropped > 0) parts.logger.warn({ input: name, dropped: reading.dropped }, 'pulses above the maximum rate were dropped (not billed)');
        lastSeq = Math.max(lastSeq + 1, reading.atMs);
        const message = { v: 1 as const, kind: 'counter' as const, deviceId: device.id, seq: lastSeq, meter: input.meter, unit, reading: reading.reading.toString(), epoch: reading.epoch, time: new Date(reading.atMs).toISOString() };
        parts.intake.accept(device, `gpio/${name}`, message).catch((error: unknown) => {
          // Not stored (disk, queue): the next reading carries the same count, so nothing is lost.
          parts.logger.warn({ input: name, err: (error as Error).message }, 'GPIO reading not stored; the next one carries it');
        });
      },
    });
    parts.logger.info({ input: name, pin: pin.description, epoch: counter.epoch }, 'GPIO pulse input started');
    counters.push(counter);
  }
  return {
    async close() {
      for (const driver of drivers) driver.stop();
      for (const counter of counters) await counter.close();
    },
  };
}
