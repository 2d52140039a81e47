import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyRuns } from '../test/vectors/property-seed.ts';
import { hex, nodeSha256, referenceMth, referencePath, utf8 } from '../test/vectors/reference.ts';
import { type InclusionProof, leafHash, MerkleTree, merkleRoot, verifyInclusion } from './merkle.ts';

const SIZE_MAX = 70;

function leavesOf(size: number): Uint8Array[] {
  return Array.from({ length: size }, (_, i) => utf8(`leaf ${i}`));
}

function flipBit(hexText: string, bit = 0): string {
  const bytes = Buffer.from(hexText, 'hex');
  bytes[bit >> 3]! ^= 1 << (bit & 7);
  return bytes.toString('hex');
}

/**
 * Which side each sibling sits on, leaf upwards, in RFC 9162 §2.1.3.1's recursion. Two
 * tree sizes give the same inclusion computation for leaf m exactly when these agree.
 */
function pathShape(m: number, size: number): string {
  if (size <= 1) return '';
  let k = 1;
  while (k * 2 < size) k *= 2;
  return m < k ? `${pathShape(m, k)}R` : `${pathShape(m - k, size - k)}L`;
}

const TREES = Array.from({ length: SIZE_MAX }, (_, i) => {
  const leaves = leavesOf(i + 1);
  const tree = new MerkleTree(leaves.map(leafHash));
  return { size: i + 1, leaves, tree, rootHex: hex(tree.root) };
});

