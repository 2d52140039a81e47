import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalBytes } from '../../protocol/canonical-json.ts';
import { MerkleTree, leafHash, verifyInclusion } from '../../protocol/merkle.ts';
import { nanoPerMinor } from '../../protocol/money.ts';
import { generateSigningKey, verifyPayload } from '../../protocol/signing.ts';
import type { UsageRecord } from '../../protocol/usage-record.ts';
import { carryKey, idempotencyKeyFor, sealBatches } from './seal-batches.ts';

const key = generateSigningKey();
const HEAD = { index: 0, hash: '0'.repeat(64) };

function record(index: number, payer: string, currency: string, amountNano: bigint): UsageRecord {
  return {
    v: 1, index, gatewayId: 'gw', deviceId: `dev-${payer}`, seq: index, meter: 'cycles', quantity: '1', unit: 'cycle',
    deviceTime: '2026-11-27T12:00:00.000Z', receivedAt: '2026-11-27T12:00:00.000Z', payer, tariff: 'cycles@1',
    unitPrice: '0.0003', currency, amountNano: amountNano.toString(), messageHash: 'a'.repeat(64),
  };
}

describe('sealBatches', () => {
  it('makes one signed batch per payer and currency, rounding down and carrying the rest', () => {
    const records = [record(1, 'acme', 'EUR', 12_345_678n), record(2, 'north', 'GBP', 9_000_000n), record(3, 'acme', 'EUR', 1_000_000n)];
    const { batches, carries } = sealBatches({ gatewayId: 'gw', records, carries: new Map([[carryKey('acme', 'EUR'), 4_000_000n]]), nextBatchNo: 7, sealedAt: '2026-11-27T12:01:00.000Z', head: HEAD, key });
    expect(batches.map((b) => [b.batchNo, b.header.payer, b.header.recordCount, b.header.amountMinor, b.header.carriedOutNano])).toEqual([
      [7, 'acme', 2, '1', '7345678'], // 12_345_678 + 1_000_000 + 4_000_000 carried in = 1 cent + 7_345_678 nano
      [8, 'north', 1, '0', '9000000'],
    ]);
    expect(carries.get(carryKey('acme', 'EUR'))).toBe(7_345_678n);
    for (const batch of batches) {
      const { sig, ...header } = batch.header;
      expect(verifyPayload(header, sig, key.publicKey)).toBe(true);
    }
  });

  it('gives every batch an idempotency key of at most 40 characters that never changes', () => {
    expect(idempotencyKeyFor('a-very-long-gateway-identifier-for-a-plant-in-the-north', 123_456)).toHaveLength(34);
    expect(idempotencyKeyFor('gw', 1)).toBe(idempotencyKeyFor('gw', 1));
    expect(idempotencyKeyFor('gw', 1)).not.toBe(idempotencyKeyFor('gw', 2));
    expect(idempotencyKeyFor('gw', 1)).not.toBe(idempotencyKeyFor('gw2', 1));
  });

  it('puts every record under its batch root with a proof that verifies, and no other record', () => {
    const records = Array.from({ length: 13 }, (_, i) => record(i + 1, i % 3 === 0 ? 'north' : 'acme', 'EUR', BigInt(i * 1_000)));
    const { batches } = sealBatches({ gatewayId: 'gw', records, carries: new Map(), nextBatchNo: 1, sealedAt: '2026-11-27T12:01:00.000Z', head: HEAD, key });
    for (const batch of batches) {
      const mine = records.filter((r) => r.payer === batch.header.payer);
      const tree = new MerkleTree(mine.map((r) => leafHash(canonicalBytes(r))));
      mine.forEach((r, i) => expect(verifyInclusion(canonicalBytes(r), tree.proof(i), batch.header.merkleRoot)).toBe(true));
      const stranger = records.find((r) => r.payer !== batch.header.payer)!;
      expect(verifyInclusion(canonicalBytes(stranger), tree.proof(0), batch.header.merkleRoot)).toBe(false);
    }
  });

  it('never loses or invents a nano across any sequence of seals (property)', () => {
    const currencies = ['EUR', 'GBP', 'JPY'] as const;
    const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.record({ payer: fc.constantFrom('a', 'b'), currency: fc.constantFrom(...currencies), amountNano: fc.bigInt({ min: 0n, max: 10n ** 15n }) }), { maxLength: 8 }), { maxLength: 6 }),
        (seals) => {
          let carries = new Map<string, bigint>();
          let index = 0;
          let batchNo = 1;
          const priced = new Map<string, bigint>();
          const paid = new Map<string, bigint>();
          for (const seal of seals) {
            const records = seal.map((r) => record(++index, r.payer, r.currency, r.amountNano));
            for (const r of records) priced.set(carryKey(r.payer, r.currency), (priced.get(carryKey(r.payer, r.currency)) ?? 0n) + BigInt(r.amountNano));
            const out = sealBatches({ gatewayId: 'gw', records, carries, nextBatchNo: batchNo, sealedAt: '2026-11-27T12:00:00.000Z', head: HEAD, key });
            batchNo += out.batches.length;
            for (const b of out.batches) {
              const group = carryKey(b.header.payer, b.header.currency);
              paid.set(group, (paid.get(group) ?? 0n) + BigInt(b.header.amountMinor) * nanoPerMinor(b.header.currency));
              expect(BigInt(b.header.totalNano) + BigInt(b.header.carriedInNano)).toBe(BigInt(b.header.amountMinor) * nanoPerMinor(b.header.currency) + BigInt(b.header.carriedOutNano));
            }
            carries = out.carries;
          }
          for (const [group, total] of priced) {
            const [, currency] = group.split('!') as [string, string];
            const carried = carries.get(group) ?? 0n;
            expect(total).toBe((paid.get(group) ?? 0n) + carried);
            expect(carried < nanoPerMinor(currency)).toBe(true);
          }
        },
      ),
      { numRuns: 300, seed },
    );
  });
});

