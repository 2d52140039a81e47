/**
 * Start-up check of the journal (§6): every index from 1 to the head stored once and in
 * its place, each entry's prevHash the hash before it, each hash recomputed from the
 * record's canonical bytes, every signed checkpoint verified and matching the chain, the
 * trusted head file (trusted-head.ts) matching it too, and every stored batch header
 * (verify-batches.ts) signed and matching the records it covers. Settlement refuses to
 * run on a broken chain. Each problem names the index and what is wrong with it.
 *
 * Signatures are checked against the gateway's key history (gateway-key.ts): each with
 * the key its keyId names, so what an old key signed before a rotation still verifies; a
 * keyId the history does not list is a problem, and every problem names the key.
 *
 * It reads a million records in a few seconds: values come from LevelDB as text in
 * chunks; the hash is taken over the record text as stored, with node:crypto's one-shot
 * hash over a reused buffer; the record is parsed only when someone needs its fields
 * (the onRecord visitor, stored batches); signatures go through node:crypto.
 *
 * Why hashing the stored text is the §6 check: the journal hashes canonicalRecordJson's
 * text and stores exactly that text (journal.ts), so an intact entry hashes right as it
 * stands, and any changed byte changes the hash. Only when the stored text does not hash
 * right (another writer's layout, such as a JSON re-encoding) is the record parsed and
 * canonicalised again, and the entry passes if that canonical text hashes right.
 */
import { hash as nodeHash } from 'node:crypto';
import { canonicalRecordJson } from '../../protocol/canonical-usage.ts';
import { ZERO_HASH_HEX } from '../../protocol/hash.ts';
import { keyIdOf, type Signature, type SigningKey } from '../../protocol/signing.ts';
import type { SignedCheckpoint, UsageRecord } from '../../protocol/usage-record.ts';
import { BatchAudit } from '../settlement/verify-batches.ts';
import { keys, type LedgerDb } from './ledger-db.ts';
import { signatureVerifier } from './node-signature.ts';
import type { ChainHead } from './journal.ts';
import { readTrustedHead } from './trusted-head.ts';
import { recordSummaryOf, type RecordSummary } from './record-summary.ts';

export interface ChainReport {
  ok: boolean;
  /** The highest journal index stored. */
  records: number;
  checkpoints: number;
  batches: number;
  /** The index of the trusted head file's checkpoint, when there is a file. */
  trustedHeadIndex?: number;
  /** Each problem names the index and what is wrong with it. */
  problems: string[];
  durationMs: number;
}

export interface VerifyChainOptions {
  /** Sees every record once, in order: start-up rebuilds its in-memory views from the same pass. */
  onRecord?: (record: RecordSummary) => void;
  /** Path of the trusted head file; without it a lost tail that took the head key with it goes unseen. */
  trustedHeadFile?: string;
  /** Check stored batch headers against their records too (default true). */
  batches?: boolean;
}

/** Why a gateway signature fails, with the key it names; `text` follows the signed object's name. */
export interface SignatureFailure {
  reason: 'unnamed' | 'unknown-key' | 'invalid';
  keyId?: string;
  text: string;
}

/** Undefined when `signature` verifies with the key its keyId names, else why not. */
export type GatewaySignatureCheck = (payload: object, signature: Signature | undefined) => SignatureFailure | undefined;

/** Checks each signature with the key of `publicKeys` (the gateway's key history) its keyId names. */
export function keyHistoryCheck(publicKeys: readonly Uint8Array[]): GatewaySignatureCheck {
  const byKeyId = new Map(publicKeys.map((publicKey) => [keyIdOf(publicKey), signatureVerifier(publicKey)]));
  return (payload, signature) => {
    const keyId = signature?.keyId;
    if (typeof keyId !== 'string') return { reason: 'unnamed', text: 'signature is missing or names no key' };
    const verifies = byKeyId.get(keyId);
    if (!verifies) return { reason: 'unknown-key', keyId, text: `signed with key ${keyId}, which is not in the gateway's key history` };
    return verifies(payload, signature) ? undefined : { reason: 'invalid', keyId, text: `signature does not verify with gateway key ${keyId}` };
  };
}

