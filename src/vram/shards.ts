/**
 * Sealed shards: model bytes copied into VRAM a lease holds, hashed while they stream in, hashed
 * again from VRAM (the tree digest: the copy is checked before it is sealed), signed, and
 * re-verified from VRAM on demand and before every job of the lease. A failed verification is
 * critical: audit record, metric, the shard marked failed, its lease's jobs refused, and a
 * status line in the VM (through `onFailure`).
 */
import { randomBytes } from "node:crypto";
import type { Lease } from "../lease/types.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import type { AuditEvent, VramAudit } from "./audit.ts";
import { VramAllocError, type VramBackend, type VramBuffer } from "./backend.ts";
import { hmac, sameMac, sealMessage } from "./seal-key.ts";
import { pointerView, pointerViolation, probeDevice } from "./policy.ts";
import { copyIn, hashSource, type ShardSource } from "./copy-in.ts";
import { DIGEST, SHARD_ID, unknownShard, VramError } from "./errors.ts";
import { checkSetOptions, ShardSets } from "./sets.ts";
import { hex, LEAF_BYTES, leafHash, TREE_ALG } from "./tree.ts";
import type { TreePool } from "./tree-pool.ts";
import { sha256Hex } from "../util/sha256.ts";

/** A shard as the bridge tracks it. */
export interface Shard {
  readonly shard_id: string;
  readonly lease_id: string;
  /** The lease's holder: every audit record of the shard names it. */
  readonly worker_id: string;
  readonly gpu_id: string;
  readonly gpu_device: number;
  readonly vram_bytes: number;
  readonly digest: string;
  readonly tree_digest: string;
  readonly sealed_at: number;
  /** A member of tensor-parallel set `set_id` (sets.ts): all three or none. */
  readonly set_id?: string;
  readonly shard_index?: number;
  readonly total_shards?: number;
  state: "SEALED" | "FAILED";
  failure: string | null;
  verified_at: number | null;
  /** The last full verification (the seal's own read-back counts): what an execute-check's freshness is measured by. */
  full_verified_at: number;
  verifications: number;
  /** When the allocation's pointer attributes were checked, and what they said. */
  readonly evidence: { checked_at: number; pointer: Record<string, unknown> | null };
}

/** What the copy into VRAM hashed: the flat SHA-256, the tree digest and the leaf hashes. */
type Copied = Awaited<ReturnType<typeof copyIn>>;

interface Held {
  readonly shard: Shard;
  readonly buf: VramBuffer;
  readonly signature: Uint8Array;
  /** Leaf hashes from the host stream (authenticated by the sealed tree digest), for sampled checks. */
  readonly leaves: Uint8Array;
}

export interface SealOptions {
  readonly shard_id?: string;
  readonly expected_digest?: string;
  /** Joins tensor-parallel set `set_id` as member `shard_index` of `total_shards` (sets.ts). */
  readonly set_id?: string;
  readonly shard_index?: number;
  readonly total_shards?: number;
}

export type VerifyResult =
  | {
    readonly ok: true;
    readonly shard_id: string;
    readonly mode: "full" | "sampled";
    readonly path: "gpu" | "cpu";
    readonly leaves_checked: number;
    readonly tree_ms: number;
    readonly signature_ms: number;
    readonly total_ms: number;
  }
  | {
    readonly ok: false;
    readonly shard_id: string;
    readonly reason: string;
    readonly mode: "full" | "sampled";
    readonly total_ms: number;
  };

export interface ShardStoreOptions {
  readonly backend: VramBackend;
  readonly audit: VramAudit;
  readonly key: Uint8Array;
  /** The lease `id`, live or not. */
  readonly lease: (id: string) => Lease | undefined;
  /** The CUDA ordinal of a GPU id. */
  readonly ordinalOf: (gpuId: string) => number | undefined;
  /** Called once when a shard fails verification (the daemon writes a status line). */
  readonly onFailure?: (shard: Shard) => void;
  /** Called when a shard's VRAM is released (its hand-outs are revoked: share.ts). */
  readonly onRelease?: (shard: Shard, reason: string) => void;
  /** Where the tree is computed on a full verify (default gpu on CUDA, cpu on host memory). */
  readonly verifyPath?: "gpu" | "cpu";
  /** The gate before each job: `full` (default) or `sampled` (k random leaves). */
  readonly gateMode?: "full" | "sampled";
  readonly sampleLeaves?: number;
  /** Seal and verification stamps, and the policy check's time (default: the system clock). */
  readonly clock?: Clock;
  readonly random?: (n: number) => number;
  /** Worker threads for the host-side leaf hashes while sealing (without: on this thread). */
  readonly pool?: TreePool;
}

