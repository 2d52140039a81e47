/**
 * The gateways cloud-sync knows and their public keys. An administrator registers a
 * gateway with its first key (POST /v1/gateways); later keys arrive as `key` uploads,
 * each endorsed by a key already registered (ingest-items.ts). Keys are never removed:
 * old batches stay verifiable with the key that signed them.
 */
import { fromHex } from '../protocol/hash.ts';
import { keyIdOf } from '../protocol/signing.ts';
import { ID_PATTERN } from '../protocol/usage-message.ts';
import { signatureVerifier, type SignatureVerifier } from '../gateway/ledger/node-signature.ts';
import type { SqlDb } from './db.ts';

export const FIRST_KEY_VALID_FROM = '1970-01-01T00:00:00.000Z';
const GATEWAY_NAME_CHARS_MAX = 200;

export interface GatewayRegistration {
  id: string;
  /** Shown in the fleet API; defaults to the id. */
  name?: string;
  /** The gateway's Ed25519 public key, 64 hex digits (`meterbridge key show` prints it). */
  publicKey: string;
  validFrom?: string;
}

export type RegistrationResult =
  | { status: 'created' | 'exists'; id: string; keyId: string }
  | { status: 'conflict' | 'invalid'; detail: string };

/** Registers a gateway with its first key; registering the same again is a no-op. */
export async function registerGateway(db: SqlDb, registration: GatewayRegistration, now: Date): Promise<RegistrationResult> {
  const { id, publicKey } = registration;
  if (!ID_PATTERN.test(id)) return { status: 'invalid', detail: 'id: must be 1-63 of a-z 0-9 . _ - starting with a letter or digit' };
  const name = registration.name ?? id;
  if (name.length === 0 || name.length > GATEWAY_NAME_CHARS_MAX) return { status: 'invalid', detail: `name: must be 1 to ${GATEWAY_NAME_CHARS_MAX} characters` };
  let keyId: string;
  try {
    keyId = keyIdOf(fromHex(publicKey, 'publicKey', 32));
  } catch (error) {
    return { status: 'invalid', detail: (error as Error).message };
  }
  const validFrom = registration.validFrom ?? FIRST_KEY_VALID_FROM;
  if (Number.isNaN(Date.parse(validFrom))) return { status: 'invalid', detail: `validFrom: ${JSON.stringify(validFrom)} is not a time` };
  return db.transaction(async (tx) => {
    // Two instances registering the same gateway at once: one inserts, the other finds it.
    const inserted = await tx.query<{ id: string }>('INSERT INTO gateways (id, name, registered_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING id', [id, name, now.toISOString()]);
    if (inserted.rows.length === 0) {
      const keys = await loadGatewayKeys(tx, id);
      if (keys?.get(keyId) === publicKey) return { status: 'exists', id, keyId };
      return { status: 'conflict', detail: `gateway ${id} is registered with other keys (${[...(keys?.keys() ?? [])].join(', ')}): a new key comes as an endorsed key upload, not a new registration` };
    }
    await tx.query('INSERT INTO gateway_keys (gateway_id, key_id, public_key, valid_from, endorsed_by, added_at) VALUES ($1, $2, $3, $4, NULL, $5)', [id, keyId, publicKey, validFrom, now.toISOString()]);
    return { status: 'created', id, keyId };
  });
}

/** keyId → public key (hex) of a gateway's keys; undefined when the gateway is not registered. */
export async function loadGatewayKeys(db: SqlDb, gatewayId: string): Promise<Map<string, string> | undefined> {
  const { rows } = await db.query<{ key_id: string | null; public_key: string | null }>(
    'SELECT k.key_id, k.public_key FROM gateways g LEFT JOIN gateway_keys k ON k.gateway_id = g.id WHERE g.id = $1',
    [gatewayId],
  );
  if (rows.length === 0) return undefined;
  const keys = new Map<string, string>();
  for (const row of rows) if (row.key_id !== null && row.public_key !== null) keys.set(row.key_id, row.public_key);
  return keys;
}

/**
 * Verifiers by public key. A cache, not state: a verifier is a pure function of its key,
 * so instances stay interchangeable. Bounded; cleared when full (a fleet has a few keys a gateway).
 */
const VERIFIERS_MAX = 16_384;
const verifiers = new Map<string, SignatureVerifier>();

export function verifierFor(publicKeyHex: string): SignatureVerifier {
  let verifier = verifiers.get(publicKeyHex);
  if (!verifier) {
    if (verifiers.size >= VERIFIERS_MAX) verifiers.clear();
    verifier = signatureVerifier(fromHex(publicKeyHex, 'publicKey', 32));
    verifiers.set(publicKeyHex, verifier);
  }
  return verifier;
}
