import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keys, openLedgerDb } from '../gateway/ledger/ledger-db.ts';
import type { BatchStateName, StoredBatch } from '../gateway/settlement/batch-book.ts';
import { auditPain001 } from '../gateway/settlement/pain001.ts';
import type { SignedBatchHeader } from '../protocol/usage-record.ts';
import { requireBinary } from '../test/support/server-binaries.ts';
import { demoGatewayConfig } from './demo-setup.ts';
import { main } from './main.ts';
import { pain001Command } from './pain001-command.ts';

const XSD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/conformance/pain.001.001.09-epc-sct.xsd');
const XMLLINT = requireBinary('xmllint', ['/usr/bin/xmllint', '/usr/local/bin/xmllint']);
const NOW = new Date('2025-03-03T10:00:00Z');

function batch(batchNo: number, state: BatchStateName, payer: string, currency: string, amountMinor: string): StoredBatch {
  const header = { batchId: `demo-gateway/${batchNo}`, payer, currency, amountMinor, merkleRoot: batchNo.toString(16).padStart(64, 'a') } as unknown as SignedBatchHeader;
  return { batchNo, header, state, idempotencyKey: `mb-${batchNo}`, attempts: 0, transitions: [{ state, at: NOW.toISOString() }] };
}

async function run(argv: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await pain001Command(argv, { out: (t) => (out += t), err: (t) => (err += t) }, () => NOW);
  return { status, out, err };
}

