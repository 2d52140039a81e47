/**
 * Merkle trees as in RFC 9162 §2.1 (Certificate Transparency v2): domain-separated
 * leaf and node hashes, left-balanced tree, audit paths verified by §2.1.3.2.
 */
import { fromHex, sha256, toHex } from './hash.ts';

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

export interface InclusionProof {
  /** Zero-based position of the leaf in the batch. */
  leafIndex: number;
  treeSize: number;
  /** Sibling hashes from the leaf up, hex. */
  path: string[];
}

export function leafHash(data: Uint8Array): Uint8Array {
  return sha256(LEAF_PREFIX, data);
}

function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(NODE_PREFIX, left, right);
}

/** Builds every level bottom-up; an unpaired last node moves up unchanged (RFC 9162 §2.1.1). */
function buildLevels(leafHashes: Uint8Array[]): Uint8Array[][] {
  const levels: Uint8Array[][] = [leafHashes];
  let level = leafHashes;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    levels.push(next);
    level = next;
  }
  return levels;
}

/** Root over already-hashed leaves; the empty tree's root is SHA-256 of nothing. */
export function merkleRoot(leafHashes: Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return sha256(new Uint8Array(0));
  const levels = buildLevels(leafHashes);
  return levels[levels.length - 1]![0]!;
}

/** A tree kept in memory to hand out inclusion proofs for many leaves. */
export class MerkleTree {
  readonly #levels: Uint8Array[][];

  constructor(leafHashes: Uint8Array[]) {
    if (leafHashes.length === 0) throw new RangeError('leafHashes: a tree needs at least one leaf');
    this.#levels = buildLevels(leafHashes);
  }

  get size(): number {
    return this.#levels[0]!.length;
  }

  get root(): Uint8Array {
    return this.#levels[this.#levels.length - 1]![0]!;
  }

  proof(leafIndex: number): InclusionProof {
    if (!Number.isInteger(leafIndex) || leafIndex < 0 || leafIndex >= this.size) {
      throw new RangeError(`leafIndex: ${leafIndex} is outside a tree of ${this.size} leaves`);
    }
    const path: string[] = [];
    let index = leafIndex;
    for (const level of this.#levels.slice(0, -1)) {
      const sibling = index % 2 === 1 ? index - 1 : index + 1;
      if (sibling < level.length) path.push(toHex(level[sibling]!));
      index = Math.floor(index / 2);
    }
    return { leafIndex, treeSize: this.size, path };
  }
}

/** RFC 9162 §2.1.3.2: true when `proof` places `leafData`'s hash under `rootHex`. */
export function verifyInclusion(leafData: Uint8Array, proof: InclusionProof, rootHex: string): boolean {
  const { leafIndex, treeSize, path } = proof;
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize) || leafIndex < 0 || leafIndex >= treeSize) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let hash = leafHash(leafData);
  for (const siblingHex of path) {
    if (sn === 0) return false;
    let sibling: Uint8Array;
    try {
      sibling = fromHex(siblingHex, 'path', 32);
    } catch {
      return false;
    }
    if (fn % 2 === 1 || fn === sn) {
      hash = nodeHash(sibling, hash);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      hash = nodeHash(hash, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && toHex(hash) === rootHex;
}