describe('merkleRoot and MerkleTree', () => {
  it(`equal the recursive RFC 9162 §2.1.1 MTH for every size from 1 to ${SIZE_MAX}`, () => {
    for (const { size, leaves, tree, rootHex } of TREES) {
      const expected = hex(referenceMth(leaves));
      expect(hex(merkleRoot(leaves.map(leafHash))), `size ${size}`).toBe(expected);
      expect(rootHex, `size ${size}`).toBe(expected);
      expect(tree.size).toBe(size);
    }
  });

  it('hash a leaf as SHA-256(0x00 ‖ data), RFC 9162 §2.1.1', () => {
    expect(hex(leafHash(utf8('leaf 0')))).toBe(hex(nodeSha256(Uint8Array.of(0), utf8('leaf 0'))));
  });

  it('give the empty tree the hash of the empty string', () => {
    expect(hex(merkleRoot([]))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('refuse to build a tree object with no leaves', () => {
    expect(() => new MerkleTree([])).toThrow(RangeError);
    expect(() => new MerkleTree([])).toThrow(/^leafHashes: /);
  });

  it('change the root when any one leaf changes', () => {
    const leaves = leavesOf(13);
    const root = hex(merkleRoot(leaves.map(leafHash)));
    for (let i = 0; i < leaves.length; i++) {
      const changed = leaves.map((leaf, j) => (j === i ? utf8(`leaf ${i}!`) : leaf));
      expect(hex(merkleRoot(changed.map(leafHash))), `leaf ${i}`).not.toBe(root);
    }
  });

  it('change the root when two leaves swap places', () => {
    const leaves = leavesOf(5);
    const swapped = [leaves[1]!, leaves[0]!, ...leaves.slice(2)];
    expect(hex(merkleRoot(swapped.map(leafHash)))).not.toBe(hex(merkleRoot(leaves.map(leafHash))));
  });
});

describe('MerkleTree.proof and verifyInclusion', () => {
  it(`verify every leaf's proof in every tree of 1 to ${SIZE_MAX} leaves`, () => {
    for (const { size, leaves, tree, rootHex } of TREES) {
      for (let i = 0; i < size; i++) {
        const proof = tree.proof(i);
        expect(proof.leafIndex).toBe(i);
        expect(proof.treeSize).toBe(size);
        expect(verifyInclusion(leaves[i]!, proof, rootHex), `leaf ${i} of ${size}`).toBe(true);
      }
    }
  });

  it('hand out the RFC 9162 §2.1.3.1 PATH(m, D[n]) for every leaf', () => {
    for (const { size, leaves, tree } of TREES) {
      for (let i = 0; i < size; i++) {
        expect(tree.proof(i).path, `leaf ${i} of ${size}`).toEqual(referencePath(i, leaves).map(hex));
      }
    }
  });

  it('reject the proof for another leaf’s data', () => {
    for (const { size, leaves, tree, rootHex } of TREES) {
      for (let i = 0; i < size; i++) {
        const other = size === 1 ? utf8('not a leaf') : leaves[(i + 1) % size]!;
        expect(verifyInclusion(other, tree.proof(i), rootHex), `leaf ${i} of ${size}`).toBe(false);
        expect(verifyInclusion(utf8(`leaf ${i} `), tree.proof(i), rootHex), `leaf ${i} of ${size}`).toBe(false);
      }
    }
  });

  it('reject a proof moved to a neighbouring index', () => {
    for (const { size, leaves, tree, rootHex } of TREES) {
      for (let i = 0; i < size; i++) {
        for (const wrong of [i - 1, i + 1, size - 1 - i].filter((j) => j >= 0 && j < size && j !== i)) {
          const proof = { ...tree.proof(i), leafIndex: wrong };
          expect(verifyInclusion(leaves[i]!, proof, rootHex), `leaf ${i} as ${wrong} of ${size}`).toBe(false);
        }
      }
    }
  });

  it('reject a truncated path and an extended path', () => {
    for (const { size, leaves, tree, rootHex } of TREES) {
      for (let i = 0; i < size; i++) {
        const proof = tree.proof(i);
        if (proof.path.length > 0) {
          expect(verifyInclusion(leaves[i]!, { ...proof, path: proof.path.slice(0, -1) }, rootHex)).toBe(false);
          expect(verifyInclusion(leaves[i]!, { ...proof, path: proof.path.slice(1) }, rootHex)).toBe(false);
        }
        expect(verifyInclusion(leaves[i]!, { ...proof, path: [...proof.path, rootHex] }, rootHex)).toBe(false);
        expect(verifyInclusion(leaves[i]!, { ...proof, path: [...proof.path, '00'.repeat(32)] }, rootHex)).toBe(false);
      }
    }
  });

  it('reject a path with any one sibling flipped by a bit', () => {
    for (const { size, leaves, tree, rootHex } of TREES) {
      for (let i = 0; i < size; i++) {
        const proof = tree.proof(i);
        proof.path.forEach((_sibling, s) => {
          const path = proof.path.map((sibling, j) => (j === s ? flipBit(sibling, 255) : sibling));
          expect(verifyInclusion(leaves[i]!, { ...proof, path }, rootHex), `leaf ${i} of ${size}, sibling ${s}`).toBe(false);
        });
      }
    }
  });

  it('reject a path with two siblings swapped', () => {
    const { leaves, tree, rootHex } = TREES[12]!;
    const proof = tree.proof(5);
    const path = [proof.path[1]!, proof.path[0]!, ...proof.path.slice(2)];
    expect(verifyInclusion(leaves[5]!, { ...proof, path }, rootHex)).toBe(false);
  });

  it('reject a proof checked against another root', () => {
    for (const { size, leaves, tree, rootHex } of TREES) {
      const otherRoot = TREES[size % SIZE_MAX]!.rootHex;
      for (let i = 0; i < size; i++) {
        expect(verifyInclusion(leaves[i]!, tree.proof(i), flipBit(rootHex))).toBe(false);
        expect(verifyInclusion(leaves[i]!, tree.proof(i), otherRoot)).toBe(false);
      }
    }
  });

  it('reject a treeSize that does not cover the leafIndex, and a treeSize of zero', () => {
    for (const { size, leaves, tree, rootHex } of TREES) {
      const proof = tree.proof(size - 1);
      expect(verifyInclusion(leaves[size - 1]!, { ...proof, treeSize: size - 1 }, rootHex)).toBe(false);
      expect(verifyInclusion(leaves[size - 1]!, { ...proof, treeSize: 0 }, rootHex)).toBe(false);
    }
  });

  it('reject a wrong treeSize whenever it changes the path’s shape, and only then: the treeSize must come from the signed batch header', () => {
    let rejected = 0;
    for (const { size, leaves, tree, rootHex } of TREES) {
      for (let i = 0; i < size; i++) {
        for (const treeSize of [size - 1, size + 1, 2 * size, 2 * size + 1]) {
          if (treeSize <= i) continue;
          const sameShape = pathShape(i, treeSize) === pathShape(i, size);
          const accepted = verifyInclusion(leaves[i]!, { ...tree.proof(i), treeSize }, rootHex);
          expect(accepted, `leaf ${i} of ${size} claimed as of ${treeSize}`).toBe(sameShape);
          if (!accepted) rejected++;
        }
      }
    }
    expect(rejected).toBeGreaterThan(1_000);
  });

  it('reject an interior node offered as a leaf (the 0x00/0x01 domain separation)', () => {
    const leaves = leavesOf(2);
    const rootHex = hex(referenceMth(leaves));
    const node = new Uint8Array([...leafHash(leaves[0]!), ...leafHash(leaves[1]!)]);
    expect(verifyInclusion(node, { leafIndex: 0, treeSize: 1, path: [] }, rootHex)).toBe(false);
  });

  it.each<[string, (proof: InclusionProof) => InclusionProof]>([
    ['a negative leafIndex', (proof) => ({ ...proof, leafIndex: -1 })],
    ['a fractional leafIndex', (proof) => ({ ...proof, leafIndex: 0.5 })],
    ['a NaN leafIndex', (proof) => ({ ...proof, leafIndex: Number.NaN })],
    ['an unsafe treeSize', (proof) => ({ ...proof, treeSize: 2 ** 53 })],
    ['a fractional treeSize', (proof) => ({ ...proof, treeSize: 4.5 })],
    ['upper-case hex in the path', (proof) => ({ ...proof, path: proof.path.map((sibling) => sibling.toUpperCase()) })],
    ['a 31-byte sibling', (proof) => ({ ...proof, path: proof.path.map((sibling) => sibling.slice(2)) })],
    ['a sibling that is not a string', (proof) => ({ ...proof, path: [42 as unknown as string, ...proof.path.slice(1)] })],
  ])('reject a proof with %s instead of throwing', (_name, mangle) => {
    const { leaves, tree, rootHex } = TREES[3]!;
    expect(verifyInclusion(leaves[1]!, tree.proof(1), rootHex)).toBe(true);
    expect(verifyInclusion(leaves[1]!, mangle(tree.proof(1)), rootHex)).toBe(false);
  });

  it('reject an upper-case root: hashes are compared as lower-case hex', () => {
    const { leaves, tree, rootHex } = TREES[3]!;
    expect(verifyInclusion(leaves[1]!, tree.proof(1), rootHex.toUpperCase())).toBe(false);
  });

  it.each([-1, 4, 1.5, Number.NaN])('refuse to prove leaf %d of a four-leaf tree, naming leafIndex', (leafIndex) => {
    expect(() => TREES[3]!.tree.proof(leafIndex)).toThrow(RangeError);
    expect(() => TREES[3]!.tree.proof(leafIndex)).toThrow(/^leafIndex: .* is outside a tree of 4 leaves/);
  });
});

describe('Merkle properties', () => {
  const trees = fc
    .array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 300 })
    .chain((leaves) => fc.record({ leaves: fc.constant(leaves), index: fc.nat({ max: leaves.length - 1 }), bit: fc.nat({ max: 7 }) }));

  it('prove any leaf of any tree against the reference root, and refuse the leaf with one bit flipped', () => {
    fc.assert(
      fc.property(trees, ({ leaves, index, bit }) => {
        const tree = new MerkleTree(leaves.map(leafHash));
        const rootHex = hex(referenceMth(leaves));
        expect(hex(tree.root)).toBe(rootHex);
        const proof = tree.proof(index);
        expect(verifyInclusion(leaves[index]!, proof, rootHex)).toBe(true);
        const tampered = Uint8Array.from([...leaves[index]!, 0]);
        tampered[0]! ^= 1 << bit;
        expect(verifyInclusion(tampered, proof, rootHex)).toBe(false);
      }),
      propertyRuns(200),
    );
  });
});
