/**
 * The payer's proof bundle: a statement (one gateway, one payer, one period) carrying
 * everything needed to check it offline without trusting the gateway, and the verifier
 * that checks it (docs/receipts.md). Pure and browser-safe: the offline verifier page
 * bundles this file, so nothing here may import a Node-only module.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { canonicalBytes, canonicalJson } from './canonical-json.ts';
import { canonicalRecordJson } from './canonical-usage.ts';
import { fromHex, sha256HexOf, toHex } from './hash.ts';
import { MerkleTree, leafHash, merkleRoot, verifyInclusion, type InclusionProof } from './merkle.ts';
import { formatMinor, formatNano, nanoPerMinor, parsePriceNano } from './money.ts';
import { keyIdOf, verifyPayload } from './signing.ts';
import { marginalChargeNano, minimumTopUpNano, periodOf, tariffHash, type TariffVersion } from './tariff.ts';
import type { SignedBatchHeader, UsageRecord } from './usage-record.ts';

export const PROOF_BUNDLE_FORMAT = 'meterbridge.proof-bundle';
/** Far above a month of one payer's usage, far below what a browser tab can hold. */
export const BUNDLE_RECORDS_MAX = 2_000_000;

/**
 * A usage record as the bundle carries it, before and after tariff versions: legacy
 * records carry `unitPrice`; tariff-priced ones carry `tariffHash`, `period` and
 * `periodQtyBefore` instead (docs/protocol.md §6).
 */
export type BundleRecord = Omit<UsageRecord, 'unitPrice' | 'tariffHash' | 'period' | 'periodQtyBefore'> & {
  unitPrice?: string;
  tariffHash?: string;
  period?: string;
  periodQtyBefore?: string;
};

export interface GatewayKey {
  /** Raw 32-byte Ed25519 public key, hex. */
  publicKey: string;
  /** First 16 hex digits of SHA-256 of the public key (docs/protocol.md §8). */
  keyId: string;
  /** The key signs batches sealed at or after this instant (RFC 3339). */
  validFrom: string;
  /** …and before this one; absent while the key is current. */
  validTo?: string;
}

export interface DeviceKey {
  deviceId: string;
  /** Raw 32-byte Ed25519 public key, hex. A device is listed once per key it has had. */
  publicKey: string;
}

export interface BundleEntry {
  record: BundleRecord;
  /**
   * RFC 9162 inclusion proof of the record under its batch's merkleRoot (docs/protocol.md §7).
   * Absent from every record of a batch held whole: the root over all its records, in
   * order, must then be the signed merkleRoot (a third of the bundle's size).
   */
  proof?: InclusionProof;
}

export interface BundleBatch {
  header: SignedBatchHeader;
  /** The batch's records in Merkle order: all `recordCount` of them unless `excerpt`. */
  records: BundleEntry[];
  /** Set when the bundle holds only some of the batch's records: its total cannot be checked. */
  excerpt?: true;
}

export interface ProofBundle {
  format: typeof PROOF_BUNDLE_FORMAT;
  v: 1;
  gatewayId: string;
  payer: string;
  /** The statement's period as the gateway named it, e.g. `2026-11`. */
  period: string;
  createdAt: string;
  /** The gateway's keys with their validity: listed for convenience, trusted only if the payer says so. */
  gatewayKeys: GatewayKey[];
  /** Every tariff version that priced a record in the bundle. */
  tariffs: TariffVersion[];
  /** Public keys of the devices whose records carry a device signature. */
  deviceKeys: DeviceKey[];
  /** Ordered by journal position (firstIndex). */
  batches: BundleBatch[];
}

/** A bundle entry with its proof: as built, and as the verifier checks it (after filling in the proofs a whole batch leaves out). */
export type ProvenEntry = BundleEntry & { proof: InclusionProof };
type ProvenBatch = Omit<BundleBatch, 'records'> & {
  records: ProvenEntry[];
  /** Set for a batch that came without proofs: whether all its records, in order, hash to the signed root. */
  rootMatches?: boolean;
};
type ProvenBundle = Omit<ProofBundle, 'batches'> & { batches: ProvenBatch[] };

export type BatchInput =
  /** Every record of the batch in journal order: the proofs are computed here. */
  | { header: SignedBatchHeader; records: readonly BundleRecord[] }
  /** Records with ready-made proofs: all of the batch's, or some (then the batch is an excerpt). */
  | { header: SignedBatchHeader; entries: readonly ProvenEntry[] };

export interface ProofBundleInput {
  gatewayId: string;
  payer: string;
  period: string;
  /** The caller's clock reading: this module reads no clock. */
  createdAt: string;
  batches: readonly BatchInput[];
  gatewayKeys: readonly GatewayKey[];
  /** May hold more versions than used; only those that priced a record are kept. */
  tariffs: readonly TariffVersion[];
  /** May hold more devices than used; only those with signed records are kept. */
  deviceKeys: readonly DeviceKey[];
  /** Leave out the proofs of batches held whole (the verifier rebuilds their trees): about a third of the size. */
  omitWholeBatchProofs?: boolean;
}

const utf8 = new TextEncoder();
const recordBytes = (record: BundleRecord): Uint8Array => utf8.encode(canonicalRecordJson(record));

function bundleBatchOf(input: BatchInput, payer: string): BundleBatch {
  const { header } = input;
  let records: BundleEntry[];
  if ('entries' in input) {
    records = [...input.entries].sort((a, b) => a.proof.leafIndex - b.proof.leafIndex);
  } else {
    if (input.records.length !== header.recordCount) {
      throw new RangeError(`Cannot build proof bundle: batch ${header.batchId} has ${header.recordCount} records, ${input.records.length} given`);
    }
    const tree = new MerkleTree(input.records.map((r) => leafHash(recordBytes(r))));
    if (toHex(tree.root) !== header.merkleRoot) throw new Error(`Cannot build proof bundle: the records given for batch ${header.batchId} do not hash to its merkleRoot`);
    records = input.records.map((record, i) => ({ record, proof: tree.proof(i) }));
  }
  if (header.payer !== payer) throw new RangeError(`Cannot build proof bundle for ${payer}: batch ${header.batchId} belongs to ${header.payer}`);
  if (records.length > header.recordCount) throw new RangeError(`Cannot build proof bundle: batch ${header.batchId} has ${header.recordCount} records, ${records.length} given`);
  return records.length === header.recordCount ? { header, records } : { header, records, excerpt: true };
}