/** Per-record problems kept; a damaged ledger can have a million, and the first ones say where. */
const PROBLEMS_MAX = 20;
/** Journal entries read from LevelDB per call. */
const CHUNK_ENTRIES = 1_000;
// A journal entry is `{"record":<canonical record>,"prevHash":"<64 hex>","hash":"<64 hex>"}` (journal.ts).
const ENTRY_HEAD = '{"record":';
const PREV_HASH_AT_END = 153;
const HASH_AT_END = 76;

/** The checks the walk makes, in one place, so the report reads the same everywhere. */
const problem = {
  missing: (from: number, to: number) => `records ${from}..${to} are missing (deleted)`,
  reordered: (at: number, index: number) => `index ${at} holds record ${index}: records are out of order (reordered)`,
  prevHash: (index: number, before: number) => (before === 0 ? `record ${index}: prevHash is not the zero hash a first record has` : `record ${index}: prevHash does not match the hash of record ${before} before it`),
  altered: (index: number) => `record ${index}: content does not match its hash (altered)`,
  unreadable: (at: number, detail: string) => `index ${at}: entry is unreadable (${detail})`,
};

/** The state of one pass over the journal, record by record. */
class ChainWalk {
  readonly problems: string[] = [];
  omitted = 0;
  /** Position (storage index) and stored hash of the entry before. */
  lastAt = 0;
  lastIndex = 0;
  lastHash = ZERO_HASH_HEX;
  /** Stored hashes at the indices checkpoints, batches and the trusted head name. */
  readonly hashesWanted: Map<number, string | undefined>;
  readonly onRecord: ((record: RecordSummary) => void) | undefined;
  readonly audit: BatchAudit | undefined;
  readonly #needsRecord: boolean;
  #input = Buffer.alloc(4_096);

  constructor(wanted: Iterable<number>, onRecord: ((record: RecordSummary) => void) | undefined, audit: BatchAudit | undefined) {
    this.hashesWanted = new Map([...wanted].map((index) => [index, undefined]));
    this.onRecord = onRecord;
    this.audit = audit;
    this.#needsRecord = onRecord !== undefined || (audit !== undefined && audit.batches > 0);
  }

  note(text: string): void {
    if (this.problems.length < PROBLEMS_MAX) this.problems.push(text);
    else this.omitted += 1;
  }

