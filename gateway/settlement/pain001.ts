/**
 * The pain.001 rail, for banks without an API: sealed EUR batches as one ISO 20022
 * `pain.001.001.09` SEPA credit transfer initiation (EPC132-08 2023 customer-to-PSP
 * implementation guidelines, the XSD in /work/shared/conformance). Pure: batches, parties,
 * a clock reading and a date in, XML text out. docs/pain001.md maps every field.
 *
 * One PmtInf per debtor (payer), one CdtTrfTxInf per batch. Amounts and control sums are
 * computed from the batches' bigint minor units and formatted once: no floating point.
 */
import { createHash } from 'node:crypto';
import { formatMinor, parseMinor } from '../../protocol/money.ts';
import type { SignedBatchHeader } from '../../protocol/usage-record.ts';

/** SEPA credit transfers carry euro only (EPC SCT rulebook, AT-T004 currency). */
export const SEPA_CURRENCY = 'EUR';

/**
 * ISO 13616 IBAN length per country, for the SEPA scheme's countries (EPC409 list; French
 * overseas departments and Monaco-style territories use their own or FR's code).
 */
export const SEPA_IBAN_LENGTHS: Readonly<Record<string, number>> = Object.freeze({
  AD: 24, AL: 28, AT: 20, BE: 16, BG: 22, CH: 21, CY: 28, CZ: 24, DE: 22, DK: 18, EE: 20, ES: 24,
  FI: 18, FR: 27, GB: 22, GI: 23, GR: 27, HR: 21, HU: 28, IE: 22, IS: 26, IT: 27, LI: 21, LT: 20,
  LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MT: 31, NL: 18, NO: 15, PL: 28, PT: 25, RO: 24,
  RS: 22, SE: 24, SI: 19, SK: 24, SM: 27, VA: 22,
});

/** Limits: one place, each with a reason. */
export const PAIN001_LIMITS = Object.freeze({
  /** EPC: InstdAmt 0.01 to 999999999.99 EUR. */
  amountMinorMax: 99_999_999_999n,
  /** Max15NumericText allows more; banks commonly cap a file well below this. */
  transactionsMax: 100_000,
  /** EPC: Max140Text restricted to 70 characters for names. */
  nameChars: 70,
  /** Max35Text: MsgId, PmtInfId, EndToEndId. */
  idChars: 35,
  /** Max140Text: Ustrd. */
  remittanceChars: 140,
  /** Banks refuse requested execution dates far ahead; a year is generous. */
  executionDaysAheadMax: 366,
});

/** A party with its account, as the file names it. */
export interface SepaParty {
  name: string;
  iban: string;
  /** Absent: the debtor agent is written as NOTPROVIDED and the creditor agent left out (EPC allows both). */
  bic?: string;
}

export interface Pain001Input {
  /** Sealed batches to pay, each in EUR with a positive amount; order kept within a payer. */
  batches: readonly SignedBatchHeader[];
  /** The debtor of each payer id the batches name. */
  debtors: Readonly<Record<string, SepaParty>>;
  creditor: SepaParty;
  /** InitgPty/Nm: who made the file (the operator). */
  initiatingPartyName: string;
  /** GrpHdr/CreDtTm. */
  createdAt: Date;
  /** ReqdExctnDt/Dt, YYYY-MM-DD, not before the creation date (UTC). */
  executionDate: string;
  /** Default: derived from the batch ids and execution date, so the same export gets the same MsgId and the bank's duplicate check refuses a second upload. */
  messageId?: string;
}

export interface Pain001PaymentInfo {
  paymentInfoId: string;
  payer: string;
  transactionCount: number;
  controlSumMinor: bigint;
}

export interface Pain001Document {
  xml: string;
  messageId: string;
  transactionCount: number;
  controlSumMinor: bigint;
  paymentInfos: Pain001PaymentInfo[];
}

