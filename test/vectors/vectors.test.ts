/**
 * Checks the protocol code against every golden vector in this folder, and each vector
 * against an independent implementation (node:crypto, the recursive RFC 9162 MTH, plain
 * bigint arithmetic), so a vector cannot merely echo the code that generated it.
 */
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { canonicalBytes, canonicalJson } from '../../protocol/canonical-json.ts';
import { ZERO_HASH_HEX } from '../../protocol/hash.ts';
import { type InclusionProof, leafHash, MerkleTree, merkleRoot, verifyInclusion } from '../../protocol/merkle.ts';
import { formatDecimal, nanoPerMinor, parseDecimal, parsePriceNano, toMinorUnits } from '../../protocol/money.ts';
import { keyIdOf, type Signature, signingKeyFromSecret, signPayload, verifyPayload } from '../../protocol/signing.ts';
import { parseUsageMessage, type UsageEventMessage, type UsageMessage } from '../../protocol/usage-message.ts';
import { chainHash, messageHash, type SignedBatchHeader, type SignedCheckpoint, type UsageRecord } from '../../protocol/usage-record.ts';
import type { TariffVersion } from '../../protocol/tariff.ts';
import { hex, nodePublicKey, nodeSha256, nodeSign, nodeVerify, referenceMth, referencePath, unhex, utf8 } from './reference.ts';

function load<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`./${name}`, import.meta.url), 'utf8')) as T;
}

interface CanonicalJsonFile {
  documents: { name: string; source: string; input: string; canonical: string; canonicalHex: string; sha256: string }[];
  numbers: { ieee754: string; canonical: string | null }[];
}

interface Ed25519File {
  rfc8032: { name: string; secretKey: string; publicKey: string; message: string; signature: string }[];
  payloads: { name: string; seedLabel: string; seed: string; publicKey: string; keyId: string; payload: Record<string, unknown>; canonical: string; canonicalHex: string; signature: Signature }[];
}

interface MerkleTreeVector {
  treeSize: number;
  root: string;
  proofs: InclusionProof[];
}

interface MerkleFile {
  emptyRoot: string;
  rfc6962: { leaves: string[]; trees: MerkleTreeVector[] };
  trees: (MerkleTreeVector & { leaves: string[] })[];
}

interface ChainFile {
  gatewayKey: { label: string; seed: string; publicKey: string; keyId: string };
  tariffs: TariffVersion[];
  records: { message: UsageMessage; record: UsageRecord; canonical: string; prevHash: string; hash: string }[];
  batch: { header: SignedBatchHeader; records: { index: number; leafIndex: number; proof: InclusionProof }[] };
  checkpoint: SignedCheckpoint;
}

interface MoneyFile {
  nanoPerMinor: Record<string, string>;
  toMinorUnits: { amountNano: string; currency: string; minor: string; carriedNano: string }[];
  decimals: { text: string; digits: number; value: string }[];
  refusedDecimals: { text: string; digits: number; why: string }[];
  batchSequences: { currency: string; batches: { totalNano: string; carriedInNano: string; amountMinor: string; carriedOutNano: string }[] }[];
}

const canonicalFile = load<CanonicalJsonFile>('canonical-json.json');
const ed25519File = load<Ed25519File>('ed25519.json');
const merkleFile = load<MerkleFile>('merkle.json');
const chainFile = load<ChainFile>('chain.json');
const moneyFile = load<MoneyFile>('money.json');

/** ISO 4217 minor-unit digits, written here rather than read from protocol/money.ts. */
const ISO_4217_DIGITS: Record<string, number> = { EUR: 2, GBP: 2, USD: 2, CHF: 2, JPY: 0 };

/** Decimal text to nano by string surgery, not by protocol/money.ts. */
function nanoOf(decimal: string): bigint {
  const [whole, fraction = ''] = decimal.split('.');
  return BigInt(`${whole}${fraction.padEnd(9, '0')}`);
}

/** Metres in a mile, times 1000: the only conversion chain.json needs. */
const MILLIMETRES_PER_MILE = 1_609_344n;

/**
 * A period's charge in nano, written here for the two rules chain.json uses (per unit,
 * and graduated per mile on metres), rather than taken from protocol/tariff.ts.
 */