/**
 * Assembles a payer's statement. Pure: the gateway reads batches, records and keys; this
 * puts them together, computes missing inclusion proofs, and keeps only the tariffs and
 * device keys the records need. Throws when the inputs do not fit together (a bug).
 */
export function buildProofBundle(input: ProofBundleInput): ProofBundle {
  const proven = input.batches.map((b) => bundleBatchOf(b, input.payer)).sort((a, b) => a.header.firstIndex - b.header.firstIndex);
  const batches: BundleBatch[] = input.omitWholeBatchProofs ? proven.map((b) => (b.excerpt ? b : { ...b, records: b.records.map((e) => ({ record: e.record })) })) : proven;
  const tariffsByHash = new Map(input.tariffs.map((t) => [tariffHash(t), t]));
  const tariffs = new Map<string, TariffVersion>();
  const signers = new Set<string>();
  for (const { records } of batches) {
    for (const { record } of records) {
      if (record.deviceSig !== undefined) signers.add(record.deviceId);
      if (record.tariffHash === undefined) continue;
      const tariff = tariffsByHash.get(record.tariffHash);
      if (tariff === undefined) throw new RangeError(`Cannot build proof bundle: record ${record.index} was priced by tariff ${record.tariffHash}, which is not among the tariffs given`);
      tariffs.set(record.tariffHash, tariff);
    }
  }
  return {
    format: PROOF_BUNDLE_FORMAT,
    v: 1,
    gatewayId: input.gatewayId,
    payer: input.payer,
    period: input.period,
    createdAt: input.createdAt,
    gatewayKeys: input.gatewayKeys.map((k) => ({ ...k })),
    tariffs: [...tariffs.values()],
    deviceKeys: input.deviceKeys.filter((k) => signers.has(k.deviceId)).map((k) => ({ ...k })),
    batches,
  };
}

// ---------------------------------------------------------------------------------------
// Verification

/** One named check. `warning` checks do not fail the bundle but the payer should read them. */
export interface BundleCheck {
  /** `<kind>:<subject>`, e.g. `batch-signature:gateway-1/7`, `record-inclusion:1043`. */
  id: string;
  ok: boolean;
  warning?: true;
  /** Plain words, e.g. `Record 1043: included in batch gateway-1/7 at position 12 (Merkle proof)`. */
  detail: string;
}

export interface BundleReport {
  /** True when no check failed (warnings allowed). */
  ok: boolean;
  passed: number;
  failed: number;
  warnings: number;
  checks: BundleCheck[];
}

class Checks {
  readonly list: BundleCheck[] = [];
  pass(id: string, detail: string): void {
    this.list.push({ id, ok: true, detail });
  }
  fail(id: string, detail: string): void {
    this.list.push({ id, ok: false, detail });
  }
  warn(id: string, detail: string): void {
    this.list.push({ id, ok: true, warning: true, detail });
  }
  check(ok: boolean, id: string, passDetail: string, failDetail: string): boolean {
    if (ok) this.pass(id, passDetail);
    else this.fail(id, failDetail);
    return ok;
  }
}

class BundleFormatError extends Error {}

const INTEGER = /^-?(0|[1-9][0-9]*)$/;
const NATURAL = /^(0|[1-9][0-9]*)$/;
const KEY_HEX = /^[0-9a-f]{64}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function need(ok: boolean, path: string, what: string): asserts ok {
  if (!ok) throw new BundleFormatError(`${path} ${what}`);
}

/** Checks the members the verifier reads before it reads them: a bad bundle is reported, never a crash. */
function checkShape(o: Record<string, unknown>, path: string, fields: Record<string, 'string' | 'int' | 'nat' | 'integer' | 'object' | 'object?' | 'array' | 'string?'>): void {
  for (const [key, type] of Object.entries(fields)) {
    const value = o[key];
    const at = `${path}.${key}`;
    if (type === 'string') need(typeof value === 'string', at, 'must be a string');
    else if (type === 'string?') need(value === undefined || typeof value === 'string', at, 'must be a string when present');
    else if (type === 'int') need(Number.isSafeInteger(value) && (value as number) >= 0, at, 'must be a non-negative integer');
    else if (type === 'nat') need(typeof value === 'string' && NATURAL.test(value), at, 'must be a non-negative integer as a decimal string');
    else if (type === 'integer') need(typeof value === 'string' && INTEGER.test(value), at, 'must be an integer as a decimal string');
    else if (type === 'object') need(isObject(value), at, 'must be an object');
    else if (type === 'object?') need(value === undefined || isObject(value), at, 'must be an object when present');
    else need(Array.isArray(value), at, 'must be an array');
  }
}

