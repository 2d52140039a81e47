/**
 * `meterbridge key show|rotate`: the gateway's signing keys (gateway/ledger/gateway-key.ts).
 * `rotate` runs only while the gateway is stopped: it takes the ledger's LevelDB lock,
 * which a running gateway holds, and keeps it while it changes the keyring.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../gateway/config.ts';
import { readKeyHistory, rotateGatewayKey, type KeyHistory } from '../gateway/ledger/gateway-key.ts';
import type { LedgerDb } from '../gateway/ledger/ledger-db.ts';
import { Outbox } from '../gateway/uplink/outbox.ts';
import { openLedgerDb } from '../gateway/ledger/ledger-db.ts';

const HELP = `Usage:
  meterbridge key show --config FILE     the current public key and keyId, and every key before it
  meterbridge key rotate --config FILE   a new signing key; stop the gateway first

Options:
  --config FILE    the gateway's JSON config file (or MB_CONFIG): its dataDir holds the keys
  -h, --help       show this help

rotate makes a new Ed25519 key valid from now, ends the current key now, signs the new
key's public key, keyId and validFrom with the old key (the endorsement, kept in
<dataDir>/gateway-keys.json), and destroys the old secret. Batches the old key signed stay
verifiable with its public key, which 'key show' and every proof bundle keep listing.
Give payers the new public key (docs/receipts.md, "Key rotation").
`;

const SUBCOMMAND_HELP: Record<string, string> = {
  show: `Usage: meterbridge key show --config FILE

Prints the gateway's current signing key (public key and keyId) and its key history: every
key it has signed with, with the time each was valid from and to. Changes nothing.
`,
  rotate: `Usage: meterbridge key rotate --config FILE

Replaces the gateway's signing key. Stop the gateway first: rotate refuses while the
ledger (<dataDir>/ledger) is locked by a running gateway. The old key is ended now, the
new one is endorsed by it, and the old secret is overwritten and deleted. Prints the new
public key: hand it to your payers. Receipts signed before stay verifiable with the old key.
`,
};

class GatewayRunningError extends Error {
  readonly code = 'GATEWAY_RUNNING';
}

function historyLines(history: KeyHistory): string {
  return history.keys.map((k, i) => {
    const endorsement = i === 0 ? 'first key' : `endorsed by ${history.keys[i - 1]!.keyId}`;
    return `  ${k.keyId}  ${k.publicKey}\n                    valid ${k.validFrom} to ${k.validTo ?? 'now (current)'} · ${endorsement}\n`;
  }).join('');
}

export function showKeys(history: KeyHistory): string {
  const current = history.keys.at(-1)!;
  return `Current gateway key\n  keyId       ${current.keyId}\n  public key  ${current.publicKey}\n  valid from  ${current.validFrom}\n\nKey history (${history.keys.length} key${history.keys.length === 1 ? '' : 's'}, oldest first)\n${historyLines(history)}`;
}

/** Holds the ledger's lock around `work`; a running gateway holds it, so this refuses then. */
async function withLedgerLocked<T>(dataDir: string, work: (db: LedgerDb) => Promise<T>): Promise<T> {
  const dir = path.join(dataDir, 'ledger');
  let db;
  try {
    db = await openLedgerDb(dir);
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') throw new GatewayRunningError(`Cannot rotate the gateway key: the ledger ${dir} is in use by a running gateway; stop the gateway first`, { cause: error });
    throw error;
  }
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

export async function keyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  const action = positionals[0];
  if (values.help || !action || !(action in SUBCOMMAND_HELP)) {
    process.stdout.write(values.help && action ? (SUBCOMMAND_HELP[action] ?? HELP) : HELP);
    return values.help ? 0 : 2;
  }
  const config = loadConfig(values.config ? { file: values.config } : {});
  const { dataDir } = config;
  const history = await readKeyHistory(dataDir);
  if (!history) {
    const legacy = existsSync(path.join(dataDir, 'gateway-ed25519.key'));
    process.stderr.write(`meterbridge key ${action}: ${dataDir} holds no key history yet: ${legacy ? 'start the gateway once to write it' : 'the gateway makes its first key on first start'}\n`);
    return 1;
  }
  if (action === 'show') {
    process.stdout.write(showKeys(history));
    return 0;
  }
  let rotation;
  try {
    rotation = await withLedgerLocked(dataDir, (db) => rotateGatewayKey(dataDir, new Date(), async (previous, endorsement) => {
      // cloud-sync learns the new key from the old one, ahead of anything the new key signs.
      if (!config.uplink.url) return;
      const outbox = await Outbox.open(db, { gatewayId: config.gatewayId, signingKey: previous, clock: () => new Date(), budgetBytes: config.uplink.budgetBytes });
      await outbox.enqueue([{ kind: 'key', key: endorsement }], { signedBy: previous });
    }));
  } catch (error) {
    if (!(error instanceof GatewayRunningError)) throw error;
    process.stderr.write(`meterbridge key rotate: ${error.message}\n`);
    return 1;
  }
  const { retired, current } = rotation;
  process.stdout.write(`Rotated the gateway key in ${dataDir}.
  new keyId       ${current.keyId}
  new public key  ${current.publicKey}
  valid from      ${current.validFrom}
Hand the new public key to your payers; the old key ${retired.keyId} endorsed it (${path.join(dataDir, 'gateway-keys.json')}).
Receipts signed before stay verifiable with the old key ${retired.keyId} (valid ${retired.validFrom} to ${retired.validTo}),
which 'meterbridge key show' and every proof bundle keep listing. Its secret was destroyed.
Start the gateway again to sign with the new key.
`);
  return 0;
}
