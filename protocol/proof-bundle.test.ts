import { describe, expect, it } from 'vitest';
import { carryKey, sealBatches, type SealedBatch } from '../gateway/settlement/seal-batches.ts';
import { canonicalBytes } from './canonical-json.ts';
import { sha256, toHex } from './hash.ts';
import { buildProofBundle, verifyProofBundle, type BundleRecord, type BundleReport, type GatewayKey, type ProofBundle, type ProvenEntry } from './proof-bundle.ts';
import { signingKeyFromSecret, type SigningKey } from './signing.ts';
import { checkTariffVersion, marginalChargeNano, minimumTopUpNano, tariffHash, type TariffVersion } from './tariff.ts';
import { unsignedMessage, type UsageMessage } from './usage-message.ts';
import { messageHash } from './usage-record.ts';
import { ed25519 } from '@noble/curves/ed25519.js';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const keyFrom = (label: string): SigningKey => signingKeyFromSecret(sha256(utf8(label)));
const hexOf = (key: SigningKey): string => toHex(key.publicKey);

const OLD_KEY = keyFrom('gateway-1 key 2026-01');
const NEW_KEY = keyFrom('gateway-1 key 2026-11-15');
const DEVICE_KEY = keyFrom('cnc-7 device key');
const GATEWAY_KEYS: GatewayKey[] = [
  { publicKey: hexOf(OLD_KEY), keyId: OLD_KEY.keyId, validFrom: '2026-01-01T00:00:00.000Z', validTo: '2026-11-15T00:00:00.000Z' },
  { publicKey: hexOf(NEW_KEY), keyId: NEW_KEY.keyId, validFrom: '2026-11-15T00:00:00.000Z' },
];
const BOTH = [hexOf(OLD_KEY), hexOf(NEW_KEY)];

const CYCLES = checkTariffVersion({
  v: 1, id: 'cycles@2', meter: 'cycles', version: '2', effectiveFrom: '2026-01-01T00:00:00.000Z', currency: 'EUR', baseUnit: 'cycle', priceUnit: 'cycle',
  period: 'month', timeZone: 'UTC', rule: { type: 'graduated', tiers: [{ upTo: '40', unitPrice: '0.0003' }, { upTo: null, unitPrice: '0.00021' }] },
});
const ENERGY = checkTariffVersion({
  v: 1, id: 'energy@1', meter: 'energy', version: '1', effectiveFrom: '2026-01-01T00:00:00.000Z', currency: 'EUR', baseUnit: 'wh', priceUnit: 'kwh',
  period: 'month', timeZone: 'Europe/Berlin', rule: { type: 'per_unit', unitPrice: '0.31' },
});

const DEVICES = [
  { deviceId: 'cnc-7', payer: 'acme', tariff: CYCLES, unit: 'cycle', signs: true },
  { deviceId: 'meter-2', payer: 'acme', tariff: ENERGY, unit: 'wh', signs: false },
  { deviceId: 'lathe-1', payer: 'globex', tariff: CYCLES, unit: 'cycle', signs: false },
] as const;

interface Ledger {
  records: BundleRecord[];
  batches: SealedBatch[];
}

/**
 * 36 records of three devices and two payers, priced by the tariffs, sealed in three runs:
 * the first signed with the old gateway key, the others with the new one. meter-2 loses
 * two messages (seq gaps before records 8 and 20); `repeatSeqAt` makes that record reuse its device's last seq.
 */
