/**
 * `make gpu-check`: the VRAM shard path on a real GPU, in one short run. For each size (default
 * 1 and 10 GiB; GPU_CHECK_GIB=1,10): seal (stream in, flat SHA-256 and host tree, copy to VRAM,
 * tree from VRAM by the PTX kernels), verify on the GPU path three times, once on the CPU path
 * (device-to-host copies + worker threads) and sampled; then change one byte in VRAM with
 * cuMemsetD8_v2 and verify again, which must fail. Prints one JSON line per step and a summary.
 * Exits 1 when anything is wrong. GPU_CHECK_DEVICE picks the CUDA ordinal (default 0).
 */
import { availableParallelism } from "node:os";
import process from "node:process";
import { CudaVram } from "../ffi/cuda-vram.ts";
import { cudaCandidates, loadFfiAdapter } from "../ffi/loader.ts";
import { createLogger } from "../src/util/log.ts";
import { VramAudit } from "../src/vram/audit.ts";
import { CudaVramBackend } from "../src/vram/cuda-backend.ts";
import { TREE_PTX } from "../src/vram/ptx/generated/tree-ptx.ts";
import { deriveKey } from "../src/vram/seal-key.ts";
import { ShardStore } from "../src/vram/shards.ts";
import { TREE_ALG } from "../src/vram/tree.ts";
import { TreePool } from "../src/vram/tree-pool.ts";

const sizes = (process.env.GPU_CHECK_GIB ?? "1,10").split(",").map(Number);
const ordinal = Number(process.env.GPU_CHECK_DEVICE ?? 0);
const GiB = 1 << 30;
const CHUNK = 64 << 20;
const out = (o: Record<string, unknown>) => console.log(JSON.stringify(o));
let failures = 0;
const check = (ok: boolean, what: string) => {
  if (!ok) failures++, out({ step: "CHECK FAILED", what });
};

const vram = CudaVram.open(await loadFfiAdapter(), cudaCandidates(process.env), TREE_PTX);
const pool = TreePool.create(Math.min(16, availableParallelism()));
const backend = new CudaVramBackend(vram, pool);
const dev = backend.deviceEvidence(ordinal);
out({ step: "device", ordinal, tree_algorithm: TREE_ALG, cpu_threads: pool.threads, ...vram.memInfo(ordinal), attributes: dev.attributes });
const log = createLogger({ level: "warn", write: (l) => console.error(l) });

for (const gib of sizes) {
  const bytes = Math.round(gib * GiB);
  const lease = { id: `check-${gib}`, gpu_id: "GPU", worker_id: "gpu-check", mem_mb: Math.ceil(bytes / 1048576), streams: 1, ttl_s: 600, priority: 0, state: "ACTIVE" as const, granted_at: 0, expires_at: 1e15 };
  const store = new ShardStore({ backend, audit: new VramAudit(null, log), key: deriveKey("gpu-check", "gpu-check"), workerId: "gpu-check", lease: () => lease, ordinalOf: () => ordinal, pool });
  // Content that differs in every leaf: a counter per 64-bit word, offset by the chunk.
  const chunk = new Uint8Array(CHUNK);
  const words = new BigUint64Array(chunk.buffer);
  const t0 = performance.now();
  const { shard } = await store.seal(lease.id, {
    length: bytes,
    chunks: (async function* () {
      for (let off = 0; off < bytes; off += CHUNK) {
        const base = BigInt(off / 8);
        for (let i = 0; i < words.length; i++) words[i] = base + BigInt(i);
        yield chunk.subarray(0, Math.min(CHUNK, bytes - off));
      }
    })(),
  }, { shard_id: `check-${String(gib).replace(".", "_")}GiB` });
  out({ step: "seal", gib, ms: Math.round(performance.now() - t0), digest: shard.digest, tree_digest: shard.tree_digest, evidence: shard.evidence.pointer });
  for (let i = 0; i < 3; i++) {
    const r = await store.verify(shard.shard_id, "full", undefined, "gpu");
    out({ step: "verify gpu", gib, run: i + 1, ...r });
    check(r.ok, `verify gpu ${gib} GiB`);
  }
  const cpu = await store.verify(shard.shard_id, "full", undefined, "cpu");
  out({ step: "verify cpu", gib, ...cpu });
  check(cpu.ok, `verify cpu ${gib} GiB`);
  const sampled = await store.verify(shard.shard_id, "sampled", 16);
  out({ step: "verify sampled", gib, ...sampled });
  check(sampled.ok, `verify sampled ${gib} GiB`);
  const at = Math.floor(bytes / 2) + 12345;
  store.corrupt(shard.shard_id, at, 0xa5);
  const bad = await store.verify(shard.shard_id, "full", undefined, "gpu");
  out({ step: "verify after cuMemsetD8_v2 of one byte", gib, offset: at, ...bad });
  check(!bad.ok, `corruption caught at ${gib} GiB`);
  store.close();
}
pool.close();
vram.close();
out({ step: "summary", ok: failures === 0, failures });
process.exit(failures === 0 ? 0 : 1);
