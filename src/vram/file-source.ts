/** A file as the bytes of a shard: read in CHUNK_BYTES pieces, never whole. */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import type { ShardSource } from "./copy-in.ts";
import { CHUNK_BYTES, VramError } from "./errors.ts";

/**
 * The regular file at `path` (already resolved by the caller) as a shard source; `label` names
 * it in errors. The handle is closed when the seal ends, read or not.
 */
export async function fileSource(path: string, label: string, field = "file"): Promise<ShardSource> {
  const fh = await open(path, "r");
  const stat = await fh.stat();
  if (!stat.isFile()) {
    await fh.close();
    throw new VramError("invalid", `Cannot seal ${JSON.stringify(label)}: it is not a regular file`, field);
  }
  let closed = false;
  const close = async () => {
    if (!closed) (closed = true), await fh.close();
  };
  return {
    length: stat.size,
    close,
    async digest() {
      const hash = createHash("sha256");
      const buf = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(1, stat.size)));
      for (let pos = 0;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) return hash.digest("hex");
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    },
    chunks: (async function* () {
      const buf = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(1, stat.size)));
      try {
        for (let pos = 0;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) return;
          pos += bytesRead;
          yield buf.subarray(0, bytesRead);
        }
      } finally {
        await close();
      }
    })(),
  };
}