/** The shards of every lease, and what they hold. */
export class ShardStore {
  readonly #o: ShardStoreOptions;
  readonly #held = new Map<string, Held>();
  /** Bytes promised to seals in flight, per lease and per GPU ordinal. */
  readonly #reserved = new Map<string, number>();
  readonly counters = { seal: new Map<string, number>(), verify: new Map<string, number>(), policy: new Map<number, number>() };
  /** The tensor-parallel sets its shards form. */
  readonly sets: ShardSets;

  constructor(options: ShardStoreOptions) {
    this.#o = options;
    this.sets = new ShardSets(() => this.list(), options.audit);
  }

  get backend(): VramBackend {
    return this.#o.backend;
  }

  get(id: string): Shard | undefined {
    return this.#held.get(id)?.shard;
  }

  list(leaseId?: string): Shard[] {
    return [...this.#held.values()].map((h) => h.shard).filter((s) => leaseId === undefined || s.lease_id === leaseId);
  }

  /** Bytes held by sealed shards on `ordinal` (and reserved by seals in flight). */
  usedBytes(ordinal: number): { sealed: number; reserved: number; shards: number } {
    let sealed = 0;
    let shards = 0;
    for (const h of this.#held.values()) if (h.shard.gpu_device === ordinal) (sealed += h.shard.vram_bytes), shards++;
    return { sealed, reserved: this.#reserved.get(`gpu:${ordinal}`) ?? 0, shards };
  }

  /** What a lease may still seal: its mem_mb less what its shards hold and seals in flight reserve. */
  leaseRoom(lease: Lease): number {
    let held = 0;
    for (const h of this.#held.values()) if (h.shard.lease_id === lease.id) held += h.shard.vram_bytes;
    return Math.max(0, lease.mem_mb * 1048576 - held - (this.#reserved.get(lease.id) ?? 0));
  }

  /** Seals `source` under lease `leaseId`; `created` is false when an identical shard was returned. */
  async seal(leaseId: string, source: ShardSource, opts: SealOptions): Promise<{ shard: Shard; created: boolean }> {
    try {
      return await this.#seal(leaseId, source, opts);
    } finally {
      await source.close?.().catch(() => {});
    }
  }

  /**
   * The steps of a seal: an identical shard the lease holds is returned without allocating; else
   * the room is checked and reserved, the VRAM allocated and checked against the VRAM-only
   * policy, the bytes copied in and hashed, the copy's tree digest recomputed from VRAM, and the
   * shard signed and kept. Whatever fails, the reservation is returned and the VRAM freed.
   */
  async #seal(leaseId: string, source: ShardSource, opts: SealOptions): Promise<{ shard: Shard; created: boolean }> {
    const lease = this.#liveLease(leaseId);
    const ordinal = this.#ordinal(lease.gpu_id);
    checkOptions(opts);
    const expected = opts.expected_digest?.toLowerCase();
    const same = await this.#heldAlready(lease, source, expected, opts.shard_id);
    if (same !== undefined) return { shard: this.sets.same(same, opts), created: false };
    this.sets.admit(lease, opts);
    const needed = source.length;
    const available = this.#checkRoom(lease, ordinal, needed, opts.shard_id);
    this.#reserve(lease.id, ordinal, needed);
    let buf: VramBuffer | null = null;
    try {
      buf = this.#allocate(lease, ordinal, needed, available);
      const evidence = this.#checkPolicy(buf, ordinal, lease);
      const copied = await this.#copyIn(buf, source, lease, expected);
      const twin = this.#twin(lease.id, copied.digest);
      if (twin !== undefined) {
        this.#free(buf, null, "duplicate of " + twin.shard_id, lease);
        buf = null;
        return { shard: this.sets.same(sameBytes(twin, opts.shard_id), opts), created: false };
      }
      await this.#checkCopy(buf, needed, copied.tree, opts.shard_id, lease);
      const shard = this.#keep(lease, ordinal, buf, needed, copied, evidence, opts);
      buf = null;
      return { shard, created: true };
    } catch (error) {
      throw this.#sealFailure(error);
    } finally {
      this.#reserve(lease.id, ordinal, -needed);
      if (buf !== null) this.#free(buf, null, "seal abandoned", lease);
    }
  }

  /**
   * A sealed shard of `lease` with these bytes, found before anything is allocated (the contract
   * of a seal that repeats: see #sameBytes). A `shard_id` that is taken settles it here: the same
   * bytes under the same lease are the existing shard (a body without `expected_digest` is hashed
   * on the host, never copied); anything else is a conflict.
   */
  async #heldAlready(
    lease: Lease,
    source: ShardSource,
    expected: string | undefined,
    shardId: string | undefined,
  ): Promise<Shard | undefined> {
    const named = shardId === undefined ? undefined : this.#held.get(shardId)?.shard;
    if (named !== undefined) return this.#sameId(lease, named, expected ?? (await (source.digest?.() ?? hashSource(source))));
    let digest = expected;
    // A file as long as a shard the lease holds: read it once more rather than allocate twice.
    if (digest === undefined && source.digest !== undefined && this.list(lease.id).some((s) => s.vram_bytes === source.length)) {
      digest = await source.digest();
    }
    const twin = digest === undefined ? undefined : this.#twin(lease.id, digest);
    return twin === undefined ? undefined : sameBytes(twin, shardId);
  }

  /** A seal asking for the id of `named`, with bytes of SHA-256 `digest`: a retry gets `named`, anything else a 409. */
  #sameId(lease: Lease, named: Shard, digest: string): Shard {
    const id = JSON.stringify(named.shard_id);
    const why = named.lease_id !== lease.id
      ? `that id belongs to a shard of lease ${named.lease_id}`
      : named.digest !== digest
      ? `that id holds other bytes (SHA-256 ${named.digest}, these are ${digest}); delete it first or pick another id`
      : named.state !== "SEALED"
      ? `that shard failed verification (${named.failure}); delete it and seal again`
      : null;
    if (why === null) return named;
    throw new VramError("conflict", `Cannot seal shard ${id}: ${why}`, "shard_id", { existing_shard_id: named.shard_id });
  }

  /** The bytes available to the seal, once the id is free and `needed` fits the lease and the driver's free memory. */
  #checkRoom(lease: Lease, ordinal: number, needed: number, shardId: string | undefined): number {
    if (shardId !== undefined && this.#held.has(shardId)) {
      throw new VramError(
        "conflict",
        `Cannot seal shard ${JSON.stringify(shardId)}: a shard with that id exists; delete it first or pick another id`,
        "shard_id",
      );
    }
    if (!Number.isSafeInteger(needed) || needed < 1) {
      throw new VramError("invalid", `Cannot seal ${needed} bytes: a shard holds at least one byte`, "length");
    }
    const room = this.leaseRoom(lease);
    const driver = this.#o.backend.memInfo(ordinal);
    const available = Math.min(room, driver.free);
    if (needed <= available) return available;
    this.#count("seal", "refused");
    this.#audit("VramAllocationFailed", {
      requested_bytes: needed,
      available_bytes: available,
      gpu_device: ordinal,
      ...holder(lease),
      reason: "insufficient",
    });
    throw new VramError(
      "insufficient_vram",
      `Cannot seal: needed ${needed} bytes, available ${available} bytes on ${lease.gpu_id} (lease ${lease.id} has ${room} of its ${
        lease.mem_mb * 1048576
      } bytes unsealed; the driver reports ${driver.free} bytes free)`,
      "length",
      { needed_bytes: needed, available_bytes: available },
    );
  }

