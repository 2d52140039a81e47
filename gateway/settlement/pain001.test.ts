import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignedBatchHeader } from '../../protocol/usage-record.ts';
import { requireBinary } from '../../test/support/server-binaries.ts';
import { propertyRuns } from '../../test/vectors/property-seed.ts';
import { auditPain001, buildPain001, checkBic, checkEpcText, checkExecutionDate, checkIban, ibanCheckDigits, SEPA_IBAN_LENGTHS, sepaPartyOfAccount, type Pain001Input } from './pain001.ts';

const XSD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/conformance/pain.001.001.09-epc-sct.xsd');
const XMLLINT = requireBinary('xmllint', ['/usr/bin/xmllint', '/usr/local/bin/xmllint']);
if (process.env.CI === 'true' && !existsSync(XSD)) throw new Error(`${XSD} is required under CI=true`);
const canValidate = XMLLINT !== undefined && existsSync(XSD);

/** Published example IBANs (ISO 13616 registry and national examples), each valid. */
const VALID_IBANS = [
  'DE89370400440532013000', 'GB82WEST12345698765432', 'FR1420041010050500013M02606', 'NL91ABNA0417164300',
  'BE68539007547034', 'AT611904300234573201', 'ES9121000418450200051332', 'IT60X0542811101000000123456',
  'CH9300762011623852957', 'NO9386011117947', 'MT84MALT011000012345MTLCAST001S', 'FI2112345600000785',
];

const ROOT = '3f'.repeat(32);
const header = (n: number, payer: string, amountMinor: string, currency = 'EUR'): SignedBatchHeader =>
  ({ batchId: `gateway-1/${n}`, payer, currency, amountMinor, merkleRoot: ROOT }) as unknown as SignedBatchHeader;

