/**
 * The attestation of a shard (for a worker's "ready" answer): what was checked, when, and what
 * the driver said, signed with the bridge's Ed25519 attestation key (attest-key.ts) over the
 * statement's canonical JSON, so anyone with the public half (`GET /v1/vram/attestation-key`)
 * can check it offline (`gpu-bridge-host vram attest-verify`). It never holds a pointer. Where
 * "VRAM-only" cannot mean anything (host memory in --mock, an integrated GPU sharing DRAM) the
 * policy says not_applicable and why.
 */
import type { AttestSigner } from "./attest-key.ts";
import type { VramBackend } from "./backend.ts";
import { memberPlace, SET_DIGEST_ALG, type ShardSetStatus } from "./sets.ts";
import type { Shard } from "./shards.ts";
import { TREE_ALG } from "./tree.ts";

export { canonicalJson } from "../util/canonical-json.ts";
/** What a shard attestation's statement says it is. */
export const ATTESTATION_SCHEMA = "gpu-bridge-vram-attestation/v1";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** What the VRAM-only policy is worth on a GPU: enforced, or not applicable and why. */
export type VramOnlyPolicy =
  | { readonly name: "vram-only"; readonly status: "enforced"; readonly reason: string }
  | {
    readonly name: "vram-only";
    readonly status: "not_applicable";
    readonly reason: string;
    /** What still holds for a shard there (integrated GPUs only). */
    readonly still_holds?: readonly string[];
    /** What the policy cannot promise there. */
    readonly cannot_promise?: readonly string[];
  };

/**
 * The VRAM-only policy for a backend and device. On an integrated GPU (every Jetson, Nano to
 * Orin) the GPU has no memory of its own: the policy is not applicable, and the answer says what
 * a shard still gets and what nobody can promise there, rather than calling shared DRAM VRAM.
 */
export function vramOnlyPolicy(backend: { kind: VramBackend["kind"]; note: string }, integrated: boolean): VramOnlyPolicy {
  if (backend.kind === "host-memory") return { name: "vram-only", status: "not_applicable", reason: backend.note };
  if (!integrated) {
    return {
      name: "vram-only",
      status: "enforced",
      reason: "device memory from cuMemCreate or cuMemAlloc_v2; its pointer attributes are checked at allocation, then again periodically",
    };
  }
  return {
    name: "vram-only",
    status: "not_applicable",
    reason: "integrated GPU (Jetson): the GPU shares DRAM with the CPU, so no memory is VRAM-only",
    still_holds: [
      "the shard is a cuMemAlloc_v2 device allocation, checked by pointer attributes, never managed memory",
      "its bytes are verified against the sealed tree digest, on the GPU or the CPU",
    ],
    cannot_promise: [
      "that the bytes are out of the CPU's reach: they sit in the same DRAM as every process's memory",
      "that the shard's memory is reserved: the GPU's share of DRAM shrinks as the CPU side allocates",
    ],
  };
}

/** The shard's statement, signed by `signer` (which adds its algorithm and key id to it). */
export function attestation(shard: Shard, backend: VramBackend, signer: AttestSigner, now: number) {
  const device = backend.deviceEvidence(shard.gpu_device);
  const policy = vramOnlyPolicy(backend, device.integrated);
  const statement = {
    schema: ATTESTATION_SCHEMA,
    shard_id: shard.shard_id,
    lease_id: shard.lease_id,
    gpu_id: shard.gpu_id,
    gpu_device: shard.gpu_device,
    vram_bytes: shard.vram_bytes,
    digest: shard.digest,
    tree_digest: shard.tree_digest,
    tree_algorithm: TREE_ALG,
    sealed_at: iso(shard.sealed_at),
    state: shard.state,
    resident: shard.state === "SEALED",
    last_verified_at: iso(shard.verified_at),
    backend: backend.kind,
    policy,
    evidence: {
      checked_at: iso(shard.evidence.checked_at),
      pointer: shard.evidence.pointer,
      device: device.attributes,
    },
    issued_at: iso(now),
  };
  return signer.sign(statement);
}

/**
 * The attestation of a complete tensor-parallel set (sets.ts): the set digest and each member as
 * its own attestation names it, signed as a shard's is. Null while indexes are missing: there is
 * nothing to bind yet.
 */
export function setAttestation(set: ShardSetStatus, signer: AttestSigner, now: number) {
  if (set.set_digest === null) return null;
  const statement = {
    schema: "gpu-bridge-vram-set-attestation/v1",
    set_id: set.set_id,
    worker_id: set.worker_id,
    total_shards: set.total_shards,
    set_digest: set.set_digest,
    set_digest_algorithm: SET_DIGEST_ALG,
    state: set.state,
    resident: set.state === "ready",
    members: set.members.map((m) => ({
      ...memberPlace(m),
      tree_digest: m.tree_digest,
      tree_algorithm: TREE_ALG,
      state: m.state,
      last_verified_at: iso(m.verified_at),
      last_full_verified_at: iso(m.full_verified_at),
    })),
    issued_at: iso(now),
  };
  return signer.sign(statement);
}