  /** `needed` bytes of VRAM on `ordinal`, audited either way; a refusal says what the driver has free. */
  #allocate(lease: Lease, ordinal: number, needed: number, available: number): VramBuffer {
    let buf: VramBuffer;
    try {
      buf = this.#o.backend.alloc(ordinal, needed);
    } catch (error) {
      this.#count("seal", "refused");
      this.#audit("VramAllocationFailed", {
        requested_bytes: needed,
        available_bytes: available,
        gpu_device: ordinal,
        ...holder(lease),
        reason: (error as Error).message,
      });
      if (error instanceof VramAllocError && error.outOfMemory) {
        const free = this.#o.backend.memInfo(ordinal).free;
        throw new VramError(
          "insufficient_vram",
          `Cannot seal: needed ${needed} bytes, available ${free} bytes: the driver refused the allocation (${error.message})`,
          "length",
          { needed_bytes: needed, available_bytes: free },
          { cause: error },
        );
      }
      throw new VramError(
        "cuda_allocation_failed",
        `Cannot allocate ${needed} bytes on ${lease.gpu_id}: ${(error as Error).message}`,
        undefined,
        undefined,
        {
          cause: error,
        },
      );
    }
    this.#audit("VramAllocated", {
      requested_bytes: needed,
      allocated_bytes: needed,
      available_bytes: this.#o.backend.memInfo(ordinal).free,
      used_bytes: this.usedBytes(ordinal).sealed + needed,
      gpu_device: ordinal,
      ...holder(lease),
    });
    return buf;
  }

  /** Copies the bytes into `buf`, hashing them on the way (flat SHA-256 and tree); the flat digest must be `expected`. */
  async #copyIn(buf: VramBuffer, source: ShardSource, lease: Lease, expected: string | undefined): Promise<Copied> {
    const copied = await copyIn(this.#o.backend, buf, source, lease, this.#o.pool);
    if (expected !== undefined && copied.digest !== expected) {
      throw new VramError(
        "integrity_violation",
        `Cannot seal: the bytes' SHA-256 is ${copied.digest}, not the expected_digest ${expected}`,
        "expected_digest",
        { expected_digest: expected, actual_digest: copied.digest },
      );
    }
    return copied;
  }

  /** The tree digest recomputed from VRAM must be the one of the bytes received: else nothing is sealed. */
  async #checkCopy(buf: VramBuffer, bytes: number, tree: string, shardId: string | undefined, lease: Lease): Promise<void> {
    const fromVram = hex((await this.#o.backend.treeDigest(buf, bytes, this.#path())).digest);
    if (fromVram === tree) return;
    this.#count("seal", "failed");
    this.#audit("SealVerificationFailed", {
      shard_id: shardId ?? null,
      reason: "the copy in VRAM differs from the bytes received",
      expected_digest: tree,
      actual_digest: fromVram,
      severity: "CRITICAL",
      ...holder(lease),
    });
    throw new VramError(
      "seal_verification_failed",
      `Cannot seal: the copy in VRAM differs from the bytes received (tree digest ${fromVram} from VRAM, ${tree} received); nothing was sealed`,
    );
  }

  /** Signs and keeps the shard, unless its lease ended or its id was taken while the bytes streamed in. */
  #keep(
    lease: Lease,
    ordinal: number,
    buf: VramBuffer,
    bytes: number,
    copied: Copied,
    evidence: Shard["evidence"],
    opts: SealOptions,
  ): Shard {
    const now = this.#now();
    const shard: Shard = {
      shard_id: opts.shard_id ?? `shard-${hex(randomBytes(16))}`,
      lease_id: lease.id,
      worker_id: lease.worker_id,
      gpu_id: lease.gpu_id,
      gpu_device: ordinal,
      vram_bytes: bytes,
      digest: copied.digest,
      tree_digest: copied.tree,
      sealed_at: Math.floor(now / 1000) * 1000,
      ...(opts.set_id !== undefined && { set_id: opts.set_id, shard_index: opts.shard_index, total_shards: opts.total_shards }),
      state: "SEALED",
      failure: null,
      verified_at: now,
      full_verified_at: now,
      verifications: 0,
      evidence,
    };
    if (lease.state !== "ACTIVE") {
      throw new VramError("permission", `Cannot seal: lease ${lease.id} ended while the shard was being sealed`);
    }
    if (this.#held.has(shard.shard_id)) {
      throw new VramError(
        "conflict",
        `Cannot seal shard ${JSON.stringify(shard.shard_id)}: a shard with that id was sealed meanwhile`,
        "shard_id",
      );
    }
    this.sets.admit(lease, opts);
    const signature = hmac(this.#o.key, sealMessage(fields(shard)));
    this.#held.set(shard.shard_id, { shard, buf, signature, leaves: copied.leaves });
    this.#count("seal", "ok");
    this.#audit("VramSealed", {
      shard_id: shard.shard_id,
      gpu_device: ordinal,
      vram_bytes: shard.vram_bytes,
      digest: shard.digest,
      tree_digest: shard.tree_digest,
      tree_algorithm: TREE_ALG,
      ...(shard.set_id !== undefined && { set_id: shard.set_id, shard_index: shard.shard_index, total_shards: shard.total_shards }),
      ...holder(lease),
    });
    this.sets.sealed(shard);
    return shard;
  }

  /** Counts a failed seal and gives the error to throw: a driver call's failure becomes a VramError naming it. */
  #sealFailure(error: unknown): unknown {
    if (!(error instanceof VramError)) {
      // A driver call that failed mid-seal (a copy, the tree kernels): its message names the call and the CUresult.
      this.#count("seal", "failed");
      if ((error as Error).name === "CudaExecError") {
        return new VramError("cuda", `Cannot seal: ${(error as Error).message}`, undefined, undefined, { cause: error });
      }
      return error;
    }
    const driver = error.code === "cuda" || error.code === "cuda_allocation_failed" || error.code === "seal_verification_failed";
    if (error.code !== "insufficient_vram" && !driver) this.#count("seal", "refused");
    return error;
  }

  /**
   * Re-verifies a shard from VRAM: `full` recomputes the whole tree, `sampled` rehashes `k`
   * random leaves against the leaf hashes the sealed tree digest authenticates. Either way the
   * signature is checked. A failure marks the shard failed for good.
   */
  async verify(id: string, mode: "full" | "sampled" = "full", k = this.#o.sampleLeaves ?? 8, path = this.#path()): Promise<VerifyResult> {
    const h = this.#held.get(id);
    if (h === undefined) throw unknownShard(id);
    const t0 = performance.now();
    const s = h.shard;
    if (s.state === "FAILED") {
      return { ok: false, shard_id: id, reason: `the shard failed verification earlier: ${s.failure}`, mode, total_ms: 0 };
    }
    const tSig = performance.now();
    const sigOk = sameMac(hmac(this.#o.key, sealMessage(fields(s))), h.signature);
    const signatureMs = performance.now() - tSig;
    if (!sigOk) return this.#fail(h, mode, "the seal signature does not match the shard's fields", s.tree_digest, "(signature)", t0);
    const tTree = performance.now();
    let checked = 0;
    try {
      if (mode === "full") {
        const r = await this.#o.backend.treeDigest(h.buf, s.vram_bytes, path);
        path = r.path;
        checked = Math.ceil(s.vram_bytes / LEAF_BYTES);
        const actual = hex(r.digest);
        if (actual !== s.tree_digest) {
          return this.#fail(h, mode, "the tree digest recomputed from VRAM differs from the sealed one", s.tree_digest, actual, t0);
        }
      } else {
        const mismatch = this.#sampleLeaves(h, k);
        if (typeof mismatch !== "number") {
          return this.#fail(
            h,
            mode,
            `leaf ${mismatch.leaf} read back from VRAM differs from the sealed one`,
            mismatch.sealed,
            mismatch.actual,
            t0,
          );
        }
        checked = mismatch;
        path = "cpu";
      }
    } catch (error) {
      if (!this.#held.has(id)) {
        return { ok: false, shard_id: id, reason: "the shard was released during verification", mode, total_ms: performance.now() - t0 };
      }
      return this.#fail(h, mode, `VRAM could not be read back: ${(error as Error).message}`, s.tree_digest, "(unreadable)", t0);
    }
    const treeMs = performance.now() - tTree;
    s.verified_at = this.#now();
    if (mode === "full") s.full_verified_at = s.verified_at;
    s.verifications++;
    this.#count("verify", "ok");
    const total = performance.now() - t0;
    this.#audit("SealVerified", {
      shard_id: id,
      mode,
      path,
      leaves_checked: checked,
      tree_ms: round(treeMs),
      total_ms: round(total),
      ...holder(s),
    });
    return {
      ok: true,
      shard_id: id,
      mode,
      path,
      leaves_checked: checked,
      tree_ms: round(treeMs),
      signature_ms: round(signatureMs),
      total_ms: round(total),
    };
  }

  /**
   * Rehashes `k` random leaves (always the last, which may be short) read back from VRAM:
   * the number checked, or the first leaf that differs from its sealed hash.
   */
  #sampleLeaves(h: Held, k: number): number | { leaf: number; sealed: string; actual: string } {
    const s = h.shard;
    const leaves = h.leaves.length / 32;
    const picks = new Set<number>([leaves - 1]);
    const random = this.#o.random ?? ((n: number) => Math.floor(Math.random() * n));
    while (picks.size < Math.min(k, leaves)) picks.add(random(leaves));
    const buf = new Uint8Array(LEAF_BYTES);
    let checked = 0;
    for (const i of picks) {
      const n = Math.min(LEAF_BYTES, s.vram_bytes - i * LEAF_BYTES);
      this.#o.backend.read(h.buf, i * LEAF_BYTES, buf.subarray(0, n));
      const actual = leafHash(buf.subarray(0, n));
      const sealed = h.leaves.subarray(i * 32, i * 32 + 32);
      if (!sameMac(actual, sealed)) return { leaf: i, sealed: hex(sealed), actual: hex(actual) };
      checked++;
    }
    return checked;
  }

  /**
   * The gate before a job of lease `leaseId`: every shard of the lease verifies, or the job is
   * refused with the reason. Null when the job may run.
   */
  async gate(leaseId: string): Promise<{ detail: string; message: string } | null> {
    for (const s of this.list(leaseId)) {
      const r = await this.verify(s.shard_id, this.#o.gateMode ?? "full");
      if (!r.ok) return { detail: "SEAL-VERIFICATION-FAILED", message: `shard ${s.shard_id}: ${r.reason}` };
    }
    return null;
  }

  /**
   * A copy of shard `id`'s bytes for a job's operand, its SHA-256 checked against the sealed
   * digest after the copy, so a change since the last verification is caught before the bytes
   * are used: a mismatch, or VRAM that cannot be read, fails the shard as `verify` does.
   */
  readChecked(id: string): { ok: true; bytes: Uint8Array } | { ok: false; reason: string } {
    const h = this.#held.get(id);
    if (h === undefined) throw unknownShard(id);
    const s = h.shard;
    if (s.state === "FAILED") return { ok: false, reason: `the shard failed verification earlier: ${s.failure}` };
    const t0 = performance.now();
    const bytes = new Uint8Array(s.vram_bytes);
    try {
      this.#o.backend.read(h.buf, 0, bytes);
    } catch (error) {
      const why = `VRAM could not be read back: ${(error as Error).message}`;
      this.#fail(h, "full", why, s.digest, "(unreadable)", t0);
      return { ok: false, reason: why };
    }
    const actual = sha256Hex(bytes);
    if (actual === s.digest) return { ok: true, bytes };
    const why = "the bytes copied from VRAM for a job differ from the sealed SHA-256";
    this.#fail(h, "full", why, s.digest, actual, t0);
    return { ok: false, reason: why };
  }

  /** Frees a shard's VRAM (never throws for a driver failure: it is audited). */
  release(id: string, reason = "released"): Shard & { readonly deallocation_error?: string } {
    const h = this.#held.get(id);
    if (h === undefined) throw unknownShard(id);
    this.#held.delete(id);
    const failed = this.#free(h.buf, h.shard, reason, h.shard);
    this.#o.onRelease?.(h.shard, reason);
    this.sets.released(h.shard, reason);
    // Released either way (it is no longer served); a driver that did not free the memory is said.
    return failed === null ? h.shard : { ...h.shard, deallocation_error: failed };
  }

  /** Why shard `id`'s memory cannot be mapped by another process; null when it can. */
  shareRefusal(id: string): string | null {
    return this.#buf(id).shareRefusal;
  }

  /** The bytes an importer of shard `id` maps (its size rounded up to the allocation granularity). */
  mappedBytes(id: string): number {
    return this.#buf(id).mappedBytes;
  }

  /** A file descriptor for shard `id`'s memory (share.ts hands it to the lease's holder). */
  exportFd(id: string): { fd: number; owned: boolean } {
    return this.#o.backend.exportFd(this.#buf(id));
  }

  #buf(id: string): VramBuffer {
    const h = this.#held.get(id);
    if (h === undefined) throw unknownShard(id);
    return h.buf;
  }

  /** Frees every shard of a lease (its end). */
  releaseLease(leaseId: string, reason: string): Shard[] {
    return this.list(leaseId).map((s) => this.release(s.shard_id, `lease ${reason}`));
  }

  /** Test and gpu-check hook: sets `count` bytes of a shard's VRAM to `value` with cuMemsetD8_v2. */
  corrupt(id: string, offset: number, value: number, count = 1): void {
    const h = this.#held.get(id);
    if (h === undefined) throw unknownShard(id);
    this.#o.backend.memset(h.buf, offset, value, count);
  }

  /** Frees everything (bridge shutdown). */
  close(): void {
    for (const id of [...this.#held.keys()]) this.release(id, "bridge stopped");
  }

  /** The VRAM-only check right after allocation: a violation refuses the seal (the caller frees the VRAM). */
  #checkPolicy(buf: VramBuffer, ordinal: number, lease: Lease): Shard["evidence"] {
    const checked_at = this.#now();
    const ev = this.#o.backend.pointerEvidence(buf);
    if (ev === null) return { checked_at, pointer: null };
    const integrated = this.#o.backend.deviceEvidence(ordinal).integrated;
    const violation = pointerViolation(ev, ordinal);
    if (violation !== null && !integrated) {
      this.#violation("allocation", ordinal, violation, { shard_id: null, gpu_id: lease.gpu_id, ...holder(lease) });
      throw new VramError("policy", `Cannot seal: the VRAM-only check failed: ${violation}`);
    }
    return { checked_at, pointer: pointerView(ev) };
  }

  /**
   * The VRAM-only policy checked again (at start-up and by the policy timer, policy.ts): each
   * sealed shard's allocation must still be device memory on its GPU, as at its seal; at
   * start-up, one probe allocation on each of `probe` (CUDA ordinals) too. A shard that fails is
   * marked FAILED as a failed verification would be (its jobs refused, its hand-outs revoked,
   * `onFailure`), with a CRITICAL PolicyViolation record. Shards on host memory or an
   * integrated GPU, where the policy cannot apply, are not checked. Returns what failed.
   */
  checkPolicy(
    check: "startup" | "periodic",
    probe: readonly number[] = [],
  ): { shard_id: string | null; gpu_device: number; reason: string }[] {
    const found: { shard_id: string | null; gpu_device: number; reason: string }[] = [];
    for (const ordinal of probe) {
      const reason = probeDevice(this.#o.backend, ordinal);
      if (reason === null) continue;
      this.#violation(check, ordinal, `a probe allocation: ${reason}`, { shard_id: null });
      found.push({ shard_id: null, gpu_device: ordinal, reason });
    }
    for (const h of [...this.#held.values()]) {
      const s = h.shard;
      if (s.state !== "SEALED" || this.#o.backend.deviceEvidence(s.gpu_device).integrated) continue;
      let reason: string | null;
      try {
        const ev = this.#o.backend.pointerEvidence(h.buf);
        if (ev === null) continue;
        reason = pointerViolation(ev, s.gpu_device);
        s.evidence.checked_at = this.#now();
        s.evidence.pointer = pointerView(ev);
      } catch (error) {
        reason = `the driver cannot describe the allocation any more: ${(error as Error).message}`;
      }
      if (reason === null || !this.#held.has(s.shard_id)) continue;
      this.#violation(check, s.gpu_device, reason, { shard_id: s.shard_id, gpu_id: s.gpu_id, ...holder(s) });
      s.state = "FAILED";
      s.failure = `the VRAM-only policy check failed: ${reason}`;
      this.#o.onFailure?.(s);
      found.push({ shard_id: s.shard_id, gpu_device: s.gpu_device, reason });
    }
    this.policyCheckedAt = this.#now();
    return found;
  }

  /** When the policy was last checked beyond an allocation (start-up or the timer); null: never. */
  policyCheckedAt: number | null = null;

  /** A CRITICAL PolicyViolation record, counted per GPU. */
  #violation(check: "allocation" | "startup" | "periodic", ordinal: number, reason: string, f: Record<string, unknown>): void {
    this.counters.policy.set(ordinal, (this.counters.policy.get(ordinal) ?? 0) + 1);
    this.#audit("PolicyViolation", { policy: "vram-only", check, gpu_device: ordinal, ...f, reason, severity: "CRITICAL" });
  }

  #fail(h: Held, mode: "full" | "sampled", reason: string, expected: string, actual: string, t0: number): VerifyResult {
    const s = h.shard;
    s.state = "FAILED";
    s.failure = reason;
    this.#count("verify", "fail");
    this.#audit("SealVerificationFailed", {
      shard_id: s.shard_id,
      reason,
      expected_digest: expected,
      actual_digest: actual,
      severity: "CRITICAL",
      gpu_device: s.gpu_device,
      ...holder(s),
      mode,
    });
    this.#o.onFailure?.(s);
    this.sets.failed(s);
    return { ok: false, shard_id: s.shard_id, reason, mode, total_ms: round(performance.now() - t0) };
  }

  /** Frees `buf` and audits it; never throws: the driver's refusal is returned (and audited), else null. */
  #free(buf: VramBuffer, shard: Shard | null, reason: string, who: Holder): string | null {
    try {
      this.#o.backend.free(buf);
    } catch (error) {
      this.#audit("VramDeallocated", {
        shard_id: shard?.shard_id ?? null,
        freed_bytes: 0,
        gpu_device: buf.ordinal,
        reason,
        error: `CudaDeallocationFailed: ${(error as Error).message}`,
        ...holder(who),
      });
      return (error as Error).message;
    }
    const remaining = this.#freeBytes(buf.ordinal); // the free itself succeeded
    this.#audit("VramDeallocated", {
      shard_id: shard?.shard_id ?? null,
      freed_bytes: buf.bytes,
      remaining_bytes: remaining,
      gpu_device: buf.ordinal,
      reason,
      ...holder(who),
    });
    return null;
  }

  /** What the driver reports free on `ordinal`; null when it cannot say (the figure is informative). */
  #freeBytes(ordinal: number): number | null {
    try {
      return this.#o.backend.memInfo(ordinal).free;
    } catch {
      return null;
    }
  }

  #twin(leaseId: string, digest: string): Shard | undefined {
    for (const h of this.#held.values()) {
      if (h.shard.lease_id === leaseId && h.shard.digest === digest && h.shard.state === "SEALED") return h.shard;
    }
    return undefined;
  }

  #liveLease(id: string): Lease {
    const lease = this.#o.lease(id);
    if (lease === undefined) throw new VramError("not_found", `Unknown lease ${JSON.stringify(id)}`, "id");
    if (lease.state !== "ACTIVE") {
      throw new VramError(
        "permission",
        `Cannot seal under lease ${id}: it has ended (${lease.released_reason ?? "released"}); take a new lease`,
      );
    }
    return lease;
  }

  #ordinal(gpuId: string): number {
    const o = this.#o.ordinalOf(gpuId);
    if (o === undefined) throw new VramError("unavailable", `Cannot seal on ${gpuId}: the CUDA driver does not know this GPU`);
    return o;
  }

  #reserve(leaseId: string, ordinal: number, bytes: number): void {
    for (const key of [leaseId, `gpu:${ordinal}`]) this.#reserved.set(key, (this.#reserved.get(key) ?? 0) + bytes);
  }

  #path(): "gpu" | "cpu" {
    return this.#o.verifyPath ?? (this.#o.backend.kind === "cuda" ? "gpu" : "cpu");
  }

  #count(kind: "seal" | "verify", result: string): void {
    const m = this.counters[kind];
    m.set(result, (m.get(result) ?? 0) + 1);
  }

  #audit(event: AuditEvent, f: Record<string, unknown>): void {
    this.#o.audit.record(event, f);
  }

  #now(): number {
    return (this.#o.clock ?? systemClock).now();
  }
}

