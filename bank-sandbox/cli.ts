/** `meterbridge bank-sandbox`: runs the sandbox VRP bank until SIGINT or SIGTERM. */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadOrCreateJwsKey, readTrustedJwkFile } from '../gateway/settlement/jws-key-file.ts';
import type { JwsKeyPair, TrustedJwsKey } from '../gateway/settlement/jws.ts';
import { applyFault, parseFaultSpec, type FaultSpec } from './faults.ts';
import { startBankSandbox } from './server.ts';

export const BANK_SANDBOX_USAGE = `Usage: meterbridge bank-sandbox [options]

Runs a local Open Banking VRP 4.0 bank (consents, payments, faults) in memory.

Options:
  --host <host>            address to listen on (default 127.0.0.1)
  --port <port>            port, 0 for any free one (default 8090)
  --token <token>          bearer token the bank accepts; repeat for several TPPs
                           (prefer MB_BANK_TOKEN: arguments show up in process lists)
  --settle-after-ms <ms>   time from a payment's creation to ACSC (default 2000)
  --no-auto-authorise      leave new consents AWAU until
                           POST /sandbox/consents/{ConsentId}/authorise
  --fault <kind:count[:v]> inject a fault at start; repeatable. Kinds: fail[:status],
                           timeout-after-accept:ms, accept-slowly:ms, answer-slowly:ms,
                           reject[:insufficient-funds], expire-consent, hold-pending:ms.
                           At run time: POST /sandbox/faults {"kind","count",...}
  --signing-key <file>     the bank's P-256 signing key (hex, 0600), made if missing;
                           its public JWK is written to <file minus .key>.jwk.json for
                           the gateway's settlement.bank.publicKeyFile (default: a new
                           key each start, printed as a JWK)
  --tpp-key <file>         a TPP's public signing JWK (or JWKS), e.g. the gateway's
                           gateway-data/gateway-ob-signing-p256.jwk.json; repeatable.
                           When given, every POST must carry a valid x-jws-signature
  --callback-url <url>     POST signed event notifications (payment created, status
                           changed) to this URL, e.g. the gateway's
                           http://127.0.0.1:8080/bank/events
  -h, --help               show this text

Environment:
  MB_BANK_TOKEN            bearer token, used when no --token is given
`;

export interface BankSandboxCommandOptions {
  env?: Readonly<Record<string, string | undefined>>;
  stdout?: { write(text: string): unknown };
  stderr?: { write(text: string): unknown };
  /** Stops the bank like SIGINT does (for tests and embedding). */
  signal?: AbortSignal;
}

interface Settings {
  host: string;
  port: number;
  tokens: string[];
  settleAfterMs: number;
  autoAuthoriseConsents: boolean;
  signingKeyFile: string | undefined;
  tppKeyFiles: string[];
  faults: FaultSpec[];
  callbackUrl: string | undefined;
}

const DEFAULT_PORT = 8090;

function parseInteger(text: string | undefined, fallback: number, flag: string, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,9}$/.test(text) || Number(text) > max) throw new RangeError(`${flag}: ${JSON.stringify(text)} must be an integer from 0 to ${max}`);
  return Number(text);
}

function readSettings(argv: string[], env: Readonly<Record<string, string | undefined>>): Settings | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      token: { type: 'string', multiple: true },
      'settle-after-ms': { type: 'string' },
      'no-auto-authorise': { type: 'boolean' },
      'signing-key': { type: 'string' },
      'tpp-key': { type: 'string', multiple: true },
      fault: { type: 'string', multiple: true },
      'callback-url': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const tokens = values.token ?? (env.MB_BANK_TOKEN ? [env.MB_BANK_TOKEN] : []);
  if (tokens.length === 0) {
    throw new RangeError('no access token: set MB_BANK_TOKEN or pass --token; the sandbox bank has no open doors');
  }
  return {
    host: values.host ?? '127.0.0.1',
    port: parseInteger(values.port, DEFAULT_PORT, '--port', 65_535),
    tokens,
    settleAfterMs: parseInteger(values['settle-after-ms'], 2000, '--settle-after-ms', 86_400_000),
    autoAuthoriseConsents: values['no-auto-authorise'] !== true,
    signingKeyFile: values['signing-key'],
    tppKeyFiles: values['tpp-key'] ?? [],
    faults: (values.fault ?? []).map(parseFaultSpec),
    callbackUrl: checkCallbackUrl(values['callback-url']),
  };
}