function referenceCharge(tariff: TariffVersion, quantity: bigint): bigint {
  const rule = tariff.rule;
  if (rule.type === 'per_unit') return quantity * nanoOf(rule.unitPrice);
  if (rule.type !== 'graduated' || tariff.baseUnit !== 'm' || tariff.priceUnit !== 'mile') throw new Error(`no reference for ${tariff.id}`);
  const millimetres = quantity * 1000n;
  let total = 0n; // nano × millimetres per mile
  let floor = 0n;
  for (const tier of rule.tiers) {
    const ceiling = tier.upTo === null ? millimetres : nanoOf(tier.upTo) * MILLIMETRES_PER_MILE / 1_000_000_000n;
    const inTier = (millimetres < ceiling ? millimetres : ceiling) - floor;
    if (inTier > 0n) total += inTier * nanoOf(tier.unitPrice);
    floor = ceiling;
  }
  return total / MILLIMETRES_PER_MILE;
}

function withoutSig<T extends { sig: Signature }>(signed: T): Omit<T, 'sig'> {
  const { sig: _sig, ...payload } = signed;
  return payload;
}

describe('canonical-json.json', () => {
  it.each(canonicalFile.documents.map((doc) => [`${doc.source}: ${doc.name}`, doc] as const))('%s comes out canonical', (_name, doc) => {
    const value: unknown = JSON.parse(doc.input);
    expect(canonicalJson(value)).toBe(doc.canonical);
    expect(hex(canonicalBytes(value))).toBe(doc.canonicalHex);
    expect(hex(utf8(doc.canonical))).toBe(doc.canonicalHex);
    expect(hex(nodeSha256(unhex(doc.canonicalHex)))).toBe(doc.sha256);
  });

  it('holds the RFC 8785 §3.2.2 sample and §3.2.3 sorting example', () => {
    expect(canonicalFile.documents.map((doc) => doc.source)).toEqual(expect.arrayContaining(['RFC 8785 §3.2.2', 'RFC 8785 §3.2.3']));
  });

  it.each(canonicalFile.numbers.map((vector) => [vector.ieee754, vector] as const))('writes the double %s as RFC 8785 Appendix B says', (_name, vector) => {
    const value = Buffer.from(vector.ieee754, 'hex').readDoubleBE(0);
    if (vector.canonical === null) {
      expect(() => canonicalJson(value)).toThrow(RangeError);
    } else {
      expect(canonicalJson(value)).toBe(vector.canonical);
      expect(canonicalJson([value])).toBe(`[${vector.canonical}]`);
    }
  });
});

describe('ed25519.json', () => {
  it.each(ed25519File.rfc8032.map((vector) => [vector.name, vector] as const))('%s holds for noble and node:crypto', (_name, vector) => {
    const secretKey = unhex(vector.secretKey);
    const message = unhex(vector.message);
    expect(hex(signingKeyFromSecret(secretKey).publicKey)).toBe(vector.publicKey);
    expect(hex(nodePublicKey(secretKey))).toBe(vector.publicKey);
    expect(hex(ed25519.sign(message, secretKey))).toBe(vector.signature);
    expect(hex(nodeSign(secretKey, message))).toBe(vector.signature);
    expect(ed25519.verify(unhex(vector.signature), message, unhex(vector.publicKey))).toBe(true);
    expect(nodeVerify(unhex(vector.publicKey), message, unhex(vector.signature))).toBe(true);
  });

  it.each(ed25519File.payloads.map((vector) => [vector.name, vector] as const))('%s: key, canonical bytes and signature match', (_name, vector) => {
    const seed = unhex(vector.seed);
    expect(hex(nodeSha256(utf8(vector.seedLabel)))).toBe(vector.seed);
    const key = signingKeyFromSecret(seed);
    expect(hex(key.publicKey)).toBe(vector.publicKey);
    expect(hex(nodePublicKey(seed))).toBe(vector.publicKey);
    expect(key.keyId).toBe(vector.keyId);
    expect(keyIdOf(key.publicKey)).toBe(hex(nodeSha256(key.publicKey)).slice(0, 16));
    expect(canonicalJson(vector.payload)).toBe(vector.canonical);
    expect(hex(canonicalBytes(vector.payload))).toBe(vector.canonicalHex);
    expect(signPayload(vector.payload, key)).toEqual(vector.signature);
    expect(vector.signature).toEqual({ alg: 'Ed25519', keyId: vector.keyId, value: hex(nodeSign(seed, unhex(vector.canonicalHex))) });
  });

  it.each(ed25519File.payloads.map((vector) => [vector.name, vector] as const))('%s: verifies with verifyPayload and node:crypto', (_name, vector) => {
    const publicKey = unhex(vector.publicKey);
    expect(verifyPayload(vector.payload, vector.signature, publicKey)).toBe(true);
    expect(nodeVerify(publicKey, unhex(vector.canonicalHex), unhex(vector.signature.value))).toBe(true);
  });

  it.each(ed25519File.payloads.map((vector) => [vector.name, vector] as const))('%s: is refused for a changed payload by both', (_name, vector) => {
    const publicKey = unhex(vector.publicKey);
    const changed = { ...vector.payload, tampered: true };
    expect(verifyPayload(changed, vector.signature, publicKey)).toBe(false);
    expect(nodeVerify(publicKey, canonicalBytes(changed), unhex(vector.signature.value))).toBe(false);
  });
});

