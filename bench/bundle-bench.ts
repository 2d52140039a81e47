/**
 * bundle_verify: what a payer's offline check costs. A month of one payer's usage (N
 * records from 20 machines, one in ten of them device-signed, priced by a graduated
 * tariff), sealed into batches of 10^4 records, put in a proof bundle, written as JSON,
 * as the gateway serves it (whole batches, so no per-record proofs), then read back and
 * verified with protocol/proof-bundle.ts as `meterbridge verify` does.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { canonicalBytes } from '../protocol/canonical-json.ts';
import { sha256, toHex } from '../protocol/hash.ts';
import { buildProofBundle, verifyProofBundle, type BundleRecord } from '../protocol/proof-bundle.ts';
import { signingKeyFromSecret } from '../protocol/signing.ts';
import { checkTariffVersion, marginalChargeNano, tariffHash } from '../protocol/tariff.ts';
import { unsignedMessage, type UsageMessage } from '../protocol/usage-message.ts';
import { messageHash } from '../protocol/usage-record.ts';
import { sealBatches, type SealedBatch } from '../gateway/settlement/seal-batches.ts';

const BATCH_RECORDS = 10_000;
const DEVICES = 20;
const SIGNED_EVERY = 10;

const keyOf = (label: string): ReturnType<typeof signingKeyFromSecret> => signingKeyFromSecret(sha256(new TextEncoder().encode(label)));

export async function benchBundleVerify(records: number, log: (line: string) => void): Promise<Record<string, number>> {
  const gateway = keyOf('bench gateway key');
  const device = keyOf('bench device key');
  const tariff = checkTariffVersion({
    v: 1, id: 'cycles@1', meter: 'cycles', version: '1', effectiveFrom: '2026-01-01T00:00:00.000Z', currency: 'EUR', baseUnit: 'cycle', priceUnit: 'cycle',
    period: 'month', timeZone: 'Europe/Berlin', rule: { type: 'graduated', tiers: [{ upTo: '100000', unitPrice: '0.0003' }, { upTo: null, unitPrice: '0.00021' }] },
  });
  const hashOfTariff = tariffHash(tariff);
  log(`bundle_verify: making ${records} records of one payer (1 in ${SIGNED_EVERY} device-signed), sealed in batches of ${BATCH_RECORDS}`);
  const list: BundleRecord[] = [];
  let before = 0n;
  for (let index = 1; index <= records; index += 1) {
    const deviceId = `cnc-${index % DEVICES}`;
    const seq = Math.ceil(index / DEVICES);
    const time = new Date(Date.UTC(2026, 10, 1) + Math.floor((index / records) * 29 * 86_400_000)).toISOString();
    const message: UsageMessage = { v: 1, deviceId, seq, meter: 'cycles', quantity: '3', unit: 'cycle', time };
    if (index % SIGNED_EVERY === 0) message.sig = toHex(ed25519.sign(canonicalBytes(unsignedMessage(message)), device.secretKey));
    const record: BundleRecord = {
      v: 1, index, gatewayId: 'bench-gateway', deviceId, seq, meter: 'cycles', quantity: '3', unit: 'cycle', deviceTime: time, receivedAt: time, payer: 'acme-plant',
      tariff: tariff.id, tariffHash: hashOfTariff, period: '2026-11', periodQtyBefore: before.toString(), currency: 'EUR',
      amountNano: marginalChargeNano(tariff, before, 3n, false).toString(), messageHash: messageHash(message),
    };
    if (message.sig !== undefined) record.deviceSig = message.sig;
    before += 3n;
    list.push(record);
  }
  const batches: Array<{ sealed: SealedBatch; records: BundleRecord[] }> = [];
  let carries = new Map<string, bigint>();
  for (let from = 0; from < list.length; from += BATCH_RECORDS) {
    const slice = list.slice(from, from + BATCH_RECORDS);
    const sealed = sealBatches({ gatewayId: 'bench-gateway', records: slice, carries, nextBatchNo: batches.length + 1, sealedAt: slice.at(-1)!.receivedAt, head: { index: slice.at(-1)!.index, hash: 'ab'.repeat(32) }, key: gateway });
    carries = sealed.carries;
    batches.push({ sealed: sealed.batches[0]!, records: slice });
  }
  const bundle = buildProofBundle({
    gatewayId: 'bench-gateway', payer: 'acme-plant', period: '2026-11', createdAt: '2026-12-01T00:00:00.000Z',
    batches: batches.map((b) => ({ header: b.sealed.header, records: b.records })),
    gatewayKeys: [{ publicKey: toHex(gateway.publicKey), keyId: gateway.keyId, validFrom: '2026-01-01T00:00:00.000Z' }], tariffs: [tariff],
    deviceKeys: Array.from({ length: DEVICES }, (_, i) => ({ deviceId: `cnc-${i}`, publicKey: toHex(device.publicKey) })),
    // As the gateway serves it: whole batches without per-record proofs.
    omitWholeBatchProofs: true,
  });
  const json = JSON.stringify(bundle);
  log(`  bundle: ${batches.length} batches, ${(json.length / 1_048_576).toFixed(1)} MB of JSON; verifying (parse + every check)`);
  const startedMs = performance.now();
  const report = verifyProofBundle(JSON.parse(json), [toHex(gateway.publicKey)]);
  const ms = Math.round(performance.now() - startedMs);
  if (!report.ok) throw new Error(`Cannot benchmark bundle verification: the bundle does not verify: ${report.checks.filter((c) => !c.ok).slice(0, 3).map((c) => c.detail).join('; ')}`);
  log(`  verified in ${ms} ms: ${report.passed} checks passed, ${report.warnings} warnings`);
  return {
    bundle_verify_records: records, bundle_verify_ms: ms, bundle_verify_records_per_s: Math.round((records * 1000) / Math.max(ms, 1)),
    bundle_verify_json_mb: Math.round((json.length / 1_048_576) * 10) / 10, bundle_verify_device_signed: Math.floor(records / SIGNED_EVERY),
  };
}
