/**
 * `meterbridge pain001`: sealed EUR batches as an ISO 20022 pain.001.001.09 SEPA credit
 * transfer file for a bank without an API (gateway/settlement/pain001.ts, docs/pain001.md).
 * Reads the ledger only, with the gateway stopped: a running gateway holds the LevelDB lock.
 */
import { existsSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, type GatewayConfig } from '../gateway/config.ts';
import { keys, openLedgerDb } from '../gateway/ledger/ledger-db.ts';
import type { BatchStateName, StoredBatch } from '../gateway/settlement/batch-book.ts';
import { auditPain001, buildPain001, SEPA_CURRENCY, sepaPartyOfAccount, type SepaParty } from '../gateway/settlement/pain001.ts';
import { formatMinor } from '../protocol/money.ts';

const HELP = `Usage:
  meterbridge pain001 --config FILE --out FILE [--batches sealed|all] [--execution-date YYYY-MM-DD]

Writes the gateway's EUR batches as one SEPA credit transfer initiation (ISO 20022
pain.001.001.09, EPC implementation guidelines) for a bank that takes payment files
instead of an API: one PmtInf per payer (debtor), one transfer per batch, EndToEndId =
the batch id, the batch's Merkle root in the remittance text. See docs/pain001.md.

Stop the gateway first: the command reads the ledger (<dataDir>/ledger) and refuses while
a running gateway holds it. It changes nothing in the ledger.

Options:
  --config FILE              the gateway's JSON config file (or MB_CONFIG); payers and the
                             payee need an account with schemeName "UK.OBIE.IBAN" (and
                             optionally "bic")
  --out FILE                 where to write the XML (replaced if it exists)
  --batches sealed|all       sealed (default): batches not yet sent to any bank;
                             all: also batches the VRP bank rejected (still owed). Batches
                             in flight or settled are never exported: no batch is paid twice
  --execution-date DATE      requested execution date, YYYY-MM-DD (default: today, UTC)
  --message-id ID            GrpHdr MsgId (default: derived from the batches and the date,
                             so exporting the same batches again gives the same MsgId and
                             the bank's duplicate check refuses the second upload)
  -h, --help                 show this help

Batches in other currencies are skipped (SEPA carries euro only) and counted.
Exit status: 0 file written, 1 nothing to export or a batch/account cannot be exported,
2 usage error.
`;

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CommandIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** What each --batches choice exports. Never submitted/pending (in flight at the VRP bank) nor settled. */
const SELECTIONS: Readonly<Record<string, ReadonlySet<BatchStateName>>> = {
  sealed: new Set(['sealed']),
  all: new Set(['sealed', 'rejected']),
};

export class LedgerInUseError extends Error {
  readonly code = 'MB_LEDGER_IN_USE';
}

/** Every stored batch, read with the ledger's lock held, then released. */
export async function readBatches(dataDir: string): Promise<StoredBatch[]> {
  const dir = path.join(dataDir, 'ledger');
  if (!existsSync(path.join(dir, 'CURRENT'))) throw new Error(`Cannot read the ledger: there is none at ${dir} (has the gateway ever run with this config?)`);
  let db;
  try {
    db = await openLedgerDb(dir);
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') throw new LedgerInUseError(`Cannot read the ledger ${dir}: it is in use by a running gateway; stop the gateway first`, { cause: error });
    throw error;
  }
  try {
    const batches: StoredBatch[] = [];
    for await (const value of db.values(keys.batchRange)) batches.push(value as StoredBatch);
    return batches;
  } finally {
    await db.close();
  }
}

function debtorsOf(config: Readonly<GatewayConfig>, batches: readonly StoredBatch[]): Record<string, SepaParty> {
  const debtors: Record<string, SepaParty> = {};
  for (const { header } of batches) {
    if (Object.hasOwn(debtors, header.payer)) continue;
    const payer = Object.hasOwn(config.payers, header.payer) ? config.payers[header.payer] : undefined;
    if (!payer) throw new RangeError(`payers.${header.payer}: not in the config, but batch ${header.batchId} is theirs`);
    debtors[header.payer] = sepaPartyOfAccount(payer.account, `payers.${header.payer}.account`);
  }
  return debtors;
}

