/**
 * What the handlers of one upload share: the transaction, the locked gateway row, the
 * gateway's keys, the alerts raised so far, and the refusal they throw to roll it all back.
 */
import type { Signature } from '../protocol/signing.ts';
import type { UploadAnswer, UploadEnvelope, UploadRefusal } from '../protocol/upload.ts';
import type { AlertDraft, AlertKind } from './alerts.ts';
import type { SqlDb } from './db.ts';
import { loadGatewayKeys, verifierFor } from './gateway-registry.ts';

/** Thrown to refuse an upload: the transaction rolls back, the answer says why. */
export class Refusal extends Error {
  readonly reason: UploadRefusal;
  readonly expectedSeq: number | undefined;
  /** An alert to record apart from the rolled-back transaction (the content was signed). */
  readonly alert: AlertKind | undefined;

  constructor(reason: UploadRefusal, detail: string, extra: { expectedSeq?: number; alert?: AlertKind } = {}) {
    super(detail);
    this.name = 'Refusal';
    this.reason = reason;
    this.expectedSeq = extra.expectedSeq;
    this.alert = extra.alert;
  }

  get answer(): UploadAnswer {
    return { status: 'refused', reason: this.reason, detail: this.message, ...(this.expectedSeq === undefined ? {} : { expectedSeq: this.expectedSeq }) };
  }
}

export type KeyCheck = 'valid' | 'invalid' | 'unknown_key';

/**
 * A gateway's keys (keyId → public key hex) as read once before the transaction. A
 * signature by a key not in it may be by a key whose endorsement another instance just
 * stored, so the keys are read again, once, inside the transaction before saying no.
 */
export class GatewayKeyLookup {
  #keys: Map<string, string>;
  #fresh = false;
  readonly gatewayId: string;

  constructor(gatewayId: string, keys: Map<string, string>) {
    this.gatewayId = gatewayId;
    this.#keys = keys;
  }

  /** Against the keys as last read. */
  check(payload: object, signature: Signature): KeyCheck {
    const publicKey = this.#keys.get(signature.keyId);
    if (publicKey === undefined) return 'unknown_key';
    return verifierFor(publicKey)(payload, signature) ? 'valid' : 'invalid';
  }

  /** Like check, reading the keys again first when the signature names one not seen. */
  async checkFresh(tx: SqlDb, payload: object, signature: Signature): Promise<KeyCheck> {
    await this.#refreshFor(tx, signature.keyId);
    return this.check(payload, signature);
  }

  async publicKeyOf(tx: SqlDb, keyId: string): Promise<string | undefined> {
    await this.#refreshFor(tx, keyId);
    return this.#keys.get(keyId);
  }

  has(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  /** After this upload adds a key itself. */
  add(keyId: string, publicKey: string): void {
    this.#keys.set(keyId, publicKey);
  }

  async #refreshFor(tx: SqlDb, keyId: string): Promise<void> {
    if (this.#keys.has(keyId) || this.#fresh) return;
    this.#keys = (await loadGatewayKeys(tx, this.gatewayId)) ?? new Map();
    this.#fresh = true;
  }
}

export interface IngestLimits {
  alertsPerGatewayMax: number;
  healthReportsPerGatewayMax: number;
}

/** The gateway row as locked for this upload. */
export interface LockedGateway {
  id: string;
  lastSeq: number;
  lastBatchNo: number;
}

export interface ItemContext {
  tx: SqlDb;
  envelope: UploadEnvelope;
  gateway: LockedGateway;
  keys: GatewayKeyLookup;
  now: Date;
  /** Alerts this upload raises; stored with it. */
  alerts: AlertDraft[];
  limits: IngestLimits;
}
