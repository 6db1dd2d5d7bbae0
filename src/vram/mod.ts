/**
 * Sealed model shards in VRAM (issue #16): the entry the daemon calls. It picks the backend
 * (host memory under --mock, else the CUDA driver; without a driver, shards are unavailable and
 * the routes say why), loads the per-bridge key, and hands back the store, what the shard routes
 * need (src/api/vram.ts, through the bridge's façade), the metrics and the job gate. The key
 * never leaves this module: attestations are signed here.
 */
import process from "node:process";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { DEFAULTS } from "../config/defaults.ts";
import type { GpuInfo } from "../contract/info.ts";
import type { InventoryBackend } from "../inventory/types.ts";
import type { Lease } from "../lease/types.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import { attestation } from "./attest.ts";
import { VramAudit } from "./audit.ts";
import type { VramBackend } from "./backend.ts";
import { HostMemoryVram } from "./host-backend.ts";
import { renderVramMetrics } from "./metrics.ts";
import { ATTEST_INFO, deriveKey, loadSealSecret, SEAL_INFO } from "./seal-key.ts";
import { type Shard, ShardStore, VramError } from "./shards.ts";
import { ShardSweep } from "./sweep.ts";
import { TreePool } from "./tree-pool.ts";

export interface VramOptions {
  readonly stateDir: string;
  /** Keep the audit trail in the log only and the key in memory (tests). */
  readonly ephemeral?: boolean;
  readonly inventory: InventoryBackend;
  readonly gpus: () => readonly GpuInfo[];
  readonly lease: (id: string) => Lease | undefined;
  readonly workerId: string;
  readonly log: Logger;
  readonly onFailure?: (shard: Shard) => void;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Time for the sweep, the audit trail, seal and verification stamps and attestations. */
  readonly clock?: Clock;
}

export interface Vram {
  readonly store: ShardStore | null;
  /** Why `store` is null: the first line of the backend's error. */
  readonly unavailable?: string;
  /** The CUDA ordinal of a GPU (under --mock, its index); undefined: the driver does not know it. */
  ordinalOf(gpuId: string): number | undefined;
  /** Files named in a seal must resolve inside this folder. */
  readonly modelDir: string;
  /** The shard's signed attestation, issued now. */
  attest(shard: Shard): ReturnType<typeof attestation>;
  metrics(): string;
  /** The job gate: resolves null when the lease's jobs may run; null at once when it holds no shards. */
  gate(leaseId: string): Promise<{ detail: string; message: string } | null> | null;
  releaseLease(leaseId: string, reason: string): void;
  close(): void;
}

export async function startVram(o: VramOptions): Promise<Vram> {
  const env = o.env ?? process.env;
  const clock = o.clock ?? systemClock;
  const now = () => clock.now();
  const threads = Math.max(0, Math.min(DEFAULTS.vramMaxThreads, Number(env.GPU_BRIDGE_VRAM_THREADS ?? availableParallelism())));
  const secret = o.ephemeral ? new Uint8Array(randomBytes(32)) : loadSealSecret(join(o.stateDir, "vram-seal.key"));
  const sealKey = deriveKey(secret, SEAL_INFO);
  const attestKey = deriveKey(secret, ATTEST_INFO);
  secret.fill(0);
  const mock = o.inventory.name === "mock";
  const ordinalOf = mock
    ? (id: string) => {
      const i = o.gpus().findIndex((g) => g.id === id);
      return i < 0 ? undefined : i;
    }
    : (id: string) => o.inventory.cudaOrdinal?.(id);
  let pool: TreePool | null = null;
  let backend: VramBackend | null = null;
  let unavailable: string | undefined;
  try {
    pool = TreePool.create(threads);
    if (mock) {
      backend = new HostMemoryVram((ordinal) => (o.gpus()[ordinal]?.memory_mb ?? 0) * 1048576, pool);
    } else {
      const [{ CudaVram }, { CudaVramBackend }, { cudaCandidates, loadFfiAdapter }, { TREE_PTX }] = await Promise.all([
        import("../../ffi/cuda-vram.ts"),
        import("./cuda-backend.ts"),
        import("../../ffi/loader.ts"),
        import("./ptx/generated/tree-ptx.ts"),
      ]);
      backend = new CudaVramBackend(CudaVram.open(await loadFfiAdapter(), cudaCandidates(env), TREE_PTX), pool);
    }
  } catch (error) {
    unavailable = (error as Error).message.split("\n")[0];
    o.log.warn(`sealed shards are unavailable: ${unavailable}`);
  }
  const audit = new VramAudit(o.ephemeral ? null : join(o.stateDir, "vram-audit.jsonl"), o.log, now);
  const store = backend === null ? null : new ShardStore({
    backend,
    audit,
    key: sealKey,
    workerId: o.workerId,
    lease: o.lease,
    ordinalOf,
    pool: pool!,
    now,
    ...(o.onFailure !== undefined && { onFailure: o.onFailure }),
    ...(env.GPU_BRIDGE_VRAM_VERIFY === "cpu" || env.GPU_BRIDGE_VRAM_VERIFY === "gpu" ? { verifyPath: env.GPU_BRIDGE_VRAM_VERIFY } : {}),
    ...(env.GPU_BRIDGE_VRAM_GATE === "sampled" && { gateMode: "sampled" as const }),
  });
  // Sampled gating checks a few leaves per job; the sweep verifies one whole shard per interval.
  const sweepMs = Number(env.GPU_BRIDGE_VRAM_SWEEP_MS ?? (env.GPU_BRIDGE_VRAM_GATE === "sampled" ? DEFAULTS.vramSampledSweepMs : 0));
  const sweep = store !== null && sweepMs > 0 ? new ShardSweep(store, clock, sweepMs) : null;
  sweep?.start();
  if (store !== null) {
    void pool!.liveWorkers().then((n) =>
      o.log.info(
        `sealed shards: ${backend!.note}; the CPU tree path runs on ${
          n > 0 ? `${n} worker thread(s)` : "the main thread (no worker thread loaded)"
        }`,
      )
    );
  }
  const vramGpus = () =>
    o.gpus().flatMap((g) => {
      const ordinal = ordinalOf(g.id);
      return ordinal === undefined ? [] : [{ gpu_id: g.id, ordinal }];
    });
  return {
    store,
    ...(unavailable !== undefined && { unavailable }),
    ordinalOf,
    modelDir: env.GPU_BRIDGE_MODEL_DIR ?? join(o.stateDir, DEFAULTS.vramModelDir),
    attest: (shard) => {
      if (store === null) throw new VramError("unavailable", `Cannot attest ${shard.shard_id}: ${unavailable ?? "no VRAM backend"}`);
      return attestation(shard, store.backend, attestKey, now());
    },
    metrics: () => (store === null ? "" : renderVramMetrics(store, vramGpus())),
    gate: (leaseId) => (store === null || store.list(leaseId).length === 0 ? null : store.gate(leaseId)),
    releaseLease: (leaseId, reason) => void store?.releaseLease(leaseId, reason),
    close() {
      sweep?.stop();
      store?.close();
      backend?.close();
      pool?.close();
      audit.close();
    },
  };
}
