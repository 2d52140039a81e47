/**
 * cloud-sync's pure parts without a database: the batch checks (property-tested money
 * rule, record checks, Merkle root against protocol/merkle.ts), the envelope shape and its
 * messages, the fast signer the simulated gateways use (cross-checked against
 * protocol/signing.ts), and the command line.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkBatchMoney, checkBatchPart, merkleRootOf } from '../cloud-sync/batch-check.ts';
import { cloudSyncCommand } from '../cloud-sync/cli.ts';
import { openPglite } from '../cloud-sync/db.ts';
import { parseEnvelope } from '../cloud-sync/envelope-schema.ts';
import { loadGatewayKeys, registerGateway } from '../cloud-sync/gateway-registry.ts';
import { migrate } from '../cloud-sync/migrations.ts';
import { monthBounds } from '../cloud-sync/fleet-queries.ts';
import { fastSignPayload, SimulatedGateway } from '../cloud-sync/simulated-gateway.ts';
import { toHex } from '../protocol/hash.ts';
import { leafHash, merkleRoot } from '../protocol/merkle.ts';
import { formatDecimal, nanoPerMinor, toMinorUnits } from '../protocol/money.ts';
import { generateSigningKey, signPayload, verifyPayload } from '../protocol/signing.ts';
import type { BatchUpload, UploadEnvelope } from '../protocol/upload.ts';
import type { BatchHeader } from '../protocol/usage-record.ts';

const CURRENCIES = ['EUR', 'GBP', 'JPY', 'CHF'] as const;

/** The money fields as the gateway seals them (gateway/settlement/seal-batches.ts). */
function sealedMoney(totalNano: bigint, carriedInNano: bigint, currency: string): Pick<BatchHeader, 'totalNano' | 'carriedInNano' | 'amountMinor' | 'carriedOutNano' | 'currency'> {
  const due = totalNano + carriedInNano;
  const { minor, carriedNano } = due < 0n ? { minor: 0n, carriedNano: due } : toMinorUnits(due, currency);
  return { currency, totalNano: formatDecimal(totalNano, 0), carriedInNano: formatDecimal(carriedInNano, 0), amountMinor: formatDecimal(minor, 0), carriedOutNano: formatDecimal(carriedNano, 0) };
}

const asHeader = (money: ReturnType<typeof sealedMoney>): BatchHeader => ({ ...money } as unknown as BatchHeader);

describe('batch money', () => {
  const amounts = fc.record({
    total: fc.bigInt({ min: -(10n ** 15n), max: 10n ** 18n }),
    carriedIn: fc.bigInt({ min: -(10n ** 12n), max: 10n ** 7n - 1n }),
    currency: fc.constantFrom(...CURRENCIES),
  });

  it('accepts every header sealed the gateway\'s way, credits included', () => {
    fc.assert(fc.property(amounts, ({ total, carriedIn, currency }) => {
      expect(checkBatchMoney(asHeader(sealedMoney(total, carriedIn, currency)))).toBeUndefined();
    }));
  });

  it('refuses a header paying a minor unit more or less, or carrying a nano more', () => {
    fc.assert(fc.property(amounts, fc.constantFrom(-1n, 1n), ({ total, carriedIn, currency }, delta) => {
      const money = sealedMoney(total, carriedIn, currency);
      const minor = BigInt(money.amountMinor) + delta;
      if (minor >= 0n) expect(checkBatchMoney(asHeader({ ...money, amountMinor: String(minor) }))).toMatch(/amountMinor/);
      expect(checkBatchMoney(asHeader({ ...money, carriedOutNano: String(BigInt(money.carriedOutNano) + delta) }))).toMatch(/carriedOutNano/);
      // Balanced but rounded another way: a whole minor unit moved into the carry.
      if (BigInt(money.amountMinor) > 0n) {
        const moved = { ...money, amountMinor: String(BigInt(money.amountMinor) - 1n), carriedOutNano: String(BigInt(money.carriedOutNano) + nanoPerMinor(currency)) };
        expect(checkBatchMoney(asHeader(moved))).toMatch(/not the remainder below one minor unit/);
      }
    }));
  });

  it('names a currency it cannot settle', () => {
    expect(checkBatchMoney(asHeader({ ...sealedMoney(1n, 0n, 'EUR'), currency: 'XAU' }))).toBe('header.currency: "XAU" is not supported (one of EUR, GBP, USD, CHF, JPY)');
  });
});

