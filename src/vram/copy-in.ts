/** The copy of a shard into VRAM, hashed on the way: the flat SHA-256 and the host-side tree. */
import { createHash } from "node:crypto";
import type { Lease } from "../lease/types.ts";
import type { VramBackend, VramBuffer } from "./backend.ts";
import { CHUNK_BYTES, VramError } from "./errors.ts";
import { hex, LEAF_BYTES, leafHash, StreamingTree } from "./tree.ts";
import type { TreePool } from "./tree-pool.ts";

/** Where the bytes come from: an HTTP body of known length, or a file's contents. */
export interface ShardSource {
  readonly length: number;
  readonly chunks: AsyncIterable<Uint8Array>;
  /** The bytes' SHA-256 (hex) without consuming `chunks`, where that is possible (a file: one extra read). */
  digest?(): Promise<string>;
  /** Releases what the source holds (a file handle) when the seal ends, read or not. */
  close?(): Promise<void>;
}

/**
 * Streams `source` into `buf` through two staging buffers of CHUNK_BYTES (whole leaves): the
 * flat SHA-256 runs here as bytes arrive, while the workers hash a full stage's leaves (the
 * host-side tree) and the stage is copied to VRAM; a stage is refilled only once its leaves
 * are in.
 */
export async function copyIn(
  backend: VramBackend,
  buf: VramBuffer,
  source: ShardSource,
  lease: Lease,
  pool: TreePool | undefined,
): Promise<{ digest: string; tree: string; leaves: Uint8Array }> {
  const flat = createHash("sha256");
  const tree = new StreamingTree(true);
  const size = Math.min(CHUNK_BYTES, source.length);
  const stages = [0, 1].map(() => new Uint8Array(new SharedArrayBuffer(size)));
  const hashing: (Promise<Uint8Array> | null)[] = [null, null];
  const sizes = [0, 0];
  let cur = 0;
  let fill = 0;
  let written = 0;
  const settle = async (k: number) => {
    const p = hashing[k] ?? null;
    if (p === null) return;
    hashing[k] = null;
    tree.pushLeaves(await p, sizes[k]!);
  };
  const flush = async () => {
    const stage = stages[cur]!.subarray(0, fill);
    backend.write(buf, written, stage);
    hashing[cur] = pool?.leaves(stage) ?? Promise.resolve(hashLeaves(stage));
    sizes[cur] = fill;
    written += fill;
    fill = 0;
    cur ^= 1;
    await settle(cur);
  };
  try {
    for await (const chunk of source.chunks) {
      if (lease.state !== "ACTIVE") {
        throw new VramError("permission", `Cannot seal: lease ${lease.id} ended while the shard was streaming in`);
      }
      if (written + fill + chunk.length > source.length) {
        throw new VramError("invalid", `Cannot seal: the body is longer than its declared ${source.length} bytes`, "length");
      }
      flat.update(chunk);
      for (let off = 0; off < chunk.length;) {
        const n = Math.min(size - fill, chunk.length - off);
        stages[cur]!.set(chunk.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === size) await flush();
      }
    }
    if (fill > 0) await flush();
    await settle(cur ^ 1);
    await settle(cur);
  } finally {
    await Promise.allSettled(hashing.filter((p) => p !== null));
  }
  if (written !== source.length) {
    throw new VramError("invalid", `Cannot seal: the body ended after ${written} of its declared ${source.length} bytes`, "length");
  }
  return { digest: flat.digest("hex"), tree: hex(tree.digest()), leaves: tree.leafHashes() };
}

function hashLeaves(data: Uint8Array): Uint8Array {
  const n = Math.ceil(data.length / LEAF_BYTES);
  const out = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) out.set(leafHash(data.subarray(i * LEAF_BYTES, (i + 1) * LEAF_BYTES)), i * 32);
  return out;
}

/**
 * The SHA-256 (hex) of `source`'s bytes, read to the end and held to its declared length, without
 * copying them anywhere: what a seal under a `shard_id` that is taken needs to tell a retry (the
 * same bytes) from a conflict.
 */
export async function hashSource(source: ShardSource): Promise<string> {
  const flat = createHash("sha256");
  let read = 0;
  for await (const chunk of source.chunks) {
    read += chunk.length;
    if (read > source.length) {
      throw new VramError("invalid", `Cannot seal: the body is longer than its declared ${source.length} bytes`, "length");
    }
    flat.update(chunk);
  }
  if (read !== source.length) {
    throw new VramError("invalid", `Cannot seal: the body ended after ${read} of its declared ${source.length} bytes`, "length");
  }
  return flat.digest("hex");
}
