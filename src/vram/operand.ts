/**
 * A sealed shard as a job's operand `b` (docs/vram-sharing.md, "Shards as job inputs"): only a
 * shard of the job's own lease; verified from VRAM in the gate's mode when the job starts, then
 * copied out and the copy's SHA-256 checked against the seal, so the kernel never computes on
 * bytes that differ from the sealed ones. The copy is the job's own: nothing it does reaches VRAM.
 */
import type { Shard, ShardStore } from "./shards.ts";
import { VramError } from "./errors.ts";

/** What a job's runner gets: the bytes and how they were verified, or the status detail and message that end the job. */
export type OperandRead =
  | {
    readonly ok: true;
    readonly bytes: Uint8Array;
    readonly read: {
      readonly shard_id: string;
      readonly digest: string;
      readonly vram_bytes: number;
      readonly verified_at: number;
      readonly mode: "full" | "sampled";
      readonly path: "gpu" | "cpu";
      readonly access: "copy";
    };
  }
  | { readonly ok: false; readonly detail: "NOT-SEALED" | "SEAL-VERIFICATION-FAILED"; readonly message: string };

/** The shard `shardId` as lease `leaseId` may see it: undefined for an unknown id and another lease's alike. */
export function ownShard(store: ShardStore, leaseId: string, shardId: string): Shard | undefined {
  const s = store.get(shardId);
  return s?.lease_id === leaseId ? s : undefined;
}

/** Verifies shard `shardId` of lease `leaseId` (`mode`: the gate's) and copies its bytes out, checked against the seal. */
export async function readOperand(store: ShardStore, leaseId: string, shardId: string, mode: "full" | "sampled"): Promise<OperandRead> {
  const gone = { ok: false, detail: "NOT-SEALED", message: `shard ${shardId}: no shard with that id is sealed under this lease` } as const;
  const s = ownShard(store, leaseId, shardId);
  if (s === undefined) return gone;
  try {
    const v = await store.verify(shardId, mode);
    if (!v.ok) return { ok: false, detail: "SEAL-VERIFICATION-FAILED", message: `shard ${shardId}: ${v.reason}` };
    const copy = store.readChecked(shardId);
    if (!copy.ok) return { ok: false, detail: "SEAL-VERIFICATION-FAILED", message: `shard ${shardId}: ${copy.reason}` };
    return {
      ok: true,
      bytes: copy.bytes,
      read: {
        shard_id: shardId,
        digest: s.digest,
        vram_bytes: s.vram_bytes,
        verified_at: s.verified_at!,
        mode: v.mode,
        path: v.path,
        access: "copy",
      },
    };
  } catch (error) {
    // Released between the verification and the copy.
    if (error instanceof VramError && error.code === "not_sealed") return gone;
    throw error;
  }
}
