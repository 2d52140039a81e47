/**
 * `meterbridge demo` (what `npm start` runs): sandbox bank, gateway and simulated fleet
 * in one process on embedded defaults, with a progress line every 10 seconds.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startBankSandbox } from '../bank-sandbox/server.ts';
import { startFleet } from '../firmware-sim/fleet.ts';
import { loadConfig } from '../gateway/config.ts';
import { startGateway } from '../gateway/main.ts';
import { createLogger } from './logger.ts';
import { ensureBankToken, ensureDemoSigningKeys, prepareDemo } from './demo-setup.ts';
import { untilSignal } from './signals.ts';
import type { BankSandbox } from '../bank-sandbox/server.ts';

/** How long the demo bank holds its first payments PDNG. */
const DEMO_HOLD_MS = 15_000;

/**
 * A bad day at the bank, so the operator sees settlement survive it (docs/payments.md):
 * each fault is set on the sandbox and returned as one line saying what the dashboard shows.
 */
function injectDemoFaults(bank: BankSandbox, bankTimeoutMs: number): string[] {
  const lostAnswerMs = bankTimeoutMs + 1_000;
  bank.faults.timeoutAfterAcceptNext(1, lostAnswerMs);
  bank.faults.holdPendingNext(2, { forMs: DEMO_HOLD_MS });
  return [
    `the bank accepts the first payment but its answer is lost (no reply for ${lostAnswerMs / 1000} s): that batch shows 'submitted' with a timeout, is retried with the same idempotency key, and is paid once`,
    `the bank holds the first 2 payments PDNG for ${DEMO_HOLD_MS / 1000} s: their batches show 'pending', then 'settled' as soon as the bank's event notification arrives`,
  ];
}

const HELP = `Usage: meterbridge demo [--dir DIR] [--http-port N] [--mqtt-port N] [--bank-port N] [--speed N] [--no-faults]

Starts, in one process and without any other server: the sandbox bank (Open Banking
VRP 4.0 shape), the gateway with its embedded MQTT broker and LevelDB ledger, and a
simulated fleet (2 CNC machines, 2 trucks, 1 container yard, 1 compressor reporting an energy counter). Batches are sealed every
minute and paid through the sandbox bank. Prints the dashboard URL and operator login.
The bank starts with two faults (a lost answer, payments held pending), each announced
with what the dashboard will show, and tells the gateway of every status change with a
signed event notification (POST /bank/events).

Options:
  --dir DIR        demo folder: config, secrets, ledger (default ./.meterbridge-demo)
  --http-port N    dashboard port (default 8080)
  --mqtt-port N    MQTT port (default 1883)
  --bank-port N    sandbox bank port (default 8090)
  --speed N        machines report N times as often (default 1)
  --log-level L    gateway log level (default warn)
  --seal-cron EXPR when batches are sealed (default '* * * * *', every minute)
  --no-faults      start the bank without its demo faults
  -h, --help       show this help
`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string' }, 'http-port': { type: 'string' }, 'mqtt-port': { type: 'string' }, 'bank-port': { type: 'string' },
      speed: { type: 'string' }, 'log-level': { type: 'string' }, 'seal-cron': { type: 'string' }, 'no-faults': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const ports = { http: Number(values['http-port'] ?? 8080), mqtt: Number(values['mqtt-port'] ?? 1883), bank: Number(values['bank-port'] ?? 8090) };
  const dir = path.resolve(values.dir ?? '.meterbridge-demo');
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  say(`meterbridge demo: preparing ${dir}`);
  const logger = createLogger(values['log-level'] ?? 'warn', 'demo');
  const bankToken = ensureBankToken(dir);
  // Message signing both ways (docs/bank-api.md): the bank trusts the gateway's key, the gateway the bank's.
  const signingKeys = await ensureDemoSigningKeys(dir);
  const bank = await startBankSandbox({
    port: ports.bank, accessTokens: [bankToken], autoAuthoriseConsents: true, settleAfterMs: 3_000, logger: logger.child({ module: 'bank-sandbox' }),
    signingKey: signingKeys.bank, tppSigningKeys: [signingKeys.gateway],
  });
  say(`  sandbox bank   ${bank.url}`);
  const setup = await prepareDemo(dir, { ...ports, bank: bank.port }, { sealCron: values['seal-cron'] ?? '* * * * *' });
  const config = loadConfig({ file: setup.configFile, env: {} });
  const gateway = await startGateway(config, { logger, resetOperatorLogin: true }).catch(async (error: unknown) => {
    await bank.close();
    throw error;
  });
  // The bank tells the gateway when a payment moves; the gateway's poll stays the fallback.
  bank.setCallbackUrl(`${gateway.httpUrl}/bank/events`);
  say(`  bank events    ${gateway.httpUrl}/bank/events (signed by the bank, verified by the gateway)`);
  if (values['no-faults'] !== true) {
    for (const line of injectDemoFaults(bank, config.settlement.bank.timeoutMs)) say(`  fault          ${line}`);
  }
  say(`  MQTT broker    mqtt://127.0.0.1:${gateway.mqttPort}`);
  const fleet = startFleet({ mqttUrl: `mqtt://127.0.0.1:${gateway.mqttPort}`, devices: setup.simDevices, speed: Number(values.speed ?? 1), stateDir: path.join(dir, 'sim-state') });
  say(`  machines       ${setup.simDevices.map((d) => `${d.id} (${d.kind})`).join(', ')} · seed ${fleet.seed}`);
  say(`\n  Dashboard      ${gateway.httpUrl}/`);
  say(`  Set up login   ${gateway.operatorSetup?.link ?? '(an operator exists)'}   (one-time link, new each demo start)`);
  say(`\nBatches are sealed on '${config.settlement.sealCron}' (cron) and paid through the sandbox bank. Ctrl-C to stop.\n`);

  const progress = setInterval(() => {
    const { acked } = fleet.stats(); // read before the ledger, so acked <= records always shows
    void gateway.snapshot().then((s) => {
      const states = new Map<string, number>();
      for (const b of s.batches) states.set(b.state, (states.get(b.state) ?? 0) + 1);
      const settled = s.settled.map((x) => `${x.amount} ${x.currency}`).join(' + ') || '0';
      say(`[${new Date().toISOString().slice(11, 19)}] records ${s.chain.headIndex} · acked ${acked} · batches ${[...states].map(([k, v]) => `${v} ${k}`).join(', ') || 'none yet'} · settled ${settled}`);
    });
  }, 10_000);

  await untilSignal();
  say('stopping…');
  clearInterval(progress);
  await fleet.stop();
  await gateway.stop();
  await bank.close();
  return 0;
}