describe('batch parts', () => {
  const gateway = new SimulatedGateway('checks-gw');
  const batch = gateway.seal(gateway.records('acme', 'EUR', [5n, 6n, 7n]));
  const part = (change: Partial<BatchUpload> = {}): BatchUpload => ({ header: batch.header, part: 1, parts: 1, firstRecord: 0, records: batch.records, ...change });

  it('sums a sound part and names the first record that does not belong', () => {
    expect(checkBatchPart(part())).toMatchObject({ amountNano: 18n, firstIndex: 1, lastIndex: 3 });
    const otherPayer = batch.records[1]!.replace('"payer":"acme"', '"payer":"globex"');
    expect(checkBatchPart(part({ records: [batch.records[0]!, otherPayer, batch.records[2]!] }))).toEqual({ problem: 'record 1 (records[1]): payer "globex" is not the header\'s "acme"' });
    expect(checkBatchPart(part({ records: [batch.records[1]!, batch.records[0]!, batch.records[2]!] }))).toEqual({ problem: 'record 1 (records[1]): index 1 does not follow 2 (records go in journal order)' });
    expect(checkBatchPart(part({ records: [batch.records[0]!, batch.records[2]!, batch.records[1]!] }))).toEqual({ problem: 'record 2 (records[2]): index 2 does not follow 3 (records go in journal order)' });
    expect(checkBatchPart(part({ records: [batch.records[0]!, batch.records[1]!.replace('"amountNano":"6"', '"amountNano":"6.5"'), batch.records[2]!] }))).toEqual({ problem: 'record 1 (records[1]): amountNano "6.5" is not an integer as a decimal string' });
    expect(checkBatchPart(part({ records: ['{"not":', batch.records[1]!, batch.records[2]!] }))).toMatchObject({ problem: expect.stringMatching(/^record 0 \(records\[0\]\) is not JSON/) });
  });

  it('refuses parts that do not fit the header\'s record count', () => {
    expect(checkBatchPart(part({ records: batch.records.slice(0, 2) }))).toEqual({ problem: 'the last part ends at record 2, but the header\'s recordCount is 3' });
    expect(checkBatchPart(part({ part: 3, parts: 2 }))).toEqual({ problem: 'part 3 of 2: part is past the last' });
    expect(checkBatchPart(part({ parts: 4 }))).toEqual({ problem: 'parts 4 is more than the batch\'s 3 records allow' });
    expect(checkBatchPart(part({ parts: 2, firstRecord: 1, records: batch.records.slice(0, 1) }))).toEqual({ problem: 'part 1 must start at record 0, not 1' });
  });

  it('computes the Merkle root protocol/merkle.ts computes, across parts', () => {
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 40 }), fc.integer({ min: 1, max: 7 }), (texts, size) => {
      const parts: string[][] = [];
      for (let i = 0; i < texts.length; i += size) parts.push(texts.slice(i, i + size));
      const reference = toHex(merkleRoot(texts.map((text) => leafHash(new TextEncoder().encode(text)))));
      expect(merkleRootOf(parts)).toBe(reference);
    }));
  });
});

describe('envelope shape', () => {
  const gateway = new SimulatedGateway('shape-gw');
  const health = gateway.health() as UploadEnvelope & { kind: 'health' };

  it('accepts an envelope as the gateway makes it and names the first bad field otherwise', () => {
    expect(parseEnvelope(health)).toEqual({ ok: true, envelope: health });
    expect(parseEnvelope({ ...health, v: 2 })).toEqual({ ok: false, detail: 'v: Invalid input: expected 1' });
    expect(parseEnvelope({ ...health, gatewayId: 'Gateway 1' })).toEqual({ ok: false, detail: 'gatewayId: must be 1-63 of a-z 0-9 . _ - starting with a letter or digit' });
    expect(parseEnvelope({ ...health, createdAt: 'yesterday' })).toEqual({ ok: false, detail: 'createdAt: must be an ISO 8601 time like 2026-11-27T10:00:00.000Z' });
    expect(parseEnvelope({ ...health, createdAt: '2026-02-31T25:00:00Z' })).toEqual({ ok: false, detail: 'createdAt: is not a real time' });
    expect(parseEnvelope({ ...health, health: { ...health.health, diskFreeBytes: -1 } })).toEqual({ ok: false, detail: 'health.diskFreeBytes: must not be negative' });
    expect(parseEnvelope({ ...health, sig: { ...health.sig, value: 'ab' } })).toEqual({ ok: false, detail: 'sig.value: must be 128 lower-case hex digits' });
    const [batch] = gateway.batchEnvelopes(gateway.seal(gateway.records('acme', 'EUR', [1n]))) as [UploadEnvelope & { kind: 'batch' }];
    expect(parseEnvelope({ ...batch, batch: { ...batch.batch, records: [1] } })).toEqual({ ok: false, detail: 'batch.records[0]: Invalid input: expected string, received number' });
  });
});