// EPC: the Latin character set of SEPA: a-z A-Z 0-9 / - ? : ( ) . , ' + and space. References
// and identifications must not start or end with '/' nor contain '//'.
const EPC_TEXT = /^[A-Za-z0-9/\-?:().,'+ ]+$/;
// XML 1.0 Char: no C0 controls except tab, newline, carriage return; no lone surrogates.
const XML_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const BIC = /^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$/;

/** ISO 13616 mod-97 of an IBAN already rearranged (country and check digits moved to the end). */
function mod97(rearranged: string): number {
  let remainder = 0;
  for (const char of rearranged) {
    const code = char.charCodeAt(0);
    // Letters count as two digits, A = 10 … Z = 35.
    const value = code >= 65 ? code - 55 : code - 48;
    remainder = value >= 10 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
  }
  return remainder;
}

/** The two check digits ISO 13616 gives an account: 98 minus mod-97 of BBAN + country + "00". */
export function ibanCheckDigits(country: string, bban: string): string {
  return String(98 - mod97(`${bban}${country}00`)).padStart(2, '0');
}

/**
 * The IBAN in electronic form (no spaces, upper case), or a RangeError naming `field`: a
 * country of the SEPA scheme, that country's length, and check digits that pass mod-97.
 */
export function checkIban(text: string, field: string): string {
  if (typeof text !== 'string') throw new TypeError(`${field}: must be an IBAN string, got ${typeof text}`);
  const iban = text.replace(/ /g, '').toUpperCase();
  if (!/^[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}$/.test(iban)) throw new RangeError(`${field}: ${JSON.stringify(text)} is not an IBAN (two letters, two check digits, up to 30 letters or digits)`);
  const country = iban.slice(0, 2);
  const length = Object.hasOwn(SEPA_IBAN_LENGTHS, country) ? SEPA_IBAN_LENGTHS[country] : undefined;
  if (length === undefined) throw new RangeError(`${field}: ${country} is not a country of the SEPA scheme`);
  if (iban.length !== length) throw new RangeError(`${field}: a ${country} IBAN has ${length} characters, ${JSON.stringify(text)} has ${iban.length}`);
  if (mod97(iban.slice(4) + iban.slice(0, 4)) !== 1) throw new RangeError(`${field}: ${JSON.stringify(text)} fails the ISO 13616 mod-97 check (a mistyped character?)`);
  return iban;
}

/** A BIC (ISO 9362, 8 or 11 characters) in upper case, or a RangeError naming `field`. */
export function checkBic(text: string, field: string): string {
  if (typeof text !== 'string') throw new TypeError(`${field}: must be a BIC string, got ${typeof text}`);
  if (!BIC.test(text)) throw new RangeError(`${field}: ${JSON.stringify(text)} is not a BIC (4 letters or digits, 2-letter country, 2 location, optional 3 branch)`);
  return text;
}

/** An identification or reference in the EPC character set, at most `maxChars`. */
export function checkEpcText(text: string, field: string, maxChars: number): string {
  if (typeof text !== 'string') throw new TypeError(`${field}: must be a string, got ${typeof text}`);
  if (text.length < 1 || text.length > maxChars) throw new RangeError(`${field}: must be 1-${maxChars} characters, ${JSON.stringify(text)} has ${text.length}`);
  if (!EPC_TEXT.test(text)) throw new RangeError(`${field}: ${JSON.stringify(text)} has characters outside the EPC set (a-z A-Z 0-9 / - ? : ( ) . , ' + space)`);
  if (text.startsWith('/') || text.endsWith('/') || text.includes('//')) throw new RangeError(`${field}: ${JSON.stringify(text)} must not start or end with '/' nor contain '//' (EPC)`);
  if (text.startsWith(' ') || text.endsWith(' ')) throw new RangeError(`${field}: ${JSON.stringify(text)} must not start or end with a space`);
  return text;
}

function checkName(text: string, field: string): string {
  if (typeof text !== 'string' || text.trim().length === 0) throw new RangeError(`${field}: must be a non-empty name`);
  if ([...text].length > PAIN001_LIMITS.nameChars) throw new RangeError(`${field}: at most ${PAIN001_LIMITS.nameChars} characters in a SEPA file (EPC), ${JSON.stringify(text)} is longer`);
  if (XML_FORBIDDEN.test(text)) throw new RangeError(`${field}: has control characters XML cannot carry`);
  return text;
}

function checkParty(party: SepaParty, field: string): SepaParty {
  return {
    name: checkName(party.name, `${field}.name`),
    iban: checkIban(party.iban, `${field}.iban`),
    ...(party.bic === undefined ? {} : { bic: checkBic(party.bic, `${field}.bic`) }),
  };
}

/** YYYY-MM-DD, a real calendar date, from the creation date (UTC) to a year ahead. */
export function checkExecutionDate(text: string, createdAt: Date, field = 'executionDate'): string {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : Number.NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== text) throw new RangeError(`${field}: ${JSON.stringify(text)} is not a date like 2025-03-31`);
  const today = createdAt.toISOString().slice(0, 10);
  if (text < today) throw new RangeError(`${field}: ${text} is before today (${today}); banks refuse a requested execution date in the past`);
  const latest = new Date(Date.parse(`${today}T00:00:00Z`) + PAIN001_LIMITS.executionDaysAheadMax * 86_400_000).toISOString().slice(0, 10);
  if (text > latest) throw new RangeError(`${field}: ${text} is more than ${PAIN001_LIMITS.executionDaysAheadMax} days ahead`);
  return text;
}

