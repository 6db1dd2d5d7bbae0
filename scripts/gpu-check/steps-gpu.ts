/**
 * The steps that run kernels on the GPU: the two job kernels (through `run-kernel` children, as
 * the bridge runs them) with answers known in advance, the tree kernels as shipped (portable PTX)
 * against the same body under the newest header this driver and GPU take, and sealed shards:
 * seal, verify on the GPU tree, the CPU tree and sampled, and one byte changed in VRAM caught.
 */
import { availableParallelism } from "node:os";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import type { FfiAdapter } from "../../ffi/types.ts";
import { maxPtxIsa, minIsaForTarget, parsePtxHeader, withHeader } from "../../ffi/ptx-header.ts";
import { builtinPtx } from "../../src/job/ptx/builtin.ts";
import { ProcessRunner } from "../../src/job/runner.ts";
import type { Runtime } from "../../src/runtime/types.ts";
import { createLogger } from "../../src/util/log.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import { CudaVramBackend } from "../../src/vram/cuda-backend.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { ShardStore } from "../../src/vram/shards.ts";
import { hex, LEAF_BYTES, treeDigest } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import type { GpuCheckOptions } from "./args.ts";
import { fail, gbs, ms, pass, type Row } from "./table.ts";

const GiB = 1 << 30;
const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** vadd over 4 Mi elements and matmul 512 x 512, each checked element by element against exact answers. */
export async function jobKernelSteps(o: GpuCheckOptions, runtime: Runtime): Promise<Row[]> {
  const runner = new ProcessRunner({ ...runtime, self: () => [...o.bridge] });
  const n = 1 << 22;
  const a = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) (a[i] = i % 1000, a[n + i] = 2 * (i % 1000));
  const m = 512;
  const mm = new Float32Array(2 * m * m);
  for (let i = 0; i < m * m; i++) (mm[i] = 1, mm[m * m + i] = Math.floor(i / m) % 8); // A ones, B[k][j] = k mod 8
  const jobs = [
    {
      kernel: "vadd" as const,
      grid: [4096, 1, 1] as const,
      block: [256, 1, 1] as const,
      operands: a,
      expect: (i: number) => 3 * (i % 1000),
      count: n,
    },
    // every C[i][j] = sum over k of (k mod 8) = (m / 8) * 28
    {
      kernel: "matmul" as const,
      grid: [32, 32, 1] as const,
      block: [16, 16, 1] as const,
      operands: mm,
      expect: () => (m / 8) * 28,
      count: m * m,
    },
  ];
  const rows: Row[] = [];
  for (const j of jobs) {
    const step = `job kernel ${j.kernel} (known answer)`;
    try {
      const t0 = performance.now();
      const r = await runner.run({
        spec: { kernel: j.kernel, grid: [...j.grid], block: [...j.block] },
        runner: "cuda",
        memLimitBytes: GiB,
        payload: new TextEncoder().encode(builtinPtx(j.kernel)),
        operands: f32(j.operands),
        device: o.device,
      }, new AbortController().signal);
      const wall = performance.now() - t0;
      if (!r.ok) {
        rows.push(fail(step, `${r.detail}${r.message ? `: ${r.message}` : ""}`));
        continue;
      }
      const out = new Float32Array(r.output!.slice().buffer);
      let wrong = out.length === j.count ? -1 : 0;
      for (let i = 0; i < out.length && wrong < 0; i++) if (out[i] !== j.expect(i)) wrong = i;
      rows.push(
        wrong < 0 ? pass(step, `${ms(r.summary.duration_ms)} kernel, ${ms(wall)} wall`, `${j.count} results exact`) : fail(
          step,
          out.length !== j.count
            ? `${out.length} results, expected ${j.count}`
            : `element ${wrong} is ${out[wrong]}, expected ${j.expect(wrong)}`,
        ),
      );
    } catch (error) {
      rows.push(fail(step, (error as Error).message));
    }
  }
  return rows;
}

/**
 * Bytes that differ in every leaf: one pseudo-random chunk, with each leaf's number written into
 * its first four bytes. `at(off, dst)` fills dst with the bytes from `off` (a multiple of the leaf size).
 */
