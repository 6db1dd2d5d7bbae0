/**
 * The tree digest against an independent reference: RFC 6962's recursive definition (split at
 * the largest power of two below n) over Bun's CryptoHasher, plus vectors pinned with Python's
 * hashlib. The production code builds levels bottom-up with node:crypto.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { hex, LEAF_BYTES, leafCount, StreamingTree, TREE_ALG, treeDigest } from "../../src/vram/tree.ts";
import { TASK_BYTES, TreePool } from "../../src/vram/tree-pool.ts";
import { pattern, VECTORS } from "./vectors.ts";

const sha = (...parts: Uint8Array[]) => {
  const h = new Bun.CryptoHasher("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest().buffer);
};
function mth(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 1) return sha(new Uint8Array([0]), leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha(new Uint8Array([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
const reference = (d: Uint8Array) => {
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < d.length; i += LEAF_BYTES) leaves.push(d.subarray(i, i + LEAF_BYTES));
  return hex(mth(leaves));
};
const K = LEAF_BYTES;

describe("treeDigest()", () => {
  test("names its leaf size", () => {
    expect(TREE_ALG).toBe("sha256-tree-64KiB");
    expect(leafCount(K)).toBe(1);
    expect(leafCount(K + 1)).toBe(2);
  });

  test.each(VECTORS)("matches the pinned vector and the reference: %s", (_name, data, tree, flat) => {
    expect(hex(treeDigest(data))).toBe(tree);
    expect(reference(data)).toBe(tree);
    expect(hex(sha(data))).toBe(flat);
  });

  test("differs from the flat SHA-256 and changes with any one byte", () => {
    const d = pattern(3 * K + 5);
    const before = hex(treeDigest(d));
    for (const at of [0, K - 1, K, 3 * K + 4]) {
      const c = d.slice();
      c[at] = c[at]! ^ 1;
      expect(hex(treeDigest(c))).not.toBe(before);
    }
  });

  test("refuses an empty shard", () => {
    expect(() => treeDigest(new Uint8Array(0))).toThrow("Cannot digest an empty shard");
  });
});

describe("StreamingTree", () => {
  test("gives the same root whatever the chunking", () => {
    for (const [, data, tree] of VECTORS) {
      for (const step of [1, 7, 4096, K, K + 3]) {
        if (step === 1 && data.length > 70_000) continue;
        const s = new StreamingTree();
        for (let i = 0; i < data.length; i += step) s.update(data.subarray(i, i + step));
        expect(hex(s.digest())).toBe(tree);
      }
    }
  });
});

describe("TreePool", () => {
  const pool = TreePool.create(2);
  afterAll(() => pool.close());

  test("the workers' tree equals the reference across tasks and windows", async () => {
    const n = 2 * TASK_BYTES + 3 * K + 11; // three tasks, the last partial
    const src = pattern(n);
    const shared = new Uint8Array(new SharedArrayBuffer(n));
    shared.set(src);
    const reads: number[] = [];
    const digest = await pool.digest(n, (off, dst) => {
      reads.push(off);
      dst.set(src.subarray(off, off + dst.length));
    });
    expect(hex(digest)).toBe(reference(src));
    expect(reads).toEqual([0]);
    expect((await pool.roots(shared)).length).toBe(3);
  });

  test("inline and worker paths agree on the vectors", async () => {
    const inline = TreePool.create(0);
    for (const [, data, tree] of VECTORS) {
      expect(hex(await inline.digest(data.length, (off, dst) => dst.set(data.subarray(off, off + dst.length))))).toBe(tree);
      expect(hex(await pool.digest(data.length, (off, dst) => dst.set(data.subarray(off, off + dst.length))))).toBe(tree);
    }
  });
});