function checkBundleShape(value: unknown): asserts value is ProofBundle {
  need(isObject(value), '$', 'must be a JSON object');
  need(value.format === PROOF_BUNDLE_FORMAT, '$.format', `must be "${PROOF_BUNDLE_FORMAT}"`);
  need(value.v === 1, '$.v', 'must be 1 (the only version this verifier knows)');
  checkShape(value, '$', { gatewayId: 'string', payer: 'string', period: 'string', createdAt: 'string', gatewayKeys: 'array', tariffs: 'array', deviceKeys: 'array', batches: 'array' });
  (value.gatewayKeys as unknown[]).forEach((k, i) => {
    need(isObject(k), `$.gatewayKeys[${i}]`, 'must be an object');
    checkShape(k, `$.gatewayKeys[${i}]`, { publicKey: 'string', keyId: 'string', validFrom: 'string', validTo: 'string?' });
  });
  (value.tariffs as unknown[]).forEach((t, i) => need(isObject(t), `$.tariffs[${i}]`, 'must be an object'));
  (value.deviceKeys as unknown[]).forEach((k, i) => {
    need(isObject(k), `$.deviceKeys[${i}]`, 'must be an object');
    checkShape(k, `$.deviceKeys[${i}]`, { deviceId: 'string', publicKey: 'string' });
  });
  let recordsTotal = 0;
  (value.batches as unknown[]).forEach((b, i) => {
    const at = `$.batches[${i}]`;
    need(isObject(b), at, 'must be an object');
    checkShape(b, at, { header: 'object', records: 'array' });
    need(b.excerpt === undefined || b.excerpt === true, `${at}.excerpt`, 'must be true when present');
    const header = b.header as Record<string, unknown>;
    checkShape(header, `${at}.header`, {
      batchId: 'string', gatewayId: 'string', payer: 'string', currency: 'string', recordCount: 'int', firstIndex: 'int', lastIndex: 'int', merkleRoot: 'string',
      totalNano: 'integer', carriedInNano: 'integer', amountMinor: 'nat', carriedOutNano: 'integer', sealedAt: 'string', sig: 'object',
    });
    const records = b.records as unknown[];
    recordsTotal += records.length;
    need(recordsTotal <= BUNDLE_RECORDS_MAX, '$.batches', `hold more than ${BUNDLE_RECORDS_MAX} records`);
    records.forEach((e, j) => {
      need(isObject(e), `${at}.records[${j}]`, 'must be an object');
      checkShape(e, `${at}.records[${j}]`, { record: 'object', proof: 'object?' });
      checkShape(e.record as Record<string, unknown>, `${at}.records[${j}].record`, {
        index: 'int', seq: 'int', deviceId: 'string', payer: 'string', currency: 'string', gatewayId: 'string', unit: 'string', quantity: 'nat', amountNano: 'integer',
        tariffHash: 'string?', unitPrice: 'string?', deviceSig: 'string?',
      });
      if (e.proof === undefined) return;
      const proof = e.proof as Record<string, unknown>;
      checkShape(proof, `${at}.records[${j}].proof`, { leafIndex: 'int', treeSize: 'int', path: 'array' });
      need((proof.path as unknown[]).every((p) => typeof p === 'string'), `${at}.records[${j}].proof.path`, 'must hold hex strings');
    });
  });
}

/** A trusted gateway key with the validity the bundle states for it (if it lists it). */
interface TrustedKey {
  publicKey: Uint8Array;
  keyId: string;
  validFromMs: number;
  validToMs: number;
}

function trustedKeysOf(bundle: ProofBundle, trustedHex: readonly string[], checks: Checks): TrustedKey[] {
  const keys: TrustedKey[] = [];
  for (const hex of trustedHex) {
    const normal = hex.trim().toLowerCase();
    if (!KEY_HEX.test(normal)) {
      checks.fail('trusted-keys', `Trusted key ${JSON.stringify(hex)} is not an Ed25519 public key (64 hex digits)`);
      continue;
    }
    const publicKey = fromHex(normal, 'trusted key', 32);
    // Windows come from the bundle, which the gateway wrote: they can only narrow a key the payer trusts, never widen one.
    const listed = bundle.gatewayKeys.find((k) => k.publicKey.toLowerCase() === normal);
    const validFromMs = listed ? Date.parse(listed.validFrom) : -Infinity;
    const validToMs = listed?.validTo === undefined ? Infinity : Date.parse(listed.validTo);
    keys.push({ publicKey, keyId: keyIdOf(publicKey), validFromMs: Number.isNaN(validFromMs) ? -Infinity : validFromMs, validToMs: Number.isNaN(validToMs) ? Infinity : validToMs });
  }
  for (const listed of bundle.gatewayKeys) {
    if (KEY_HEX.test(listed.publicKey) && keyIdOf(fromHex(listed.publicKey, 'publicKey', 32)) !== listed.keyId) {
      checks.fail(`gateway-key:${listed.keyId}`, `Gateway key ${listed.keyId} listed in the bundle: keyId does not match its public key (${keyIdOf(fromHex(listed.publicKey, 'publicKey', 32))})`);
    }
  }
  if (keys.length === 0) checks.fail('trusted-keys', 'No trusted gateway key given: nothing the gateway signed can be checked');
  else checks.pass('trusted-keys', `Trusting ${keys.length} gateway key${keys.length === 1 ? '' : 's'}: ${keys.map((k) => k.keyId).join(', ')}`);
  return keys;
}

const validityOf = (k: TrustedKey): string => `${Number.isFinite(k.validFromMs) ? new Date(k.validFromMs).toISOString() : 'the start'} to ${Number.isFinite(k.validToMs) ? new Date(k.validToMs).toISOString() : 'now'}`;