function ledger(options: { repeatSeqAt?: number; lateOldKey?: boolean } = {}): Ledger {
  const records: BundleRecord[] = [];
  const seqs = new Map<string, number>();
  const running = new Map<string, bigint>();
  for (let index = 1; index <= 36; index += 1) {
    const device = DEVICES[(index - 1) % 3]!;
    let seq = (seqs.get(device.deviceId) ?? 0) + (device.deviceId === 'meter-2' && (index === 8 || index === 20) ? 2 : 1);
    if (options.repeatSeqAt === index) seq -= 1;
    seqs.set(device.deviceId, seq);
    const quantity = BigInt(device.unit === 'wh' ? 150 + index * 7 : 1 + (index % 4));
    const time = `2026-11-${String(1 + Math.floor(index * 0.8)).padStart(2, '0')}T10:00:00.000Z`;
    const message: UsageMessage = { v: 1, deviceId: device.deviceId, seq, meter: device.tariff.meter, quantity: quantity.toString(), unit: device.unit, time };
    if (device.signs) message.sig = toHex(ed25519.sign(canonicalBytes(unsignedMessage(message)), DEVICE_KEY.secretKey));
    const runKey = `${device.payer} ${device.tariff.id} 2026-11`;
    const before = running.get(runKey) ?? 0n;
    running.set(runKey, before + quantity);
    const record: BundleRecord = {
      v: 1, index, gatewayId: 'gateway-1', deviceId: device.deviceId, seq, meter: device.tariff.meter, quantity: quantity.toString(), unit: device.unit,
      deviceTime: time, receivedAt: time.replace('.000Z', '.120Z'), payer: device.payer, tariff: device.tariff.id, tariffHash: tariffHash(device.tariff),
      period: '2026-11', periodQtyBefore: before.toString(), currency: 'EUR', amountNano: marginalChargeNano(device.tariff, before, quantity, false).toString(),
      messageHash: messageHash(message),
    };
    if (message.sig !== undefined) record.deviceSig = message.sig;
    records.push(record);
  }
  const runs = [
    { from: 1, to: 12, at: '2026-11-10T00:00:00.000Z', key: OLD_KEY },
    { from: 13, to: 24, at: '2026-11-20T00:00:00.000Z', key: options.lateOldKey ? OLD_KEY : NEW_KEY },
    { from: 25, to: 36, at: '2026-11-30T00:00:00.000Z', key: NEW_KEY },
  ];
  let carries = new Map<string, bigint>([[carryKey('acme', 'EUR'), 0n]]);
  let nextBatchNo = 1;
  const batches: SealedBatch[] = [];
  for (const run of runs) {
    const sealed = sealBatches({
      gatewayId: 'gateway-1', records: records.slice(run.from - 1, run.to), carries, nextBatchNo, sealedAt: run.at, head: { index: run.to, hash: 'ab'.repeat(32) }, key: run.key,
    });
    batches.push(...sealed.batches);
    carries = sealed.carries;
    nextBatchNo += sealed.batches.length;
  }
  return { records, batches };
}

const recordsOf = (l: Ledger, b: SealedBatch): BundleRecord[] => l.records.filter((r) => r.payer === b.header.payer && r.index >= b.header.firstIndex && r.index <= b.header.lastIndex);

function acmeBundle(l: Ledger = ledger(), pick: (batches: SealedBatch[]) => SealedBatch[] = (b) => b): ProofBundle {
  const acme = pick(l.batches.filter((b) => b.header.payer === 'acme'));
  return buildProofBundle({
    gatewayId: 'gateway-1', payer: 'acme', period: '2026-11', createdAt: '2026-12-01T08:00:00.000Z',
    batches: acme.map((b) => ({ header: b.header, records: recordsOf(l, b) })),
    gatewayKeys: GATEWAY_KEYS, tariffs: [CYCLES, ENERGY], deviceKeys: [{ deviceId: 'cnc-7', publicKey: hexOf(DEVICE_KEY) }, { deviceId: 'lathe-1', publicKey: 'ff'.repeat(32) }],
  });
}

const copy = (bundle: ProofBundle): ProofBundle => structuredClone(bundle);
const failed = (report: BundleReport): string[] => report.checks.filter((c) => !c.ok).map((c) => c.id);
const detailOf = (report: BundleReport, id: string): string => report.checks.find((c) => c.id === id)?.detail ?? `(no check ${id})`;