function content(
  bytes: number,
  chunkBytes: number,
): { chunks: () => AsyncGenerator<Uint8Array>; at: (off: number, dst: Uint8Array) => void } {
  const base = new Uint8Array(chunkBytes);
  const words = new Uint32Array(base.buffer, 0, chunkBytes >>> 2);
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) words[i] = x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
  const at = (off: number, dst: Uint8Array) => {
    dst.set(base.subarray(0, dst.length));
    for (let p = 0; p < dst.length; p += LEAF_BYTES) {
      const id = (off + p) / LEAF_BYTES;
      for (let k = 0; k < 4 && p + k < dst.length; k++) dst[p + k] = (id >>> (8 * k)) & 0xff;
    }
  };
  const chunk = new Uint8Array(chunkBytes);
  async function* chunks() {
    for (let off = 0; off < bytes; off += chunkBytes) {
      const n = Math.min(chunkBytes, bytes - off);
      at(off, chunk.subarray(0, n));
      yield chunk.subarray(0, n);
    }
  }
  return { chunks, at };
}

const best = (runs: number, fn: () => void) => {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
};

/**
 * The tree kernels as shipped (ISA 6.0 / sm_50) and the same body under this GPU's own target and
 * the driver's newest ISA: both must load and agree with the host's digest; the timings show
 * whether the newer header buys anything (ptxas gives both the same machine code).
 */
export function ptxCompareStep(o: GpuCheckOptions, ffi: FfiAdapter, candidates: string[], portable: CudaVram, gib: number): Row {
  const step = "tree kernels: portable vs native PTX";
  const bytes = Math.round(gib * GiB);
  const sm = portable.attribute(o.device, 75) * 10 + portable.attribute(o.device, 76);
  const driver = portable.driverVersion();
  const isa = maxPtxIsa(driver);
  const needed = minIsaForTarget(sm);
  if (isa === null || needed === null || isa < needed) {
    return fail(
      step,
      `cannot build a native header for sm_${sm} on driver CUDA ${driver}: ISA ${isa} (sm_${sm} needs ${
        needed ?? "an ISA this script does not know"
      })`,
    );
  }
  const nativePtx = withHeader(TREE_PTX, isa, sm);
  const native = CudaVram.open(ffi, candidates, nativePtx);
  const data = new Uint8Array(bytes);
  content(bytes, bytes).at(0, data);
  const bufs = [portable.alloc(o.device, bytes), native.alloc(o.device, bytes)] as const;
  try {
    portable.write(bufs[0], 0, data);
    native.write(bufs[1], 0, data);
    const host = hex(treeDigest(data));
    const digests = [hex(portable.treeDigest(bufs[0], bytes, LEAF_BYTES)), hex(native.treeDigest(bufs[1], bytes, LEAF_BYTES))];
    const times = [
      best(3, () => portable.treeDigest(bufs[0], bytes, LEAF_BYTES)),
      best(3, () => native.treeDigest(bufs[1], bytes, LEAF_BYTES)),
    ];
    const p = parsePtxHeader(TREE_PTX);
    const figure = `${ms(times[0]!)} vs ${ms(times[1]!)} (${gbs(bytes, times[0]!)} vs ${gbs(bytes, times[1]!)})`;
    const what = `${gib} GiB; portable ISA ${p.version} ${p.target}, native ISA ${Math.floor(isa / 10)}.${isa % 10} sm_${sm}`;
    if (digests[0] !== host || digests[1] !== host) return fail(step, `${what}: digests ${digests.join(", ")}, host ${host}`, figure);
    return pass(step, figure, `${what}; both equal the host's digest`);
  } catch (error) {
    return fail(step, (error as Error).message);
  } finally {
    portable.free(bufs[0]);
    native.free(bufs[1]);
    native.close();
  }
}