function checkBatchSignature(bundle: ProofBundle, header: SignedBatchHeader, keys: readonly TrustedKey[], checks: Checks): void {
  const id = `batch-signature:${header.batchId}`;
  const name = `Batch ${header.batchId}`;
  const { sig, ...payload } = header;
  if (sig.alg !== 'Ed25519' || typeof sig.value !== 'string') return checks.fail(id, `${name}: signature is not an Ed25519 signature`);
  const sealedAtMs = Date.parse(header.sealedAt);
  const validAt = (k: TrustedKey): boolean => sealedAtMs >= k.validFromMs && sealedAtMs < k.validToMs;
  // protocol.md §8: keyId names the key; a header without one is tried with every key valid when it was sealed.
  const named = typeof sig.keyId === 'string';
  const candidates = named ? keys.filter((k) => k.keyId === sig.keyId) : keys.filter(validAt);
  if (candidates.length === 0) {
    const listed = bundle.gatewayKeys.some((k) => k.keyId === sig.keyId);
    return checks.fail(id, named
      ? `${name}: signed with key ${sig.keyId}, which is not one of your trusted keys${listed ? ' (the bundle lists it, but a key from the bundle itself proves nothing)' : ''}`
      : `${name}: the signature names no key and no trusted key was valid at ${header.sealedAt}`);
  }
  const signer = candidates.find((k) => verifyPayload(payload, { alg: 'Ed25519', keyId: k.keyId, value: sig.value }, k.publicKey));
  if (!signer) return checks.fail(id, `${name}: signature does not verify with trusted key ${candidates.map((k) => k.keyId).join(', ')}: the header was changed after signing, or the signature is forged`);
  if (!validAt(signer)) return checks.fail(id, `${name}: signature valid with key ${signer.keyId}, but that key was valid only from ${validityOf(signer)} and the batch was sealed at ${header.sealedAt}`);
  checks.pass(id, `${name}: signature valid with key ${signer.keyId}`);
}

const rangesOf = (numbers: readonly number[]): string => {
  const parts: string[] = [];
  for (let i = 0; i < numbers.length && parts.length < 10; ) {
    let j = i;
    while (j + 1 < numbers.length && numbers[j + 1] === numbers[j]! + 1) j += 1;
    parts.push(i === j ? `${numbers[i]}` : `${numbers[i]}..${numbers[j]}`);
    i = j + 1;
  }
  return parts.join(', ') + (parts.length === 10 ? ', …' : '');
};

/** Positions missing between 0 and n−1, given sorted present positions, as ranges. */
function missingRanges(present: readonly number[], n: number): { count: number; ranges: Array<[number, number]> } {
  const ranges: Array<[number, number]> = [];
  let next = 0;
  let count = 0;
  for (const p of [...present, n]) {
    if (p > next) {
      ranges.push([next, p - 1]);
      count += p - next;
    }
    next = Math.max(next, p + 1);
  }
  return { count, ranges };
}

function checkBatchRecords(bundle: ProofBundle, batch: ProvenBatch, checks: Checks): void {
  const { header, records } = batch;
  const name = `Batch ${header.batchId}`;
  const headerId = `batch-header:${header.batchId}`;
  const problems: string[] = [];
  if (header.gatewayId !== bundle.gatewayId) problems.push(`it is from gateway ${header.gatewayId}, the bundle from ${bundle.gatewayId}`);
  if (header.payer !== bundle.payer) problems.push(`it is for payer ${header.payer}, the bundle for ${bundle.payer}`);
  if (header.recordCount < 1 || header.firstIndex > header.lastIndex) problems.push(`it claims ${header.recordCount} records from ${header.firstIndex} to ${header.lastIndex}`);
  if (problems.length > 0) checks.fail(headerId, `${name}: ${problems.join('; ')}`);
  else checks.pass(headerId, `${name}: ${header.payer}, ${header.currency}, ${header.recordCount} records ${header.firstIndex}..${header.lastIndex}, sealed ${header.sealedAt}`);

  const id = `batch-records:${header.batchId}`;
  const positions = records.map((e) => e.proof.leafIndex);
  for (let i = 1; i < records.length; i += 1) {
    const [a, b] = [records[i - 1]!, records[i]!];
    if (a.proof.leafIndex === b.proof.leafIndex) return checks.fail(id, `${name}: position ${a.proof.leafIndex} appears twice (records ${a.record.index} and ${b.record.index})`);
    if (a.proof.leafIndex > b.proof.leafIndex) return checks.fail(id, `${name}: records ${a.record.index} and ${b.record.index} are out of order (positions ${a.proof.leafIndex}, ${b.proof.leafIndex})`);
    if (a.record.index >= b.record.index) return checks.fail(id, `${name}: record ${b.record.index} at position ${b.proof.leafIndex} comes after record ${a.record.index} at position ${a.proof.leafIndex}: a batch holds its records in journal order, so the two were reordered`);
  }
  const outside = positions.filter((p) => p >= header.recordCount);
  if (outside.length > 0) return checks.fail(id, `${name}: position ${outside[0]} is outside a batch of ${header.recordCount} records`);
  const { count, ranges } = missingRanges(positions, header.recordCount);
  if (count > 0) {
    const gaps = ranges.slice(0, 10).map(([from, to]) => {
      const before = records.find((e) => e.proof.leafIndex === from - 1)?.record.index;
      const after = records.find((e) => e.proof.leafIndex === to + 1)?.record.index;
      const where = before !== undefined && after !== undefined ? ` (between records ${before} and ${after})` : before !== undefined ? ` (after record ${before})` : after !== undefined ? ` (before record ${after})` : '';
      return `${from === to ? `position ${from}` : `positions ${from}..${to}`}${where}`;
    });
    const detail = `${name}: ${records.length} of ${header.recordCount} records present; missing ${gaps.join(', ')}${ranges.length > 10 ? ', …' : ''}`;
    if (batch.excerpt) return checks.warn(id, `${detail}. The bundle says it holds only an excerpt of this batch, so its total cannot be checked against the records`);
    return checks.fail(id, detail);
  }
  const first = records[0]?.record.index;
  const last = records[records.length - 1]?.record.index;
  if (first !== header.firstIndex || last !== header.lastIndex) return checks.fail(id, `${name}: records run ${first}..${last}, the signed header says ${header.firstIndex}..${header.lastIndex}`);
  checks.pass(id, `${name}: all ${header.recordCount} records present, in journal order`);
}

