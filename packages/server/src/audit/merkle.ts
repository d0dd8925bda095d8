import { createHash } from 'node:crypto';

/**
 * The Merkle tree of RFC 6962 §2.1 (and RFC 9162 §2.1) over SHA-256: a leaf hashes to
 * SHA-256(0x00 || leaf), an inner node to SHA-256(0x01 || left || right), the tree of `n`
 * leaves splits at the largest power of two below `n`, and the empty tree hashes to SHA-256("").
 * Hashes are 32-byte Buffers here; hex at the edges.
 */

const LEAF_PREFIX = Buffer.from([0]);
const NODE_PREFIX = Buffer.from([1]);

/** SHA-256 of the empty string: the hash of a tree with no leaves. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

/** SHA-256(0x00 || leaf). */
export function leafHash(leaf: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(leaf).digest();
}

/** SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** Largest power of two strictly below `n` (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The right edge of a growing tree: the roots of its perfect subtrees, largest first. Appending
 * a leaf merges equal-sized subtrees, so it costs O(log n) hashes at worst and O(1) on average,
 * and the root of the whole tree is a fold of at most log2(n) hashes: signing a checkpoint never
 * rebuilds the tree.
 */
export class MerkleFrontier {
  #size = 0;
  readonly #nodes: { hash: Buffer; size: number }[] = [];

  /** Restores a frontier saved with {@link MerkleFrontier.toJSON} for a tree of `size` leaves. */
  static from(size: number, hashes: readonly string[]): MerkleFrontier {
    const f = new MerkleFrontier();
    const sizes: number[] = [];
    for (let bit = 2 ** 52; bit >= 1; bit /= 2) if (Math.floor(size / bit) % 2 === 1) sizes.push(bit);
    if (sizes.length !== hashes.length)
      throw new TypeError(`a frontier of size ${size} has ${sizes.length} nodes, not ${hashes.length}`);
    hashes.forEach((h, i) => f.#nodes.push({ hash: Buffer.from(h, 'hex'), size: sizes[i]! }));
    f.#size = size;
    return f;
  }

  /** Leaves appended so far. */
  get size(): number {
    return this.#size;
  }

  /** Appends a leaf by its hash (see {@link leafHash}). */
  push(leaf: Buffer): void {
    let node = { hash: leaf, size: 1 };
    while (this.#nodes.length > 0 && this.#nodes.at(-1)!.size === node.size) {
      const left = this.#nodes.pop()!;
      node = { hash: nodeHash(left.hash, node.hash), size: left.size * 2 };
    }
    this.#nodes.push(node);
    this.#size += 1;
  }

  /** The tree hash of every leaf appended so far. */
  root(): Buffer {
    if (this.#nodes.length === 0) return EMPTY_ROOT;
    let h = this.#nodes.at(-1)!.hash;
    for (let i = this.#nodes.length - 2; i >= 0; i--) h = nodeHash(this.#nodes[i]!.hash, h);
    return h;
  }

  /** The frontier's hashes (hex, largest subtree first), to store beside a checkpoint. */
  toJSON(): string[] {
    return this.#nodes.map((n) => n.hash.toString('hex'));
  }
}

/** Leaf hashes packed 32 bytes apiece (a million leaves take 32 MB, not a million Buffers). */
export class LeafHashes {
  #buf: Buffer;
  #count = 0;

  constructor(capacity = 1024) {
    this.#buf = Buffer.alloc(32 * Math.max(1, capacity));
  }

  get length(): number {
    return this.#count;
  }

  push(h: Buffer): void {
    if ((this.#count + 1) * 32 > this.#buf.length) {
      const next = Buffer.alloc(this.#buf.length * 2);
      this.#buf.copy(next);
      this.#buf = next;
    }
    h.copy(this.#buf, this.#count * 32);
    this.#count += 1;
  }

  at(i: number): Buffer {
    return this.#buf.subarray(i * 32, i * 32 + 32);
  }
}

/** MTH(D[lo:hi]) of RFC 6962 over already hashed leaves. */
export function subtreeRoot(leaves: { at(i: number): Buffer }, lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) return leaves.at(lo);
  const k = split(n);
  return nodeHash(subtreeRoot(leaves, lo, lo + k), subtreeRoot(leaves, lo + k, hi));
}

/**
 * PROOF(m, D[n]) of RFC 6962 §2.1.2: the hashes that let someone holding the root of the first
 * `m` leaves check that the tree of `n` leaves extends it. Empty when m = n or m = 0.
 */
export function consistencyProof(leaves: { at(i: number): Buffer }, m: number, n: number): Buffer[] {
  if (m < 0 || m > n) throw new RangeError(`no consistency proof from ${m} to ${n} leaves`);
  if (m === 0 || m === n) return [];
  const out: Buffer[] = [];
  const sub = (m: number, lo: number, hi: number, complete: boolean): void => {
    const n = hi - lo;
    if (m === n) {
      if (!complete) out.push(subtreeRoot(leaves, lo, hi));
      return;
    }
    const k = split(n);
    if (m <= k) {
      sub(m, lo, lo + k, complete);
      out.push(subtreeRoot(leaves, lo + k, hi));
    } else {
      sub(m - k, lo + k, hi, false);
      out.push(subtreeRoot(leaves, lo, lo + k));
    }
  };
  sub(m, 0, n, true);
  return out;
}

/**
 * Checks a consistency proof (RFC 9162 §2.1.4.2): true when a tree of `m` leaves with root
 * `rootM` is a prefix of the tree of `n` leaves with root `rootN`.
 */
export function verifyConsistency(
  m: number,
  n: number,
  rootM: Uint8Array,
  rootN: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (m < 0 || n < m || !Number.isSafeInteger(n)) return false;
  if (m === n) return proof.length === 0 && Buffer.compare(rootM, rootN) === 0;
  if (m === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  // A first tree of 2^k leaves is a node of the second: its root starts the path.
  const path = isPowerOfTwo(m) ? [rootM, ...proof] : [...proof];
  let fn = m - 1;
  let sn = n - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Uint8Array = path[0]!;
  let sr: Uint8Array = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && Buffer.compare(fr, rootM) === 0 && Buffer.compare(sr, rootN) === 0;
}

function isPowerOfTwo(m: number): boolean {
  let k = 1;
  while (k < m) k *= 2;
  return k === m;
}
