/**
 * `meterbridge verify <bundle.json> --key HEX…`: checks a payer's proof bundle offline,
 * with no network and no gateway, against the gateway keys the payer got from the
 * operator (docs/receipts.md). Exit 0 when every check passes, 1 when any fails, 2 on
 * a usage error.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { verifyProofBundle, type BundleCheck, type BundleReport } from '../protocol/proof-bundle.ts';

const HELP = `Usage:
  meterbridge verify <bundle.json> --key HEX [--key HEX…] [--json] [--quiet]

Checks a proof bundle (a payer's statement from a meterbridge gateway) without a network
and without trusting the gateway: batch signatures, Merkle inclusion of every record,
batch totals and carried remainders, every amount recomputed from its tariff, device
signatures and sequence numbers. See docs/receipts.md.

Options:
  --key HEX             a gateway public key you trust (64 hex digits), as the operator
                        gave it to you; repeat for rotated keys
  --trust-bundle-keys   use the keys listed in the bundle instead: this proves only that
                        the bundle is consistent, not that the gateway you pay signed it
  --json                print the report as JSON
  --quiet               print only failed checks, warnings and the summary
  -h, --help            show this help

Exit status: 0 every check passed (warnings allowed), 1 a check failed, 2 usage error.
`;

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CommandIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
const KEY_HEX = /^[0-9a-fA-F]{64}$/;

function lineOf(check: BundleCheck): string {
  const mark = !check.ok ? '✗' : check.warning ? '!' : '✓';
  return `${mark} ${check.detail}\n`;
}

export function summaryOf(report: BundleReport): string {
  const total = report.checks.length;
  const verdict = report.ok ? 'the bundle verifies' : 'the bundle does NOT verify';
  const warnings = report.warnings === 0 ? '' : `, ${report.warnings} warning${report.warnings === 1 ? '' : 's'}`;
  return `${total} checks: ${report.passed} passed, ${report.failed} failed${warnings}: ${verdict}\n`;
}

export async function verifyCommand(argv: string[], io: CommandIo = processIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: { key: { type: 'string', multiple: true }, 'trust-bundle-keys': { type: 'boolean' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (error) {
    io.err(`meterbridge verify: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const usage = (problem: string): number => {
    io.err(`meterbridge verify: ${problem}\n\n${HELP}`);
    return 2;
  };
  if (positionals.length !== 1) return usage(positionals.length === 0 ? 'which bundle? Give the bundle file' : 'give exactly one bundle file');
  const keys = values.key ?? [];
  const badKey = keys.find((k) => !KEY_HEX.test(k));
  if (badKey !== undefined) return usage(`--key ${JSON.stringify(badKey)} is not an Ed25519 public key (64 hex digits)`);
  if (keys.length === 0 && !values['trust-bundle-keys']) return usage('--key is required: the gateway public key the operator gave you');
  const file = positionals[0]!;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return usage(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let bundle: unknown;
  try {
    bundle = JSON.parse(text);
  } catch (error) {
    io.err(`meterbridge verify: ${file} is not JSON: ${(error as Error).message}\n`);
    return 1;
  }
  const trusted = [...keys.map((k) => k.toLowerCase())];
  if (values['trust-bundle-keys']) {
    const listed = (bundle as { gatewayKeys?: Array<{ publicKey?: unknown }> }).gatewayKeys;
    if (Array.isArray(listed)) for (const k of listed) if (typeof k?.publicKey === 'string') trusted.push(k.publicKey);
    io.err('meterbridge verify: trusting the keys listed in the bundle itself: this proves nothing about who signed it; compare them with the key the operator gave you\n');
  }
  const report = verifyProofBundle(bundle, trusted);
  if (values.json) {
    io.out(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    let lines = '';
    for (const check of report.checks) if (!values.quiet || !check.ok || check.warning) lines += lineOf(check);
    io.out(lines + summaryOf(report));
  }
  return report.ok ? 0 : 1;
}