function checkBatchMoney(batch: ProvenBatch, previous: ProvenBatch | undefined, checks: Checks): void {
  const { header, records } = batch;
  const name = `Batch ${header.batchId}`;
  const cur = header.currency;
  let perMinor: bigint;
  try {
    perMinor = nanoPerMinor(cur);
  } catch {
    return checks.fail(`batch-money:${header.batchId}`, `${name}: currency ${JSON.stringify(cur)} is not one the protocol settles in`);
  }
  const total = BigInt(header.totalNano);
  const carriedIn = BigInt(header.carriedInNano);
  const paid = BigInt(header.amountMinor);
  const carriedOut = BigInt(header.carriedOutNano);
  if (!batch.excerpt) {
    const sum = records.reduce((s, e) => s + BigInt(e.record.amountNano), 0n);
    checks.check(sum === total, `batch-total:${header.batchId}`, `${name}: total ${formatNano(total)} ${cur} = sum of ${records.length} records`,
      `${name}: the signed total is ${formatNano(total)} ${cur}, but the ${records.length} records sum to ${formatNano(sum)} ${cur}`);
  }
  // protocol.md §7, the money identity: totalNano + carriedInNano = amountMinor × nanoPerMinor + carriedOutNano,
  // 0 ≤ carriedOutNano < nanoPerMinor; or, for a credit (a volume tier lowered the period's
  // price after part of it was paid), nothing paid and all of the negative due carried.
  const due = total + carriedIn;
  const identity = due >= 0n ? due === paid * perMinor + carriedOut && carriedOut >= 0n && carriedOut < perMinor : paid === 0n && carriedOut === due;
  checks.check(identity, `batch-money:${header.batchId}`,
    `${name}: ${formatNano(total)} + carried in ${formatNano(carriedIn)} = paid ${formatMinor(paid, cur)} ${cur} + carried out ${formatNano(carriedOut)}`,
    `${name}: ${formatNano(total)} + carried in ${formatNano(carriedIn)} ≠ paid ${formatMinor(paid, cur)} ${cur} + carried out ${formatNano(carriedOut)} (carried out must be below one minor unit, ${formatNano(perMinor)})`);
  if (previous) {
    const prev = previous.header;
    const id = `batch-carry:${header.batchId}`;
    if (prev.lastIndex >= header.firstIndex) return checks.fail(id, `${name}: starts at record ${header.firstIndex}, inside the previous batch ${prev.batchId} (..${prev.lastIndex})`);
    checks.check(prev.carriedOutNano === header.carriedInNano, id,
      `${name}: carried in ${formatNano(carriedIn)} ${cur} = carried out of ${prev.batchId}`,
      `${name}: carried in ${formatNano(carriedIn)} ${cur}, but the previous batch ${prev.batchId} carried out ${formatNano(BigInt(prev.carriedOutNano))} (is a batch missing between them?)`);
  }
}

/**
 * For a batch the bundle holds whole, in order: one tree over all its records (2n hashes)
 * instead of n separate proofs (n·log n). When its root is the signed root, a proof is
 * valid exactly when its path is the tree's path, so each proof is compared, not rehashed.
 * Undefined when that shortcut does not apply; each proof is then verified on its own,
 * which also names the records that do not fit.
 */
function treeProofCheck(batch: ProvenBatch): ((position: number, path: readonly string[]) => boolean) | undefined {
  const { header, records } = batch;
  if (batch.rootMatches !== undefined || batch.excerpt || records.length !== header.recordCount || !records.every((e, i) => e.proof.leafIndex === i)) return undefined;
  const tree = new MerkleTree(records.map((e) => leafHash(recordBytes(e.record))));
  if (toHex(tree.root) !== header.merkleRoot) return undefined;
  return (position, path) => {
    const expected = tree.proof(position).path;
    return expected.length === path.length && expected.every((hash, i) => hash === path[i]);
  };
}

function checkRecordInclusion(batch: ProvenBatch, entry: ProvenEntry, byTree: ReturnType<typeof treeProofCheck>, checks: Checks): void {
  const { header } = batch;
  const { record, proof } = entry;
  const id = `record-inclusion:${record.index}`;
  const name = `Record ${record.index}`;
  const mismatch = (['gatewayId', 'payer', 'currency'] as const).find((f) => record[f] !== header[f]);
  if (mismatch) return checks.fail(id, `${name}: ${mismatch} ${record[mismatch]}, but batch ${header.batchId} is for ${header[mismatch]}`);
  if (record.index < header.firstIndex || record.index > header.lastIndex) return checks.fail(id, `${name}: outside batch ${header.batchId}'s records ${header.firstIndex}..${header.lastIndex}`);
  // protocol.md §7: the tree size comes from the signed header, never from the proof.
  if (batch.rootMatches !== undefined) {
    return void checks.check(batch.rootMatches, id, `${name}: included in batch ${header.batchId} at position ${proof.leafIndex} (the batch's records hash to its signed root)`,
      `${name}: batch ${header.batchId}'s records do not hash to its signed root, so this record's inclusion is not shown`);
  }
  if (proof.treeSize !== header.recordCount) return checks.fail(id, `${name}: proof claims a batch of ${proof.treeSize} records, the signed header says ${header.recordCount}`);
  const ok = byTree && proof.leafIndex < header.recordCount ? byTree(proof.leafIndex, proof.path) : verifyInclusion(recordBytes(record), proof, header.merkleRoot);
  checks.check(ok, id, `${name}: included in batch ${header.batchId} at position ${proof.leafIndex} (Merkle proof)`,
    `${name}: Merkle proof at position ${proof.leafIndex} does not lead to batch ${header.batchId}'s signed root: the record or its proof was changed`);
}


/** The (payer, tariff, period) whose running quantity a record continues. */
const periodKeyOf = (record: BundleRecord): string => `${record.payer} ${record.tariff} ${record.period ?? ''}`;

/**
 * Where each period was closed: the journal index of its `minimum` record. From there on
 * the journal prices that period with its minimum applied (docs/tariffs.md).
 */
function periodClosesOf(entries: readonly ProvenEntry[]): Map<string, number> {
  const closes = new Map<string, number>();
  for (const { record } of entries) {
    if (record.kind !== 'minimum') continue;
    const key = periodKeyOf(record);
    closes.set(key, Math.min(closes.get(key) ?? Number.POSITIVE_INFINITY, record.index));
  }
  return closes;
}

