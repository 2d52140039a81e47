import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sealBatches } from '../gateway/settlement/seal-batches.ts';
import { sha256, toHex } from '../protocol/hash.ts';
import { buildProofBundle, type BundleRecord, type ProofBundle } from '../protocol/proof-bundle.ts';
import { signingKeyFromSecret } from '../protocol/signing.ts';
import { verifyCommand } from './verify-command.ts';

const KEY = signingKeyFromSecret(sha256(new TextEncoder().encode('verify-command test gateway')));
const KEY_HEX = toHex(KEY.publicKey);

/** Three legacy (unitPrice) records of one payer, sealed into one batch. */
function bundle(): ProofBundle {
  const records: BundleRecord[] = [1, 2, 3].map((index) => ({
    v: 1, index, gatewayId: 'gateway-1', deviceId: 'press-2', seq: index, meter: 'cycles', quantity: String(index * 10), unit: 'cycle',
    deviceTime: '2026-11-27T15:00:00.000Z', receivedAt: '2026-11-27T15:00:00.120Z', payer: 'acme', tariff: 'cycles@1', unitPrice: '0.0003',
    currency: 'EUR', amountNano: String(index * 10 * 300_000), messageHash: 'c3'.repeat(32),
  }));
  const { batches } = sealBatches({ gatewayId: 'gateway-1', records, carries: new Map(), nextBatchNo: 1, sealedAt: '2026-11-30T00:00:00.000Z', head: { index: 3, hash: 'ab'.repeat(32) }, key: KEY });
  return buildProofBundle({
    gatewayId: 'gateway-1', payer: 'acme', period: '2026-11', createdAt: '2026-12-01T00:00:00.000Z', tariffs: [], deviceKeys: [],
    gatewayKeys: [{ publicKey: KEY_HEX, keyId: KEY.keyId, validFrom: '2026-01-01T00:00:00.000Z' }], batches: [{ header: batches[0]!.header, records }],
  });
}

describe('meterbridge verify', () => {
  let dir: string;
  let out: string;
  let err: string;
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
  const write = async (name: string, content: unknown): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'verify-'));
    out = '';
    err = '';
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints every check with ✓ and a summary, and exits 0 for a genuine bundle', async () => {
    const file = await write('bundle.json', bundle());
    expect(await verifyCommand([file, '--key', KEY_HEX], io)).toBe(0);
    expect(out).toContain(`✓ Batch gateway-1/1: signature valid with key ${KEY.keyId}\n`);
    expect(out).toContain('✓ Record 2: amount 0.006000000 EUR = 20 cycle × 0.0003 EUR (tariff cycles@1)\n');
    expect(out).toContain('✓ Batch gateway-1/1: total 0.018000000 EUR = sum of 3 records\n');
    expect(out.trimEnd().split('\n').at(-1)).toMatch(/^\d+ checks: \d+ passed, 0 failed: the bundle verifies$/);
    expect(err).toBe('');
  });

  it('marks the failed check with ✗ and exits 1 when a record was changed', async () => {
    const tampered = bundle();
    tampered.batches[0]!.records[1]!.record.quantity = '21';
    const file = await write('bundle.json', tampered);
    expect(await verifyCommand([file, '--key', KEY_HEX, '--quiet'], io)).toBe(1);
    expect(out).toContain("✗ Record 2: Merkle proof at position 1 does not lead to batch gateway-1/1's signed root: the record or its proof was changed\n");
    expect(out).not.toContain('✓');
    expect(out).toMatch(/, 2 failed: the bundle does NOT verify\n$/);
  });

  it('exits 1 when the bundle was signed by another key than the one given', async () => {
    const file = await write('bundle.json', bundle());
    expect(await verifyCommand([file, '--key', 'ab'.repeat(32)], io)).toBe(1);
    expect(out).toContain(`✗ Batch gateway-1/1: signed with key ${KEY.keyId}, which is not one of your trusted keys`);
  });

  it('prints the report as JSON with --json', async () => {
    const file = await write('bundle.json', bundle());
    expect(await verifyCommand([file, '--key', KEY_HEX.toUpperCase(), '--json'], io)).toBe(0);
    const report = JSON.parse(out) as { ok: boolean; failed: number; checks: Array<{ id: string }> };
    expect(report).toMatchObject({ ok: true, failed: 0 });
    expect(report.checks.map((c) => c.id)).toContain('record-inclusion:3');
  });

  it('trusts the bundle\'s own keys only when asked, and says that proves nothing', async () => {
    const file = await write('bundle.json', bundle());
    expect(await verifyCommand([file, '--trust-bundle-keys', '--quiet'], io)).toBe(0);
    expect(err).toMatch(/proves nothing about who signed it/);
  });

  it('exits 2 on usage errors and 0 with --help', async () => {
    const file = await write('bundle.json', bundle());
    expect(await verifyCommand([file], io)).toBe(2);
    expect(err).toMatch(/--key is required/);
    expect(await verifyCommand([file, '--key', 'xyz'], io)).toBe(2);
    expect(await verifyCommand(['--key', KEY_HEX], io)).toBe(2);
    expect(await verifyCommand([path.join(dir, 'missing.json'), '--key', KEY_HEX], io)).toBe(2);
    expect(err).toMatch(/cannot read .*missing\.json: ENOENT/);
    expect(await verifyCommand([file, '--key', KEY_HEX, '--colour'], io)).toBe(2);
    out = '';
    expect(await verifyCommand(['--help'], io)).toBe(0);
    expect(out).toMatch(/^Usage:\n {2}meterbridge verify <bundle.json> --key HEX/);
  });

  it('exits 1 for a file that is not a bundle', async () => {
    expect(await verifyCommand([await write('x.json', '{not json'), '--key', KEY_HEX], io)).toBe(1);
    expect(await verifyCommand([await write('y.json', { hello: 1 }), '--key', KEY_HEX], io)).toBe(1);
    expect(out).toContain('✗ Bundle format: $.format must be "meterbridge.proof-bundle"');
  });
});