describe('fast signatures of the simulated gateways', () => {
  it('are the very bytes protocol/signing.ts makes, and verify with it', () => {
    fc.assert(fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean())), (payload) => {
      const key = generateSigningKey();
      const signature = fastSignPayload(payload, key);
      expect(signature).toEqual(signPayload(payload, key));
      expect(verifyPayload(payload, signature, key.publicKey)).toBe(true);
    }), { numRuns: 25 });
  });
});

describe('periods', () => {
  it('bounds a month in UTC and refuses what is not one', () => {
    expect(monthBounds('2026-12')).toEqual({ from: '2026-12-01T00:00:00.000Z', to: '2027-01-01T00:00:00.000Z' });
    expect(monthBounds('2026-13')).toBeUndefined();
    expect(monthBounds('2026-1')).toBeUndefined();
  });
});

describe('PGlite in a data dir', () => {
  it('keeps the schema and the gateways across a restart', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'mb-cloud-pglite-'));
    try {
      const first = await openPglite({ dataDir });
      expect(await migrate(first)).toEqual([1]);
      const gateway = new SimulatedGateway('persisted-gw');
      expect(await registerGateway(first, { id: gateway.id, publicKey: gateway.publicKeyHex }, new Date())).toMatchObject({ status: 'created' });
      await first.close();
      const second = await openPglite({ dataDir });
      try {
        expect(await migrate(second)).toEqual([]);
        expect(await loadGatewayKeys(second, gateway.id)).toEqual(new Map([[gateway.key.keyId, gateway.publicKeyHex]]));
      } finally {
        await second.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('meterbridge cloud-sync', () => {
  const capture = () => {
    const out = { text: '', write(chunk: string) { this.text += chunk; return true; } };
    return out;
  };

  it('prints its options, and refuses to start without an admin token', async () => {
    const stdout = capture();
    expect(await cloudSyncCommand(['--help'], { stdout, env: {} })).toBe(0);
    expect(stdout.text).toContain('--admin-token-file');
    const stderr = capture();
    expect(await cloudSyncCommand([], { stderr, env: {} })).toBe(2);
    expect(stderr.text).toContain('no admin token: set CLOUD_ADMIN_TOKEN or pass --admin-token-file');
    const short = capture();
    expect(await cloudSyncCommand([], { stderr: short, env: { CLOUD_ADMIN_TOKEN: 'short' } })).toBe(2);
    expect(short.text).toContain('adminToken: must be at least 16 characters');
  });

  it('starts on PGlite, says where it listens, and serves until stopped', async () => {
    const stdout = capture();
    const stderr = capture();
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const running = cloudSyncCommand(['--port', '0', '--log-level', 'warn'], { stdout, stderr, env: { CLOUD_ADMIN_TOKEN: 'cli-admin-token-0123456789' }, until: stopped });
    for (let i = 0; i < 300 && !stdout.text.includes('listening on'); i += 1) await new Promise((resolve) => setTimeout(resolve, 50));
    const url = /listening on (http:\/\/\S+)/.exec(stdout.text)?.[1];
    expect(url, stderr.text).toBeDefined();
    expect(stdout.text).toContain('storage: PGlite in memory');
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${url}/v1/fleet/gateways`, { headers: { authorization: 'Bearer cli-admin-token-0123456789' } })).status).toBe(200);
    stop();
    expect(await running).toBe(0);
  }, 30_000);
});