function checkPeriodClose(record: BundleRecord, tariff: TariffVersion, checks: Checks): void {
  const id = `record-amount:${record.index}`;
  const name = `Record ${record.index}`;
  const before = BigInt(record.periodQtyBefore!);
  if (record.quantity !== '0' || record.deviceId !== '' || record.seq !== 0) return checks.fail(id, `${name}: a period close carries quantity 0, no device and seq 0`);
  const expected = minimumTopUpNano(tariff, before);
  const amount = BigInt(record.amountNano);
  checks.check(expected === amount, id, `${name}: closes period ${record.period} of tariff ${record.tariff}: ${before} ${record.unit} used, top-up to the minimum ${tariff.minimumPerPeriod ?? '0'} ${record.currency} is ${formatNano(amount)} ${record.currency}`,
    `${name}: closes period ${record.period} of tariff ${record.tariff} with a top-up of ${formatNano(amount)} ${record.currency}, but on ${before} ${record.unit} the minimum ${tariff.minimumPerPeriod ?? '0'} needs ${formatNano(expected)} ${record.currency}`);
}

function checkRecordAmount(entry: ProvenEntry, tariffs: ReadonlyMap<string, TariffVersion>, closes: ReadonlyMap<string, number>, checks: Checks): void {
  const { record } = entry;
  const id = `record-amount:${record.index}`;
  const name = `Record ${record.index}`;
  const amount = BigInt(record.amountNano);
  const quantity = BigInt(record.quantity);
  const shown = `${formatNano(amount)} ${record.currency}`;
  if (record.tariffHash !== undefined) {
    const tariff = tariffs.get(record.tariffHash);
    if (!tariff) return checks.fail(id, `${name}: priced by tariff ${record.tariff} (hash ${record.tariffHash.slice(0, 12)}…), which the bundle does not carry`);
    if (record.periodQtyBefore === undefined || !NATURAL.test(record.periodQtyBefore) || record.period === undefined) {
      return checks.fail(id, `${name}: a tariff-priced record must carry period and periodQtyBefore`);
    }
    if (tariff.id !== record.tariff) return checks.fail(id, `${name}: names tariff ${record.tariff}, but its tariffHash is that of ${tariff.id}`);
    if (record.kind === 'minimum') return checkPeriodClose(record, tariff, checks);
    const before = BigInt(record.periodQtyBefore);
    let period: string;
    let expected: bigint;
    // docs/tariffs.md: the period is that of deviceTime in the tariff's time zone. Records are
    // priced open (closed = false) until the gateway books the period's close (a `minimum`
    // record); records after it in the journal are priced closed (minimum applied).
    const late = record.index > (closes.get(periodKeyOf(record)) ?? Number.POSITIVE_INFINITY);
    try {
      period = periodOf(tariff, record.deviceTime);
      expected = marginalChargeNano(tariff, before, quantity, late);
    } catch (error) {
      return checks.fail(id, `${name}: cannot price with tariff ${record.tariff}: ${(error as Error).message}`);
    }
    if (period !== record.period) return checks.fail(id, `${name}: device time ${record.deviceTime} falls in period ${period} of tariff ${record.tariff}, the record says ${record.period}`);
    const after = before > 0n ? ` after ${record.periodQtyBefore} ${record.unit} in ${period}` : ` (first in ${period})`;
    const closed = late ? `, after ${period} was closed, so with its minimum per period` : '';
    return void checks.check(expected === amount, id, `${name}: amount ${shown} = tariff ${record.tariff} on ${record.quantity} ${record.unit}${after}${closed}`,
      `${name}: amount ${shown}, but tariff ${record.tariff} on ${record.quantity} ${record.unit}${after} charges ${formatNano(expected)} ${record.currency}`);
  }
  if (record.unitPrice === undefined) return checks.fail(id, `${name}: carries neither a tariffHash nor a unitPrice, so its amount cannot be recomputed`);
  let price: bigint;
  try {
    price = parsePriceNano(record.unitPrice, 'unitPrice');
  } catch (error) {
    return checks.fail(id, `${name}: ${(error as Error).message}`);
  }
  const expected = quantity * price;
  checks.check(expected === amount, id, `${name}: amount ${shown} = ${record.quantity} ${record.unit} × ${record.unitPrice} ${record.currency} (tariff ${record.tariff})`,
    `${name}: amount ${shown}, but ${record.quantity} ${record.unit} × ${record.unitPrice} ${record.currency} is ${formatNano(expected)} ${record.currency}`);
}

// The device signs its usage message (protocol.md §3); the record keeps the fields to rebuild it.
function deviceMessagesOf(record: BundleRecord): object[] {
  const base = { v: 1, deviceId: record.deviceId, seq: record.seq, meter: record.meter, unit: record.unit, time: record.deviceTime };
  if (record.kind === 'counter') return [{ ...base, kind: 'counter', reading: record.reading, epoch: record.epoch }];
  // `kind: "event"` is optional on the wire, and the record does not say whether it was sent.
  return [{ ...base, quantity: record.quantity }, { ...base, kind: 'event', quantity: record.quantity }];
}

type NodeCrypto = typeof import('node:crypto');
const nodeCrypto = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;
// RFC 8410: SubjectPublicKeyInfo DER of an Ed25519 key is this prefix and the 32 raw bytes.
const ED25519_SPKI_PREFIX = fromHex('302a300506032b6570032100', 'spki');
const nodeKeys = new Map<string, ReturnType<NodeCrypto['createPublicKey']>>();

