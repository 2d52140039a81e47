/**
 * The RFC 9162 §2.1.1 Merkle root of a batch, built one leaf at a time in O(log n) memory,
 * for sealing and for start-up verification of a million-record batch. Same bytes as
 * protocol/merkle.ts `merkleRoot` (checked in merkle-root-builder.test.ts); that module
 * stays the reference and the one the offline verifier runs in a browser. This one is
 * Node-only: node:crypto's one-shot `hash` over a reused buffer costs about half of
 * createHash with its per-part updates.
 *
 * Two threads: hashing is most of the work (a leaf per record, a node per record), so
 * leaves are gathered in chunks of CHUNK_LEAVES (a perfect subtree each, aligned, so
 * its root can be computed apart from the rest) in shared memory, and a helper thread
 * hashes chunks while this thread reads the next records. This thread hashes a chunk
 * itself when the helper is behind, and waits for the helper's roots (Atomics.wait)
 * only at the end, so the builder stays synchronous for its callers.
 */
import { hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const NODE_PREFIX = 0x01;
const HASH_BYTES = 32;
/** Leaves per chunk handed to the helper: 2^12, about 2 MB of record text. */
const CHUNK_LEAVES = 4_096;
/** Chunks the helper may have queued before this thread hashes the next one itself. */
const HELPER_QUEUE_MAX = 2;
/** How long to wait for the helper's root of a chunk before hashing the chunk here. */
const HELPER_WAIT_MS = 2_000;

// A chunk in shared memory: int32 status (0 open, 1 root written), 4 bytes unused, the
// 32-byte root, then each leaf as uint32 length (LE) and its bytes, 0x00 ‖ UTF-8 text.
const STATUS_DONE = 1;
const ROOT_AT = 8;
const LEAVES_AT = ROOT_AT + HASH_BYTES;

/**
 * The root of a perfect subtree from a chunk's leaves, as a 32-character latin1 string.
 * The helper runs the same loop (HELPER_SOURCE); tests compare both with merkleRoot.
 */
function chunkRoot(chunk: Buffer, end: number, node: Buffer): string {
  const stack: string[] = [];
  let leaves = 0;
  for (let at = LEAVES_AT; at < end;) {
    const length = chunk.readUInt32LE(at);
    let merged = hash('sha256', chunk.subarray(at + 4, at + 4 + length), 'binary');
    at += 4 + length;
    leaves += 1;
    for (let n = leaves; n % 2 === 0; n /= 2) {
      node.write(stack.pop()!, 1, 'latin1');
      node.write(merged, 1 + HASH_BYTES, 'latin1');
      merged = hash('sha256', node, 'binary');
    }
    stack.push(merged);
  }
  return stack[0]!;
}

const HELPER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
const node = Buffer.alloc(${1 + 2 * HASH_BYTES}, ${NODE_PREFIX});
parentPort.on('message', ({ shared, end }) => {
  const chunk = Buffer.from(shared);
  const stack = [];
  let leaves = 0;
  for (let at = ${LEAVES_AT}; at < end;) {
    const length = chunk.readUInt32LE(at);
    let merged = hash('sha256', chunk.subarray(at + 4, at + 4 + length), 'binary');
    at += 4 + length;
    leaves += 1;
    for (let n = leaves; n % 2 === 0; n /= 2) {
      node.write(stack.pop(), 1, 'latin1');
      node.write(merged, ${1 + HASH_BYTES}, 'latin1');
      merged = hash('sha256', node, 'binary');
    }
    stack.push(merged);
  }
  chunk.write(stack[0], ${ROOT_AT}, 'latin1');
  const status = new Int32Array(shared, 0, 1);
  Atomics.store(status, 0, ${STATUS_DONE});
  Atomics.notify(status, 0);
});
`;

let helper: Worker | undefined;
let helperBroken = false;

/** The process's one helper thread, started on first use; it never keeps the process alive. */
function helperThread(): Worker | undefined {
  if (helper || helperBroken) return helper;
  try {
    helper = new Worker(HELPER_SOURCE, { eval: true });
    helper.unref();
    helper.on('error', () => {
      helperBroken = true;
      helper = undefined;
    });
  } catch {
    helperBroken = true;
  }
  return helper;
}

interface Chunk {
  shared: SharedArrayBuffer;
  bytes: Buffer;
  status: Int32Array;
  /** End of the written leaves. */
  end: number;
  leaves: number;
  /** Root when hashed on this thread; otherwise read from `bytes` once the status says so. */
  root?: string;
  /** Handed to the helper: its memory is reused only once the helper's root is read. */
  sent: boolean;
}

const CHUNK_BYTES = LEAVES_AT + CHUNK_LEAVES * 640;
const freeChunks: SharedArrayBuffer[] = [];
const FREE_CHUNKS_MAX = 2;
/** Chunks with the helper, for all builders (a rough count: completions are seen lazily). */
let helperQueued = 0;
/**
 * Builders that gather chunks: each holds an open chunk of up to CHUNK_BYTES, so a seal
 * of many payers at once does not hold one per payer. The rest fold leaf by leaf.
 */
const CHUNKING_BUILDERS_MAX = 4;
let chunkingBuilders = 0;
const chunkingSlots = new FinalizationRegistry<{ active: boolean }>((slot) => release(slot));

function release(slot: { active: boolean }): void {
  if (!slot.active) return;
  slot.active = false;
  chunkingBuilders -= 1;
}

function openChunk(bytesMin: number): Chunk {
  let shared = freeChunks.pop();
  if (!shared || shared.byteLength < bytesMin) shared = new SharedArrayBuffer(Math.max(bytesMin, CHUNK_BYTES));
  const status = new Int32Array(shared, 0, 1);
  Atomics.store(status, 0, 0);
  return { shared, bytes: Buffer.from(shared), status, end: LEAVES_AT, leaves: 0, sent: false };
}

function recycle(chunk: Chunk): void {
  if (freeChunks.length < FREE_CHUNKS_MAX && chunk.shared.byteLength === CHUNK_BYTES) freeChunks.push(chunk.shared);
}

export interface MerkleRootBuilderOptions {
  /** Hash chunks of leaves on the helper thread (default true; trees of up to a chunk never use it). */
  helper?: boolean;
}

export class MerkleRootBuilder {
  /**
   * Roots of the perfect subtrees so far, left (largest) to right (smallest), each as a
   * 32-character latin1 string (one character per byte): V8 makes such a string faster
   * than a Buffer, and it is written into the reused node buffer without a copy step.
   */
  readonly #stack: string[] = [];
  /** Leaves folded into #stack. */
  #count = 0;
  /** Leaves added, folded or not. */
  #added = 0;
  /** 0x00 ‖ leaf data, reused for every leaf (its first byte stays 0). */
  #leaf = Buffer.alloc(4_096);
  /** 0x01 ‖ left ‖ right, reused for every node hash. */
  readonly #node = Buffer.alloc(1 + 2 * HASH_BYTES, NODE_PREFIX);
  #useHelper: boolean;
  /** Whole chunks not yet folded, in leaf order. */
  readonly #chunks: Chunk[] = [];
  /** The chunk being filled. */
  #open: Chunk | undefined;
  /** Gathering chunks: from the first aligned leaf count, until root() or addLeafHash(). */
  readonly #slot = { active: false };

  constructor(options: MerkleRootBuilderOptions = {}) {
    this.#useHelper = options.helper ?? true;
  }

  get size(): number {
    return this.#added;
  }

  /** Adds the leaf whose data is the UTF-8 of `canonicalText` (a record's canonical JSON, §7). */
  addCanonical(canonicalText: string): void {
    this.#added += 1;
    if (!this.#slot.active) {
      this.#add(this.#hashLeaf(canonicalText));
      // The first chunk's worth is folded here; from there on chunks stay aligned.
      if (this.#count === CHUNK_LEAVES && this.#useHelper && chunkingBuilders < CHUNKING_BUILDERS_MAX && helperThread()) {
        this.#slot.active = true;
        chunkingBuilders += 1;
        chunkingSlots.register(this, this.#slot);
      }
      return;
    }
    // A UTF-16 code unit takes at most 3 bytes of UTF-8; 4 for the length, 1 for 0x00.
    const room = 5 + canonicalText.length * 3;
    let chunk = this.#open ??= openChunk(LEAVES_AT + room);
    if (chunk.end + room > chunk.bytes.length) chunk = this.#open = grown(chunk, chunk.end + room);
    const { bytes } = chunk;
    bytes[chunk.end + 4] = 0x00;
    const length = 1 + bytes.write(canonicalText, chunk.end + 5, 'utf8');
    bytes.writeUInt32LE(length, chunk.end);
    chunk.end += 4 + length;
    chunk.leaves += 1;
    if (chunk.leaves === CHUNK_LEAVES) {
      this.#open = undefined;
      this.#dispatch(chunk);
    }
  }

  /** Adds an already hashed leaf (SHA-256 of 0x00 ‖ data). */
  addLeafHash(leafHash: Uint8Array): void {
    if (leafHash.length !== HASH_BYTES) throw new RangeError(`leafHash: expected ${HASH_BYTES} bytes, got ${leafHash.length}`);
    this.#foldAll();
    this.#added += 1;
    this.#add(Buffer.from(leafHash.buffer, leafHash.byteOffset, leafHash.byteLength).toString('latin1'));
  }

  /** MTH over the leaves added so far; the empty tree's root is SHA-256 of nothing. */
  root(): Uint8Array {
    this.#foldAll();
    if (this.#stack.length === 0) return new Uint8Array(hash('sha256', Buffer.alloc(0), 'buffer'));
    // MTH(D[n]) = node(MTH(first 2^k), MTH(rest)): a right fold of the perfect subtrees.
    let root = this.#stack[this.#stack.length - 1]!;
    for (let i = this.#stack.length - 2; i >= 0; i -= 1) root = this.#nodeHash(this.#stack[i]!, root);
    return new Uint8Array(Buffer.from(root, 'latin1'));
  }

  /** Hands a whole chunk to the helper, or hashes it here when the helper is behind or gone. */
  #dispatch(chunk: Chunk): void {
    this.#foldDone();
    const worker = helperThread();
    if (worker && helperQueued < HELPER_QUEUE_MAX) {
      chunk.sent = true;
      helperQueued += 1;
      worker.postMessage({ shared: chunk.shared, end: chunk.end });
    } else {
      chunk.root = chunkRoot(chunk.bytes, chunk.end, this.#node);
    }
    this.#chunks.push(chunk);
    this.#foldDone();
  }

  /** Folds the chunks at the front whose roots are ready. */
  #foldDone(): void {
    while (this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!;
      if (chunk.root === undefined && Atomics.load(chunk.status, 0) !== STATUS_DONE) return;
      this.#chunks.shift();
      this.#addChunk(chunk);
    }
  }

  /** Waits for every chunk and folds it, then the open chunk's leaves one by one: chunking ends. */
  #foldAll(): void {
    for (const chunk of this.#chunks.splice(0)) {
      if (chunk.root === undefined && Atomics.wait(chunk.status, 0, 0, HELPER_WAIT_MS) === 'timed-out') {
        // The helper is stuck or gone: hash here, and never reuse memory it may still write.
        chunk.root = chunkRoot(chunk.bytes, chunk.end, this.#node);
        helperBroken = true;
        helper = undefined;
      }
      this.#addChunk(chunk);
    }
    const open = this.#open;
    this.#open = undefined;
    release(this.#slot);
    this.#useHelper = false;
    if (!open) return;
    for (let at = LEAVES_AT; at < open.end;) {
      const length = open.bytes.readUInt32LE(at);
      this.#add(hash('sha256', open.bytes.subarray(at + 4, at + 4 + length), 'binary'));
      at += 4 + length;
    }
    recycle(open);
  }

  /** Folds a whole chunk's root: a perfect subtree of CHUNK_LEAVES leaves, aligned. */
  #addChunk(chunk: Chunk): void {
    let merged = chunk.root ?? chunk.bytes.toString('latin1', ROOT_AT, ROOT_AT + HASH_BYTES);
    if (chunk.sent) helperQueued -= 1;
    // Memory the helper wrote its root into is free; memory it was given up on is not.
    if (chunk.root === undefined || !chunk.sent) recycle(chunk);
    this.#count += CHUNK_LEAVES;
    for (let n = this.#count / CHUNK_LEAVES; n % 2 === 0; n /= 2) merged = this.#nodeHash(this.#stack.pop()!, merged);
    this.#stack.push(merged);
  }

  #hashLeaf(canonicalText: string): string {
    // 0x00 ‖ UTF-8 of the text, written into one reused buffer: cheaper than hashing a
    // new string (which node:crypto would encode into a fresh buffer each time).
    if (this.#leaf.length < 1 + canonicalText.length * 3) this.#leaf = Buffer.alloc(1 + canonicalText.length * 3);
    const bytes = this.#leaf.write(canonicalText, 1, 'utf8');
    return hash('sha256', this.#leaf.subarray(0, 1 + bytes), 'binary');
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

/** The open chunk moved into a larger shared buffer (a leaf longer than the chunk had room for). */
function grown(chunk: Chunk, bytesMin: number): Chunk {
  const bigger = openChunk(Math.max(bytesMin, chunk.bytes.length * 2));
  chunk.bytes.copy(bigger.bytes, LEAVES_AT, LEAVES_AT, chunk.end);
  bigger.end = chunk.end;
  bigger.leaves = chunk.leaves;
  recycle(chunk);
  return bigger;
}