/** Seal `gib` GiB, verify it three ways, change one byte in VRAM and verify again. */
export async function shardSteps(o: GpuCheckOptions, vram: CudaVram, pool: TreePool, gib: number): Promise<Row[]> {
  const rows: Row[] = [];
  const bytes = Math.round(gib * GiB);
  const backend = new CudaVramBackend(vram, pool);
  const lease = {
    id: `check-${gib}`,
    gpu_id: "GPU",
    worker_id: "gpu-check",
    mem_mb: Math.ceil(bytes / 1048576),
    streams: 1,
    ttl_s: 600,
    priority: 0,
    state: "ACTIVE" as const,
    granted_at: 0,
    expires_at: 1e15,
  };
  const store = new ShardStore({
    backend,
    // The corruption below is on purpose: its CRITICAL audit line would only alarm; the table says it.
    audit: new VramAudit(null, createLogger({ level: "error", write: () => {} })),
    key: deriveKey("gpu-check", "gpu-check"),
    lease: () => lease,
    ordinalOf: () => o.device,
    pool,
  });
  const size = `${gib} GiB`;
  try {
    const t0 = performance.now();
    const CHUNK = 64 << 20;
    const bytesOf = content(bytes, CHUNK);
    const { shard } = await store.seal(lease.id, { length: bytes, chunks: bytesOf.chunks() }, { shard_id: `check-${bytes}` });
    const sealMs = performance.now() - t0;
    rows.push(
      pass(
        `seal ${size}`,
        `${ms(sealMs)} (${gbs(bytes, sealMs)})`,
        `tree ${shard.tree_digest.slice(0, 16)}…, ${shard.evidence.pointer?.memory_type ?? "unknown"} memory`,
      ),
    );
    let gpuBest = Infinity;
    for (let i = 0; i < 3; i++) {
      const r = await store.verify(shard.shard_id, "full", undefined, "gpu");
      if (!r.ok) return [...rows, fail(`verify ${size} GPU tree`, r.reason)];
      if (r.path !== "gpu") {
        return [
          ...rows,
          fail(`verify ${size} GPU tree`, `ran on the CPU: ${backend.kernelRefusal(o.device) ?? "the GPU path was not taken"}`),
        ];
      }
      gpuBest = Math.min(gpuBest, r.tree_ms);
    }
    rows.push(pass(`verify ${size} GPU tree`, `${ms(gpuBest)} (${gbs(bytes, gpuBest)})`, "best of 3, tree only"));
    const cpu = await store.verify(shard.shard_id, "full", undefined, "cpu");
    rows.push(
      cpu.ok
        ? pass(
          `verify ${size} CPU tree`,
          `${ms(cpu.tree_ms)} (${gbs(bytes, cpu.tree_ms)})`,
          `device-to-host copies + ${pool.threads} threads`,
        )
        : fail(`verify ${size} CPU tree`, cpu.reason),
    );
    const sampled = await store.verify(shard.shard_id, "sampled", 16);
    rows.push(
      sampled.ok
        ? pass(`verify ${size} sampled`, ms(sampled.total_ms), `${sampled.leaves_checked} leaves`)
        : fail(`verify ${size} sampled`, sampled.reason),
    );
    const at = Math.min(bytes - 1, Math.floor(bytes / 2) + 12345);
    // The byte there, flipped: a write of the value already there would change nothing.
    const around = new Uint8Array(Math.min(CHUNK, bytes - Math.floor(at / CHUNK) * CHUNK));
    bytesOf.at(Math.floor(at / CHUNK) * CHUNK, around);
    store.corrupt(shard.shard_id, at, around[at % CHUNK]! ^ 0xff);
    const bad = await store.verify(shard.shard_id, "full", undefined, "gpu");
    rows.push(
      bad.ok
        ? fail(`one byte changed, ${size}`, `verify passed after cuMemsetD8_v2 at offset ${at}`)
        : pass(`one byte changed, ${size}`, ms(bad.total_ms), `caught at offset ${at}: ${bad.reason}`),
    );
  } catch (error) {
    rows.push(fail(`seal ${size}`, (error as Error).message));
  } finally {
    store.close();
  }
  return rows;
}

export const cpuThreads = () => Math.min(16, availableParallelism());
