import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../protocol/hash.ts';
import { leafHash, merkleRoot } from '../../protocol/merkle.ts';
import { MerkleRootBuilder } from './merkle-root-builder.ts';

const utf8 = new TextEncoder();
const seed = Number(process.env.FC_SEED ?? 20_261_127);

describe('MerkleRootBuilder', () => {
  it('gives the same root as protocol merkleRoot for every tree of 0 to 70 leaves', () => {
    for (let size = 0; size <= 70; size += 1) {
      const texts = Array.from({ length: size }, (_, i) => `{"index":${i + 1}}`);
      const builder = new MerkleRootBuilder();
      for (const text of texts) builder.addCanonical(text);
      expect(toHex(builder.root()), `size ${size}`).toBe(toHex(merkleRoot(texts.map((t) => leafHash(utf8.encode(t))))));
    }
  });

  it('hashes any text as its UTF-8 bytes, including non-ASCII and long leaves (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 3_000 }), { maxLength: 20 }), (texts) => {
        const builder = new MerkleRootBuilder();
        for (const text of texts) builder.addCanonical(text);
        expect(toHex(builder.root())).toBe(toHex(merkleRoot(texts.map((t) => leafHash(utf8.encode(t))))));
      }),
      { numRuns: 200, seed },
    );
  });

  it('refuses a leaf hash that is not 32 bytes', () => {
    expect(() => new MerkleRootBuilder().addLeafHash(new Uint8Array(31))).toThrow(/leafHash: expected 32 bytes, got 31/);
  });
});
