/**
 * VRAM shard benchmark, CPU path (this machine has no GPU): the tree digest on one thread
 * against a flat SHA-256 (target >= 1.5 GB/s per core), the worker pool at 1..N threads over
 * copies out of a buffer (it should scale with cores), and seal and verify through the shard
 * store on host memory (--mock) and on the fake libcuda (the FFI path; its "GPU" tree is the
 * kernel's C run on one host thread, so that figure is not a GPU figure).
 * Run with `make bench-vram`; VRAM_BENCH_MB=N changes the size (default 512).
 */
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { bunFfi } from "../ffi/bun.ts";
import { CudaVram } from "../ffi/cuda-vram.ts";
import { parsePtxHeader, withHeader } from "../ffi/ptx-header.ts";
import { createLogger } from "../src/util/log.ts";
import { VramAudit } from "../src/vram/audit.ts";
import type { VramBackend } from "../src/vram/backend.ts";
import { CudaVramBackend } from "../src/vram/cuda-backend.ts";
import { HostMemoryVram } from "../src/vram/host-backend.ts";
import { TREE_PTX } from "../src/vram/ptx/generated/tree-ptx.ts";
import { deriveKey } from "../src/vram/seal-key.ts";
import { ShardStore } from "../src/vram/shards.ts";
import { LEAF_BYTES, subtreeRoot } from "../src/vram/tree.ts";
import { TreePool } from "../src/vram/tree-pool.ts";
import { activeLease } from "../test/helpers.ts";

const TASK_WARMUP = 8 * 1048576;
const MB = Number(process.env.VRAM_BENCH_MB ?? 512);
const BYTES = MB * 1048576;
const cores = availableParallelism();
const gbs = (bytes: number, ms: number) => (bytes / 1e9 / (ms / 1000)).toFixed(2);
/**
 * The best of `runs`: wall ms, and CPU ms of the whole process (workers included). Bytes per
 * CPU-second is the per-core figure even on a machine shared with other work, where wall-clock
 * rates drop with the load.
 */
const best = async (runs: number, fn: () => unknown | Promise<unknown>) => {
  let min = Infinity;
  let cpu = Infinity;
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    min = Math.min(min, wall);
    cpu = Math.min(cpu, (c.user + c.system) / 1000);
  }
  return Object.assign(min, { wall: min, cpu });
};
const perCpu = (bytes: number, r: { cpu: number }) => gbs(bytes, r.cpu);

const data = new Uint8Array(new SharedArrayBuffer(BYTES));
for (let i = 0; i < BYTES; i += 4096) data[i] = (i / 4096) & 0xff; // cheap, non-constant content
const load = await import("node:os").then((os) => os.loadavg()[0]!.toFixed(1));
console.log(`vram bench: ${MB} MiB, ${cores} cores (load average ${load}), ${process.versions.bun ? `Bun ${process.versions.bun}` : "?"}`);

// 1. One thread: flat SHA-256 (what callers compare with sha256sum) against the tree.
{
  const flat = await best(3, () => createHash("sha256").update(data).digest());
  const tree = await best(3, () => subtreeRoot(data));
  console.log(
    `one thread   flat sha256 ${gbs(BYTES, flat.wall)} GB/s wall, ${perCpu(BYTES, flat)} GB per CPU-s   sha256-tree-64KiB ${
      gbs(BYTES, tree.wall)
    } GB/s wall, ${perCpu(BYTES, tree)} GB per CPU-s (target >= 1.5 per core)`,
  );
}

// 2. The worker pool over window copies (the CPU path of verify), 1..cores threads.
for (let t = 1; t <= Math.max(cores, 2); t *= 2) {
  const pool = TreePool.create(t);
  await pool.digest(TASK_WARMUP, (off, dst) => dst.set(data.subarray(off, off + dst.length)));
  const ms = await best(3, () => pool.digest(BYTES, (off, dst) => dst.set(data.subarray(off, off + dst.length))));
  console.log(
    `pool ${String(t).padStart(2)} thr  ${gbs(BYTES, ms.wall)} GB/s wall total, ${gbs(BYTES / t, ms.wall)} GB/s wall per thread, ${
      perCpu(BYTES, ms)
    } GB per CPU-s (copy out included)`,
  );
  pool.close();
}

