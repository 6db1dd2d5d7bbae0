/**
 * Sealed model shards in VRAM: the entry the daemon calls. It picks the backend
 * (host memory under --mock, else the CUDA driver; without a driver, shards are unavailable and
 * the routes say why), loads the per-bridge key, and hands back the store, what the shard routes
 * need (src/api/vram.ts, through the bridge's façade), the metrics and the job gate. The keys
 * never leave this module: attestations are signed here. The VRAM-only policy is checked at
 * start-up, before this resolves (so before the API answers), and then every policyCheckMs.
 */
import process from "node:process";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { DEFAULTS, type VerifyMode } from "../config/defaults.ts";
import type { GpuInfo } from "../contract/info.ts";
import type { InventoryBackend } from "../inventory/types.ts";
import type { Lease } from "../lease/types.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";
import { attestation, setAttestation } from "./attest.ts";
import { type AuditEvent, VramAudit } from "./audit.ts";
import type { VramBackend } from "./backend.ts";
import { HostMemoryVram } from "./host-backend.ts";
import { renderVramMetrics } from "./metrics.ts";
import { deriveKey, loadSealSecret, SEAL_INFO, SHARE_INFO } from "./seal-key.ts";
import { type AttestationKeyView, type AttestSigner, ephemeralSigner, loadAttestSigner } from "./attest-key.ts";
import { PolicyTimer } from "./policy.ts";
import { type ExecuteCheck, executeCheck } from "./execute-check.ts";
import { executeCheckSet, type SetExecuteCheck } from "./set-check.ts";
import { setView, type ShardSetStatus, type ShardSetView } from "./sets.ts";
import { ShareHub } from "./share.ts";
import type { UnixShare } from "../../ffi/unix-share.ts";
import { type Shard, ShardStore, VramError } from "./shards.ts";
import { ShardSweep } from "./sweep.ts";
import { type OperandRead, ownShard, readOperand } from "./operand.ts";
import { TreePool } from "./tree-pool.ts";

