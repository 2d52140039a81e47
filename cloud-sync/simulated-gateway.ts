/**
 * A gateway's uplink in miniature, for tests and load runs against cloud-sync: it makes
 * usage records as canonical JSON, seals them into signed batches the way
 * gateway/settlement/seal-batches.ts does (Merkle root, totals, carried remainders per
 * payer and currency), and wraps everything in signed upload envelopes numbered 1, 2, 3…
 * It keeps no journal: only the counters the next record, batch and envelope need.
 */
import { nodeSignPayload } from '../gateway/ledger/node-signature.ts';
import { canonicalJson } from '../protocol/canonical-json.ts';
import { sha256HexOf, toHex } from '../protocol/hash.ts';
import { formatDecimal, toMinorUnits } from '../protocol/money.ts';
import { generateSigningKey, type SigningKey } from '../protocol/signing.ts';
import type { BatchUpload, HealthUpload, UploadBody, UnsignedEnvelope, UploadEnvelope } from '../protocol/upload.ts';
import { chainHashOfCanonical, type BatchHeader, type SignedBatchHeader, type UsageRecord } from '../protocol/usage-record.ts';
import { endorseKey } from '../gateway/ledger/gateway-key.ts';
import { MerkleRootBuilder } from '../gateway/settlement/merkle-root-builder.ts';

const ZERO_HASH = '0'.repeat(64);
/** RFC 8410 PKCS#8 wrapping of a raw Ed25519 seed, so node:crypto can sign with it. */
/** signPayload's signature made by node:crypto (the gateway's own signer): a fleet run then measures cloud-sync, not its clients. */
export const fastSignPayload = nodeSignPayload;

/** protocol/upload.ts signUpload, with {@link fastSignPayload}. */
export function fastSignUpload(envelope: UnsignedEnvelope, key: SigningKey): UploadEnvelope {
  return { ...envelope, sig: fastSignPayload(envelope, key) };
}

export interface SealedBatch {
  header: SignedBatchHeader;
  records: string[];
}

export class SimulatedGateway {
  readonly id: string;
  key: SigningKey;
  readonly #clock: () => Date;
  #seq = 0;
  #batchNo = 0;
  #index = 0;
  #chainHash = ZERO_HASH;
  readonly #carries = new Map<string, bigint>();

  constructor(id: string, options: { key?: SigningKey; clock?: () => Date } = {}) {
    this.id = id;
    this.key = options.key ?? generateSigningKey();
    this.#clock = options.clock ?? (() => new Date());
  }

  get publicKeyHex(): string {
    return toHex(this.key.publicKey);
  }

  /** The seq the next envelope gets. */
  get nextSeq(): number {
    return this.#seq + 1;
  }

  /** Records of one payer, one per amount, as canonical JSON texts; they join the gateway's chain. */
  records(payer: string, currency: string, amountsNano: readonly bigint[]): string[] {
    return amountsNano.map((amountNano) => {
      this.#index += 1;
      const at = this.#clock().toISOString();
      const record: UsageRecord = {
        v: 1, index: this.#index, gatewayId: this.id, deviceId: 'cnc-1', seq: this.#index, meter: 'cycles', quantity: '1', unit: 'cycle',
        deviceTime: at, receivedAt: at, payer, tariff: 'cycles@1', currency, amountNano: formatDecimal(amountNano, 0),
        messageHash: sha256HexOf(undefined, `${this.id}/${this.#index}`),
      };
      const text = canonicalJson(record);
      this.#chainHash = chainHashOfCanonical(this.#chainHash, text);
      return text;
    });
  }

  /** Seals records of one payer and currency (made by {@link records}) into the next signed batch. */
  seal(records: readonly string[]): SealedBatch {
    const first = JSON.parse(records[0]!) as UsageRecord;
    const last = JSON.parse(records[records.length - 1]!) as UsageRecord;
    const tree = new MerkleRootBuilder();
    let totalNano = 0n;
    for (const text of records) {
      tree.addCanonical(text);
      totalNano += BigInt((JSON.parse(text) as UsageRecord).amountNano);
    }
    const carryKey = `${first.payer}!${first.currency}`;
    const carriedInNano = this.#carries.get(carryKey) ?? 0n;
    const due = totalNano + carriedInNano;
    // As the gateway does: a credit pays nothing and carries all of itself.
    const { minor, carriedNano } = due < 0n ? { minor: 0n, carriedNano: due } : toMinorUnits(due, first.currency);
    this.#carries.set(carryKey, carriedNano);
    this.#batchNo += 1;
    const header: BatchHeader = {
      v: 1, batchId: `${this.id}/${this.#batchNo}`, gatewayId: this.id, payer: first.payer, currency: first.currency,
      recordCount: records.length, firstIndex: first.index, lastIndex: last.index, merkleRoot: toHex(tree.root()),
      totalNano: formatDecimal(totalNano, 0), carriedInNano: formatDecimal(carriedInNano, 0), amountMinor: formatDecimal(minor, 0),
      carriedOutNano: formatDecimal(carriedNano, 0), sealedAt: this.#clock().toISOString(), chainIndex: this.#index, chainHash: this.#chainHash,
    };
    return { header: { ...header, sig: fastSignPayload(header, this.key) }, records: [...records] };
  }

  /** Skips batch numbers, as a gateway whose uploads of them were lost would look. */
  skipBatches(count: number): void {
    this.#batchNo += count;
  }

  /** The next envelope, signed with the current key (or `key`). */
  envelope(body: UploadBody, key: SigningKey = this.key): UploadEnvelope {
    this.#seq += 1;
    return fastSignUpload({ v: 1, gatewayId: this.id, seq: this.#seq, createdAt: this.#clock().toISOString(), ...body }, key);
  }

  /** A batch as envelopes of at most `recordsPerPart` records each (at least one part). */
  batchEnvelopes(batch: SealedBatch, recordsPerPart = 20_000): UploadEnvelope[] {
    const parts = Math.max(1, Math.ceil(batch.records.length / recordsPerPart));
    const envelopes: UploadEnvelope[] = [];
    for (let part = 1; part <= parts; part += 1) {
      const firstRecord = (part - 1) * recordsPerPart;
      const upload: BatchUpload = { header: batch.header, part, parts, firstRecord, records: batch.records.slice(firstRecord, firstRecord + recordsPerPart) };
      envelopes.push(this.envelope({ kind: 'batch', batch: upload }));
    }
    return envelopes;
  }

  settlement(batch: SealedBatch, state: string, extra: { paymentId?: string; bankStatus?: string } = {}): UploadEnvelope {
    const { header } = batch;
    return this.envelope({ kind: 'settlement', settlement: { batchId: header.batchId, state, at: this.#clock().toISOString(), amountMinor: header.amountMinor, currency: header.currency, ...extra } });
  }

  health(overrides: Partial<HealthUpload> = {}): UploadEnvelope {
    const health: HealthUpload = { at: this.#clock().toISOString(), version: '0.1.0', records: this.#index, devicesConnected: 1, chainOk: true, diskFreeBytes: 1e9, outboxItems: 0, outboxBytes: 0, ...overrides };
    return this.envelope({ kind: 'health', health });
  }

  /** Rotates to a new key: the endorsement envelope is signed with the old key, later ones with the new. */
  rotateKey(): UploadEnvelope {
    const previous = this.key;
    const next = generateSigningKey();
    const endorsement = endorseKey(previous, next, this.#clock().toISOString());
    const envelope = this.envelope({ kind: 'key', key: endorsement }, previous);
    this.key = next;
    return envelope;
  }
}