/** Ed25519 verification: node:crypto when there is one (about 12× faster), @noble/curves in a browser. */
function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKeyHex: string): boolean {
  if (nodeCrypto) {
    let key = nodeKeys.get(publicKeyHex);
    if (!key) {
      const der = new Uint8Array(44);
      der.set(ED25519_SPKI_PREFIX);
      der.set(fromHex(publicKeyHex, 'publicKey', 32), 12);
      key = nodeCrypto.createPublicKey({ key: der as never, format: 'der', type: 'spki' });
      if (nodeKeys.size < 10_000) nodeKeys.set(publicKeyHex, key);
    }
    return nodeCrypto.verify(null, message, key, signature);
  }
  return ed25519.verify(signature, message, fromHex(publicKeyHex, 'publicKey', 32));
}

function checkDeviceSignature(entry: ProvenEntry, deviceKeys: ReadonlyMap<string, string[]>, checks: Checks): void {
  const { record } = entry;
  if (record.deviceSig === undefined) return;
  const id = `record-device-signature:${record.index}`;
  const name = `Device ${record.deviceId} record ${record.index}`;
  const keys = deviceKeys.get(record.deviceId) ?? [];
  if (keys.length === 0) return checks.warn(id, `${name}: carries a device signature, but the bundle has no key for ${record.deviceId}: not checked`);
  if (!/^[0-9a-f]{128}$/.test(record.deviceSig)) return checks.fail(id, `${name}: device signature is not 128 hex digits`);
  const message = deviceMessagesOf(record).find((m) => sha256HexOf(undefined, canonicalJson({ ...m, sig: record.deviceSig })) === record.messageHash);
  if (!message) return checks.fail(id, `${name}: the record's fields do not rebuild the message the device sent (messageHash differs): quantity, seq or time was changed`);
  const signature = fromHex(record.deviceSig, 'deviceSig', 64);
  const bytes = canonicalBytes(message);
  const key = keys.find((k) => KEY_HEX.test(k) && verifyEd25519(signature, bytes, k));
  checks.check(key !== undefined, id, `${name}: device signature valid`, `${name}: device signature does not verify with ${keys.length === 1 ? 'the device key' : `any of the ${keys.length} device keys`} in the bundle`);
}

function checkSequences(entries: readonly ProvenEntry[], checks: Checks): void {
  const byDevice = new Map<string, BundleRecord[]>();
  for (const { record } of entries) {
    if (record.kind === 'minimum') continue; // a period close, not a device's message
    const list = byDevice.get(record.deviceId);
    if (list) list.push(record);
    else byDevice.set(record.deviceId, [record]);
  }
  for (const [deviceId, records] of [...byDevice].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const id = `device-sequence:${deviceId}`;
    const name = `Device ${deviceId}`;
    records.sort((a, b) => a.seq - b.seq || a.index - b.index);
    const repeats: string[] = [];
    const missing: number[] = [];
    let missingCount = 0;
    for (let i = 1; i < records.length; i += 1) {
      const [a, b] = [records[i - 1]!, records[i]!];
      if (a.seq === b.seq) repeats.push(`seq ${b.seq} in records ${a.index} and ${b.index}`);
      missingCount += Math.max(0, b.seq - a.seq - 1);
      // Only the first ranges are shown: a listing stays short however long the outage.
      for (let s = a.seq + 1; s < b.seq && missing.length < 1000; s += 1) missing.push(s);
    }
    const span = `sequence ${records[0]!.seq}..${records[records.length - 1]!.seq}`;
    if (repeats.length > 0) checks.fail(id, `${name}: ${span} repeats ${repeats.slice(0, 5).join('; ')}${repeats.length > 5 ? '; …' : ''}: one message billed twice`);
    else if (missingCount > 0) checks.warn(id, `${name}: ${span} has gaps, ${missingCount} message${missingCount === 1 ? '' : 's'} not billed here: ${rangesOf(missing)} (devices lose messages; a record missing from a batch would fail its batch)`);
    else checks.pass(id, `${name}: ${span} continuous, no gaps or repeats`);
  }
}

/** periodQtyBefore must run on from one record to the next within each (payer, tariff, period). */
function checkPeriodQuantities(entries: readonly ProvenEntry[], excerpted: ReadonlySet<number>, checks: Checks): void {
  const runs = new Map<string, BundleRecord[]>();
  for (const { record } of entries) {
    if (record.periodQtyBefore === undefined || record.period === undefined || !NATURAL.test(record.periodQtyBefore)) continue;
    // The journal keeps one running quantity per (payer, tariff id, period): a new version starts again at 0.
    const key = periodKeyOf(record);
    const list = runs.get(key);
    if (list) list.push(record);
    else runs.set(key, [record]);
  }
  for (const [key, records] of runs) {
    const id = `period-quantity:${key.replaceAll(' ', '/')}`;
    records.sort((a, b) => a.index - b.index);
    const first = records[0]!;
    let running = BigInt(first.periodQtyBefore!);
    const start = running;
    let broken: BundleRecord | undefined;
    for (const record of records) {
      if (BigInt(record.periodQtyBefore!) !== running) {
        broken = record;
        break;
      }
      running += BigInt(record.quantity);
    }
    const name = `Payer ${first.payer}, tariff ${first.tariff}, period ${first.period}`;
    const from = start === 0n ? 'from 0' : `from ${start} (earlier usage of the period is not in this bundle)`;
    if (!broken) checks.pass(id, `${name}: quantity before each record runs on ${from} over ${records.length} records to ${running} ${first.unit}`);
    else {
      const detail = `${name}: record ${broken.index} says ${broken.periodQtyBefore} ${first.unit} came before it, the records before it in this bundle add up to ${running}`;
      if (records.some((r) => excerpted.has(r.index))) checks.warn(id, `${detail} (some of these records come from batch excerpts, so records may be missing)`);
      else checks.fail(id, detail);
    }
  }
}

