/**
 * Sharing sealed shards (src/vram/share.ts, clients/python/): the hand-out from request to a
 * mapped read-only pointer in a Python consumer (p50/p99), the execute-check at SHARE_BENCH_MB
 * (default 1024 MiB) under the full gate (a full verification each time: --verify-max-age-ms 0)
 * and the sampled gate (8 leaves), and what exportable memory costs a seal: memfd against a plain
 * array (--mock), cuMemCreate against cuMemAlloc_v2 (fake libcuda; its copies are host memcpy, so
 * only the allocation's own cost shows). Run with `make bench-vram` (after bench/vram.ts).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { bunFfi } from "../ffi/bun.ts";
import { CudaVram } from "../ffi/cuda-vram.ts";
import { UnixShare } from "../ffi/unix-share.ts";
import { createLogger } from "../src/util/log.ts";
import { systemClock } from "../src/util/clock.ts";
import { VramAudit } from "../src/vram/audit.ts";
import type { VramBackend } from "../src/vram/backend.ts";
import { CudaVramBackend } from "../src/vram/cuda-backend.ts";
import { executeCheck } from "../src/vram/execute-check.ts";
import { HostMemoryVram } from "../src/vram/host-backend.ts";
import { TREE_PTX } from "../src/vram/ptx/generated/tree-ptx.ts";
import { deriveKey } from "../src/vram/seal-key.ts";
import { ShareHub } from "../src/vram/share.ts";
import { type ShardSource, ShardStore } from "../src/vram/shards.ts";
import { TreePool } from "../src/vram/tree-pool.ts";
import { quantile } from "./quantile.ts";
import { activeLease } from "../test/helpers.ts";

const MB = Number(process.env.SHARE_BENCH_MB ?? 1024);
const HANDOUTS = Number(process.env.SHARE_BENCH_N ?? 200);
const CTL = process.env.FAKE_GPU_CTL;
const FAKE_CUDA = join(import.meta.dir, "..", "mock", "native", "build", "libcuda.so.1");
const dir = join(import.meta.dir, "..", "build", `share-bench-${process.pid}`);
mkdirSync(dir, { recursive: true });
const log = createLogger({ level: "error", write: () => {} });
const pool = TreePool.create(Number(process.env.GPU_BRIDGE_VRAM_THREADS ?? 2));
const lease = activeLease({ id: "L-bench", worker_id: "bench", mem_mb: 2 ** 20 });
const libc = UnixShare.open(bunFfi);
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

const storeOn = (backend: VramBackend) =>
  new ShardStore({ backend, audit: new VramAudit(null, log), key: deriveKey("k", "k"), lease: () => lease, ordinalOf: () => 0, pool });
const bytes = (n: number): ShardSource => {
  const chunk = new Uint8Array(8 << 20);
  for (let i = 0; i < chunk.length; i += 4096) chunk[i] = (i >> 12) & 0xff;
  return {
    length: n,
    chunks: (async function* () {
      for (let at = 0; at < n; at += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, n - at));
    })(),
  };
};
const time = async (fn: () => Promise<unknown>) => {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
};
console.log(`vram-share bench: ${MB} MiB shard, ${HANDOUTS} hand-outs, Bun ${process.versions.bun}`);

// 1. What exportable memory costs a seal (best of 3, 256 MiB or less).
{
  const n = Math.min(MB, 256) << 20;
  const seal = async (backend: VramBackend) => {
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const s = storeOn(backend);
      best = Math.min(best, await time(() => s.seal(lease.id, bytes(n), {})));
      s.close();
    }
    return best;
  };
  const memfd = await seal(new HostMemoryVram(() => 2 ** 40, pool, libc));
  const array = await seal(new HostMemoryVram(() => 2 ** 40, pool, null));
  console.log(`seal ${n >> 20} MiB, host memory (--mock): memfd (shareable) ${fmt(memfd)}, array ${fmt(array)}`);
  if (CTL !== undefined) {
    const cuda = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    writeFileSync(CTL, "");
    const vmm = await seal(new CudaVramBackend(cuda, pool));
    writeFileSync(CTL, "vmm=0\n");
    const plain = await seal(new CudaVramBackend(cuda, pool));
    writeFileSync(CTL, "");
    console.log(`seal ${n >> 20} MiB, fake libcuda: cuMemCreate (shareable) ${fmt(vmm)}, cuMemAlloc_v2 ${fmt(plain)}`);
    cuda.close();
  }
}

// 2. The execute-check on a sealed shard of MB MiB.
const store = storeOn(new HostMemoryVram(() => 2 ** 40, pool, libc));
const { shard } = await store.seal(lease.id, bytes(MB << 20), { shard_id: "bench-0" });
for (const [mode, maxAgeMs] of [["full", 0], ["sampled", 3_600_000]] as const) {
  const runs: number[] = [];
  for (let i = 0; i < (mode === "full" ? 3 : 200); i++) {
    runs.push(
      await time(async () => {
        const r = await executeCheck(store, shard.shard_id, { maxAgeMs, mode, now: () => Date.now() });
        if (!r.ok) throw new Error(r.message);
      }),
    );
  }
  console.log(
    `execute-check ${MB} MiB, ${mode}: p50 ${fmt(quantile(runs, 0.5))}, p99 ${fmt(quantile(runs, 0.99))} (${runs.length} checks)`,
  );
}

// 3. The hand-out: request sent to read-only pointer mapped, measured in the Python consumer.
const python = spawnSync("python3", ["-c", "import socket; socket.recv_fds"]).status === 0;
if (!python) console.log("hand-out: SKIPPED: python3 3.9+ not found");
else {
  const hub = new ShareHub({
    dir,
    libc,
    store,
    tokenKey: deriveKey("k", "share"),
    attest: () => ({}),
    check: async () => ({ ok: true }),
    audit: new VramAudit(null, log),
    log,
    clock: systemClock,
  });
  await hub.openLease(lease);
  const script = `
import json, sys, time
sys.path.insert(0, ${JSON.stringify(join(import.meta.dir, "..", "clients", "python"))})
from gpu_bridge_share import connect
out = []
with connect() as c:
    for _ in range(${HANDOUTS}):
        t0 = time.perf_counter()
        m = c.open("bench-0")
        out.append((time.perf_counter() - t0) * 1000)
        m.close()
print(json.dumps(out))
`;
  const child = spawn("python3", ["-c", script], {
    env: {
      ...process.env,
      GPU_BRIDGE_CUDA_LIB: FAKE_CUDA,
      GPU_BRIDGE_SHARE_SOCKET: hub.paths(lease.id).socket,
      GPU_BRIDGE_SHARE_TOKEN: hub.token(lease.id),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let text = "";
  child.stdout!.on("data", (d) => (text += String(d)));
  await new Promise((r) => child.on("exit", r));
  const ms = JSON.parse(text) as number[];
  console.log(
    `hand-out (socket to mapped read-only pointer, ${MB} MiB, fake libcuda import): p50 ${fmt(quantile(ms, 0.5))}, p99 ${
      fmt(quantile(ms, 0.99))
    }`,
  );
  hub.close();
}
store.close();
pool.close();
rmSync(dir, { recursive: true, force: true });