export interface VramOptions {
  readonly stateDir: string;
  /** Keep the audit trail in the log only and the key in memory (tests). */
  readonly ephemeral?: boolean;
  readonly inventory: InventoryBackend;
  readonly gpus: () => readonly GpuInfo[];
  readonly lease: (id: string) => Lease | undefined;
  readonly log: Logger;
  readonly onFailure?: (shard: Shard) => void;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Told of every VRAM audit event (the bridge's record of changes). */
  readonly onAudit?: (event: AuditEvent, fields: Readonly<Record<string, unknown>>) => void;
  /** Time for the sweep, the audit trail, seal and verification stamps and attestations. */
  readonly clock?: Clock;
  /** `--verify-max-age-ms` (default DEFAULTS.verifyMaxAgeMs). */
  readonly verifyMaxAgeMs?: number;
  /**
   * `--verify-mode` and `--verify-sweep-ms` (the option parser resolved them, falling back on
   * $GPU_BRIDGE_VRAM_GATE and $GPU_BRIDGE_VRAM_SWEEP_MS); absent: those variables, read here.
   */
  readonly verify?: { readonly mode: VerifyMode; readonly sweepMs: number };
  /** `--vram-policy-check-ms`: the VRAM-only policy is checked again this often; 0: at start-up only (default DEFAULTS.vramPolicyCheckMs). */
  readonly policyCheckMs?: number;
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
  /** The public half of the attestation key (`GET /v1/vram/attestation-key`). */
  attestationKey(): AttestationKeyView;
  metrics(): string;
  /** The job gate: resolves null when the lease's jobs may run; null at once when it holds no shards. */
  gate(leaseId: string): Promise<{ detail: string; message: string } | null> | null;
  /** A sealed shard of lease `leaseId` (undefined for an unknown id and another lease's alike): what its jobs may name. */
  shardOf(leaseId: string, shardId: string): Shard | undefined;
  /** A job's operand `b` from shard `shardId` of its lease: verified in the gate's mode, copied, checked against the seal (operand.ts). */
  jobOperand(leaseId: string, shardId: string, map?: boolean): Promise<OperandRead>;
  /** Hands the lease's shards out over its socket (share.ts); null when sharing is off on this bridge. */
  readonly share: ShareHub | null;
  /** "May I execute now?" for one shard (execute-check.ts). */
  executeCheck(shardId: string): Promise<ExecuteCheck>;
  /** Tensor-parallel set `setId` now (sets.ts), judged against --verify-max-age-ms; undefined when no member is held. */
  set(setId: string): ShardSetView | undefined;
  /** The set's signed attestation; null while indexes are missing. */
  attestSet(set: ShardSetStatus): ReturnType<typeof setAttestation>;
  /** "May I execute now?" for every member of a set (set-check.ts); an unknown set is a 404. */
  executeCheckSet(setId: string): Promise<SetExecuteCheck>;
  /** A live lease's socket and token appear (its grant, or the bridge's start). */
  openLease(lease: Lease): Promise<void>;
  releaseLease(leaseId: string, reason: string): void;
  close(): void;
}

/**
 * Starts sealed shards: the keys, the backend (with its tree pool), the audit trail, the store,
 * and the sweep when sampled gating asks for one. Without a usable backend the store is null and
 * `unavailable` says why; a step that throws ends what the steps before it started.
 */
export async function startVram(o: VramOptions): Promise<Vram> {
  const env = o.env ?? process.env;
  const clock = o.clock ?? systemClock;
  const verify = o.verify ?? verifyFromEnv(env);
  const keys = loadKeys(o, clock);
  const ordinalOf = ordinalLookup(o);
  const libc = await openLibc();
  const { pool, backend, unavailable } = await openBackend(o, env, libc);
  let audit: VramAudit | null = null;
  let share: ShareHub | null = null;
  try {
    // With onAudit the bridge's record has every event, and its audit trail keeps them: one trail.
    const file = o.ephemeral || o.onAudit !== undefined ? null : join(o.stateDir, "vram-audit.jsonl");
    audit = new VramAudit(file, o.log, () => clock.now());
    audit.onRecord = o.onAudit ?? null;
    const store = backend === null ? null : new ShardStore({
      backend,
      audit,
      key: keys.seal,
      lease: o.lease,
      ordinalOf,
      pool: pool!,
      clock,
      onFailure: (shard) => {
        share?.revoke(shard, "the shard failed verification");
        o.onFailure?.(shard);
      },
      onRelease: (shard, reason) => share?.revoke(shard, reason),
      ...(env.GPU_BRIDGE_VRAM_VERIFY === "cpu" || env.GPU_BRIDGE_VRAM_VERIFY === "gpu" ? { verifyPath: env.GPU_BRIDGE_VRAM_VERIFY } : {}),
      ...(verify.mode === "sampled" && { gateMode: "sampled" as const }),
    });
    const sweep = startSweep(store, verify.sweepMs, clock, o.log);
    const policy = startPolicyCheck(o, store, ordinalOf, clock);
    if (store !== null) announce(o.log, backend!, pool!);
    const inputs: FacadeInputs = { o, env, mode: verify.mode, clock, store, unavailable, ordinalOf, signer: keys.signer, share: null };
    const facade = vramFacade(inputs, () => {
      sweep?.stop();
      policy?.stop();
      share?.close();
      store?.close();
      backend?.close();
      pool?.close();
      audit!.close();
    });
    if (store !== null) {
      share = new ShareHub({
        dir: join(o.stateDir, "share"),
        libc: libc.lib,
        ...(libc.lib === null && { unavailable: libc.why }),
        store,
        tokenKey: keys.share,
        attest: (shard) => facade.attest(shard),
        check: (id) => facade.executeCheck(id),
        audit,
        log: o.log,
        clock,
      });
      inputs.share = share;
    }
    return facade;
  } catch (error) {
    backend?.close();
    pool?.close();
    audit?.close();
    throw error;
  }
}

/**
 * The seal and share keys, derived from the per-bridge secret, and the attestation signer (an
 * Ed25519 key pair of its own: attest-key.ts); in memory only when ephemeral.
 */
function loadKeys(o: VramOptions, clock: Clock): { seal: Uint8Array; share: Uint8Array; signer: AttestSigner } {
  let signer: AttestSigner;
  if (o.ephemeral) {
    signer = ephemeralSigner(clock.now());
    o.log.info(`attestations are signed with an ephemeral key ${signer.keyId}: no state folder keeps it, so it ends with this run`);
  } else {
    signer = loadAttestSigner(join(o.stateDir, "vram-attest.key"), clock.now());
  }
  const secret = o.ephemeral ? new Uint8Array(randomBytes(32)) : loadSealSecret(join(o.stateDir, "vram-seal.key"));
  const keys = { seal: deriveKey(secret, SEAL_INFO), share: deriveKey(secret, SHARE_INFO), signer };
  secret.fill(0);
  return keys;
}

/**
 * The start-up check of the VRAM-only policy (a probe allocation on each GPU the driver knows),
 * run now, and the timer that checks every sealed shard again; null without a store, or with
 * an interval of 0 (start-up only).
 */
function startPolicyCheck(
  o: VramOptions,
  store: ShardStore | null,
  ordinalOf: (gpuId: string) => number | undefined,
  clock: Clock,
): PolicyTimer | null {
  if (store === null) return null;
  const ordinals = o.gpus().flatMap((g) => {
    const n = ordinalOf(g.id);
    return n === undefined ? [] : [n];
  });
  store.checkPolicy("startup", ordinals);
  const ms = o.policyCheckMs ?? DEFAULTS.vramPolicyCheckMs;
  if (!(ms > 0)) return null;
  const timer = new PolicyTimer(store, clock, ms, o.log);
  timer.start();
  return timer;
}

/** A GPU's CUDA ordinal: under --mock its index in the inventory, else what the driver says. */
function ordinalLookup(o: VramOptions): (gpuId: string) => number | undefined {
  if (o.inventory.name !== "mock") return (id) => o.inventory.cudaOrdinal?.(id);
  return (id) => {
    const i = o.gpus().findIndex((g) => g.id === id);
    return i < 0 ? undefined : i;
  };
}

/**
 * Host memory under --mock, else the CUDA driver with the tree kernels. A backend that cannot
 * start leaves shards unavailable (the first line of its error says why); the pool stays for
 * nothing then, and is closed.
 */
async function openBackend(
  o: VramOptions,
  env: Readonly<Record<string, string | undefined>>,
  libc: { lib: UnixShare | null; why: string },
): Promise<{ pool: TreePool | null; backend: VramBackend | null; unavailable?: string }> {
  const threads = Math.max(0, Math.min(DEFAULTS.vramMaxThreads, Number(env.GPU_BRIDGE_VRAM_THREADS ?? availableParallelism())));
  let pool: TreePool | null = null;
  try {
    pool = TreePool.create(threads);
    if (o.inventory.name === "mock") {
      const totals = (ordinal: number) => (o.gpus()[ordinal]?.memory_mb ?? 0) * 1048576;
      return { pool, backend: new HostMemoryVram(totals, pool, libc.lib, libc.why) };
    }
    const [{ CudaVram }, { CudaVramBackend }, { cudaCandidates, loadFfiAdapter }, { TREE_PTX }] = await Promise.all([
      import("../../ffi/cuda-vram.ts"),
      import("./cuda-backend.ts"),
      import("../../ffi/loader.ts"),
      import("./ptx/generated/tree-ptx.ts"),
    ]);
    return { pool, backend: new CudaVramBackend(CudaVram.open(await loadFfiAdapter(), cudaCandidates(env), TREE_PTX), pool) };
  } catch (error) {
    pool?.close();
    const unavailable = (error as Error).message.split("\n")[0]!;
    o.log.warn(`sealed shards are unavailable: ${errorText(error)}`);
    return { pool: null, backend: null, unavailable };
  }
}

/** libc's descriptor calls for sharing (ffi/unix-share.ts); where they cannot load, why. */
async function openLibc(): Promise<{ lib: UnixShare | null; why: string }> {
  try {
    const [{ loadFfiAdapter }, { UnixShare }] = await Promise.all([import("../../ffi/loader.ts"), import("../../ffi/unix-share.ts")]);
    return { lib: UnixShare.open(await loadFfiAdapter()), why: "" };
  } catch (error) {
    return { lib: null, why: `libc's memfd_create, sendmsg and SO_PEERCRED cannot be used: ${(error as Error).message.split("\n")[0]}` };
  }
}

/** The verification mode and sweep as the variables alone set them (a caller without the option parser's). */
export function verifyFromEnv(env: Readonly<Record<string, string | undefined>>): { mode: VerifyMode; sweepMs: number } {
  const mode: VerifyMode = env.GPU_BRIDGE_VRAM_GATE === "sampled" ? "sampled" : DEFAULTS.verifyMode;
  const sweepMs = Number(env.GPU_BRIDGE_VRAM_SWEEP_MS ?? (mode === "sampled" ? DEFAULTS.vramSampledSweepMs : 0));
  return { mode, sweepMs: sweepMs > 0 ? sweepMs : 0 };
}

/** Sampled gating checks a few leaves per job; the sweep verifies one whole shard per interval. */
function startSweep(store: ShardStore | null, sweepMs: number, clock: Clock, log: Logger): ShardSweep | null {
  if (store === null || !(sweepMs > 0)) return null;
  const sweep = new ShardSweep(store, clock, sweepMs, log);
  sweep.start();
  return sweep;
}

/** One INFO line once the pool's workers have loaded (or failed to): where the CPU tree path runs. */
function announce(log: Logger, backend: VramBackend, pool: TreePool): void {
  void pool.liveWorkers().then((n) =>
    log.info(
      `sealed shards: ${backend.note}; the CPU tree path runs on ${
        n > 0 ? `${n} worker thread(s)` : "the main thread (no worker thread loaded)"
      }`,
    )
  );
}

/** What `vramFacade` builds the bridge's view from. */
interface FacadeInputs {
  readonly o: VramOptions;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly mode: VerifyMode;
  readonly clock: Clock;
  readonly store: ShardStore | null;
  readonly unavailable: string | undefined;
  readonly ordinalOf: (gpuId: string) => number | undefined;
  readonly signer: AttestSigner;
  /** Set once the hub exists (it needs the façade's attest and execute-check). */
  share: ShareHub | null;
}

/** The bridge's view of sealed shards; the attestation key stays in this closure. */
function vramFacade(f: FacadeInputs, close: () => void): Vram {
  const { o, store, unavailable, ordinalOf } = f;
  const checkOptions = () => ({
    maxAgeMs: o.verifyMaxAgeMs ?? DEFAULTS.verifyMaxAgeMs,
    mode: f.mode,
    now: () => f.clock.now(),
  });
  const vramGpus = () =>
    o.gpus().flatMap((g) => {
      const ordinal = ordinalOf(g.id);
      return ordinal === undefined ? [] : [{ gpu_id: g.id, ordinal }];
    });
  return {
    store,
    ...(unavailable !== undefined && { unavailable }),
    ordinalOf,
    modelDir: f.env.GPU_BRIDGE_MODEL_DIR ?? join(o.stateDir, DEFAULTS.vramModelDir),
    attest: (shard) => {
      if (store === null) throw new VramError("unavailable", `Cannot attest ${shard.shard_id}: ${unavailable ?? "no VRAM backend"}`);
      return attestation(shard, store.backend, f.signer, f.clock.now());
    },
    attestationKey: () => f.signer.view(),
    metrics: () => (store === null ? "" : renderVramMetrics(store, vramGpus())),
    gate: (leaseId) => (store === null || store.list(leaseId).length === 0 ? null : store.gate(leaseId)),
    shardOf: (leaseId, shardId) => (store === null ? undefined : ownShard(store, leaseId, shardId)),
    jobOperand: async (leaseId, shardId, map) =>
      store === null
        ? { ok: false, detail: "NOT-SEALED", message: `shard ${shardId}: ${unavailable ?? "no VRAM backend"}` }
        : await readOperand(store, leaseId, shardId, f.mode, map),
    get share() {
      return f.share;
    },
    executeCheck: (id) => {
      if (store === null) throw new VramError("unavailable", `Cannot check ${id}: ${unavailable ?? "no VRAM backend"}`);
      return executeCheck(store, id, checkOptions());
    },
    set: (setId) => {
      const status = store?.sets.status(setId);
      return status === undefined ? undefined : setView(status, f.clock.now(), checkOptions().maxAgeMs);
    },
    attestSet: (set) => setAttestation(set, f.signer, f.clock.now()),
    executeCheckSet: (setId) => {
      if (store === null) throw new VramError("unavailable", `Cannot check set ${setId}: ${unavailable ?? "no VRAM backend"}`);
      return executeCheckSet(store, setId, checkOptions());
    },
    openLease: async (lease) => await f.share?.openLease(lease),
    releaseLease: (leaseId, reason) => {
      store?.releaseLease(leaseId, reason);
      f.share?.closeLease(leaseId);
    },
    close,
  };
}