/** Escapes text for XML element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** EndToEndId: the batch id itself, so the payer's statement names the batch (EPC AT-T014). */
export function endToEndIdOf(header: SignedBatchHeader): string {
  return checkEpcText(header.batchId, `batch ${header.batchId}: EndToEndId`, PAIN001_LIMITS.idChars);
}

/** Ustrd: batch id and Merkle root, what a payer needs to check the batch (docs/receipts.md). */
export function remittanceOf(header: SignedBatchHeader): string {
  if (!/^[0-9a-f]{64}$/.test(header.merkleRoot)) throw new RangeError(`batch ${header.batchId}: merkleRoot is not 64 hex digits`);
  return checkEpcText(`meterbridge batch ${header.batchId} merkle root ${header.merkleRoot}`, `batch ${header.batchId}: Ustrd`, PAIN001_LIMITS.remittanceChars);
}

function amountMinorOf(header: SignedBatchHeader): bigint {
  const what = `Cannot export batch ${header.batchId}`;
  if (header.currency !== SEPA_CURRENCY) throw new RangeError(`${what}: its currency is ${header.currency}; a SEPA credit transfer carries EUR only`);
  if (!/^[0-9]{1,20}$/.test(header.amountMinor)) throw new RangeError(`${what}: amountMinor ${JSON.stringify(header.amountMinor)} is not a whole number of cents`);
  const amountMinor = BigInt(header.amountMinor);
  if (amountMinor < 1n) throw new RangeError(`${what}: nothing to pay (amountMinor ${header.amountMinor}); EPC's smallest transfer is 0.01 EUR`);
  if (amountMinor > PAIN001_LIMITS.amountMinorMax) throw new RangeError(`${what}: ${formatMinor(amountMinor, SEPA_CURRENCY)} EUR is above EPC's 999999999.99 EUR per transfer`);
  return amountMinor;
}

/** The default MsgId: the same batches on the same date give the same id (the bank's duplicate check). */
export function defaultMessageId(batches: readonly SignedBatchHeader[], executionDate: string): string {
  const digest = createHash('sha256').update([executionDate, ...batches.map((b) => b.batchId)].join('\n')).digest('hex');
  return `MB${digest.slice(0, 24)}`;
}

const amountXml = (minor: bigint): string => formatMinor(minor, SEPA_CURRENCY);

function agentXml(bic: string | undefined): string {
  // EPC C2PSP: DbtrAgt/FinInstnId has BICFI, or Othr/Id "NOTPROVIDED" when the BIC is not given.
  return bic === undefined ? '<FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId>' : `<FinInstnId><BICFI>${bic}</BICFI></FinInstnId>`;
}

function transactionXml(header: SignedBatchHeader, amountMinor: bigint, creditor: SepaParty): string {
  return [
    '<CdtTrfTxInf>',
    `<PmtId><EndToEndId>${escapeXml(endToEndIdOf(header))}</EndToEndId></PmtId>`,
    `<Amt><InstdAmt Ccy="${SEPA_CURRENCY}">${amountXml(amountMinor)}</InstdAmt></Amt>`,
    // CdtrAgt is optional in C2PSP; when present its BICFI is mandatory.
    creditor.bic === undefined ? '' : `<CdtrAgt><FinInstnId><BICFI>${creditor.bic}</BICFI></FinInstnId></CdtrAgt>`,
    `<Cdtr><Nm>${escapeXml(creditor.name)}</Nm></Cdtr>`,
    `<CdtrAcct><Id><IBAN>${creditor.iban}</IBAN></Id></CdtrAcct>`,
    `<RmtInf><Ustrd>${escapeXml(remittanceOf(header))}</Ustrd></RmtInf>`,
    '</CdtTrfTxInf>',
  ].join('');
}