describe('buildProofBundle', () => {
  it('carries the payer\'s batches with a proof per record, and only the tariffs and device keys they use', () => {
    const bundle = acmeBundle();
    expect(bundle.batches.map((b) => b.header.batchId)).toEqual(['gateway-1/1', 'gateway-1/3', 'gateway-1/5']);
    expect(bundle.batches.map((b) => b.records.length)).toEqual([8, 8, 8]);
    expect(bundle.batches[1]!.records[3]!.proof).toMatchObject({ leafIndex: 3, treeSize: 8 });
    expect(bundle.tariffs.map((t) => t.id).sort()).toEqual(['cycles@2', 'energy@1']);
    expect(bundle.deviceKeys.map((k) => k.deviceId)).toEqual(['cnc-7']);
    expect(JSON.parse(JSON.stringify(bundle))).toEqual(bundle);
  });

  it('refuses records that do not hash to their batch root, and a record whose tariff is not given', () => {
    const l = ledger();
    const batch = l.batches[0]!;
    const records = recordsOf(l, batch).map((r, i) => (i === 2 ? { ...r, quantity: '9' } : r));
    const input = { gatewayId: 'gateway-1', payer: 'acme', period: '2026-11', createdAt: '2026-12-01T08:00:00.000Z', gatewayKeys: GATEWAY_KEYS, deviceKeys: [] };
    expect(() => buildProofBundle({ ...input, tariffs: [CYCLES, ENERGY], batches: [{ header: batch.header, records }] })).toThrow(/do not hash to its merkleRoot/);
    expect(() => buildProofBundle({ ...input, tariffs: [CYCLES], batches: [{ header: batch.header, records: recordsOf(l, batch) }] })).toThrow(/priced by tariff [0-9a-f]+, which is not among/);
  });
});