/** Writes beside the target, then renames: a reader never sees half a payment file. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, text, { mode: 0o600 });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

function skippedLine(skipped: Map<string, number>): string {
  if (skipped.size === 0) return '';
  const total = [...skipped.values()].reduce((a, b) => a + b, 0);
  const byCurrency = [...skipped].map(([currency, n]) => `${n} ${currency}`).join(', ');
  return `Skipped ${total} batch${total === 1 ? '' : 'es'} not in EUR (${byCurrency}): SEPA carries euro only.\n`;
}

export async function pain001Command(argv: string[], io: CommandIo = processIo, clock: () => Date = () => new Date()): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string' }, out: { type: 'string' }, batches: { type: 'string' }, 'execution-date': { type: 'string' }, 'message-id': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (error) {
    io.err(`meterbridge pain001: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const usage = (problem: string): number => {
    io.err(`meterbridge pain001: ${problem}\n\n${HELP}`);
    return 2;
  };
  if (!values.out) return usage('--out FILE is required: where to write the payment file');
  const selection = SELECTIONS[values.batches ?? 'sealed'];
  if (!selection) return usage(`--batches ${JSON.stringify(values.batches)} must be sealed or all`);
  const now = clock();
  try {
    const config = loadConfig(values.config ? { file: values.config } : {});
    const chosen = (await readBatches(config.dataDir)).filter((b) => selection.has(b.state));
    const skipped = new Map<string, number>();
    for (const b of chosen) if (b.header.currency !== SEPA_CURRENCY) skipped.set(b.header.currency, (skipped.get(b.header.currency) ?? 0) + 1);
    const batches = chosen.filter((b) => b.header.currency === SEPA_CURRENCY);
    if (batches.length === 0) {
      io.err(`meterbridge pain001: nothing to export: no ${[...selection].join(' or ')} EUR batches in ${config.dataDir}\n${skippedLine(skipped)}`);
      return 1;
    }
    const doc = buildPain001({
      batches: batches.map((b) => b.header),
      debtors: debtorsOf(config, batches),
      creditor: sepaPartyOfAccount(config.payee.account, 'payee.account'),
      initiatingPartyName: config.payee.account.name,
      createdAt: now,
      executionDate: values['execution-date'] ?? now.toISOString().slice(0, 10),
      ...(values['message-id'] === undefined ? {} : { messageId: values['message-id'] }),
    });
    const problems = auditPain001(doc.xml);
    if (problems.length > 0) throw new Error(`Invariant broken: the pain.001 just built fails its own audit: ${problems.join('; ')}`);
    await writeAtomically(values.out, doc.xml);
    const payers = doc.paymentInfos.length;
    io.out(`Wrote ${doc.transactionCount} batch${doc.transactionCount === 1 ? '' : 'es'} for ${payers} payer${payers === 1 ? '' : 's'} to ${values.out}: control sum ${formatMinor(doc.controlSumMinor, SEPA_CURRENCY)} EUR, MsgId ${doc.messageId}, execution date ${values['execution-date'] ?? now.toISOString().slice(0, 10)}.\n`);
    for (const info of doc.paymentInfos) io.out(`  ${info.payer}: ${info.transactionCount} transfer${info.transactionCount === 1 ? '' : 's'}, ${formatMinor(info.controlSumMinor, SEPA_CURRENCY)} EUR\n`);
    io.out(skippedLine(skipped));
    io.out('The ledger is unchanged: these batches stay open, and a gateway with a VRP bank configured would still try to pay them.\n');
    return 0;
  } catch (error) {
    io.err(`meterbridge pain001: ${(error as Error).message}\n`);
    return 1;
  }
}
