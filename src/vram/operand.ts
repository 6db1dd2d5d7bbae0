/**
 * A sealed shard as a job's operand `b` (docs/vram-sharing.md, "Shards as job inputs"): only a
 * shard of the job's own lease, verified from VRAM in the gate's mode when the job starts. Where
 * the runner can map a descriptor (the CUDA runner) and the shard's memory is shareable, the
 * job's process gets the shard's descriptor and maps it read-only; otherwise the bytes are
 * copied out and the copy's SHA-256 checked against the seal, so the kernel never computes on
 * bytes that differ from the sealed ones. Either way nothing the job does reaches the shard.
 */
import { closeSync } from "node:fs";
import type { Shard, ShardStore } from "./shards.ts";
import { VramError } from "./errors.ts";

/** How the job read the shard (the record says). */
type Access = "copy" | "read-only-mapping";

/** What a job's runner gets: the bytes and how they were verified, or the status detail and message that end the job. */
export type OperandRead =
  | { readonly ok: true; readonly bytes: Uint8Array; readonly read: ReadRecord }
  | {
    readonly ok: true;
    /** The shard's memory as descriptor `fd` (closed by `release`), `mappedBytes` to map, `bytes` its size. */
    readonly mapping: { readonly fd: number; readonly mappedBytes: number; readonly bytes: number; release(): void };
    readonly read: ReadRecord;
  }
  | { readonly ok: false; readonly detail: "NOT-SEALED" | "SEAL-VERIFICATION-FAILED"; readonly message: string };

/** Which shard a job read, the verification it passed, and how it read it. */
export interface ReadRecord {
  readonly shard_id: string;
  /** The sealed SHA-256 the bytes were checked against. */
  readonly digest: string;
  readonly vram_bytes: number;
  /** The verification from VRAM it passed before the job started: when, how (the gate's mode) and where the tree was computed. */
  readonly verified_at: number;
  readonly mode: "full" | "sampled";
  readonly path: "gpu" | "cpu";
  /**
   * `copy`: its bytes were copied out of VRAM and their SHA-256 checked against the seal before
   * the kernel ran; `read-only-mapping`: the kernel read the shard's memory through a mapping
   * its process made read-only from the shard's descriptor.
   */
  readonly access: Access;
}

/** The shard `shardId` as lease `leaseId` may see it: undefined for an unknown id and another lease's alike. */
export function ownShard(store: ShardStore, leaseId: string, shardId: string): Shard | undefined {
  const s = store.get(shardId);
  return s?.lease_id === leaseId ? s : undefined;
}

/**
 * Verifies shard `shardId` of lease `leaseId` (`mode`: the gate's); then, with `map` and a
 * shareable shard, hands over its descriptor, else copies its bytes out, checked against the seal.
 */
export async function readOperand(
  store: ShardStore,
  leaseId: string,
  shardId: string,
  mode: "full" | "sampled",
  map = false,
): Promise<OperandRead> {
  const gone = { ok: false, detail: "NOT-SEALED", message: `shard ${shardId}: no shard with that id is sealed under this lease` } as const;
  const s = ownShard(store, leaseId, shardId);
  if (s === undefined) return gone;
  try {
    const v = await store.verify(shardId, mode);
    if (!v.ok) return { ok: false, detail: "SEAL-VERIFICATION-FAILED", message: `shard ${shardId}: ${v.reason}` };
    const record = (access: Access): ReadRecord => ({
      shard_id: shardId,
      digest: s.digest,
      vram_bytes: s.vram_bytes,
      verified_at: s.verified_at!,
      mode: v.mode,
      path: v.path,
      access,
    });
    if (map && store.shareRefusal(shardId) === null) {
      const { fd, owned } = store.exportFd(shardId);
      const release = () => owned && closeSync(fd);
      return {
        ok: true,
        mapping: { fd, mappedBytes: store.mappedBytes(shardId), bytes: s.vram_bytes, release },
        read: record("read-only-mapping"),
      };
    }
    const copy = store.readChecked(shardId);
    if (!copy.ok) return { ok: false, detail: "SEAL-VERIFICATION-FAILED", message: `shard ${shardId}: ${copy.reason}` };
    return { ok: true, bytes: copy.bytes, read: record("copy") };
  } catch (error) {
    // Released between the verification and the copy.
    if (error instanceof VramError && error.code === "not_sealed") return gone;
    throw error;
  }
}
