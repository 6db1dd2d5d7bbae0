/**
 * Sealing a model's weights for an activation (src/models/activation.ts): the file is sealed
 * under the lease with the SHA-256 its manifest records as the expected digest (the bytes that go
 * into VRAM are the bytes that were imported, or the seal fails), then verified in full from
 * VRAM. A shard this call created that fails its verification is freed again; either failure is
 * a VramError that names the model's file and the lease, and the caller moves no pointer.
 */
import type { Shard, ShardStore } from "./shards.ts";
import { VramError } from "./errors.ts";
import { fileSource } from "./file-source.ts";

/** The handle an activation records (no pointer). */
export type SealedHandle = Pick<Shard, "shard_id" | "digest" | "lease_id" | "gpu_id" | "vram_bytes">;

/** Seals `path` under `leaseId` expecting `sha256`, verifies it, and returns its handle. */
export async function sealWeights(
  store: ShardStore | null,
  unavailable: string | undefined,
  leaseId: string,
  path: string,
  sha256: string,
): Promise<SealedHandle> {
  const where = `Cannot seal ${path} under lease ${leaseId}`;
  if (store === null) {
    throw new VramError("unavailable", `${where}: sealed shards are unavailable (${unavailable ?? "no backend"})`, "seal_lease");
  }
  let sealed;
  try {
    sealed = await store.seal(leaseId, await fileSource(path, path, "model_id"), { expected_digest: sha256 });
  } catch (error) {
    if (!(error instanceof VramError)) throw error;
    throw new VramError(
      error.code,
      `${where}: ${error.message}`,
      error.field === "lease_id" || error.field === "id" ? "seal_lease" : error.field,
      error.extra,
      { cause: error },
    );
  }
  const { shard, created } = sealed;
  const check = await store.verify(shard.shard_id, "full");
  if (!check.ok) {
    if (created) store.release(shard.shard_id, "sealed for an activation that its verification refused");
    throw new VramError(
      "seal_verification_failed",
      `${where}: the sealed copy failed its verification in VRAM: ${check.reason}`,
      "seal_lease",
    );
  }
  return { shard_id: shard.shard_id, digest: shard.digest, lease_id: shard.lease_id, gpu_id: shard.gpu_id, vram_bytes: shard.vram_bytes };
}
