/**
 * The attestation of a shard (for a worker's "ready" answer): what was checked, when, and what
 * the driver said, signed with the bridge's attestation key (HMAC-SHA256 over the statement's
 * canonical JSON). It never holds a pointer. Where "VRAM-only" cannot mean anything (host
 * memory in --mock, an integrated GPU sharing DRAM) the policy says not_applicable and why.
 */
import type { VramBackend } from "./backend.ts";
import { hmac } from "./seal-key.ts";
import type { Shard } from "./shards.ts";
import { hex, TREE_ALG } from "./tree.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** JSON with keys sorted at every level: the bytes the signature covers. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${
      Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")
    }}`;
  }
  return JSON.stringify(value);
}

export function attestation(shard: Shard, backend: VramBackend, key: Uint8Array, now: number) {
  const device = backend.deviceEvidence(shard.gpu_device);
  const policy = backend.kind === "host-memory"
    ? { name: "vram-only", status: "not_applicable", reason: backend.note }
    : device.integrated
    ? {
      name: "vram-only",
      status: "not_applicable",
      reason: "integrated GPU (Jetson): the GPU shares DRAM with the CPU, so no memory is VRAM-only",
    }
    : { name: "vram-only", status: "enforced", reason: "allocated with cuMemAlloc_v2; pointer attributes checked right after allocation" };
  const statement = {
    schema: "gpu-bridge-vram-attestation/v1",
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
  return {
    statement,
    signature: {
      algorithm: "HMAC-SHA256",
      over: "canonical JSON of statement (keys sorted)",
      value: hex(hmac(key, canonicalJson(statement))),
    },
  };
}
