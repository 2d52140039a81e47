import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { ed25519 } from '@noble/curves/ed25519.js';
import { build } from 'esbuild';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalBytes } from '../../protocol/canonical-json.ts';
import { sha256, toHex } from '../../protocol/hash.ts';
import { buildProofBundle, type BundleReport, type BundleRecord, type ProofBundle } from '../../protocol/proof-bundle.ts';
import { signingKeyFromSecret } from '../../protocol/signing.ts';
import { checkTariffVersion, marginalChargeNano, tariffHash } from '../../protocol/tariff.ts';
import { unsignedMessage, type UsageMessage } from '../../protocol/usage-message.ts';
import { messageHash } from '../../protocol/usage-record.ts';
import { VERIFIER_BYTES_MAX, VERIFIER_HTML, writeVerifierHtml } from '../../scripts/build-verifier.ts';
import { sealBatches } from '../settlement/seal-batches.ts';

const seed = (label: string): Uint8Array => sha256(new TextEncoder().encode(label));
const GATEWAY = signingKeyFromSecret(seed('verifier page gateway'));
const DEVICE = signingKeyFromSecret(seed('verifier page device'));

/** Four signed, tariff-priced records of one payer in one batch. */
function bundle(): ProofBundle {
  const tariff = checkTariffVersion({
    v: 1, id: 'cycles@1', meter: 'cycles', version: '1', effectiveFrom: '2026-01-01T00:00:00.000Z', currency: 'EUR', baseUnit: 'cycle', priceUnit: 'cycle',
    period: 'month', timeZone: 'UTC', rule: { type: 'per_unit', unitPrice: '0.0003' },
  });
  let before = 0n;
  const records: BundleRecord[] = [1, 2, 3, 4].map((index) => {
    const message: UsageMessage = { v: 1, deviceId: 'cnc-7', seq: index, meter: 'cycles', quantity: String(index), unit: 'cycle', time: '2026-11-27T15:00:00.000Z' };
    message.sig = toHex(ed25519.sign(canonicalBytes(unsignedMessage(message)), DEVICE.secretKey));
    const record: BundleRecord = {
      v: 1, index, gatewayId: 'gateway-1', deviceId: 'cnc-7', seq: index, meter: 'cycles', quantity: String(index), unit: 'cycle', deviceTime: message.time,
      receivedAt: '2026-11-27T15:00:00.120Z', payer: 'acme', tariff: tariff.id, tariffHash: tariffHash(tariff), period: '2026-11', periodQtyBefore: before.toString(),
      currency: 'EUR', amountNano: marginalChargeNano(tariff, before, BigInt(index), false).toString(), messageHash: messageHash(message), deviceSig: message.sig,
    };
    before += BigInt(index);
    return record;
  });
  const { batches } = sealBatches({ gatewayId: 'gateway-1', records, carries: new Map(), nextBatchNo: 1, sealedAt: '2026-11-30T00:00:00.000Z', head: { index: 4, hash: 'ab'.repeat(32) }, key: GATEWAY });
  return buildProofBundle({
    gatewayId: 'gateway-1', payer: 'acme', period: '2026-11', createdAt: '2026-12-01T00:00:00.000Z', tariffs: [tariff],
    gatewayKeys: [{ publicKey: toHex(GATEWAY.publicKey), keyId: GATEWAY.keyId, validFrom: '2026-01-01T00:00:00.000Z' }],
    deviceKeys: [{ deviceId: 'cnc-7', publicKey: toHex(DEVICE.publicKey) }], batches: [{ header: batches[0]!.header, records }],
  });
}

describe('the offline verifier page', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'verifier-page-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is committed exactly as the build script makes it (run npm run build:verifier after changing it)', async () => {
    const rebuilt = path.join(dir, 'verifier.html');
    await writeVerifierHtml(rebuilt);
    const [committed, fresh] = [await readFile(VERIFIER_HTML, 'utf8'), await readFile(rebuilt, 'utf8')];
    // Say where they part rather than print two 70 KB pages.
    let at = 0;
    while (at < committed.length && committed[at] === fresh[at]) at += 1;
    const stale = committed === fresh ? '' : `the committed page differs from a fresh build at character ${at} of ${fresh.length} (…${fresh.slice(Math.max(0, at - 40), at + 40)}…): run npm run build:verifier and commit it`;
    expect(stale).toBe('');
  });

  it('is one file under 300 KB that loads nothing and allows only its own inline script and style', async () => {
    const html = await readFile(VERIFIER_HTML, 'utf8');
    expect(Buffer.byteLength(html)).toBeLessThan(VERIFIER_BYTES_MAX);
    expect(html).not.toMatch(/<script[^>]+src=|<link\b|<img\b|<iframe\b|@import|url\(/i);
    expect(html.match(/<script>/g)).toHaveLength(1);
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-[A-Za-z0-9+/]+=*'; style-src 'sha256-[A-Za-z0-9+/]+=*'; base-uri 'none'; form-action 'none'">/);
    expect(html).toMatch(/A key that comes with the bundle proves\s+nothing/);
  });

  it('verifies with the browser code paths: no node:crypto, noble SHA-256 and Ed25519', async () => {
    // The verifier alone, bundled as for the page and run in a context with no `process`, as in a browser.
    const entry = fileURLToPath(new URL('../../protocol/proof-bundle.ts', import.meta.url));
    const out = await build({ entryPoints: [entry], bundle: true, write: false, format: 'iife', globalName: 'verifier', platform: 'browser', target: 'es2022', logLevel: 'silent' });
    const context = vm.createContext({ TextEncoder, TextDecoder });
    vm.runInContext(out.outputFiles[0]!.text, context);
    const verify = (b: unknown, keys: string[]): BundleReport => JSON.parse(vm.runInContext(`JSON.stringify(verifier.verifyProofBundle(${JSON.stringify(b)}, ${JSON.stringify(keys)}))`, context) as string) as BundleReport;
    expect(vm.runInContext('typeof process', context)).toBe('undefined');
    const genuine = verify(bundle(), [toHex(GATEWAY.publicKey)]);
    expect(genuine.checks.filter((c) => !c.ok)).toEqual([]);
    expect(genuine.checks.filter((c) => c.id.startsWith('record-device-signature:')).length).toBe(4);
    const tampered = bundle();
    tampered.batches[0]!.records[0]!.record.deviceSig = tampered.batches[0]!.records[1]!.record.deviceSig!;
    expect(verify(tampered, [toHex(GATEWAY.publicKey)]).checks.filter((c) => !c.ok).map((c) => c.id)).toEqual(['record-inclusion:1', 'record-device-signature:1']);
  });
});
