/**
 * Tensor-parallel sets (src/vram/sets.ts, set-check.ts) on host memory (--mock): the set's
 * execute-check with a full verification of every member (--verify-max-age-ms 0), members side by
 * side, against the same members checked one after another; and what reading a set costs (its
 * state and set digest) as it grows. Run with `make bench-vram-sets` (SETS_BENCH_MB=N per member,
 * default 64; SETS_BENCH_MEMBERS=N, default 4; GPU_BRIDGE_VRAM_THREADS=N tree threads, default 2).
 */
import process from "node:process";
import type { Lease } from "../src/lease/types.ts";
import { createLogger } from "../src/util/log.ts";
import { VramAudit } from "../src/vram/audit.ts";
import { executeCheck } from "../src/vram/execute-check.ts";
import { HostMemoryVram } from "../src/vram/host-backend.ts";
import { deriveKey } from "../src/vram/seal-key.ts";
import { executeCheckSet } from "../src/vram/set-check.ts";
import { type ShardSource, ShardStore } from "../src/vram/shards.ts";
import { TreePool } from "../src/vram/tree-pool.ts";
import { quantile } from "./quantile.ts";
import { activeLease } from "../test/helpers.ts";

const MB = Number(process.env.SETS_BENCH_MB ?? 64);
const MEMBERS = Number(process.env.SETS_BENCH_MEMBERS ?? 4);
const log = createLogger({ level: "error", write: () => {} });
const pool = TreePool.create(Number(process.env.GPU_BRIDGE_VRAM_THREADS ?? 2));
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;
const leaseOn = (i: number): Lease => activeLease({ id: `L${i}`, gpu_id: `GPU-${i % 2}`, worker_id: "bench", mem_mb: 2 ** 20 });
const leases = new Map<string, Lease>();
/** A store on host memory over `leases`, GPU-<n> being ordinal n. */
const newStore = () =>
  new ShardStore({
    backend: new HostMemoryVram(() => 2 ** 40, pool),
    audit: new VramAudit(null, log),
    key: deriveKey("k", "k"),
    lease: (id) => leases.get(id),
    ordinalOf: (g) => Number(g.slice(4)),
    pool,
  });
const store = newStore();
/** `n` bytes that differ per member (`salt`), streamed in 8 MiB pieces. */
const bytes = (n: number, salt: number): ShardSource => {
  const chunk = new Uint8Array(Math.min(n, 8 << 20));
  for (let i = 0; i < chunk.length; i += 4096) chunk[i] = ((i >> 12) + salt) & 0xff;
  chunk[0] = salt & 0xff;
  chunk[1] = salt >> 8;
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
console.log(`vram-sets bench: ${MEMBERS} members of ${MB} MiB on 2 mock GPUs, Bun ${process.versions.bun}`);

// 1. The set's execute-check, every member verified in full, against the members one by one.
for (let i = 0; i < MEMBERS; i++) {
  leases.set(`L${i}`, leaseOn(i));
  await store.seal(`L${i}`, bytes(MB << 20, i), { shard_id: `m-${i}`, set_id: "bench", shard_index: i, total_shards: MEMBERS });
}
const o = { maxAgeMs: 0, mode: "full" as const, now: () => Date.now() };
const set: number[] = [];
const serial: number[] = [];
for (let run = 0; run < 5; run++) {
  set.push(
    await time(async () => {
      const r = await executeCheckSet(store, "bench", o);
      if (!r.ok) throw new Error(r.message);
    }),
  );
  serial.push(
    await time(async () => {
      for (let i = 0; i < MEMBERS; i++) if (!(await executeCheck(store, `m-${i}`, o)).ok) throw new Error(`m-${i}`);
    }),
  );
}
console.log(
  `execute-check of the set (${MEMBERS} x ${MB} MiB, full): p50 ${fmt(quantile(set, 0.5))}; ` +
    `the members one after another: p50 ${fmt(quantile(serial, 0.5))} (5 runs each)`,
);
store.close();

// 2. Reading a set (state and set digest) as it grows: tiny members, one lease each.
for (const n of [16, 256, 1024]) {
  const s = newStore();
  for (let i = 0; i < n; i++) {
    leases.set(`L${i}`, leaseOn(i));
    await s.seal(`L${i}`, bytes(4096, i), { shard_id: `t-${i}`, set_id: "grow", shard_index: i, total_shards: n });
  }
  const runs: number[] = [];
  for (let k = 0; k < 200; k++) {
    const t0 = performance.now();
    if (s.sets.status("grow")?.state !== "ready") throw new Error("not ready");
    runs.push(performance.now() - t0);
  }
  console.log(`set state and digest, ${n} members: p50 ${fmt(quantile(runs, 0.5))}, p99 ${fmt(quantile(runs, 0.99))} (200 reads)`);
  s.close();
}
pool.close();
