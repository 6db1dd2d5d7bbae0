/**
 * The shard tree digest: RFC 6962's Merkle tree over fixed 64 KiB leaves (leaf =
 * SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right)), named `sha256-tree-64KiB` so the
 * leaf size travels with every digest. Leaves of 64 KiB give a 10 GiB shard 163,840 independent
 * hashes (enough for a GPU to fill its SMs) while a leaf's fixed cost on a CPU stays near 2 %.
 *
 * Every path (this one, the worker pool, the PTX kernel and the fake driver's C emulation)
 * builds levels bottom-up, pairing neighbours and promoting an unpaired last node unchanged;
 * that is the same tree as RFC 6962's recursive split at the largest power of two.
 */
import { createHash } from "node:crypto";

export const LEAF_BYTES = 64 * 1024;
export const TREE_ALG = "sha256-tree-64KiB";

const LEAF_PREFIX = new Uint8Array([0]);
const NODE_PREFIX = new Uint8Array([1]);

/** SHA-256(0x00 ‖ data): one leaf. */
export function leafHash(data: Uint8Array): Uint8Array {
  return createHash("sha256").update(LEAF_PREFIX).update(data).digest();
}

/** SHA-256(0x01 ‖ left ‖ right): one inner node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest();
}

/** Leaves in a shard of `bytes` bytes (a shard is never empty). */
export function leafCount(bytes: number): number {
  return Math.ceil(bytes / LEAF_BYTES);
}

/** The root over `hashes` (a level of equal-height subtrees, left to right), level by level. */
export function combineLevels(hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0) throw new RangeError("Cannot build a tree over no leaves");
  let level = hashes;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!;
}

/** The root of the subtree over `data`'s leaves (one thread; the pool splits big inputs). */
export function subtreeRoot(data: Uint8Array): Uint8Array {
  const leaves: Uint8Array[] = [];
  for (let off = 0; off < data.length; off += LEAF_BYTES) leaves.push(leafHash(data.subarray(off, off + LEAF_BYTES)));
  return combineLevels(leaves);
}

/** The tree digest of `data`, on this thread. */
export function treeDigest(data: Uint8Array): Uint8Array {
  if (data.length === 0) throw new RangeError("Cannot digest an empty shard: a shard holds at least one byte");
  return subtreeRoot(data);
}

/** Lowercase hex. */
export const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/**
 * The tree of a byte stream, built as bytes arrive (seal time: the host side of "verify the
 * copy"): complete subtrees sit on a stack and merge as soon as a sibling of equal size exists,
 * so memory is one leaf buffer plus one hash per level.
 */
export class StreamingTree {
  readonly #stack: { height: number; hash: Uint8Array }[] = [];
  readonly #leaf = new Uint8Array(LEAF_BYTES);
  readonly #leaves: Uint8Array[] | null;
  #fill = 0;
  #bytes = 0;

  /** `keepLeaves`: remember every leaf hash (32 bytes per 64 KiB) for sampled checks later. */
  constructor(keepLeaves = false) {
    this.#leaves = keepLeaves ? [] : null;
  }

  /** The leaf hashes kept so far, concatenated (after `digest()`, all of them). */
  leafHashes(): Uint8Array {
    const all = this.#leaves ?? [];
    const out = new Uint8Array(all.length * 32);
    all.forEach((h, i) => out.set(h, i * 32));
    return out;
  }

  update(chunk: Uint8Array): void {
    let off = 0;
    this.#bytes += chunk.length;
    while (off < chunk.length) {
      if (this.#fill === 0 && chunk.length - off >= LEAF_BYTES) {
        this.#push(leafHash(chunk.subarray(off, off + LEAF_BYTES)));
        off += LEAF_BYTES;
        continue;
      }
      const n = Math.min(LEAF_BYTES - this.#fill, chunk.length - off);
      this.#leaf.set(chunk.subarray(off, off + n), this.#fill);
      this.#fill += n;
      off += n;
      if (this.#fill === LEAF_BYTES) {
        this.#push(leafHash(this.#leaf));
        this.#fill = 0;
      }
    }
  }

  /** Adds leaf hashes computed elsewhere (32 bytes each, in order), for `bytes` bytes of whole leaves. */
  pushLeaves(hashes: Uint8Array, bytes: number): void {
    if (this.#fill !== 0) throw new RangeError("Cannot add leaf hashes in the middle of a leaf");
    for (let i = 0; i < hashes.length; i += 32) this.#push(hashes.slice(i, i + 32));
    this.#bytes += bytes;
  }

  /** The root; the builder is spent afterwards. */
  digest(): Uint8Array {
    if (this.#fill > 0) this.#push(leafHash(this.#leaf.subarray(0, this.#fill)));
    this.#fill = 0;
    if (this.#stack.length === 0) throw new RangeError("Cannot digest an empty shard: a shard holds at least one byte");
    let h = this.#stack[this.#stack.length - 1]!.hash;
    for (let i = this.#stack.length - 2; i >= 0; i--) h = nodeHash(this.#stack[i]!.hash, h);
    return h;
  }

  get bytes(): number {
    return this.#bytes;
  }

  #push(hash: Uint8Array): void {
    this.#leaves?.push(hash);
    let node = { height: 0, hash };
    while (this.#stack.length > 0 && this.#stack[this.#stack.length - 1]!.height === node.height) {
      const left = this.#stack.pop()!;
      node = { height: node.height + 1, hash: nodeHash(left.hash, node.hash) };
    }
    this.#stack.push(node);
  }
}
