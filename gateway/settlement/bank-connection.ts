/**
 * Builds the gateway's VRP client from config: its bearer token, its P-256 message-signing
 * key (made in the data dir on first start, public JWK beside it for the bank) and, when
 * `settlement.bank.publicKeyFile` is set, the bank's key every answer must be signed with.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.ts';
import { GATEWAY_JWS_KEY_FILE, loadOrCreateJwsKey, readTrustedJwkFile } from './jws-key-file.ts';
import { VrpClient } from './vrp-client.ts';

export async function openVrpClient(config: Pick<GatewayConfig, 'gatewayId' | 'dataDir' | 'settlement'>, options: { accessToken: string; logger: Logger }): Promise<VrpClient> {
  const bank = config.settlement.bank;
  const { key, created, publicFile } = await loadOrCreateJwsKey(path.join(config.dataDir, GATEWAY_JWS_KEY_FILE));
  if (created) options.logger.info({ kid: key.kid, publicFile }, 'created the bank message-signing key; register its public JWK with the bank');
  const bankSigningKeys = bank.publicKeyFile === undefined ? undefined : await readTrustedJwkFile(bank.publicKeyFile);
  if (!bankSigningKeys) options.logger.warn('settlement.bank.publicKeyFile is not set: the bank\'s answers are not checked for its signature');
  return new VrpClient({
    baseUrl: bank.url,
    accessToken: options.accessToken,
    timeoutMs: bank.timeoutMs,
    // OBIE: iss names the TPP to the bank; ours is the gateway id it knows us by.
    signing: { key, iss: config.gatewayId },
    ...(bankSigningKeys ? { bankSigningKeys } : {}),
  });
}
