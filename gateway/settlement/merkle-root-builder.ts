/**
 * The RFC 9162 §2.1.1 Merkle root of a batch, built one leaf at a time in O(log n) memory,
 * for sealing and for start-up verification of a million-record batch. Same bytes as
 * protocol/merkle.ts `merkleRoot` (checked in merkle-root-builder.test.ts); that module
 * stays the reference and the one the offline verifier runs in a browser. This one is
 * Node-only: node:crypto's one-shot `hash` over a reused buffer costs about half of
 * createHash with its per-part updates.
 */
import { hash } from 'node:crypto';

const NODE_PREFIX = 0x01;
const HASH_BYTES = 32;

export class MerkleRootBuilder {
  /**
   * Roots of the perfect subtrees so far, left (largest) to right (smallest), each as a
   * 32-character latin1 string (one character per byte): V8 makes such a string faster
   * than a Buffer, and it is written into the reused node buffer without a copy step.
   */
  readonly #stack: string[] = [];
  #count = 0;
  /** 0x00 ‖ leaf data, reused for every leaf (its first byte stays 0). */
  #leaf = Buffer.alloc(4_096);
    /** 0x01 ‖ left ‖ right, reused for every node hash. */
  readonly #node = Buffer.alloc(1 + 2 * HASH_BYTES, NODE_PREFIX);

  get size(): number {
    return this.#count;
  }

  /** Adds the leaf whose data is the UTF-8 of `canonicalText` (a record's canonical JSON, §7). */
  addCanonical(canonicalText: string): void {
    // 0x00 ‖ UTF-8 of the text, written into one reused buffer: cheaper than hashing a
    // new string (which node:crypto would encode into a fresh buffer each time).
    if (this.#leaf.length < 1 + canonicalText.length * 3) this.#leaf = Buffer.alloc(1 + canonicalText.length * 3);
    const bytes = this.#leaf.write(canonicalText, 1, 'utf8');
    this.#add(hash('sha256', this.#leaf.subarray(0, 1 + bytes), 'binary'));
  }

  /** Adds an already hashed leaf (SHA-256 of 0x00 ‖ data). */
  addLeafHash(leafHash: Uint8Array): void {
    if (leafHash.length !== HASH_BYTES) throw new RangeError(`leafHash: expected ${HASH_BYTES} bytes, got ${leafHash.length}`);
    this.#add(Buffer.from(leafHash.buffer, leafHash.byteOffset, leafHash.byteLength).toString('latin1'));
  }

  /** MTH over the leaves added so far; the empty tree's root is SHA-256 of nothing. */
  root(): Uint8Array {
    if (this.#stack.length === 0) return new Uint8Array(hash('sha256', Buffer.alloc(0), 'buffer'));
    // MTH(D[n]) = node(MTH(first 2^k), MTH(rest)): a right fold of the perfect subtrees.
    let root = this.#stack[this.#stack.length - 1]!;
    for (let i = this.#stack.length - 2; i >= 0; i -= 1) root = this.#nodeHash(this.#stack[i]!, root);
    return new Uint8Array(Buffer.from(root, 'latin1'));
  }

  #add(leafHash: string): void {
    let merged = leafHash;
    this.#count += 1;
    // The count's trailing zero bits are the perfect subtrees this leaf completes.
    for (let n = this.#count; n % 2 === 0; n /= 2) merged = this.#nodeHash(this.#stack.pop()!, merged);
    this.#stack.push(merged);
  }

  #nodeHash(left: string, right: string): string {
    this.#node.write(left, 1, 'latin1');
    this.#node.write(right, 1 + HASH_BYTES, 'latin1');
    return hash('sha256', this.#node, 'binary');
  }
}
