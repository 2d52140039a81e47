/**
 * What a gateway sends to cloud-sync (docs/cloud-sync.md): its outbox items, one signed
 * envelope each, numbered 1, 2, 3… per gateway with no gaps. The cloud stores item n only
 * after item n−1, so items arrive in order and exactly once from its point of view; a
 * repeated item (same seq, same bytes) is acknowledged again without storing it twice.
 *
 * Pure: no I/O. The gateway signs with its Ed25519 key (the key that signs its batches);
 * the cloud verifies with the keys it has registered for the gateway.
 */
import { canonicalJson } from './canonical-json.ts';
import { sha256HexOf } from './hash.ts';
import { signPayload, type Signature, type SigningKey } from './signing.ts';
import type { SignedBatchHeader } from './usage-record.ts';

export const UPLOAD_VERSION = 1;
/** Records in one batch upload; a larger batch is sent as several `batch` items (parts). */
export const UPLOAD_RECORDS_MAX = 20_000;
/** Bytes of one envelope as JSON: the cloud's body limit. */
export const UPLOAD_BYTES_MAX = 16 * 1024 * 1024;

/**
 * A sealed batch: its signed header and the canonical text of its records, in journal
 * order. A batch of more than UPLOAD_RECORDS_MAX records comes in parts (part 1 of n, …);
 * the cloud checks the Merkle root and the totals once it holds every part.
 */
export interface BatchUpload {
  header: SignedBatchHeader;
  part: number;
  parts: number;
  /** Index of this part's first record within the batch (0 for part 1). */
  firstRecord: number;
  records: string[];
}

/** The batch's settlement state as the gateway knows it, when it changes. */
export interface SettlementUpload {
  batchId: string;
  state: string;
  at: string;
  paymentId?: string;
  bankStatus?: string;
  amountMinor: string;
  currency: string;
}

/** A periodic health report. */
export interface HealthUpload {
  at: string;
  version: string;
  records: number;
  devicesConnected: number;
  chainOk: boolean;
  diskFreeBytes: number;
  outboxItems: number;
  outboxBytes: number;
}

/**
 * A new gateway key, endorsed by the key before it (gateway/ledger/gateway-key.ts,
 * KeyEndorsement): `{ kind: 'meterbridge-gateway-key-endorsement', publicKey, keyId,
 * validFrom }` signed by the previous key (`sig.keyId` names it). The cloud accepts items
 * signed with the new key only once a key it knows endorsed it; the envelope carrying the
 * endorsement is itself signed with the previous key.
 */
export interface KeyUpload {
  kind: 'meterbridge-gateway-key-endorsement';
  publicKey: string;
  keyId: string;
  validFrom: string;
  sig: Signature;
}

export type UploadKind = 'batch' | 'settlement' | 'health' | 'key';

export type UploadBody =
  | { kind: 'batch'; batch: BatchUpload }
  | { kind: 'settlement'; settlement: SettlementUpload }
  | { kind: 'health'; health: HealthUpload }
  | { kind: 'key'; key: KeyUpload };

export type UnsignedEnvelope = {
  v: typeof UPLOAD_VERSION;
  gatewayId: string;
  /** 1, 2, 3… per gateway, no gaps. */
  seq: number;
  /** When the item went into the gateway's outbox. */
  createdAt: string;
} & UploadBody;

export type UploadEnvelope = UnsignedEnvelope & { sig: Signature };

/** Signs an outbox item with the gateway key: Ed25519 over the canonical JSON of everything but `sig`. */
export function signUpload(envelope: UnsignedEnvelope, key: SigningKey): UploadEnvelope {
  return { ...envelope, sig: signPayload(envelope, key) };
}

/** The envelope without its signature: what the signature covers. */
export function unsignedOf(envelope: UploadEnvelope): UnsignedEnvelope {
  const { sig: _sig, ...rest } = envelope;
  return rest as UnsignedEnvelope;
}

/** SHA-256 (hex) of the canonical JSON of the whole signed envelope: a repeat has the same digest, a forgery or a fork does not. */
export function uploadDigest(envelope: UploadEnvelope): string {
  return sha256HexOf(undefined, canonicalJson(envelope));
}

/**
 * The cloud's answer to one envelope. `accepted`: stored now; `duplicate`: this very item
 * was stored before (the gateway may drop it from its outbox); `refused`: not stored, with
 * the reason, and `expectedSeq` when the gateway should resend from there.
 */
export type UploadAnswer =
  | { status: 'accepted' | 'duplicate'; seq: number; alerts?: string[] }
  | { status: 'refused'; reason: UploadRefusal; detail: string; expectedSeq?: number };

export type UploadRefusal =
  | 'unknown_gateway'
  | 'bad_signature'
  | 'malformed'
  | 'out_of_order'
  | 'conflict'
  | 'bad_batch'
  | 'too_large';
