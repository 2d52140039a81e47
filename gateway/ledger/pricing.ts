/**
 * Prices one usage message with the configured per-unit tariff. Pure: no I/O, no clock.
 * quantity × unitPrice is exact in nano units (prices carry at most 9 decimals), so no
 * rounding happens here; it happens once, at settlement.
 */
import { parsePriceNano } from '../../protocol/money.ts';
import type { UsageMessage } from '../../protocol/usage-message.ts';
import { messageHash } from '../../protocol/usage-record.ts';
import type { GatewayConfig } from '../config.ts';
import type { DeviceEntry } from '../ingest/device-registry.ts';
import type { RecordDraft } from './journal.ts';

export type PricingResult =
  | { ok: true; draft: RecordDraft }
  | { ok: false; reason: 'unknown_meter' | 'meter_not_allowed' | 'unit_mismatch'; field: string; detail: string };

const priceCache = new Map<string, bigint>();

/** Parsed once per distinct price string: config is frozen, prices do not change under us. */
export function priceNanoOf(unitPrice: string, meter: string): bigint {
  let nano = priceCache.get(unitPrice);
  if (nano === undefined) {
    nano = parsePriceNano(unitPrice, `tariffs.${meter}.unitPrice`);
    if (priceCache.size < 10_000) priceCache.set(unitPrice, nano);
  }
  return nano;
}

export function priceUsage(message: UsageMessage, device: DeviceEntry, config: Pick<GatewayConfig, 'meters' | 'tariffs'>): PricingResult {
  const meter = config.meters[message.meter];
  const tariff = config.tariffs[message.meter];
  if (!meter || !tariff) {
    return { ok: false, reason: 'unknown_meter', field: 'meter', detail: `meter ${message.meter} is not configured on this gateway` };
  }
  if (!device.meters.includes(message.meter)) {
    return { ok: false, reason: 'meter_not_allowed', field: 'meter', detail: `device ${device.id} is not provisioned for meter ${message.meter}` };
  }
  if (message.unit !== meter.unit) {
    return { ok: false, reason: 'unit_mismatch', field: 'unit', detail: `meter ${message.meter} counts in ${meter.unit}, not ${message.unit}` };
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
    tariff: `${message.meter}@${tariff.version}`,
    unitPrice: tariff.unitPrice,
    currency: tariff.currency,
    amountNano: '0',
    messageHash: messageHash(message),
  };
  // Stored only when it was verified against the device's registered key.
  if (message.sig && device.publicKey) draft.deviceSig = message.sig;
  if (message.kind === 'counter') {
    // The delta depends on the previous accepted reading, which only the journal knows
    // (in order, durably): it prices the record when it takes its place.
    draft.counter = meter.counterWrapAt ? { reading: message.reading, epoch: message.epoch, wrapAt: meter.counterWrapAt } : { reading: message.reading, epoch: message.epoch };
    return { ok: true, draft };
  }
  draft.quantity = message.quantity;
  draft.amountNano = (BigInt(message.quantity) * priceNanoOf(tariff.unitPrice, message.meter)).toString();
  return { ok: true, draft };
}