describe('meterbridge pain001', () => {
  let dir: string;
  let dataDir: string;
  let configFile: string;
  let outFile: string;
  const writeConfig = async (patch: (raw: Record<string, any>) => void = () => {}): Promise<void> => {
    const raw: Record<string, any> = { ...demoGatewayConfig({ mqtt: 0, http: 0, bank: 1 }, '0 0 1 1 *'), dataDir, devicesFile: path.join(dir, 'devices.json') };
    raw.payers['acme-plant'].account = { schemeName: 'UK.OBIE.IBAN', identification: 'DE89370400440532013000', name: 'ACME Precision', bic: 'COBADEFFXXX' };
    raw.payers['harbour-yard'].account = { schemeName: 'UK.OBIE.IBAN', identification: 'NL91ABNA0417164300', name: 'Harbour Yard' };
    raw.payee.account = { schemeName: 'UK.OBIE.IBAN', identification: 'FR1420041010050500013M02606', name: 'Machine Leasing Ltd', bic: 'BNPAFRPP' };
    patch(raw);
    await writeFile(configFile, JSON.stringify(raw));
  };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pain001-command-'));
    dataDir = path.join(dir, 'data');
    configFile = path.join(dir, 'gateway.json');
    outFile = path.join(dir, 'out.xml');
    await writeConfig();
    const db = await openLedgerDb(path.join(dataDir, 'ledger'));
    const batches = [
      batch(1, 'settled', 'acme-plant', 'EUR', '700'),
      batch(2, 'sealed', 'acme-plant', 'EUR', '1234'),
      batch(3, 'sealed', 'northline-logistics', 'GBP', '45'),
      batch(4, 'sealed', 'harbour-yard', 'EUR', '5'),
      batch(5, 'rejected', 'harbour-yard', 'EUR', '300'),
      batch(6, 'pending', 'acme-plant', 'EUR', '900'),
      batch(7, 'carried', 'acme-plant', 'EUR', '0'),
    ];
    await db.batch(batches.map((b) => ({ type: 'put' as const, key: keys.batch(b.batchNo), value: b })));
    await db.close();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints help, and usage with status 2 for bad options; main lists the command', async () => {
    expect(await run(['--help'])).toMatchObject({ status: 0, out: expect.stringContaining('meterbridge pain001 --config FILE --out FILE') });
    expect((await run(['--config', configFile])).err).toContain('--out FILE is required');
    expect(await run(['--config', configFile, '--out', outFile, '--batches', 'some'])).toMatchObject({ status: 2, err: expect.stringContaining('must be sealed or all') });
    expect((await run(['--bogus'])).status).toBe(2);
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await main(['--help'])).toBe(0);
      expect(stdout.mock.calls.map((c) => String(c[0])).join('')).toMatch(/\n {2}pain001 +write sealed EUR batches as a SEPA pain\.001/);
    } finally {
      stdout.mockRestore();
    }
  });

  it('writes the sealed EUR batches, counts the skipped GBP one and prints the control sum', async () => {
    const { status, out, err } = await run(['--config', configFile, '--out', outFile, '--execution-date', '2025-03-04']);
    expect([status, err]).toEqual([0, '']);
    expect(out).toContain(`Wrote 2 batches for 2 payers to ${outFile}: control sum 12.39 EUR`);
    expect(out).toContain('execution date 2025-03-04');
    expect(out).toContain('Skipped 1 batch not in EUR (1 GBP): SEPA carries euro only.');
    const xml = await readFile(outFile, 'utf8');
    expect([...xml.matchAll(/<EndToEndId>([^<]*)<\/EndToEndId>/g)].map((m) => m[1])).toEqual(['demo-gateway/2', 'demo-gateway/4']);
    expect(xml).toContain('<ReqdExctnDt><Dt>2025-03-04</Dt></ReqdExctnDt>');
    expect(auditPain001(xml)).toEqual([]);
    expect((await stat(outFile)).mode & 0o077).toBe(0);
    if (XMLLINT && existsSync(XSD)) {
      const verdict = await new Promise<number>((resolve) => execFile(XMLLINT, ['--noout', '--schema', XSD, outFile], (error) => resolve(error ? 1 : 0)));
      expect(verdict).toBe(0);
    }
  });

  it('with --batches all also exports the rejected batch, never the settled, pending or carried ones', async () => {
    const { status, out } = await run(['--config', configFile, '--out', outFile, '--batches', 'all']);
    expect(status).toBe(0);
    expect(out).toContain('Wrote 3 batches for 2 payers');
    expect(out).toContain('control sum 15.39 EUR');
    expect(out).toContain('execution date 2025-03-03');
    const xml = await readFile(outFile, 'utf8');
    expect([...xml.matchAll(/<EndToEndId>([^<]*)<\/EndToEndId>/g)].map((m) => m[1])).toEqual(['demo-gateway/2', 'demo-gateway/4', 'demo-gateway/5']);
  });

  it('refuses while a gateway holds the ledger: stop the gateway first, and writes nothing', async () => {
    const db = await openLedgerDb(path.join(dataDir, 'ledger'));
    try {
      const { status, out, err } = await run(['--config', configFile, '--out', outFile]);
      expect([status, out]).toEqual([1, '']);
      expect(err).toMatch(/is in use by a running gateway; stop the gateway first/);
    } finally {
      await db.close();
    }
    expect(existsSync(outFile)).toBe(false);
  });

  it('refuses a payer account that is not an IBAN account, naming the config key, and writes nothing', async () => {
    await writeConfig((raw) => {
      raw.payers['harbour-yard'].account = { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '08080021325698', name: 'Harbour Yard' };
    });
    const { status, err } = await run(['--config', configFile, '--out', outFile]);
    expect(status).toBe(1);
    expect(err).toContain('payers.harbour-yard.account.schemeName: "UK.OBIE.SortCodeAccountNumber" is not "UK.OBIE.IBAN"');
    expect(existsSync(outFile)).toBe(false);
  });

  it('refuses a mistyped IBAN and a malformed BIC in the config', async () => {
    await writeConfig((raw) => {
      raw.payee.account.identification = 'FR1420041010050500013M02607';
    });
    expect((await run(['--config', configFile, '--out', outFile])).err).toMatch(/payee\.account\.identification: .*mod-97/);
    await writeConfig((raw) => {
      raw.payee.account.bic = 'BNPA-FR';
    });
    expect((await run(['--config', configFile, '--out', outFile])).err).toMatch(/payee\.account\.bic: must be a BIC of 8 or 11 characters/);
  });

  it('says there is nothing to export when no EUR batch is sealed', async () => {
    const db = await openLedgerDb(path.join(dataDir, 'ledger'));
    await db.batch([2, 4].map((n) => ({ type: 'del' as const, key: keys.batch(n) })));
    await db.close();
    const { status, err } = await run(['--config', configFile, '--out', outFile]);
    expect(status).toBe(1);
    expect(err).toContain('nothing to export: no sealed EUR batches');
    expect(err).toContain('Skipped 1 batch not in EUR (1 GBP)');
    expect(existsSync(outFile)).toBe(false);
  });

  it('says when there is no ledger at all rather than creating one', async () => {
    await writeConfig((raw) => {
      raw.dataDir = path.join(dir, 'elsewhere');
    });
    expect((await run(['--config', configFile, '--out', outFile])).err).toMatch(/there is none at .*elsewhere/);
    expect(existsSync(path.join(dir, 'elsewhere'))).toBe(false);
  });
});