/** The signed fields of a shard. */
export function fields(s: Shard) {
  return {
    shard_id: s.shard_id,
    digest: s.digest,
    sealed_at_s: Math.floor(s.sealed_at / 1000),
    gpu_device: s.gpu_device,
    vram_bytes: s.vram_bytes,
    tree_algorithm: TREE_ALG,
    tree_digest: s.tree_digest,
    lease_id: s.lease_id,
  };
}

function checkOptions(o: SealOptions): void {
  if (o.shard_id !== undefined && !SHARD_ID.test(o.shard_id)) {
    throw new VramError("invalid", `shard_id must be 1-256 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(o.shard_id)}`, "shard_id");
  }
  if (o.expected_digest !== undefined && !DIGEST.test(o.expected_digest.toLowerCase())) {
    throw new VramError(
      "invalid",
      `expected_digest must be 64 hex characters (a SHA-256), got ${JSON.stringify(o.expected_digest)}`,
      "expected_digest",
    );
  }
  checkSetOptions(o);
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/** A lease, or a shard of one. */
type Holder = { readonly worker_id: string } & ({ readonly id: string } | { readonly lease_id: string });

/**
 * Who an audit record is about: the lease and the worker that holds it (the bridge's own host
 * name would say nothing: every record comes from this bridge).
 */
function holder(who: Holder): { lease_id: string; worker_id: string } {
  return { lease_id: "lease_id" in who ? who.lease_id : who.id, worker_id: who.worker_id };
}

/**
 * A shard already holds the bytes a seal brings: a seal that asks for no id, or for that shard's
 * id, is a retry and gets it (200); one that asks for another id would get nothing it asked for,
 * so it is a conflict naming the shard that holds them (seal under that id, or delete it first).
 */
function sameBytes(twin: Shard, shardId: string | undefined): Shard {
  if (shardId === undefined || shardId === twin.shard_id) return twin;
  throw new VramError(
    "conflict",
    `Cannot seal shard ${JSON.stringify(shardId)}: lease ${twin.lease_id} already holds these bytes as shard ${
      JSON.stringify(twin.shard_id)
    } (SHA-256 ${twin.digest}); use that id, or delete it first to seal them under another`,
    "shard_id",
    { existing_shard_id: twin.shard_id },
  );
}

export { CHUNK_BYTES, unknownShard, VramError } from "./errors.ts";
export type { VramErrorCode } from "./errors.ts";
export type { ShardSource } from "./copy-in.ts";
