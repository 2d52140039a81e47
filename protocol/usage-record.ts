/**
 * What the gateway makes of an accepted usage message: a priced, immutable ledger
 * record, hash-chained to the one before it, and the signed batch that settles it.
 * These are the objects a payer checks in a receipt (docs/protocol.md).
 */
import { canonicalBytes } from './canonical-json.ts';
import { canonicalMessageJson } from './canonical-usage.ts';
import { fromHex, sha256, sha256HexOf, toHex } from './hash.ts';
import type { Signature } from './signing.ts';
import type { UsageMessage } from './usage-message.ts';

export interface UsageRecord {
  v: 1;
  /** Position in the gateway's journal: 1, 2, 3… with no gaps. */
  index: number;
  gatewayId: string;
  deviceId: string;
  seq: number;
  meter: string;
  quantity: string;
  unit: string;
  deviceTime: string;
  receivedAt: string;
  payer: string;
  /** Id of the tariff version that priced this record: `<meter>@<version>`, or `<meter>@<version>/<payer>` with a payer override. */
  tariff: string;
  /** SHA-256 (hex) of the canonical bytes of that tariff version (docs/tariffs.md): the record commits to the exact prices. */
  tariffHash?: string;
  /** The tariff period the usage falls in (by deviceTime, in the tariff's time zone): `2026-11` or `2026-11-27`. */
  period?: string;
  /**
   * Base units of the same (payer, tariff, period) recorded before this one: the
   * record's charge is the tariff's charge for periodQtyBefore + quantity minus its
   * charge for periodQtyBefore, so a period's records sum exactly to the charge of its total.
   */
  periodQtyBefore?: string;
  /** Legacy records (before tariff schedules) carried the per-unit price here. */
  unitPrice?: string;
  currency: string;
  /** This record's charge in 1e-9 major units, integer as a decimal string (negative only when a volume tier lowers the period's price). */
  amountNano: string;
  /** SHA-256 (hex) of the canonical bytes of the usage message as the device sent it. */
  messageHash: string;
  /**
   * `counter`: made from a counter reading; `quantity` is then the delta.
   * `minimum`: not usage but the close of a tariff period, booked by the gateway: quantity
   * "0", deviceId "" and seq 0, amountNano the top-up to the period's minimum charge.
   */
  kind?: 'counter' | 'minimum';
  /** The register value and its epoch, as the device reported them. */
  reading?: string;
  epoch?: string;
  /** The previous accepted reading of the same meter, when the delta was taken against it. */
  prevReading?: string;
  prevEpoch?: string;
  /** baseline: first reading, nothing billed; delta: reading − prevReading; reset: new epoch, the reading itself; wrap: the register wrapped at the meter's `counterWrapAt`. */
  counterEvent?: 'baseline' | 'delta' | 'reset' | 'wrap';
  /** The device's own Ed25519 signature over the usage message (hex), when the device signs. */
  deviceSig?: string;
}

/** `hash = SHA-256(prevHash bytes ‖ canonical bytes of record)`; the first record's prevHash is 64 zeros. */
export function chainHash(prevHashHex: string, record: UsageRecord): string {
  return toHex(sha256(fromHex(prevHashHex, 'prevHash', 32), canonicalBytes(record)));
}


/** {@link chainHash} for a caller that already holds the record's canonical JSON text. */
export function chainHashOfCanonical(prevHashHex: string, canonicalRecord: string): string {
  // prevHash comes from our own chain (64 hex digits); the checked path is chainHash.
  return sha256HexOf(prevHashHex, canonicalRecord);
}

export function messageHash(message: UsageMessage): string {
  return sha256HexOf(undefined, canonicalMessageJson(message));
}

/** The signed head of a batch: one payer, one currency, one payment. */
export interface BatchHeader {
  v: 1;
  batchId: string;
  gatewayId: string;
  payer: string;
  currency: string;
  recordCount: number;
  /** Journal indices of the first and last record in the batch (others payers' records may lie between). */
  firstIndex: number;
  lastIndex: number;
  /** RFC 9162 Merkle root over the canonical bytes of the batch's records, in journal order. */
  merkleRoot: string;
  /** Sum of the records' amountNano. */
  totalNano: string;
  /** Remainder below one minor unit carried in from the payer's previous batch. */
  carriedInNano: string;
  /** What is paid: floor((total + carriedIn) / nano per minor unit). */
  amountMinor: string;
  /** What is carried into the next batch: (total + carriedIn) mod nano per minor unit. */
  carriedOutNano: string;
  sealedAt: string;
  /** The journal head when the batch was sealed. */
  chainIndex: number;
  chainHash: string;
}

export interface SignedBatchHeader extends BatchHeader {
  sig: Signature;
}

export interface Checkpoint {
  v: 1;
  gatewayId: string;
  index: number;
  hash: string;
  time: string;
}

export interface SignedCheckpoint extends Checkpoint {
  sig: Signature;
}