function checkTariffs(bundle: ProofBundle, entries: readonly ProvenEntry[], checks: Checks): Map<string, TariffVersion> {
  const byHash = new Map<string, TariffVersion>();
  const used = new Map<string, number>();
  for (const { record } of entries) if (record.tariffHash !== undefined) used.set(record.tariffHash, (used.get(record.tariffHash) ?? 0) + 1);
  bundle.tariffs.forEach((tariff, i) => {
    let hash: string;
    try {
      hash = tariffHash(tariff);
    } catch (error) {
      return checks.fail(`tariff:${i}`, `Tariff ${i + 1} in the bundle cannot be hashed: ${(error as Error).message}`);
    }
    byHash.set(hash, tariff);
    const n = used.get(hash) ?? 0;
    checks.pass(`tariff:${tariff.id}`, `Tariff ${tariff.id}: hash ${hash.slice(0, 12)}…, which ${n} record${n === 1 ? ' names' : 's name'}`);
  });
  return byHash;
}

/**
 * Checks a proof bundle against the gateway keys the payer trusts (got from the operator,
 * not from the bundle). Never throws on bad input: a malformed bundle is one failed check.
 */
export function verifyProofBundle(bundle: unknown, trustedGatewayPublicKeys: readonly string[]): BundleReport {
  const checks = new Checks();
  try {
    checkBundleShape(bundle);
  } catch (error) {
    if (!(error instanceof BundleFormatError)) throw error;
    checks.fail('bundle-format', `Bundle format: ${error.message}`);
    return reportOf(checks);
  }
  const proven = withProofs(bundle as ProofBundle, checks);
  if (proven) runChecks(proven, trustedGatewayPublicKeys, checks);
  return reportOf(checks);
}

/**
 * Fills in the proofs a batch held whole leaves out, from the tree over its records in
 * the order given, so every check reads the same. When that tree's root is not the signed
 * root, one check says so for the batch (and each record's inclusion then fails too).
 */
function withProofs(bundle: ProofBundle, checks: Checks): ProvenBundle | undefined {
  const batches: ProvenBatch[] = [];
  for (const batch of bundle.batches) {
    const withProof = batch.records.filter((e) => e.proof !== undefined).length;
    if (withProof === batch.records.length) {
      batches.push(batch as ProvenBatch);
      continue;
    }
    const name = `Batch ${batch.header.batchId}`;
    if (withProof > 0 || batch.excerpt) {
      checks.fail('bundle-format', `Bundle format: ${name}: ${batch.excerpt ? 'an excerpt' : 'a batch'} must carry a proof for ${batch.excerpt ? 'each' : 'every or no'} record`);
      return undefined;
    }
    const root = toHex(merkleRoot(batch.records.map((e) => leafHash(recordBytes(e.record)))));
    const rootMatches = root === batch.header.merkleRoot && batch.records.length === batch.header.recordCount;
    const id = `batch-merkle-root:${batch.header.batchId}`;
    checks.check(rootMatches, id,
      `${name}: the ${batch.records.length} records hash to the signed Merkle root`,
      `${name}: the ${batch.records.length} records in the bundle hash to ${root.slice(0, 16)}…, the signed root is ${batch.header.merkleRoot.slice(0, 16)}… (of ${batch.header.recordCount} records): a record was changed, added, removed or reordered`);
    // Positions only: with the root rebuilt from all of them, no path is needed.
    const treeSize = batch.records.length;
    batches.push({ ...batch, rootMatches, records: batch.records.map((e, i) => ({ record: e.record, proof: { leafIndex: i, treeSize, path: [] } })) });
  }
  return { ...bundle, batches };
}

function runChecks(bundle: ProvenBundle, trustedHex: readonly string[], checks: Checks): void {
  const entries = bundle.batches.flatMap((b) => b.records);
  const excerpted = new Set(bundle.batches.filter((b) => b.excerpt).flatMap((b) => b.records.map((e) => e.record.index)));
  const inPeriod = entries.filter(({ record }) => (record.period ?? record.deviceTime).startsWith(bundle.period)).length;
  checks.pass('bundle-format', `Statement for ${bundle.payer} from gateway ${bundle.gatewayId}, period ${bundle.period}: ${bundle.batches.length} batch${bundle.batches.length === 1 ? '' : 'es'}, ${entries.length} records (${inPeriod} in the period, the rest share their batches)`);
  const keys = trustedKeysOf(bundle, trustedHex, checks);
  const tariffs = checkTariffs(bundle, entries, checks);
  const deviceKeys = new Map<string, string[]>();
  for (const k of bundle.deviceKeys) deviceKeys.set(k.deviceId, [...(deviceKeys.get(k.deviceId) ?? []), k.publicKey.toLowerCase()]);
  const seen = new Map<number, string>();
  const lastOf = new Map<string, ProvenBatch>();
  const closes = periodClosesOf(entries);
  for (const batch of bundle.batches) {
    checkBatchSignature(bundle, batch.header, keys, checks);
    checkBatchRecords(bundle, batch, checks);
    const chain = `${batch.header.payer}!${batch.header.currency}`;
    checkBatchMoney(batch, lastOf.get(chain), checks);
    lastOf.set(chain, batch);
    const byTree = treeProofCheck(batch);
    for (const entry of batch.records) {
      const other = seen.get(entry.record.index);
      if (other !== undefined) checks.fail(`record-unique:${entry.record.index}`, `Record ${entry.record.index}: appears in batch ${other} and again in batch ${batch.header.batchId}`);
      seen.set(entry.record.index, batch.header.batchId);
      checkRecordInclusion(batch, entry, byTree, checks);
      checkRecordAmount(entry, tariffs, closes, checks);
      checkDeviceSignature(entry, deviceKeys, checks);
    }
  }
  checkPeriodQuantities(entries, excerpted, checks);
  checkSequences(entries, checks);
}

function reportOf(checks: Checks): BundleReport {
  let failed = 0;
  let warnings = 0;
  for (const c of checks.list) {
    if (!c.ok) failed += 1;
    else if (c.warning) warnings += 1;
  }
  return { ok: failed === 0, passed: checks.list.length - failed - warnings, failed, warnings, checks: checks.list };
}