const input = (overrides: Partial<Pain001Input> = {}): Pain001Input => ({
  batches: [header(1, 'acme-plant', '1234'), header(2, 'harbour-yard', '5'), header(3, 'acme-plant', '99')],
  debtors: {
    'acme-plant': { name: 'ACME <Präzision> & "Söhne"', iban: 'DE89 3704 0044 0532 0130 00', bic: 'COBADEFFXXX' },
    'harbour-yard': { name: 'Harbour Yard', iban: 'NL91ABNA0417164300' },
  },
  creditor: { name: 'Machine Leasing Ltd', iban: 'FR1420041010050500013M02606', bic: 'BNPAFRPP' },
  initiatingPartyName: 'Machine Leasing Ltd',
  createdAt: new Date('2025-03-03T10:00:00.123Z'),
  executionDate: '2025-03-04',
  ...overrides,
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pain001-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileNo = 0;
/** xmllint's verdict on a document: status 0 when it validates against the EPC XSD. */
async function xmllint(xml: string): Promise<{ status: number; stderr: string }> {
  const file = path.join(dir, `doc-${(fileNo += 1)}.xml`);
  await writeFile(file, xml);
  return new Promise((resolve) => {
    execFile(XMLLINT!, ['--noout', '--schema', XSD, file], (error, _stdout, stderr) => resolve({ status: error ? Number(error.code ?? 1) : 0, stderr }));
  });
}

describe('IBAN and BIC checks', () => {
  it.each(VALID_IBANS)('accepts the published IBAN %s', (iban) => {
    expect(checkIban(iban, 'iban')).toBe(iban);
    expect(ibanCheckDigits(iban.slice(0, 2), iban.slice(4))).toBe(iban.slice(2, 4));
  });

  it('accepts the paper form (spaces, lower case) and returns the electronic form', () => {
    expect(checkIban('de89 3704 0044 0532 0130 00', 'iban')).toBe('DE89370400440532013000');
  });

  it.each([
    ['DE89370400440532013001', /payers\.a\.account\.identification: .* fails the ISO 13616 mod-97 check/],
    ['DE98370400440532013000', /mod-97/], // swapped check digits
    ['GB82WEST12345698765423', /mod-97/], // transposed last two digits
    ['DE8937040044053201300', /a DE IBAN has 22 characters/],
    ['US64SVBKUS6S3300958879', /US is not a country of the SEPA scheme/],
    ['DE89-3704', /is not an IBAN/],
  ])('refuses %s naming the field', (iban, message) => {
    expect(() => checkIban(iban, 'payers.a.account.identification')).toThrow(RangeError);
    expect(() => checkIban(iban, 'payers.a.account.identification')).toThrow(message);
  });

  it('finds every single-character substitution and every adjacent transposition of different digits (property)', () => {
    const countries = Object.keys(SEPA_IBAN_LENGTHS);
    fc.assert(fc.property(fc.constantFrom(...countries), fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 34, maxLength: 34 }), fc.nat(), fc.integer({ min: 1, max: 9 }), (country, digits, where, delta) => {
      const bban = digits.slice(0, SEPA_IBAN_LENGTHS[country]! - 4).join('');
      const iban = `${country}${ibanCheckDigits(country, bban)}${bban}`;
      expect(checkIban(iban, 'iban')).toBe(iban);
      // Cross-check against mod-97 over the whole number as one bigint.
      const numeric = [...(iban.slice(4) + iban.slice(0, 4))].map((c) => parseInt(c, 36)).join('');
      expect(BigInt(numeric) % 97n).toBe(1n);
      const i = 2 + (where % (iban.length - 2));
      const changed = String((Number(iban[i]) + delta) % 10);
      const typo = iban.slice(0, i) + changed + iban.slice(i + 1);
      expect(() => checkIban(typo, 'iban')).toThrow(/mod-97/);
      const j = 4 + (where % (iban.length - 5));
      if (iban[j] !== iban[j + 1]) expect(() => checkIban(iban.slice(0, j) + iban[j + 1] + iban[j] + iban.slice(j + 2), 'iban')).toThrow(/mod-97/);
    }), propertyRuns(2_000));
  });

  it('accepts 8- and 11-character BICs and refuses others naming the field', () => {
    expect(checkBic('DEUTDEFF', 'bic')).toBe('DEUTDEFF');
    expect(checkBic('DEUTDEFF500', 'bic')).toBe('DEUTDEFF500');
    for (const bad of ['DEUTDEF', 'DEUTDEFF5', 'deutdeff', 'DEUT1EFF', 'DEUTDEFF50']) expect(() => checkBic(bad, 'payee.account.bic')).toThrow(/^payee\.account\.bic: /);
  });

  it('takes a configured account only when it is an IBAN account', () => {
    expect(sepaPartyOfAccount({ schemeName: 'UK.OBIE.IBAN', identification: 'NL91ABNA0417164300', name: 'Yard', bic: 'ABNANL2A' }, 'payee.account')).toEqual({ name: 'Yard', iban: 'NL91ABNA0417164300', bic: 'ABNANL2A' });
    expect(() => sepaPartyOfAccount({ schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223321325698', name: 'ACME' }, 'payers.acme.account')).toThrow(/^payers\.acme\.account\.schemeName: .* needs an IBAN/);
    expect(() => sepaPartyOfAccount(undefined, 'payers.acme.account')).toThrow(/^payers\.acme\.account: required/);
  });
});

describe('EPC text and dates', () => {
  it('keeps identifications to the EPC character set and slash rules', () => {
    expect(checkEpcText('gateway-1/42', 'EndToEndId', 35)).toBe('gateway-1/42');
    expect(() => checkEpcText('gateway_1/42', 'EndToEndId', 35)).toThrow(/outside the EPC set/);
    expect(() => checkEpcText('gw//42', 'EndToEndId', 35)).toThrow(/'\/\/'/);
    expect(() => checkEpcText('/42', 'EndToEndId', 35)).toThrow(/must not start or end with '\/'/);
    expect(() => checkEpcText('x'.repeat(36), 'EndToEndId', 35)).toThrow(/1-35 characters/);
  });

  it('takes an execution date from today to a year ahead', () => {
    const now = new Date('2025-03-03T23:59:00Z');
    expect(checkExecutionDate('2025-03-03', now)).toBe('2025-03-03');
    expect(() => checkExecutionDate('2025-03-02', now)).toThrow(/before today/);
    expect(() => checkExecutionDate('2025-02-30', now)).toThrow(/not a date/);
    expect(() => checkExecutionDate('2026-03-05', now)).toThrow(/days ahead/);
  });
});

describe('buildPain001', () => {
  it('writes one PmtInf per debtor and exact control sums from minor units', () => {
    const doc = buildPain001(input());
    expect(doc.transactionCount).toBe(3);
    expect(doc.controlSumMinor).toBe(1338n);
    expect(doc.paymentInfos.map((p) => [p.payer, p.transactionCount, p.controlSumMinor])).toEqual([['acme-plant', 2, 1333n], ['harbour-yard', 1, 5n]]);
    expect(doc.xml).toContain('<NbOfTxs>3</NbOfTxs><CtrlSum>13.38</CtrlSum>');
    expect(doc.xml).toContain('<NbOfTxs>2</NbOfTxs><CtrlSum>13.33</CtrlSum>');
    expect(doc.xml).toContain('<InstdAmt Ccy="EUR">0.05</InstdAmt>');
    expect(doc.xml).toContain('<CreDtTm>2025-03-03T10:00:00Z</CreDtTm>');
    expect(doc.xml).toContain('<Nm>ACME &lt;Präzision&gt; &amp; &quot;Söhne&quot;</Nm>');
    expect(doc.xml).toContain('<DbtrAgt><FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId></DbtrAgt>');
    expect(doc.xml).toContain(`<PmtId><EndToEndId>gateway-1/3</EndToEndId></PmtId>`);
    expect(doc.xml).toContain(`<Ustrd>meterbridge batch gateway-1/3 merkle root ${ROOT}</Ustrd>`);
    expect(auditPain001(doc.xml)).toEqual([]);
  });

  it('gives the same batches on the same date the same MsgId, and other batches another', () => {
    const a = buildPain001(input());
    expect(buildPain001(input({ createdAt: new Date('2025-03-03T11:00:00Z') })).messageId).toBe(a.messageId);
    expect(buildPain001(input({ batches: [header(1, 'acme-plant', '1234')] })).messageId).not.toBe(a.messageId);
    expect(buildPain001(input({ messageId: 'OPS-2025-03-03-1' })).xml).toContain('<MsgId>OPS-2025-03-03-1</MsgId>');
  });

  it.each([
    [{ batches: [header(1, 'acme-plant', '100', 'GBP')] }, /Cannot export batch gateway-1\/1: its currency is GBP; a SEPA credit transfer carries EUR only/],
    [{ batches: [header(1, 'acme-plant', '0')] }, /nothing to pay/],
    [{ batches: [header(1, 'acme-plant', '100000000000')] }, /above EPC's 999999999\.99 EUR/],
    [{ batches: [header(1, 'acme-plant', '1'), header(1, 'acme-plant', '1')] }, /in the file twice/],
    [{ batches: [header(1, 'nobody', '1')] }, /^debtors\.nobody: no account/],
    [{ batches: [] }, /nothing to export/],
    [{ creditor: { name: 'L', iban: 'FR1420041010050500013M02607' } }, /^creditor\.iban: .*mod-97/],
    [{ creditor: { name: 'L', iban: 'FR1420041010050500013M02606', bic: 'BNPA' } }, /^creditor\.bic: /],
    [{ debtors: { 'acme-plant': { name: 'x'.repeat(71), iban: 'DE89370400440532013000' }, 'harbour-yard': { name: 'Y', iban: 'NL91ABNA0417164300' } } }, /^debtors\.acme-plant\.name: at most 70/],
    [{ debtors: { 'acme-plant': { name: 'A\u0001', iban: 'DE89370400440532013000' }, 'harbour-yard': { name: 'Y', iban: 'NL91ABNA0417164300' } } }, /control characters/],
    [{ executionDate: '2025-03-02' }, /^executionDate: .*in the past/],
  ])('refuses %# with a RangeError naming the field or batch', (overrides, message) => {
    expect(() => buildPain001(input(overrides as Partial<Pain001Input>))).toThrow(RangeError);
    expect(() => buildPain001(input(overrides as Partial<Pain001Input>))).toThrow(message);
  });

  it('refuses a batch id that cannot be an EPC EndToEndId', () => {
    const long = { ...header(1, 'acme-plant', '1'), batchId: `${'g'.repeat(30)}/12345` } as SignedBatchHeader;
    expect(() => buildPain001(input({ batches: [long] }))).toThrow(/EndToEndId: must be 1-35 characters/);
    const underscore = { ...header(1, 'acme-plant', '1'), batchId: 'gate_way/1' } as SignedBatchHeader;
    expect(() => buildPain001(input({ batches: [underscore] }))).toThrow(/EndToEndId: .*outside the EPC set/);
  });

  it('sums any amounts exactly (property: CtrlSum equals the sum of the bigints)', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('acme-plant', 'harbour-yard'), fc.bigInt({ min: 1n, max: 99_999_999_999n })), { minLength: 1, maxLength: 40 }), (rows) => {
      const batches = rows.map(([payer, minor], i) => header(i + 1, payer, minor.toString()));
      const doc = buildPain001(input({ batches }));
      expect(doc.controlSumMinor).toBe(rows.reduce((s, [, m]) => s + m, 0n));
      expect(auditPain001(doc.xml)).toEqual([]);
    }), propertyRuns(300));
  });
});

