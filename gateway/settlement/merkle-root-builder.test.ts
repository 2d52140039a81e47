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

  it('gives the same root with and without the helper thread, across chunk boundaries (4096 leaves a chunk)', () => {
    for (const size of [4_095, 4_096, 4_097, 8_192, 12_289, 40_000]) {
      const texts = Array.from({ length: size }, (_, i) => `{"index":${i + 1},"payer":"p-${i % 7}","note":"${'é'.repeat(i % 5)}"}`);
      const expected = toHex(merkleRoot(texts.map((t) => leafHash(utf8.encode(t)))));
      for (const helper of [true, false]) {
        const builder = new MerkleRootBuilder({ helper });
        for (const text of texts) builder.addCanonical(text);
        expect(builder.size).toBe(size);
        expect(toHex(builder.root()), `size ${size}, helper ${helper}`).toBe(expected);
      }
    }
  });

  it('keeps many interleaved trees apart, and goes on adding after root() and after a leaf hash', () => {
    const trees = Array.from({ length: 9 }, () => ({ builder: new MerkleRootBuilder(), texts: [] as string[] }));
    for (let i = 0; i < 9 * 9_000; i += 1) {
      const tree = trees[i % 9]!;
      const text = `{"index":${i},"long":"${'x'.repeat(i % 3 === 0 ? 5_000 : 10)}"}`;
      tree.builder.addCanonical(text);
      tree.texts.push(text);
    }
    for (const { builder, texts } of trees) expect(toHex(builder.root())).toBe(toHex(merkleRoot(texts.map((t) => leafHash(utf8.encode(t))))));
    const { builder, texts } = trees[0]!;
    const extra = leafHash(utf8.encode('extra'));
    builder.addLeafHash(extra);
    for (let i = 0; i < 5_000; i += 1) builder.addCanonical(`{"more":${i}}`);
    const leaves = [...texts.map((t) => leafHash(utf8.encode(t))), extra, ...Array.from({ length: 5_000 }, (_, i) => leafHash(utf8.encode(`{"more":${i}}`)))];
    expect(toHex(builder.root())).toBe(toHex(merkleRoot(leaves)));
  });

  it('refuses a leaf hash that is not 32 bytes', () => {
    expect(() => new MerkleRootBuilder().addLeafHash(new Uint8Array(31))).toThrow(/leafHash: expected 32 bytes, got 31/);
  });
});