describe('merkle.json', () => {
  const allTrees = [
    ...merkleFile.rfc6962.trees.map((tree) => ({ ...tree, name: `RFC 6962 tree of ${tree.treeSize}`, leaves: merkleFile.rfc6962.leaves.slice(0, tree.treeSize) })),
    ...merkleFile.trees.map((tree) => ({ ...tree, name: `tree of ${tree.treeSize}` })),
  ];

  it('gives the empty tree SHA-256 of nothing', () => {
    expect(merkleFile.emptyRoot).toBe(hex(merkleRoot([])));
    expect(merkleFile.emptyRoot).toBe(hex(referenceMth([])));
  });

  it.each(allTrees.map((tree) => [tree.name, tree] as const))('%s: root matches the code and the recursive MTH', (_name, vector) => {
    const leaves = vector.leaves.map(unhex);
    expect(leaves).toHaveLength(vector.treeSize);
    expect(hex(merkleRoot(leaves.map(leafHash)))).toBe(vector.root);
    expect(hex(referenceMth(leaves))).toBe(vector.root);
  });

  it.each(allTrees.map((tree) => [tree.name, tree] as const))('%s: every proof is PATH(m, D[n]) and verifies', (_name, vector) => {
    const leaves = vector.leaves.map(unhex);
    const tree = new MerkleTree(leaves.map(leafHash));
    for (const proof of vector.proofs) {
      expect(proof.treeSize).toBe(vector.treeSize);
      expect(tree.proof(proof.leafIndex)).toEqual(proof);
      expect(proof.path).toEqual(referencePath(proof.leafIndex, leaves).map(hex));
      expect(verifyInclusion(leaves[proof.leafIndex]!, proof, vector.root)).toBe(true);
    }
  });

  it.each(allTrees.map((tree) => [tree.name, tree] as const))('%s: every proof refuses another leaf’s data', (_name, vector) => {
    const leaves = vector.leaves.map(unhex);
    for (const proof of vector.proofs) {
      const other = vector.treeSize === 1 ? utf8('other') : leaves[(proof.leafIndex + 1) % vector.treeSize]!;
      expect(verifyInclusion(other, proof, vector.root)).toBe(false);
    }
  });
});

