/**
 * Prepares one usage message for the journal: checks the meter and unit, finds the
 * tariff version in force for the payer at the usage's time (gateway/ledger/tariff-book.ts),
 * and names it in the draft. Pure: no I/O, no clock. The charge itself depends on what
 * the same (payer, tariff, period) already holds, which only the journal knows in order:
 * it prices the record when it takes its place (marginal pricing, docs/tariffs.md).
 */
import type { UsageMessage } from '../../protocol/usage-message.ts';
import { messageHash } from '../../protocol/usage-record.ts';
import { periodOf, type TariffVersion } from '../../protocol/tariff.ts';
import type { GatewayConfig } from '../config.ts';
import type { DeviceEntry } from '../ingest/device-registry.ts';
import type { RecordDraft } from './journal.ts';
import type { TariffBook } from './tariff-book.ts';

export type PricingResult =
  | { ok: true; draft: RecordDraft; tariff: TariffVersion }
  | { ok: false; reason: 'unknown_meter' | 'meter_not_allowed' | 'unit_mismatch' | 'no_tariff'; field: string; detail: string };

/** `atMs`: the message's time as epoch ms when the caller has parsed it already. */
export function priceUsage(message: UsageMessage, device: DeviceEntry, config: Pick<GatewayConfig, 'meters'>, tariffs: TariffBook, atMs?: number): PricingResult {
  const meter = config.meters[message.meter];
  if (!meter) {
    return { ok: false, reason: 'unknown_meter', field: 'meter', detail: `meter ${message.meter} is not configured on this gateway` };
  }
  if (!device.meters.includes(message.meter)) {
    return { ok: false, reason: 'meter_not_allowed', field: 'meter', detail: `device ${device.id} is not provisioned for meter ${message.meter}` };
  }
  if (message.unit !== meter.unit) {
    return { ok: false, reason: 'unit_mismatch', field: 'unit', detail: `meter ${message.meter} counts in ${meter.unit}, not ${message.unit}` };
  }
  const priced = tariffs.tariffFor(message.meter, device.payer, message.time, atMs);
  if (!priced) {
    return { ok: false, reason: 'no_tariff', field: 'time', detail: `no tariff for meter ${message.meter} is in force at ${message.time}` };
  }
  // One object literal, no spreads: this runs for every message.
  const draft: RecordDraft = {
    v: 1,
    deviceId: message.deviceId,
    seq: message.seq,
    meter: message.meter,
    quantity: '0',
    unit: message.unit,
    deviceTime: message.time,
    payer: device.payer,
    tariff: priced.tariff.id,
    tariffHash: priced.hash,
    period: periodOf(priced.tariff, message.time, atMs),
    periodQtyBefore: '0',
    currency: priced.tariff.currency,
    amountNano: '0',
    messageHash: messageHash(message),
  };
  // Stored only when it was verified against the device's registered key.
  if (message.sig && device.publicKey) draft.deviceSig = message.sig;
  if (message.kind === 'counter') {
    // The delta depends on the previous accepted reading, which only the journal knows
    // (in order, durably): it takes the quantity when the record takes its place.
    draft.counter = meter.counterWrapAt ? { reading: message.reading, epoch: message.epoch, wrapAt: meter.counterWrapAt } : { reading: message.reading, epoch: message.epoch };
    return { ok: true, draft, tariff: priced.tariff };
  }
  draft.quantity = message.quantity;
  return { ok: true, draft, tariff: priced.tariff };
}