describe.skipIf(!canValidate)('the EPC XSD (xmllint)', () => {
  it('validates a generated file', async () => {
    const { xml } = buildPain001(input());
    expect(await xmllint(xml)).toMatchObject({ status: 0 });
  });

  it('validates a file of one debtor without any BIC (NOTPROVIDED, no CdtrAgt)', async () => {
    const { xml } = buildPain001(input({ batches: [header(7, 'harbour-yard', '1')], creditor: { name: 'Machine Leasing Ltd', iban: 'FR1420041010050500013M02606' } }));
    expect(xml).not.toContain('<CdtrAgt>');
    expect(await xmllint(xml)).toMatchObject({ status: 0 });
  });

  it('rejects a file missing a mandatory element (ReqdExctnDt)', async () => {
    const { xml } = buildPain001(input());
    const broken = xml.replace(/<ReqdExctnDt><Dt>[^<]*<\/Dt><\/ReqdExctnDt>/g, '');
    const verdict = await xmllint(broken);
    expect(verdict.status).not.toBe(0);
    expect(verdict.stderr).toMatch(/ReqdExctnDt|Dbtr/);
  });

  it('rejects a 3-decimal amount, and so does the audit', async () => {
    const { xml } = buildPain001(input());
    // 0.050 would pass: in xs:decimal's value space trailing zeros are not fraction digits.
    const broken = xml.replace('<InstdAmt Ccy="EUR">0.05</InstdAmt>', '<InstdAmt Ccy="EUR">0.051</InstdAmt>');
    const verdict = await xmllint(broken);
    expect(verdict.status).not.toBe(0);
    expect(verdict.stderr).toMatch(/InstdAmt|fraction/i);
    expect(auditPain001(broken).join('\n')).toMatch(/3 decimal places/);
  });

  it('rejects a service level other than SEPA', async () => {
    const { xml } = buildPain001(input());
    expect((await xmllint(xml.replace('<Cd>SEPA</Cd>', '<Cd>URGP</Cd>'))).status).not.toBe(0);
  });

  it('passes a wrong control sum and a bad IBAN, which only the audit catches', async () => {
    const { xml } = buildPain001(input());
    const wrongSum = xml.replace('<CtrlSum>13.38</CtrlSum>', '<CtrlSum>13.39</CtrlSum>').replace('<CtrlSum>13.33</CtrlSum>', '<CtrlSum>13.32</CtrlSum>');
    expect((await xmllint(wrongSum)).status).toBe(0);
    expect(auditPain001(wrongSum)).toEqual([
      'PmtInf MB' + /<PmtInfId>MB([^<]*)<\/PmtInfId>/.exec(xml)![1] + ': CtrlSum 13.32 but its transfers sum to 13.33',
      'GrpHdr: CtrlSum 13.39 but the transfers sum to 13.38',
    ]);
    const badIban = xml.replace('DE89370400440532013000', 'DE89370400440532013001');
    expect((await xmllint(badIban)).status).toBe(0);
    expect(auditPain001(badIban).join('\n')).toMatch(/mod-97/);
    const wrongCount = xml.replace('<NbOfTxs>3</NbOfTxs>', '<NbOfTxs>4</NbOfTxs>');
    expect(auditPain001(wrongCount)).toEqual(['GrpHdr: NbOfTxs 4 but 3 transfers']);
  });
});