describe('chain.json', () => {
  const { gatewayKey, records, batch, checkpoint } = chainFile;
  const publicKey = unhex(gatewayKey.publicKey);

  it('names the gateway key the documented way', () => {
    expect(hex(nodeSha256(utf8(gatewayKey.label)))).toBe(gatewayKey.seed);
    expect(hex(nodePublicKey(unhex(gatewayKey.seed)))).toBe(gatewayKey.publicKey);
    expect(gatewayKey.keyId).toBe(hex(nodeSha256(publicKey)).slice(0, 16));
  });

  it.each(records.map((entry) => [entry.record.index, entry] as const))('record %i was priced from a valid usage message', (_index, entry) => {
    const { message, record } = entry;
    expect(parseUsageMessage(utf8(JSON.stringify(message)))).toEqual({ ok: true, message });
    expect(record.messageHash).toBe(messageHash(message));
    expect(record.messageHash).toBe(hex(nodeSha256(canonicalBytes(message))));
    expect(record).toMatchObject({ deviceId: message.deviceId, seq: message.seq, meter: message.meter, quantity: (message as UsageEventMessage).quantity, unit: message.unit, deviceTime: message.time });
    const tariff = chainFile.tariffs.find((t) => t.id === record.tariff)!;
    expect(record.tariffHash).toBe(hex(nodeSha256(canonicalBytes(tariff))));
    const before = BigInt(record.periodQtyBefore!);
    expect(BigInt(record.amountNano)).toBe(referenceCharge(tariff, before + BigInt(record.quantity)) - referenceCharge(tariff, before));
  });

  it.each(records.map((entry) => [entry.record.index, entry] as const))('record %i is chained to the one before it', (index, entry) => {
    expect(canonicalJson(entry.record)).toBe(entry.canonical);
    expect(entry.prevHash).toBe(index === 1 ? ZERO_HASH_HEX : records[index - 2]!.hash);
    expect(chainHash(entry.prevHash, entry.record)).toBe(entry.hash);
    expect(hex(nodeSha256(unhex(entry.prevHash), utf8(entry.canonical)))).toBe(entry.hash);
  });

  it('numbers the journal 1, 2, 3… without gaps', () => {
    expect(records.map((entry) => entry.record.index)).toEqual(records.map((_entry, i) => i + 1));
  });

  it('breaks the chain at a record whose amount was edited', () => {
    const entry = records[1]!;
    expect(chainHash(entry.prevHash, { ...entry.record, amountNano: `${BigInt(entry.record.amountNano) + 1n}` })).not.toBe(entry.hash);
  });

  it('signs the batch header with the gateway key, checkable by node:crypto', () => {
    const payload = withoutSig(batch.header);
    expect(batch.header.sig.keyId).toBe(gatewayKey.keyId);
    expect(verifyPayload(payload, batch.header.sig, publicKey)).toBe(true);
    expect(nodeVerify(publicKey, canonicalBytes(payload), unhex(batch.header.sig.value))).toBe(true);
  });

  it('refuses the batch header signature once amountMinor is changed', () => {
    const payload = { ...withoutSig(batch.header), amountMinor: `${BigInt(batch.header.amountMinor) - 1n}` };
    expect(verifyPayload(payload, batch.header.sig, publicKey)).toBe(false);
    expect(nodeVerify(publicKey, canonicalBytes(payload), unhex(batch.header.sig.value))).toBe(false);
  });

  it('seals exactly the payer’s records, in journal order, under the header’s Merkle root', () => {
    const header = batch.header;
    const sealed = records.filter((entry) => entry.record.payer === header.payer);
    expect(batch.records.map((entry) => entry.index)).toEqual(sealed.map((entry) => entry.record.index));
    expect(header.recordCount).toBe(sealed.length);
    expect(header.firstIndex).toBe(sealed[0]!.record.index);
    expect(header.lastIndex).toBe(sealed.at(-1)!.record.index);
    expect(sealed.every((entry) => entry.record.currency === header.currency && entry.record.gatewayId === header.gatewayId)).toBe(true);
    expect(hex(referenceMth(sealed.map((entry) => utf8(entry.canonical))))).toBe(header.merkleRoot);
  });

  it('proves each sealed record against the header, with treeSize = recordCount', () => {
    for (const { index, leafIndex, proof } of batch.records) {
      const entry = records[index - 1]!;
      expect(proof).toMatchObject({ leafIndex, treeSize: batch.header.recordCount });
      expect(verifyInclusion(utf8(entry.canonical), proof, batch.header.merkleRoot)).toBe(true);
    }
  });

  it('proves no record of another payer against the header', () => {
    const foreign = records.find((entry) => entry.record.payer !== batch.header.payer)!;
    for (const { proof } of batch.records) {
      expect(verifyInclusion(utf8(foreign.canonical), proof, batch.header.merkleRoot)).toBe(false);
    }
  });

  it('balances the money: totalNano + carriedInNano = amountMinor × nanoPerMinor + carriedOutNano', () => {
    const header = batch.header;
    const perMinor = 10n ** BigInt(9 - ISO_4217_DIGITS[header.currency]!);
    const sealed = records.filter((entry) => entry.record.payer === header.payer);
    expect(BigInt(header.totalNano)).toBe(sealed.reduce((sum, entry) => sum + BigInt(entry.record.amountNano), 0n));
    expect(BigInt(header.totalNano) + BigInt(header.carriedInNano)).toBe(BigInt(header.amountMinor) * perMinor + BigInt(header.carriedOutNano));
    expect(BigInt(header.carriedOutNano) < perMinor).toBe(true);
  });

  it('names the journal head at sealing, and the checkpoint signs the same head', () => {
    const head = records.at(-1)!;
    expect(batch.header).toMatchObject({ chainIndex: head.record.index, chainHash: head.hash });
    expect(checkpoint).toMatchObject({ index: head.record.index, hash: head.hash, gatewayId: batch.header.gatewayId });
    expect(verifyPayload(withoutSig(checkpoint), checkpoint.sig, publicKey)).toBe(true);
    expect(nodeVerify(publicKey, canonicalBytes(withoutSig(checkpoint)), unhex(checkpoint.sig.value))).toBe(true);
    expect(verifyPayload({ ...withoutSig(checkpoint), index: head.record.index - 1 }, checkpoint.sig, publicKey)).toBe(false);
  });
});