function checkCallbackUrl(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const protocol = URL.canParse(text) ? new URL(text).protocol : '';
  if (protocol !== 'http:' && protocol !== 'https:') throw new RangeError(`--callback-url: ${JSON.stringify(text)} must be an http(s) URL`);
  return text;
}

function untilStopped(signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve) => {
    const stop = (reason: string) => () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      signal?.removeEventListener('abort', onAbort);
      resolve(reason);
    };
    const onInt = stop('SIGINT');
    const onTerm = stop('SIGTERM');
    const onAbort = stop('abort');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function bankSandboxCommand(argv: string[], options: BankSandboxCommandOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  let settings: Settings | 'help';
  try {
    settings = readSettings(argv, options.env ?? process.env);
  } catch (error) {
    stderr.write(`bank-sandbox: ${(error as Error).message}\n\n${BANK_SANDBOX_USAGE}`);
    return 2;
  }
  if (settings === 'help') {
    stdout.write(BANK_SANDBOX_USAGE);
    return 0;
  }
  const logger = pino({ name: 'bank-sandbox', level: 'info' }, { write: (line: string) => stderr.write(line) });
  let keys: { signingKey?: JwsKeyPair; signingPublicFile?: string; tppSigningKeys?: TrustedJwsKey[] };
  try {
    keys = await readKeys(settings);
  } catch (error) {
    stderr.write(`bank-sandbox: ${(error as Error).message}\n`);
    return 1;
  }
  const bank = await startBankSandbox({
    ...(settings.callbackUrl === undefined ? {} : { callbackUrl: settings.callbackUrl }),
    ...(keys.signingKey ? { signingKey: keys.signingKey } : {}),
    ...(keys.tppSigningKeys ? { tppSigningKeys: keys.tppSigningKeys } : {}),
    host: settings.host,
    port: settings.port,
    accessTokens: settings.tokens,
    settleAfterMs: settings.settleAfterMs,
    autoAuthoriseConsents: settings.autoAuthoriseConsents,
    logger,
  });
  for (const fault of settings.faults) applyFault(bank.faults, fault);
  stdout.write(`bank sandbox listening on ${bank.url}\n`);
  stdout.write(keys.signingPublicFile ? `bank signing key ${bank.signingJwk.kid}: public JWK in ${keys.signingPublicFile}\n` : `bank signing key (new this start): ${JSON.stringify(bank.signingJwk)}\n`);
  if (settings.callbackUrl !== undefined) stdout.write(`event notifications go to ${settings.callbackUrl}\n`);
  stdout.write(keys.tppSigningKeys ? `requests must be signed by one of ${keys.tppSigningKeys.length} TPP key(s)\n` : 'request signatures are not checked (no --tpp-key)\n');
  const reason = await untilStopped(options.signal);
  logger.info({ reason }, 'bank sandbox stopping');
  await bank.close();
  return 0;
}

async function readKeys(settings: Settings): Promise<{ signingKey?: JwsKeyPair; signingPublicFile?: string; tppSigningKeys?: TrustedJwsKey[] }> {
  const signing = settings.signingKeyFile === undefined ? undefined : await loadOrCreateJwsKey(settings.signingKeyFile);
  const tppSigningKeys = settings.tppKeyFiles.length === 0 ? undefined : (await Promise.all(settings.tppKeyFiles.map(readTrustedJwkFile))).flat();
  return {
    ...(signing ? { signingKey: signing.key, signingPublicFile: signing.publicFile } : {}),
    ...(tppSigningKeys ? { tppSigningKeys } : {}),
  };
}
