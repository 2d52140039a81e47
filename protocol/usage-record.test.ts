import { describe, expect, it } from 'vitest';
import { hex, nodeSha256, unhex, utf8 } from '../test/vectors/reference.ts';
import { canonicalJson } from './canonical-json.ts';
import { ZERO_HASH_HEX } from './hash.ts';
import { toMinorUnits } from './money.ts';
import type { UsageMessage } from './usage-message.ts';
import { type BatchHeader, chainHash, messageHash, type UsageRecord } from './usage-record.ts';

const MESSAGE: UsageMessage = {
  v: 1,
  deviceId: 'cnc-7',
  seq: 41,
  meter: 'spindle-cycles',
  quantity: '1200',
  unit: 'cycle',
  time: '2026-11-27T15:00:00.000Z',
};

function recordAt(index: number, overrides: Partial<UsageRecord> = {}): UsageRecord {
  return {
    v: 1,
    index,
    gatewayId: 'gateway-1',
    deviceId: 'cnc-7',
    seq: 40 + index,
    meter: 'spindle-cycles',
    quantity: '1200',
    unit: 'cycle',
    deviceTime: '2026-11-27T15:00:00.000Z',
    receivedAt: '2026-11-27T15:00:00.120Z',
    payer: 'acme',
    tariff: 'spindle-cycles@1',
    unitPrice: '0.0003',
    currency: 'EUR',
    amountNano: '360000000',
    messageHash: messageHash({ ...MESSAGE, seq: 40 + index }),
    ...overrides,
  };
}

/** The chain as a verifier would recompute it with nothing but SHA-256 and canonical JSON text. */
function referenceChain(records: UsageRecord[]): string[] {
  let prev = ZERO_HASH_HEX;
  return records.map((record) => {
    prev = hex(nodeSha256(unhex(prev), utf8(canonicalJson(record))));
    return prev;
  });
}

describe('chainHash', () => {
  it('hashes the first record over 32 zero bytes then its canonical bytes', () => {
    const record = recordAt(1);
    expect(chainHash(ZERO_HASH_HEX, record)).toBe(hex(nodeSha256(new Uint8Array(32), utf8(canonicalJson(record)))));
  });

  it('links each record to the hash before it, as a verifier recomputes it', () => {
    const records = [1, 2, 3, 4].map((index) => recordAt(index));
    let prev = ZERO_HASH_HEX;
    const hashes = records.map((record) => (prev = chainHash(prev, record)));
    expect(hashes).toEqual(referenceChain(records));
    expect(new Set(hashes).size).toBe(4);
  });

  it('does not depend on the order the record’s members were written in', () => {
    const record = recordAt(1);
    const reversed = Object.fromEntries(Object.entries(record).reverse()) as unknown as UsageRecord;
    expect(chainHash(ZERO_HASH_HEX, reversed)).toBe(chainHash(ZERO_HASH_HEX, record));
  });

  it.each<[keyof UsageRecord, UsageRecord[keyof UsageRecord]]>([
    ['index', 2],
    ['seq', 42],
    ['quantity', '1201'],
    ['amountNano', '360000001'],
    ['payer', 'globex'],
    ['receivedAt', '2026-11-27T15:00:00.121Z'],
  ])('changes when %s changes', (field, value) => {
    const record = recordAt(1);
    expect(chainHash(ZERO_HASH_HEX, { ...record, [field]: value })).not.toBe(chainHash(ZERO_HASH_HEX, record));
  });

  it('changes when the previous hash changes', () => {
    const record = recordAt(2);
    expect(chainHash('11'.repeat(32), record)).not.toBe(chainHash('12'.repeat(32), record));
  });

  it.each([
    ['upper-case hex', 'AB'.repeat(32), /^prevHash: not lower-case hex/],
    ['31 bytes', 'ab'.repeat(31), /^prevHash: expected 32 bytes, got 31/],
    ['33 bytes', 'ab'.repeat(33), /^prevHash: expected 32 bytes, got 33/],
    ['an empty string', '', /^prevHash: expected 32 bytes, got 0/],
    ['a non-hex digit', `${'ab'.repeat(31)}zz`, /^prevHash: not lower-case hex/],
  ])('refuses a previous hash with %s, naming prevHash', (_name, prevHash, message) => {
    expect(() => chainHash(prevHash, recordAt(1))).toThrow(RangeError);
    expect(() => chainHash(prevHash, recordAt(1))).toThrow(message);
  });
});

describe('messageHash', () => {
  it('is SHA-256 of the message’s canonical bytes', () => {
    const canonical = '{"deviceId":"cnc-7","meter":"spindle-cycles","quantity":"1200","seq":41,"time":"2026-11-27T15:00:00.000Z","unit":"cycle","v":1}';
    expect(canonicalJson(MESSAGE)).toBe(canonical);
    expect(messageHash(MESSAGE)).toBe(hex(nodeSha256(utf8(canonical))));
  });

  it('is the same however the device ordered its JSON members', () => {
    const reordered = JSON.parse('{"time":"2026-11-27T15:00:00.000Z","v":1,"unit":"cycle","seq":41,"quantity":"1200","meter":"spindle-cycles","deviceId":"cnc-7"}') as UsageMessage;
    expect(messageHash(reordered)).toBe(messageHash(MESSAGE));
  });

  it('differs for the same seq with different content', () => {
    expect(messageHash({ ...MESSAGE, quantity: '1201' })).not.toBe(messageHash(MESSAGE));
  });
});

describe('BatchHeader money', () => {
  /** total + carriedIn = amountMinor × nanoPerMinor + carriedOut, for a header built the documented way. */
  function headerFor(amountsNano: bigint[], carriedInNano: bigint): Pick<BatchHeader, 'totalNano' | 'carriedInNano' | 'amountMinor' | 'carriedOutNano'> {
    const totalNano = amountsNano.reduce((sum, amount) => sum + amount, 0n);
    const { minor, carriedNano } = toMinorUnits(totalNano + carriedInNano, 'EUR');
    return { totalNano: `${totalNano}`, carriedInNano: `${carriedInNano}`, amountMinor: `${minor}`, carriedOutNano: `${carriedNano}` };
  }

  it('balances: totalNano + carriedInNano = amountMinor × nanoPerMinor + carriedOutNano', () => {
    const header = headerFor([360_000_000n, 95_926_089n, 1n], 4_200_000n);
    expect(header).toEqual({ totalNano: '455926090', carriedInNano: '4200000', amountMinor: '46', carriedOutNano: '126090' });
    expect(BigInt(header.totalNano) + BigInt(header.carriedInNano)).toBe(BigInt(header.amountMinor) * 10_000_000n + BigInt(header.carriedOutNano));
  });

  it('does not balance if a cent is skimmed', () => {
    const header = { ...headerFor([360_000_000n], 0n), amountMinor: '35' };
    expect(BigInt(header.totalNano) + BigInt(header.carriedInNano)).not.toBe(BigInt(header.amountMinor) * 10_000_000n + BigInt(header.carriedOutNano));
  });
});
