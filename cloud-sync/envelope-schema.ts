/**
 * The shape of an upload envelope (protocol/upload.ts), checked before anything else so a
 * malformed one is refused naming the field: `batch.header.totalNano: must be an integer
 * as a decimal string`. Objects are strict: every member is covered by the signature, and
 * an unknown one means a sender this version does not understand (v stays 1 until the
 * contract changes). Only the shape is checked here; meaning (signatures, sequence,
 * Merkle roots, money) is the ingest's.
 */
import { z } from 'zod';
import { UPLOAD_RECORDS_MAX, UPLOAD_VERSION, type UploadEnvelope } from '../protocol/upload.ts';
import { ID_PATTERN } from '../protocol/usage-message.ts';

/** Records in one batch, however many parts: a seal of 10^6 records is the gateway's design point. */
export const BATCH_RECORDS_MAX = 10_000_000;
/** Characters of one record's canonical text; a usage record is a few hundred. */
export const RECORD_CHARS_MAX = 16 * 1024;
/** Text fields that name things (payer, payment id, version): long enough for any real one. */
const NAME_CHARS_MAX = 200;

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const isoTime = z.string().max(40).regex(ISO_TIME, 'must be an ISO 8601 time like 2026-11-27T10:00:00.000Z').refine((text) => !Number.isNaN(Date.parse(text)), 'is not a real time');
const integerText = z.string().max(40).regex(/^-?(0|[1-9][0-9]*)$/, 'must be an integer as a decimal string');
const naturalText = z.string().max(40).regex(/^(0|[1-9][0-9]*)$/, 'must be a non-negative integer as a decimal string');
const hex = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `must be ${bytes * 2} lower-case hex digits`);
const count = (max: number) => z.number().int('must be an integer').min(0, 'must not be negative').max(max, `must be at most ${max}`);
const id = z.string().regex(ID_PATTERN, 'must be 1-63 of a-z 0-9 . _ - starting with a letter or digit');
const name = z.string().min(1, 'must not be empty').max(NAME_CHARS_MAX, `must be at most ${NAME_CHARS_MAX} characters`);
const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code like EUR');

const signature = z.strictObject({ alg: z.literal('Ed25519'), keyId: hex(8), value: hex(64) });

const batchHeader = z.strictObject({
  v: z.literal(1),
  batchId: z.string().max(NAME_CHARS_MAX),
  gatewayId: id,
  payer: name,
  currency,
  recordCount: count(BATCH_RECORDS_MAX),
  firstIndex: count(Number.MAX_SAFE_INTEGER),
  lastIndex: count(Number.MAX_SAFE_INTEGER),
  merkleRoot: hex(32),
  totalNano: integerText,
  carriedInNano: integerText,
  amountMinor: naturalText,
  carriedOutNano: integerText,
  sealedAt: isoTime,
  chainIndex: count(Number.MAX_SAFE_INTEGER),
  chainHash: hex(32),
  sig: signature,
});

const batch = z.strictObject({
  header: batchHeader,
  part: count(BATCH_RECORDS_MAX).min(1, 'must be at least 1'),
  parts: count(BATCH_RECORDS_MAX).min(1, 'must be at least 1'),
  firstRecord: count(BATCH_RECORDS_MAX),
  records: z.array(z.string().max(RECORD_CHARS_MAX, `must be at most ${RECORD_CHARS_MAX} characters`)).max(UPLOAD_RECORDS_MAX, `must hold at most ${UPLOAD_RECORDS_MAX} records (send larger batches in parts)`),
});

const settlement = z.strictObject({
  batchId: z.string().max(NAME_CHARS_MAX),
  state: z.string().regex(/^[a-z][a-z_]{0,31}$/, 'must be a state name like settled'),
  at: isoTime,
  paymentId: name.optional(),
  bankStatus: name.optional(),
  amountMinor: naturalText,
  currency,
});

const health = z.strictObject({
  at: isoTime,
  version: name,
  records: count(Number.MAX_SAFE_INTEGER),
  devicesConnected: count(Number.MAX_SAFE_INTEGER),
  chainOk: z.boolean(),
  diskFreeBytes: count(Number.MAX_SAFE_INTEGER),
  outboxItems: count(Number.MAX_SAFE_INTEGER),
  outboxBytes: count(Number.MAX_SAFE_INTEGER),
});

const key = z.strictObject({
  kind: z.literal('meterbridge-gateway-key-endorsement'),
  publicKey: hex(32),
  keyId: hex(8),
  validFrom: isoTime,
  sig: signature,
});

const base = {
  v: z.literal(UPLOAD_VERSION),
  gatewayId: id,
  seq: count(Number.MAX_SAFE_INTEGER).min(1, 'must be at least 1'),
  createdAt: isoTime,
  sig: signature,
};

export const uploadEnvelopeSchema = z.discriminatedUnion('kind', [
  z.strictObject({ ...base, kind: z.literal('batch'), batch }),
  z.strictObject({ ...base, kind: z.literal('settlement'), settlement }),
  z.strictObject({ ...base, kind: z.literal('health'), health }),
  z.strictObject({ ...base, kind: z.literal('key'), key }),
]);

export type EnvelopeParse = { ok: true; envelope: UploadEnvelope } | { ok: false; detail: string };

/**
 * Checks the shape of a parsed JSON body. The envelope returned is `body` itself, not a
 * copy: the signature and digest are over what was sent, and strict objects guarantee the
 * two agree.
 */
export function parseEnvelope(body: unknown): EnvelopeParse {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, detail: 'body: must be a JSON object (an upload envelope)' };
  const result = uploadEnvelopeSchema.safeParse(body);
  if (result.success) return { ok: true, envelope: body as UploadEnvelope };
  const issue = result.error.issues[0]!;
  const field = issue.path.length === 0 ? 'envelope' : issue.path.map((part) => (typeof part === 'number' ? `[${part}]` : String(part))).join('.').replace(/\.\[/g, '[');
  return { ok: false, detail: `${field}: ${issue.message}` };
}