describe('money.json', () => {
  it('has the ISO 4217 nano per minor unit of every currency', () => {
    for (const [currency, perMinor] of Object.entries(moneyFile.nanoPerMinor)) {
      expect(BigInt(perMinor)).toBe(10n ** BigInt(9 - ISO_4217_DIGITS[currency]!));
      expect(nanoPerMinor(currency)).toBe(BigInt(perMinor));
    }
    expect(Object.keys(moneyFile.nanoPerMinor).sort()).toEqual(Object.keys(ISO_4217_DIGITS).sort());
  });

  it.each(moneyFile.toMinorUnits.map((vector) => [vector.amountNano, vector.currency, vector] as const))('splits %s nano of %s exactly', (_amount, _currency, vector) => {
    const amountNano = BigInt(vector.amountNano);
    const perMinor = BigInt(moneyFile.nanoPerMinor[vector.currency]!);
    expect(toMinorUnits(amountNano, vector.currency)).toEqual({ minor: BigInt(vector.minor), carriedNano: BigInt(vector.carriedNano) });
    expect(BigInt(vector.minor) * perMinor + BigInt(vector.carriedNano)).toBe(amountNano);
    expect(BigInt(vector.carriedNano) >= 0n && BigInt(vector.carriedNano) < perMinor).toBe(true);
  });

  it.each(moneyFile.decimals.map((vector) => [vector.text, vector.digits, vector] as const))('reads %j at %i decimals', (_text, _digits, vector) => {
    expect(parseDecimal(vector.text, vector.digits, 'amount')).toBe(BigInt(vector.value));
    expect(parseDecimal(formatDecimal(BigInt(vector.value), vector.digits), vector.digits, 'amount')).toBe(BigInt(vector.value));
  });

  it.each(moneyFile.refusedDecimals.map((vector) => [vector.text, vector.digits, vector.why, vector] as const))('refuses %j at %i decimals (%s), naming the field', (_text, _digits, _why, vector) => {
    expect(() => parseDecimal(vector.text, vector.digits, 'amount')).toThrow(RangeError);
    expect(() => parseDecimal(vector.text, vector.digits, 'amount')).toThrow(/^amount: /);
  });

  it.each(moneyFile.batchSequences.map((sequence) => [sequence.currency, sequence] as const))('carries %s remainders from batch to batch without losing a nano', (currency, sequence) => {
    const perMinor = BigInt(moneyFile.nanoPerMinor[currency]!);
    let carry = 0n;
    let paidMinor = 0n;
    let totalNano = 0n;
    for (const batchVector of sequence.batches) {
      expect(BigInt(batchVector.carriedInNano)).toBe(carry);
      const { minor, carriedNano } = toMinorUnits(BigInt(batchVector.totalNano) + carry, currency);
      expect({ amountMinor: `${minor}`, carriedOutNano: `${carriedNano}` }).toEqual({ amountMinor: batchVector.amountMinor, carriedOutNano: batchVector.carriedOutNano });
      expect(BigInt(batchVector.totalNano) + carry).toBe(BigInt(batchVector.amountMinor) * perMinor + BigInt(batchVector.carriedOutNano));
      carry = BigInt(batchVector.carriedOutNano);
      paidMinor += BigInt(batchVector.amountMinor);
      totalNano += BigInt(batchVector.totalNano);
    }
    expect(totalNano).toBe(paidMinor * perMinor + carry);
  });
});