interface DebtorGroup { payer: string; debtor: SepaParty; batches: Array<{ header: SignedBatchHeader; amountMinor: bigint }> }

function groupByDebtor(input: Pain001Input): DebtorGroup[] {
  const groups = new Map<string, DebtorGroup>();
  const seen = new Set<string>();
  for (const header of input.batches) {
    const amountMinor = amountMinorOf(header);
    const endToEndId = endToEndIdOf(header);
    if (seen.has(endToEndId)) throw new RangeError(`Cannot export batch ${header.batchId}: it is in the file twice`);
    seen.add(endToEndId);
    let group = groups.get(header.payer);
    if (!group) {
      const given = Object.hasOwn(input.debtors, header.payer) ? input.debtors[header.payer] : undefined;
      if (!given) throw new RangeError(`debtors.${header.payer}: no account for the payer of batch ${header.batchId}`);
      group = { payer: header.payer, debtor: checkParty(given, `debtors.${header.payer}`), batches: [] };
      groups.set(header.payer, group);
    }
    group.batches.push({ header, amountMinor });
  }
  return [...groups.values()];
}

/** Builds the document; throws RangeError naming the field or batch that cannot be exported. */
export function buildPain001(input: Pain001Input): Pain001Document {
  if (input.batches.length === 0) throw new RangeError('batches: nothing to export (a pain.001 holds at least one transfer)');
  if (input.batches.length > PAIN001_LIMITS.transactionsMax) throw new RangeError(`batches: ${input.batches.length} transfers, at most ${PAIN001_LIMITS.transactionsMax} in one file`);
  const creditor = checkParty(input.creditor, 'creditor');
  const initiator = checkName(input.initiatingPartyName, 'initiatingPartyName');
  const executionDate = checkExecutionDate(input.executionDate, input.createdAt);
  const messageId = checkEpcText(input.messageId ?? defaultMessageId(input.batches, executionDate), 'messageId', PAIN001_LIMITS.idChars);
  const groups = groupByDebtor(input);
  const paymentInfos: Pain001PaymentInfo[] = [];
  const blocks: string[] = [];
  groups.forEach((group, index) => {
    const paymentInfoId = checkEpcText(`${messageId.slice(0, 24)}-${index + 1}`, `PmtInfId of ${group.payer}`, PAIN001_LIMITS.idChars);
    const controlSumMinor = group.batches.reduce((sum, b) => sum + b.amountMinor, 0n);
    paymentInfos.push({ paymentInfoId, payer: group.payer, transactionCount: group.batches.length, controlSumMinor });
    blocks.push([
      '<PmtInf>',
      `<PmtInfId>${paymentInfoId}</PmtInfId><PmtMtd>TRF</PmtMtd>`,
      `<NbOfTxs>${group.batches.length}</NbOfTxs><CtrlSum>${amountXml(controlSumMinor)}</CtrlSum>`,
      '<PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl></PmtTpInf>',
      `<ReqdExctnDt><Dt>${executionDate}</Dt></ReqdExctnDt>`,
      `<Dbtr><Nm>${escapeXml(group.debtor.name)}</Nm></Dbtr>`,
      `<DbtrAcct><Id><IBAN>${group.debtor.iban}</IBAN></Id></DbtrAcct>`,
      `<DbtrAgt>${agentXml(group.debtor.bic)}</DbtrAgt>`,
      // EPC: SLEV, each party pays its own bank's charges.
      '<ChrgBr>SLEV</ChrgBr>',
      ...group.batches.map((b) => transactionXml(b.header, b.amountMinor, creditor)),
      '</PmtInf>',
    ].join('\n'));
  });
  const transactionCount = input.batches.length;
  const controlSumMinor = paymentInfos.reduce((sum, p) => sum + p.controlSumMinor, 0n);
  const createdAt = input.createdAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const xml = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">',
    '<CstmrCdtTrfInitn>',
    `<GrpHdr><MsgId>${messageId}</MsgId><CreDtTm>${createdAt}</CreDtTm><NbOfTxs>${transactionCount}</NbOfTxs><CtrlSum>${amountXml(controlSumMinor)}</CtrlSum><InitgPty><Nm>${escapeXml(initiator)}</Nm></InitgPty></GrpHdr>`,
    ...blocks,
    '</CstmrCdtTrfInitn>',
    '</Document>',
    '',
  ].join('\n');
  return { xml, messageId, transactionCount, controlSumMinor, paymentInfos };
}

