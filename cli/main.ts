/** `meterbridge <command>`: one CLI, a subcommand per program. */
import { bankSandboxCommand } from '../bank-sandbox/cli.ts';
import { benchCommand } from './bench-command.ts';
import { demoCommand } from './demo-command.ts';
import { deviceCommand } from './device-command.ts';
import { gatewayCommand } from './gateway-command.ts';
import { keyCommand } from './key-command.ts';
import { mosquittoConfigCommand } from './mosquitto-config-command.ts';
import { pain001Command } from './pain001-command.ts';
import { simCommand } from './sim-command.ts';
import { verifyCommand } from './verify-command.ts';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; summary: string }> = {
  demo: { run: demoCommand, summary: 'run gateway + simulated machines + sandbox bank on embedded defaults' },
  gateway: { run: gatewayCommand, summary: 'run the edge gateway (MQTT intake, ledger, settlement, web page)' },
  sim: { run: simCommand, summary: 'run simulated machines against a gateway' },
  'bank-sandbox': { run: bankSandboxCommand, summary: 'run the local Open Banking VRP sandbox bank' },
  device: { run: deviceCommand, summary: 'provision, rotate, revoke and list devices' },
  key: { run: keyCommand, summary: 'show or rotate the gateway\'s signing key (old receipts stay verifiable)' },
  'mosquitto-config': { run: mosquittoConfigCommand, summary: 'write the Mosquitto config and ACL for external broker mode' },
  pain001: { run: pain001Command, summary: 'write sealed EUR batches as a SEPA pain.001 payment file (banks without an API)' },
  bench: { run: benchCommand, summary: 'measure ingest throughput, latency and memory (writes bench-results.json)' },
  verify: { run: verifyCommand, summary: 'check a payer\'s proof bundle offline against the gateway\'s public key' },
  'cloud-sync': { run: async (argv) => (await import('../cloud-sync/cli.ts')).cloudSyncCommand(argv), summary: 'receive gateways\' signed uploads; fleet API (PGlite, or PostgreSQL via DATABASE_URL)' },
};

export const USAGE = `Usage: meterbridge <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(18)}${c.summary}`).join('\n')}

Run 'meterbridge <command> --help' for a command's options.
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`meterbridge: unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  try {
    return await entry.run(rest);
  } catch (error) {
    process.stderr.write(`meterbridge ${command}: ${(error as Error).message}\n`);
    return 1;
  }
}