  visit(at: number, text: string): void {
    let recordText: string;
    let prevHash: string;
    let hash: string;
    let record: RecordSummary | undefined;
    const end = text.length;
    try {
      if (text.startsWith(ENTRY_HEAD) && text.startsWith(',"prevHash":"', end - PREV_HASH_AT_END) && text.startsWith('","hash":"', end - HASH_AT_END) && text.endsWith('"}')) {
        recordText = text.slice(ENTRY_HEAD.length, end - PREV_HASH_AT_END);
        prevHash = text.slice(end - PREV_HASH_AT_END + 13, end - HASH_AT_END);
        hash = text.slice(end - HASH_AT_END + 10, end - 2);
        if (this.#needsRecord) record = recordSummaryOf(recordText);
      } else {
        // Another writer's layout (members in another order, spaces): read it the slow way.
        ({ record, prevHash, hash } = JSON.parse(text) as { record: UsageRecord; prevHash: string; hash: string });
        recordText = '';
      }
    } catch (error) {
      this.note(problem.unreadable(at, (error as Error).message));
      return;
    }
    let canonical = recordText;
    let intact = recordText !== '' && this.#chainHash(prevHash, recordText) === hash;
    let index = record ? record.index : indexOf(recordText);
    if (!intact || Number.isNaN(index)) {
      // The whole record: its canonical form is what the chain may have hashed.
      let full: UsageRecord;
      try {
        full = recordText === '' ? record as UsageRecord : JSON.parse(recordText) as UsageRecord;
      } catch (error) {
        this.note(problem.unreadable(at, (error as Error).message));
        return;
      }
      record = full;
      index = full.index;
      try {
        canonical = canonicalRecordJson(full);
        intact ||= canonical !== recordText && this.#chainHash(prevHash, canonical) === hash;
      } catch {
        // Not even canonicalisable (a lone surrogate, say): it cannot be what was hashed.
      }
    }
    if (at !== this.lastAt + 1) this.note(problem.missing(this.lastAt + 1, at - 1));
    else if (prevHash !== this.lastHash) this.note(problem.prevHash(index, this.lastIndex));
    if (index !== at) this.note(problem.reordered(at, index));
    if (!intact) this.note(problem.altered(index));
    if (this.hashesWanted.has(at)) this.hashesWanted.set(at, hash);
    if (record) {
      this.audit?.see(record, canonical);
      this.onRecord?.(record);
    }
    this.lastAt = at;
    this.lastIndex = index;
    this.lastHash = hash;
  }

  /** SHA-256(prevHash as 32 bytes ‖ UTF-8 of the record text), hex: §6. */
  #chainHash(prevHashHex: string, recordText: string): string {
    // A UTF-16 code unit takes at most 3 bytes of UTF-8.
    if (this.#input.length < 32 + recordText.length * 3) this.#input = Buffer.alloc(32 + recordText.length * 3);
    // A prevHash that is not 64 hex digits cannot be the hash it should be.
    if (this.#input.write(prevHashHex, 0, 32, 'hex') !== 32 || prevHashHex.length !== 64) return '';
    const bytes = this.#input.write(recordText, 32, 'utf8');
    return nodeHash('sha256', this.#input.subarray(0, 32 + bytes), 'hex');
  }
}

/**
 * The `index` member of a record's canonical text, without parsing the rest. Members are
 * written `,"name":value` and a string value cannot hold an unescaped `"`, so the first
 * `,"index":` is the member itself.
 */
function indexOf(recordText: string): number {
  const at = recordText.indexOf(',"index":');
  if (at < 0) return Number.NaN;
  let index = 0;
  for (let i = at + 9; i < recordText.length; i += 1) {
    const digit = recordText.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return i === at + 9 ? Number.NaN : index;
    index = index * 10 + digit;
  }
  return Number.NaN;
}

async function readCheckpoints(db: LedgerDb): Promise<Array<{ at: number; checkpoint: SignedCheckpoint }>> {
  const out: Array<{ at: number; checkpoint: SignedCheckpoint }> = [];
  for await (const [key, value] of db.iterator(keys.checkpointRange)) out.push({ at: Number(key.slice(2)), checkpoint: value as SignedCheckpoint });
  return out;
}

async function walkJournal(db: LedgerDb, walk: ChainWalk): Promise<void> {
  const iterator = db.iterator<string, string>({ ...keys.recordRange, keyEncoding: 'utf8', valueEncoding: 'utf8' });
  // LevelDB reads the next chunk on libuv's thread pool while this thread checks the last one.
  let next = iterator.nextv(CHUNK_ENTRIES);
  try {
    for (let entries = await next; entries.length > 0; entries = await next) {
      next = iterator.nextv(CHUNK_ENTRIES);
      // Keys are r!<index:12>: the entry's place in the journal.
      for (const [key, text] of entries) walk.visit(Number(key.slice(2)), text);
    }
  } finally {
    // A read still in flight when a visit threw must settle before the iterator closes.
    await next.catch(() => []);
    await iterator.close();
  }
}

/** `gatewayKeys`: the gateway's key history (or its one key); a signature is checked with the key its keyId names. */
export async function verifyChain(db: LedgerDb, gatewayKeys: Pick<SigningKey, 'publicKey'> | ReadonlyArray<Pick<SigningKey, 'publicKey'>>, options: VerifyChainOptions | ((record: RecordSummary) => void) = {}): Promise<ChainReport> {
  const startedMs = performance.now();
  // A bare function is the older form: the onRecord visitor alone.
  const { onRecord, trustedHeadFile, batches = true } = typeof options === 'function' ? { onRecord: options } : options;
  const storedHead = (await db.get(keys.head)) as ChainHead | undefined;
  const checkpoints = await readCheckpoints(db);
  const trusted = trustedHeadFile === undefined ? { status: 'absent' as const } : await readTrustedHead(trustedHeadFile);
  const verifies = keyHistoryCheck((Array.isArray(gatewayKeys) ? gatewayKeys : [gatewayKeys]).map((k: Pick<SigningKey, 'publicKey'>) => k.publicKey));
  const audit = batches ? await BatchAudit.load(db, verifies) : undefined;
  const wanted = [...checkpoints.map((c) => c.checkpoint.index), ...(audit?.chainIndices() ?? []), ...(trusted.status === 'read' ? [trusted.checkpoint.index] : [])];
  const walk = new ChainWalk(wanted, onRecord, audit);
  await walkJournal(db, walk);

  // Whole-ledger findings come after the per-record ones and are always kept.
  const summary: string[] = [];
  checkHead(walk, storedHead, summary);
  for (const { at, checkpoint } of checkpoints) {
    const { sig, ...payload } = checkpoint;
    if (checkpoint.index !== at) summary.push(`checkpoint key ${at} holds checkpoint ${checkpoint.index} (moved)`);
    const failure = verifies(payload, sig);
    if (failure) summary.push(`checkpoint ${checkpoint.index}: ${failure.text}`);
    const hash = walk.hashesWanted.get(checkpoint.index);
    if (hash === undefined) summary.push(`checkpoint ${checkpoint.index}: record ${checkpoint.index} is missing`);
    else if (hash !== checkpoint.hash) summary.push(`checkpoint ${checkpoint.index}: signed hash differs from the chain (history rewritten)`);
  }
  if (trusted.status === 'unreadable') summary.push(`trusted head file ${trustedHeadFile}: unreadable (${trusted.detail})`);
  if (trusted.status === 'read') checkTrustedHead(walk, trusted.checkpoint, verifies, summary);
  if (audit) summary.push(...audit.finish((index) => walk.hashesWanted.get(index)));
  if (walk.omitted > 0) summary.push(`… and ${walk.omitted} more problems with single records`);
  const problems = [...walk.problems, ...summary];
  return {
    ok: problems.length === 0, records: walk.lastAt, checkpoints: checkpoints.length, batches: audit?.batches ?? 0,
    ...(trusted.status === 'read' ? { trustedHeadIndex: trusted.checkpoint.index } : {}),
    problems, durationMs: Math.round(performance.now() - startedMs),
  };
}

/** The head key against the records: LevelDB loses a tail and the head's latest value together. */
function checkHead(walk: ChainWalk, head: ChainHead | undefined, summary: string[]): void {
  const records = walk.lastAt;
  if (!head) {
    if (records > 0) summary.push(`the head key is missing but records run to ${records}`);
  } else if (records < head.index) {
    summary.push(`records ${records + 1}..${head.index} are missing (the head says ${head.index}): the log tail was lost`);
  } else if (records > head.index) {
    summary.push(`the head says ${head.index} but records run to ${records}`);
  } else if (head.index > 0 && walk.lastHash !== head.hash) {
    summary.push(`head hash does not match record ${head.index}`);
  }
}

/** The signed checkpoint kept outside LevelDB: the one witness a lost tail cannot take with it. */
function checkTrustedHead(walk: ChainWalk, checkpoint: SignedCheckpoint, verifies: GatewaySignatureCheck, summary: string[]): void {
  const { sig, ...payload } = checkpoint;
  const failure = verifies(payload, sig);
  if (failure) {
    summary.push(`trusted head file: checkpoint ${checkpoint.index} ${failure.text}`);
    return;
  }
  if (walk.lastAt < checkpoint.index) {
    summary.push(`records ${walk.lastAt + 1}..${checkpoint.index} are missing: the ledger's log tail was lost (the signed checkpoint at ${checkpoint.index} says they existed)`);
    return;
  }
  const hash = walk.hashesWanted.get(checkpoint.index);
  if (hash === undefined) summary.push(`trusted head file: record ${checkpoint.index} of its checkpoint is missing`);
  else if (hash !== checkpoint.hash) summary.push(`trusted head file: the signed checkpoint at ${checkpoint.index} differs from the chain (history rewritten)`);
}