describe('verifyProofBundle', () => {
  it('passes a genuine statement with every check named in plain words', () => {
    const report = verifyProofBundle(acmeBundle(), BOTH);
    expect(failed(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(detailOf(report, 'batch-signature:gateway-1/1')).toBe(`Batch gateway-1/1: signature valid with key ${OLD_KEY.keyId}`);
    expect(detailOf(report, 'batch-signature:gateway-1/3')).toBe(`Batch gateway-1/3: signature valid with key ${NEW_KEY.keyId}`);
    expect(detailOf(report, 'record-inclusion:4')).toBe('Record 4: included in batch gateway-1/1 at position 2 (Merkle proof)');
    expect(detailOf(report, 'record-amount:1')).toMatch(/^Record 1: amount 0\.000600000 EUR = tariff cycles@2 on 2 cycle \(first in 2026-11\)$/);
    expect(detailOf(report, 'batch-total:gateway-1/1')).toMatch(/^Batch gateway-1\/1: total \d+\.\d{9} EUR = sum of 8 records$/);
    expect(detailOf(report, 'batch-carry:gateway-1/3')).toMatch(/carried in .* = carried out of gateway-1\/1/);
    expect(detailOf(report, 'record-device-signature:1')).toBe('Device cnc-7 record 1: device signature valid');
    expect(detailOf(report, 'device-sequence:cnc-7')).toBe('Device cnc-7: sequence 1..12 continuous, no gaps or repeats');
    expect(detailOf(report, 'period-quantity:acme/cycles@2/2026-11')).toMatch(/runs on from 0 over 12 records to 30 cycle/);
    // 24 records: inclusion and amount each, 12 device signatures; 3 batches: signature, header, records, total, money; 2 carries.
    expect(report.checks.filter((c) => c.id.startsWith('record-')).length).toBe(24 + 24 + 12);
    expect(report.checks.filter((c) => c.id.startsWith('batch-')).length).toBe(3 * 5 + 2);
  });

  it('reports lost device messages as a warning with the missing seqs, not a failure', () => {
    const report = verifyProofBundle(acmeBundle(), BOTH);
    const gap = report.checks.find((c) => c.id === 'device-sequence:meter-2')!;
    expect(gap).toMatchObject({ ok: true, warning: true });
    expect(gap.detail).toBe('Device meter-2: sequence 1..14 has gaps, 2 messages not billed here: 3, 8 (devices lose messages; a record missing from a batch would fail its batch)');
    expect(report.warnings).toBe(1);
  });

  it('fails a seq billed twice', () => {
    const report = verifyProofBundle(acmeBundle(ledger({ repeatSeqAt: 7 })), BOTH);
    expect(failed(report)).toEqual(['device-sequence:cnc-7']);
    expect(detailOf(report, 'device-sequence:cnc-7')).toMatch(/repeats seq 2 in records 4 and 7: one message billed twice/);
  });

  it('names the record whose quantity was changed', () => {
    const bundle = copy(acmeBundle());
    bundle.batches[0]!.records[2]!.record.quantity = '3';
    const report = verifyProofBundle(bundle, BOTH);
    expect(failed(report)).toEqual(['record-inclusion:4', 'record-amount:4', 'record-device-signature:4', 'period-quantity:acme/cycles@2/2026-11']);
    expect(detailOf(report, 'record-inclusion:4')).toBe("Record 4: Merkle proof at position 2 does not lead to batch gateway-1/1's signed root: the record or its proof was changed");
    expect(detailOf(report, 'record-amount:4')).toMatch(/^Record 4: amount 0\.000300000 EUR, but tariff cycles@2 on 3 cycle after 2 cycle in 2026-11 charges 0\.000900000 EUR$/);
  });

  it('names the record whose proof was changed, though every record is intact', () => {
    const bundle = copy(acmeBundle());
    const proof = bundle.batches[2]!.records[6]!.proof!;
    proof.path[1] = proof.path[1]!.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    expect(failed(verifyProofBundle(bundle, BOTH))).toEqual(['record-inclusion:34']);
    proof.path.pop();
    expect(failed(verifyProofBundle(bundle, BOTH))).toEqual(['record-inclusion:34']);
  });

  it('names the batch total when a record\'s quantity and amount were changed together', () => {
    const bundle = copy(acmeBundle());
    const record = bundle.batches[0]!.records[1]!.record; // meter-2: unsigned
    record.quantity = String(Number(record.quantity) * 2);
    record.amountNano = String(BigInt(record.amountNano) * 2n);
    const report = verifyProofBundle(bundle, BOTH);
    expect(failed(report)).toEqual(expect.arrayContaining([`record-inclusion:${record.index}`, 'batch-total:gateway-1/1', 'period-quantity:acme/energy@1/2026-11']));
  });

  it('names the missing position when a record was deleted', () => {
    const bundle = copy(acmeBundle());
    bundle.batches[1]!.records.splice(3, 1);
    const report = verifyProofBundle(bundle, BOTH);
    expect(failed(report)).toEqual(['batch-records:gateway-1/3', 'batch-total:gateway-1/3', 'period-quantity:acme/energy@1/2026-11']);
    expect(detailOf(report, 'batch-records:gateway-1/3')).toBe('Batch gateway-1/3: 7 of 8 records present; missing position 3 (between records 16 and 19)');
  });

  it('fails two records swapped with their proofs, and two records swapped under their proofs', () => {
    const swapped = copy(acmeBundle());
    const records = swapped.batches[0]!.records;
    [records[4], records[5]] = [records[5]!, records[4]!];
    expect(detailOf(verifyProofBundle(swapped, BOTH), 'batch-records:gateway-1/1')).toBe('Batch gateway-1/1: records 8 and 7 are out of order (positions 5, 4)');
    const underProofs = copy(acmeBundle());
    const entries = underProofs.batches[0]!.records;
    [entries[4]!.record, entries[5]!.record] = [entries[5]!.record, entries[4]!.record];
    const report = verifyProofBundle(underProofs, BOTH);
    expect(failed(report)).toEqual(expect.arrayContaining(['batch-records:gateway-1/1', 'record-inclusion:7', 'record-inclusion:8']));
  });

  it('fails the signature of a batch whose Merkle root was swapped', () => {
    const bundle = copy(acmeBundle());
    bundle.batches[0]!.header.merkleRoot = bundle.batches[1]!.header.merkleRoot;
    const report = verifyProofBundle(bundle, BOTH);
    expect(failed(report)).toContain('batch-signature:gateway-1/1');
    expect(detailOf(report, 'batch-signature:gateway-1/1')).toMatch(/does not verify with trusted key .*: the header was changed after signing, or the signature is forged/);
  });

  it('fails a forged signature and a changed payment amount', () => {
    const bundle = copy(acmeBundle());
    const sig = bundle.batches[2]!.header.sig;
    sig.value = (sig.value[0] === 'a' ? 'b' : 'a') + sig.value.slice(1);
    bundle.batches[1]!.header.amountMinor = String(BigInt(bundle.batches[1]!.header.amountMinor) + 1n);
    const report = verifyProofBundle(bundle, BOTH);
    expect(failed(report)).toEqual(['batch-signature:gateway-1/3', 'batch-money:gateway-1/3', 'batch-signature:gateway-1/5']);
  });

  it('fails batches signed with a key the payer does not trust, even when the bundle lists it', () => {
    const report = verifyProofBundle(acmeBundle(), [toHex(keyFrom('someone else').publicKey)]);
    expect(failed(report)).toEqual(['batch-signature:gateway-1/1', 'batch-signature:gateway-1/3', 'batch-signature:gateway-1/5']);
    expect(detailOf(report, 'batch-signature:gateway-1/1')).toBe(`Batch gateway-1/1: signed with key ${OLD_KEY.keyId}, which is not one of your trusted keys (the bundle lists it, but a key from the bundle itself proves nothing)`);
  });

  it('verifies across a key rotation when both keys are trusted, and only the new batches with the new key', () => {
    expect(verifyProofBundle(acmeBundle(), BOTH).ok).toBe(true);
    expect(failed(verifyProofBundle(acmeBundle(), [hexOf(NEW_KEY)]))).toEqual(['batch-signature:gateway-1/1']);
    expect(failed(verifyProofBundle(acmeBundle(), [hexOf(OLD_KEY)]))).toEqual(['batch-signature:gateway-1/3', 'batch-signature:gateway-1/5']);
  });

  it('fails a batch signed with the old key after it was retired', () => {
    const report = verifyProofBundle(acmeBundle(ledger({ lateOldKey: true })), BOTH);
    expect(failed(report)).toEqual(['batch-signature:gateway-1/3']);
    expect(detailOf(report, 'batch-signature:gateway-1/3')).toBe(
      `Batch gateway-1/3: signature valid with key ${OLD_KEY.keyId}, but that key was valid only from 2026-01-01T00:00:00.000Z to 2026-11-15T00:00:00.000Z and the batch was sealed at 2026-11-20T00:00:00.000Z`,
    );
  });

  it('fails when a batch between two others is left out (the carried remainder does not follow on)', () => {
    const bundle = acmeBundle(ledger(), (b) => [b[0]!, b[2]!]);
    const report = verifyProofBundle(bundle, BOTH);
    expect(failed(report)).toEqual(expect.arrayContaining(['batch-carry:gateway-1/5']));
    expect(detailOf(report, 'batch-carry:gateway-1/5')).toMatch(/but the previous batch gateway-1\/1 carried out .* \(is a batch missing between them\?\)/);
  });

  it('fails a device signature that does not verify, and a record whose fields no longer rebuild the signed message', () => {
    const bundle = copy(acmeBundle());
    const first = bundle.batches[0]!.records[0]!.record;
    first.deviceSig = bundle.batches[0]!.records[2]!.record.deviceSig!;
    bundle.deviceKeys[0]!.publicKey = toHex(keyFrom('another device').publicKey);
    const report = verifyProofBundle(bundle, BOTH);
    expect(detailOf(report, 'record-device-signature:1')).toMatch(/messageHash differs/);
    expect(detailOf(report, 'record-device-signature:4')).toBe('Device cnc-7 record 4: device signature does not verify with the device key in the bundle');
  });

  it('fails a tariff that was changed after pricing, naming the records it priced', () => {
    const bundle = copy(acmeBundle());
    const index = bundle.tariffs.findIndex((t) => t.id === 'energy@1');
    bundle.tariffs[index] = { ...bundle.tariffs[index]!, rule: { type: 'per_unit', unitPrice: '0.29' } } as TariffVersion;
    const report = verifyProofBundle(bundle, BOTH);
    expect(failed(report)).toContain('record-amount:2');
    expect(detailOf(report, 'record-amount:2')).toMatch(/^Record 2: priced by tariff energy@1 \(hash [0-9a-f]{12}…\), which the bundle does not carry$/);
  });

  it('prices with the minimum per period only after the record that closes the period', () => {
    const tariff = checkTariffVersion({ ...CYCLES, id: 'cycles@3', version: '3', rule: { type: 'per_unit', unitPrice: '0.0003' }, minimumPerPeriod: '5' });
    const bundleOf = (withClose: boolean): ProofBundle => {
      const { deviceSig: _unsigned, ...first } = ledger().records[0]!;
      const usage = (index: number, periodQtyBefore: bigint, closed: boolean): BundleRecord => ({
        ...first, index, seq: index, tariff: tariff.id, tariffHash: tariffHash(tariff), quantity: '10', periodQtyBefore: String(periodQtyBefore),
        deviceTime: '2026-11-30T22:00:00.000Z', receivedAt: '2026-12-01T09:00:00.000Z', amountNano: marginalChargeNano(tariff, periodQtyBefore, 10n, closed).toString(),
      });
      const close: BundleRecord = {
        ...first, index: 2, deviceId: '', seq: 0, kind: 'minimum', tariff: tariff.id, tariffHash: tariffHash(tariff), quantity: '0', periodQtyBefore: '10',
        deviceTime: '2026-12-01T08:00:00.000Z', receivedAt: '2026-12-01T08:00:00.000Z', amountNano: minimumTopUpNano(tariff, 10n).toString(),
      };
      const records = withClose ? [usage(1, 0n, false), close, usage(3, 10n, true)] : [usage(1, 0n, false), usage(3, 10n, true)];
      const { batches } = sealBatches({ gatewayId: 'gateway-1', records, carries: new Map(), nextBatchNo: 1, sealedAt: '2026-12-02T00:00:00.000Z', head: { index: 3, hash: 'ab'.repeat(32) }, key: NEW_KEY });
      return buildProofBundle({
        gatewayId: 'gateway-1', payer: 'acme', period: '2026-11', createdAt: '2026-12-03T00:00:00.000Z', gatewayKeys: GATEWAY_KEYS, tariffs: [tariff], deviceKeys: [],
        batches: [{ header: batches[0]!.header, records }],
      });
    };
    const closed = verifyProofBundle(bundleOf(true), BOTH);
    expect(failed(closed)).toEqual([]);
    expect(detailOf(closed, 'record-amount:2')).toBe('Record 2: closes period 2026-11 of tariff cycles@3: 10 cycle used, top-up to the minimum 5 EUR is 4.997000000 EUR');
    expect(detailOf(closed, 'record-amount:3')).toMatch(/after 2026-11 was closed, so with its minimum per period$/);
    // Without the close, the late record must be priced open: priced closed, it fails.
    expect(failed(verifyProofBundle(bundleOf(false), BOTH))).toContain('record-amount:3');
  });

  it('leaves out the proofs of whole batches on request, and still names what was tampered with', () => {
    const l = ledger();
    const acme = l.batches.filter((b) => b.header.payer === 'acme');
    const lean = buildProofBundle({
      gatewayId: 'gateway-1', payer: 'acme', period: '2026-11', createdAt: '2026-12-01T08:00:00.000Z', omitWholeBatchProofs: true,
      batches: acme.map((b) => ({ header: b.header, records: recordsOf(l, b) })),
      gatewayKeys: GATEWAY_KEYS, tariffs: [CYCLES, ENERGY], deviceKeys: [{ deviceId: 'cnc-7', publicKey: hexOf(DEVICE_KEY) }],
    });
    expect(lean.batches.every((b) => b.records.every((e) => e.proof === undefined))).toBe(true);
    expect(JSON.stringify(lean).length).toBeLessThan(JSON.stringify(acmeBundle(l)).length);
    const report = verifyProofBundle(lean, BOTH);
    expect(failed(report)).toEqual([]);
    expect(report.checks.filter((c) => c.id.startsWith('batch-merkle-root:')).length).toBe(acme.length);

    const changed = copy(lean);
    changed.batches[0]!.records[1]!.record.quantity = '9';
    expect(failed(verifyProofBundle(changed, BOTH))).toEqual(expect.arrayContaining([`batch-merkle-root:${acme[0]!.header.batchId}`, `record-amount:${changed.batches[0]!.records[1]!.record.index}`]));
    const dropped = copy(lean);
    dropped.batches[1]!.records.splice(2, 1);
    expect(failed(verifyProofBundle(dropped, BOTH))).toContain(`batch-merkle-root:${acme[1]!.header.batchId}`);
    const mixed = copy(lean);
    mixed.batches[0]!.records[0]!.proof = acmeBundle(l).batches[0]!.records[0]!.proof!;
    expect(failed(verifyProofBundle(mixed, BOTH))).toEqual(['bundle-format']);
  });

  it('accepts a batch that is a credit (a volume tier lowered the price after a payment), carried whole, and nothing paid', () => {
    const volume = checkTariffVersion({ ...CYCLES, id: 'cycles@9', version: '9', rule: { type: 'volume', tiers: [{ upTo: '10', unitPrice: '1' }, { upTo: null, unitPrice: '0.1' }] } });
    const { deviceSig: _unsigned, ...first } = ledger().records[0]!;
    const record = (index: number, before: bigint): BundleRecord => ({
      ...first, index, seq: index, tariff: volume.id, tariffHash: tariffHash(volume), quantity: '10', periodQtyBefore: String(before),
      amountNano: marginalChargeNano(volume, before, 10n, false).toString(),
    });
    const [a, b] = [record(1, 0n), record(2, 10n)];
    expect(b.amountNano).toBe('-8000000000');
    const one = sealBatches({ gatewayId: 'gateway-1', records: [a], carries: new Map(), nextBatchNo: 1, sealedAt: '2026-11-20T00:00:00.000Z', head: { index: 1, hash: 'ab'.repeat(32) }, key: NEW_KEY });
    const two = sealBatches({ gatewayId: 'gateway-1', records: [b], carries: one.carries, nextBatchNo: 2, sealedAt: '2026-11-21T00:00:00.000Z', head: { index: 2, hash: 'ab'.repeat(32) }, key: NEW_KEY });
    expect(two.batches[0]!.header).toMatchObject({ totalNano: '-8000000000', amountMinor: '0', carriedOutNano: '-8000000000' });
    const bundle = buildProofBundle({
      gatewayId: 'gateway-1', payer: 'acme', period: '2026-11', createdAt: '2026-12-01T00:00:00.000Z', gatewayKeys: GATEWAY_KEYS, tariffs: [volume], deviceKeys: [],
      batches: [{ header: one.batches[0]!.header, records: [a] }, { header: two.batches[0]!.header, records: [b] }],
    });
    expect(failed(verifyProofBundle(bundle, BOTH))).toEqual([]);
  });

  it('accepts an excerpt of a batch with a warning that its total cannot be checked', () => {
    const l = ledger();
    const batch = l.batches[0]!;
    const full = acmeBundle(l).batches[0]!;
    const bundle = buildProofBundle({
      gatewayId: 'gateway-1', payer: 'acme', period: '2026-11', createdAt: '2026-12-01T08:00:00.000Z', gatewayKeys: GATEWAY_KEYS, tariffs: [CYCLES, ENERGY],
      deviceKeys: [{ deviceId: 'cnc-7', publicKey: hexOf(DEVICE_KEY) }], batches: [{ header: batch.header, entries: [full.records[5]! as ProvenEntry, full.records[1]! as ProvenEntry] }],
    });
    expect(bundle.batches[0]!.excerpt).toBe(true);
    const report = verifyProofBundle(bundle, BOTH);
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.id === 'batch-records:gateway-1/1')).toMatchObject({ ok: true, warning: true });
    expect(detailOf(report, 'batch-records:gateway-1/1')).toMatch(/^Batch gateway-1\/1: 2 of 8 records present; missing position 0 \(before record 2\), positions 2\.\.4 .*excerpt/);
  });

  it('reports a malformed bundle as one failed check naming the field, and never throws', () => {
    expect(verifyProofBundle('nonsense', BOTH).checks).toEqual([{ id: 'bundle-format', ok: false, detail: 'Bundle format: $ must be a JSON object' }]);
    const bundle = copy(acmeBundle()) as unknown as { batches: Array<{ records: Array<{ proof: { path: unknown } }> }> };
    bundle.batches[1]!.records[2]!.proof.path = 'abc';
    expect(verifyProofBundle(bundle, BOTH).checks[0]!.detail).toBe('Bundle format: $.batches[1].records[2].proof.path must be an array');
    expect(failed(verifyProofBundle(acmeBundle(), ['not-a-key']))).toEqual(expect.arrayContaining(['trusted-keys']));
  });
});