const textOf = (block: string, tag: string): string[] => [...block.matchAll(new RegExp(`<${tag}(?: [^>]*)?>([^<]*)</${tag}>`, 'g'))].map((m) => m[1]!);

/**
 * Checks what the XSD cannot in a pain.001 this module wrote (or one edited after): every
 * amount has at most 2 decimals and is EUR, NbOfTxs and CtrlSum of each PmtInf and of the
 * GrpHdr equal the count and exact sum of its transfers, every IBAN passes mod-97 and every
 * BIC its format. Returns the problems found, none when the file is consistent.
 */
export function auditPain001(xml: string): string[] {
  const problems: string[] = [];
  const minor = (text: string, where: string): bigint | undefined => {
    try {
      return parseMinor(text, SEPA_CURRENCY, where);
    } catch (error) {
      problems.push((error as Error).message);
      return undefined;
    }
  };
  const header = /<GrpHdr>([\s\S]*?)<\/GrpHdr>/.exec(xml)?.[1];
  if (header === undefined) return ['GrpHdr: missing'];
  let total = 0n;
  let count = 0;
  const blocks = [...xml.matchAll(/<PmtInf>([\s\S]*?)<\/PmtInf>/g)].map((m) => m[1]!);
  for (const block of blocks) {
    const id = textOf(block, 'PmtInfId')[0] ?? '(no PmtInfId)';
    const amounts = [...block.matchAll(/<InstdAmt Ccy="([A-Z]{3})">([^<]*)<\/InstdAmt>/g)];
    let sum = 0n;
    for (const [, ccy, text] of amounts) {
      if (ccy !== SEPA_CURRENCY) problems.push(`PmtInf ${id}: InstdAmt in ${ccy}; SEPA carries EUR only`);
      sum += minor(text!, `PmtInf ${id}: InstdAmt`) ?? 0n;
    }
    const txCount = (block.match(/<CdtTrfTxInf>/g) ?? []).length;
    if (textOf(block, 'NbOfTxs')[0] !== String(txCount)) problems.push(`PmtInf ${id}: NbOfTxs ${textOf(block, 'NbOfTxs')[0]} but ${txCount} transfers`);
    const ctrl = minor(textOf(block, 'CtrlSum')[0] ?? '', `PmtInf ${id}: CtrlSum`);
    if (ctrl !== undefined && ctrl !== sum) problems.push(`PmtInf ${id}: CtrlSum ${formatMinor(ctrl, SEPA_CURRENCY)} but its transfers sum to ${formatMinor(sum, SEPA_CURRENCY)}`);
    total += sum;
    count += txCount;
  }
  if (textOf(header, 'NbOfTxs')[0] !== String(count)) problems.push(`GrpHdr: NbOfTxs ${textOf(header, 'NbOfTxs')[0]} but ${count} transfers`);
  const ctrl = minor(textOf(header, 'CtrlSum')[0] ?? '', 'GrpHdr: CtrlSum');
  if (ctrl !== undefined && ctrl !== total) problems.push(`GrpHdr: CtrlSum ${formatMinor(ctrl, SEPA_CURRENCY)} but the transfers sum to ${formatMinor(total, SEPA_CURRENCY)}`);
  for (const iban of textOf(xml, 'IBAN')) {
    try {
      checkIban(iban, 'IBAN');
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  for (const bic of textOf(xml, 'BICFI')) if (!BIC.test(bic)) problems.push(`BICFI: ${JSON.stringify(bic)} is not a BIC`);
  return problems;
}

/** A configured account (gateway/config.ts) as a SEPA party: it must be a 'UK.OBIE.IBAN' account. */
export function sepaPartyOfAccount(account: { schemeName: string; identification: string; name: string; bic?: string | undefined } | undefined, field: string): SepaParty {
  if (!account) throw new RangeError(`${field}: required for a SEPA credit transfer (schemeName "UK.OBIE.IBAN", the IBAN as identification)`);
  if (account.schemeName !== 'UK.OBIE.IBAN') throw new RangeError(`${field}.schemeName: ${JSON.stringify(account.schemeName)} is not "UK.OBIE.IBAN"; a SEPA credit transfer needs an IBAN`);
  return { name: account.name, iban: checkIban(account.identification, `${field}.identification`), ...(account.bic === undefined ? {} : { bic: checkBic(account.bic, `${field}.bic`) }) };
}