// 3. Seal and verify through the store.
const log = createLogger({ level: "warn", write: () => {} });
async function sealVerify(name: string, backend: VramBackend, verifyPath: "gpu" | "cpu") {
  const lease = activeLease({ id: "L", mem_mb: MB * 2 });
  const store = new ShardStore({
    backend,
    audit: new VramAudit(null, log),
    key: deriveKey("bench", "bench"),
    lease: () => lease,
    ordinalOf: () => 0,
    verifyPath,
    pool,
  });
  const step = 1 << 20;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { shard } = await store.seal("L", {
    length: BYTES,
    chunks: (async function* () {
      for (let i = 0; i < BYTES; i += step) yield data.subarray(i, i + step);
    })(),
  }, {});
  const sealMs = performance.now() - t0;
  const sealCpu = process.cpuUsage(c0);
  const fullRun = await best(2, async () => {
    const r = await store.verify(shard.shard_id);
    if (!r.ok) throw new Error(r.reason);
  });
  const full = fullRun.wall;
  const sampled = +await best(5, () => store.verify(shard.shard_id, "sampled", 16));
  console.log(
    `${name.padEnd(34)} seal ${gbs(BYTES, sealMs)} GB/s (${sealMs.toFixed(0)} ms, ${
      gbs(BYTES, (sealCpu.user + sealCpu.system) / 1000)
    } GB per CPU-s)   verify full (${verifyPath}) ${gbs(BYTES, full)} GB/s (${full.toFixed(0)} ms, ${
      perCpu(BYTES, fullRun)
    } GB per CPU-s)   sampled 16 leaves ${sampled.toFixed(2)} ms`,
  );
  store.close();
}
const pool = TreePool.create(cores);
await sealVerify("host memory (--mock)", new HostMemoryVram(() => 4 * BYTES, pool), "cpu");
const FAKE = join(import.meta.dir, "..", "mock", "native", "build", "libcuda.so.1");
const cuda = CudaVram.open(bunFfi, [FAKE], TREE_PTX);
await sealVerify("fake libcuda, CPU path (DtoH+pool)", new CudaVramBackend(cuda, pool), "cpu");
await sealVerify("fake libcuda, kernels emulated in C", new CudaVramBackend(cuda, pool), "gpu");
cuda.close();
// 4. The tree kernels as shipped (portable header) against the same body under sm_90 / ISA 7.8.
// The fake runs one C emulation whatever the header says, so here the two can only tie; on a GPU
// `make gpu-check` times both, and ptxas already gives both the same machine code.
for (const [name, ptx] of [["portable (shipped)", TREE_PTX], ["native sm_90 header", withHeader(TREE_PTX, 78, 90)]] as const) {
  const v = CudaVram.open(bunFfi, [FAKE], ptx);
  const buf = v.alloc(0, BYTES);
  v.write(buf, 0, data);
  v.treeDigest(buf, BYTES, LEAF_BYTES);
  const r = await best(3, () => v.treeDigest(buf, BYTES, LEAF_BYTES));
  const h = parsePtxHeader(ptx);
  console.log(
    `tree kernels ${name.padEnd(20)} ISA ${h.version} ${h.target.padEnd(6)} ${gbs(BYTES, r.wall)} GB/s wall, ${
      perCpu(BYTES, r)
    } GB per CPU-s (fake: the kernel's C on one host thread)`,
  );
  v.free(buf);
  v.close();
}
pool.close();
console.log(
  "seal = stream in 1 MiB chunks + flat SHA-256 (one thread) + host leaf hashes (workers) + copy + tree from (V)RAM; the GPU figures need `make gpu-check` on a GPU",
);
