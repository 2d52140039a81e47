/** `meterbridge gateway`: the edge daemon as it runs in production. */
import { parseArgs } from 'node:util';
import { CONFIG_ENV_VARS, loadConfig } from '../gateway/config.ts';
import { startGateway } from '../gateway/main.ts';
import { createLogger } from './logger.ts';
import { untilSignal } from './signals.ts';

const HELP = `Usage: meterbridge gateway [--config FILE] [--reset-login]

Runs the edge gateway: MQTT intake (its embedded broker, or a bridge to an external
Mosquitto: mqtt.mode), GPIO pulse inputs and Sparkplug B, the hash-chained LevelDB
ledger, scheduled batch settlement through the pay-by-bank API, and the operator page.

Options:
  --config FILE    JSON config file (or MB_CONFIG); see README "Configuration"
  --reset-login    remove every operator account and print a new setup link
  -h, --help       show this help

Environment (overrides the file): ${CONFIG_ENV_VARS.join(', ')}
`;

export async function gatewayCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, 'reset-login': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const config = loadConfig(values.config ? { file: values.config } : {});
  const logger = createLogger(config.logLevel, 'gateway');
  const gateway = await startGateway(config, { logger, resetOperatorLogin: values['reset-login'] ?? false });
  const mqttLine = config.mqtt.mode === 'embedded' ? `mqtt://${config.mqtt.host}:${gateway.mqttPort}` : `bridged to ${config.mqtt.external!.url}`;
  process.stdout.write(`meterbridge gateway ${config.gatewayId}\n  MQTT      ${mqttLine}\n  dashboard ${gateway.httpUrl}/\n`);
  if (gateway.operatorSetup) {
    // Not through the logger: the link is a secret, shown once to whoever started the gateway.
    process.stdout.write(`  no operator yet: set one up with this one-time link (valid until ${gateway.operatorSetup.expiresAt}):\n    ${gateway.operatorSetup.link}\n`);
  }
  await untilSignal();
  await gateway.stop();
  return 0;
}
