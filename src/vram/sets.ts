/**
 * Tensor-parallel sets: shards sealed with a `set_id`, a `shard_index` and a `total_shards` are
 * the members of one set, possibly in several leases on several GPUs, always of one holder (one
 * worker id). A set is a view over the store's shards, never a record of its own: its members are
 * the shards that name it, so a release or a lease's end changes the set with nothing to keep in
 * step. Its state is `incomplete` (indexes missing), `failed` (a member failed verification: that
 * outweighs missing ones) or `ready` (every index held, none failed). Its digest binds the
 * members' digests in index order (`setDigest`, docs/vram-sharing.md spells out the bytes).
 */
import { createHash } from "node:crypto";
import { MAX_TOTAL_SHARDS } from "../config/limits.ts";
import type { Lease } from "../lease/types.ts";
import type { VramAudit } from "./audit.ts";
import { SHARD_ID, VramError } from "./errors.ts";
import type { SealOptions, Shard } from "./shards.ts";

/** The name of the set digest's encoding (below), shown beside every set digest. */
export const SET_DIGEST_ALG = "sha256-shard-set-v1";

/** The refusal (404) of a set no member of which is held here, or that the caller may not see: one message for both. */
export const unknownSet = (setId: string): VramError =>
  new VramError("not_found", `Unknown set ${JSON.stringify(setId)}: no shard of that set is sealed here`, "id");

/** A set as it stands now. */
export interface ShardSetStatus {
  readonly set_id: string;
  /** The holder of every member. */
  readonly worker_id: string;
  readonly total_shards: number;
  readonly state: "incomplete" | "ready" | "failed";
  /** Indexes no held shard fills, ascending. */
  readonly missing: readonly number[];
  /** Members that failed verification, by index. */
  readonly failed: readonly { readonly shard_index: number; readonly shard_id: string; readonly failure: string | null }[];
  /** Null until every index is held. */
  readonly set_digest: string | null;
  /** The held members, by index. */
  readonly members: readonly Shard[];
}

/** Where a set member is and what it holds: the fields its API view and the set's attestation share. */
export const memberPlace = (
  m: Pick<Shard, "shard_index" | "shard_id" | "lease_id" | "gpu_id" | "gpu_device" | "vram_bytes" | "digest">,
) => ({
  shard_index: m.shard_index,
  shard_id: m.shard_id,
  lease_id: m.lease_id,
  gpu_id: m.gpu_id,
  gpu_device: m.gpu_device,
  vram_bytes: m.vram_bytes,
  digest: m.digest,
});

/**
 * SHA-256 (lowercase hex) over the ASCII text
 * `"gpu-bridge-shard-set/v1\n" + set_id + "\n" + total_shards + "\n"` followed, for each index
 * from 0 to total_shards - 1, by `index + " " + digest + "\n"` (numbers in decimal without
 * leading zeros, each member's digest as its 64 lowercase hex characters). A set id has no
 * newline and a digest no space, so no two sets share a text.
 */
export function setDigest(
  setId: string,
  totalShards: number,
  members: readonly { readonly shard_index: number; readonly digest: string }[],
): string {
  const lines = [...members].sort((a, b) => a.shard_index - b.shard_index).map((m) => `${m.shard_index} ${m.digest}\n`);
  return createHash("sha256").update(`gpu-bridge-shard-set/v1\n${setId}\n${totalShards}\n${lines.join("")}`).digest("hex");
}

/**
 * A seal's set options: all three or none; `set_id` a shard id's syntax, `total_shards` from 1
 * to MAX_TOTAL_SHARDS, `shard_index` below it. Each refusal names the field and the values.
 */
export function checkSetOptions(o: Pick<SealOptions, "set_id" | "shard_index" | "total_shards">): void {
  const given = { set_id: o.set_id, shard_index: o.shard_index, total_shards: o.total_shards };
  const absent = (Object.keys(given) as (keyof typeof given)[]).filter((k) => given[k] === undefined);
  if (absent.length === 3) return;
  if (absent.length > 0) {
    throw new VramError(
      "invalid",
      `set_id, shard_index and total_shards go together: give all three or none (${absent.join(" and ")} missing)`,
      absent[0],
    );
  }
  const { set_id: id, shard_index: i, total_shards: n } = given as { set_id: string; shard_index: number; total_shards: number };
  if (!SHARD_ID.test(id)) {
    throw new VramError("invalid", `set_id must be 1-256 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(id)}`, "set_id");
  }
  if (!Number.isInteger(n) || n < 1 || n > MAX_TOTAL_SHARDS) {
    throw new VramError(
      "invalid",
      `total_shards must be an integer from 1 to ${MAX_TOTAL_SHARDS}, got ${JSON.stringify(n)}`,
      "total_shards",
    );
  }
  if (!Number.isInteger(i) || i < 0) {
    throw new VramError("invalid", `shard_index must be a non-negative integer, got ${JSON.stringify(i)}`, "shard_index");
  }
  if (i >= n) {
    throw new VramError(
      "invalid",
      `shard_index ${i} is out of range for total_shards ${n}: indexes run from 0 to ${n - 1}`,
      "shard_index",
      { shard_index: i, total_shards: n },
    );
  }
}

/** The state of the set `setId` made of `members` (the held shards naming it); undefined when none is held. */
export function setStatus(setId: string, members: readonly Shard[]): ShardSetStatus | undefined {
  if (members.length === 0) return undefined;
  const sorted = [...members].sort((a, b) => a.shard_index! - b.shard_index!);
  const total = sorted[0]!.total_shards!;
  const held = new Set(sorted.map((m) => m.shard_index!));
  const missing: number[] = [];
  for (let i = 0; i < total; i++) if (!held.has(i)) missing.push(i);
  const failed = sorted.filter((m) => m.state !== "SEALED").map((m) => ({
    shard_index: m.shard_index!,
    shard_id: m.shard_id,
    failure: m.failure,
  }));
  return {
    set_id: setId,
    worker_id: sorted[0]!.worker_id,
    total_shards: total,
    state: failed.length > 0 ? "failed" : missing.length > 0 ? "incomplete" : "ready",
    missing,
    failed,
    set_digest: missing.length > 0 ? null : setDigest(setId, total, sorted as { shard_index: number; digest: string }[]),
    members: sorted,
  };
}

/**
 * The sets of one store: admission of a seal into a set, and the set's changes for the audit
 * trail (`ShardSetReady`, `ShardSetFailed`, `ShardSetIncomplete`). `list` is the store's shards.
 */
export class ShardSets {
  readonly #list: () => readonly Shard[];
  readonly #audit: VramAudit;

  constructor(list: () => readonly Shard[], audit: VramAudit) {
    this.#list = list;
    this.#audit = audit;
  }

  /** The held shards of set `setId`, by index. */
  members(setId: string): Shard[] {
    return this.#list().filter((s) => s.set_id === setId).sort((a, b) => a.shard_index! - b.shard_index!);
  }

  status(setId: string): ShardSetStatus | undefined {
    return setStatus(setId, this.members(setId));
  }

  /**
   * Refuses a seal under `lease` that cannot join its set: another holder's set, a total that
   * disagrees with the members', or an index a member holds. Run before anything is allocated
   * and again just before the shard is kept (a seal of the same index may have finished meanwhile).
   */
  admit(lease: Lease, o: SealOptions): void {
    if (o.set_id === undefined) return;
    const members = this.members(o.set_id);
    if (members.length === 0) return;
    const set = JSON.stringify(o.set_id);
    const first = members[0]!;
    if (first.worker_id !== lease.worker_id) {
      throw new VramError(
        "conflict",
        `Cannot seal into set ${set}: its members are worker ${JSON.stringify(first.worker_id)}'s, and lease ${lease.id} is worker ${
          JSON.stringify(lease.worker_id)
        }'s; a set has one holder, pick another set_id`,
        "set_id",
      );
    }
    if (first.total_shards !== o.total_shards) {
      throw new VramError(
        "conflict",
        `Cannot seal into set ${set}: total_shards is ${o.total_shards}, but its members have total_shards ${first.total_shards}`,
        "total_shards",
        { total_shards: o.total_shards, set_total_shards: first.total_shards },
      );
    }
    const taken = members.find((m) => m.shard_index === o.shard_index);
    if (taken !== undefined) {
      throw new VramError(
        "conflict",
        `Cannot seal into set ${set}: shard_index ${o.shard_index} is held by shard ${
          JSON.stringify(taken.shard_id)
        } already; delete it first to replace it`,
        "shard_index",
        { shard_index: o.shard_index, existing_shard_id: taken.shard_id },
      );
    }
  }

  /**
   * An existing shard a seal gets back (a retry): when the seal names a set, the shard must be
   * that member, else the caller would believe it joined a set it is not in.
   */
  same(shard: Shard, o: SealOptions): Shard {
    if (o.set_id === undefined) return shard;
    if (shard.set_id === o.set_id && shard.shard_index === o.shard_index && shard.total_shards === o.total_shards) return shard;
    const is = shard.set_id === undefined
      ? "in no set"
      : `shard_index ${shard.shard_index} of ${shard.total_shards} in set ${JSON.stringify(shard.set_id)}`;
    throw new VramError(
      "conflict",
      `Cannot seal these bytes as shard_index ${o.shard_index} of ${o.total_shards} in set ${
        JSON.stringify(o.set_id)
      }: lease ${shard.lease_id} holds them already as shard ${
        JSON.stringify(shard.shard_id)
      }, ${is}; delete it first, or seal them under another lease`,
      "set_id",
      { existing_shard_id: shard.shard_id },
    );
  }

  /** A member was sealed: the set is ready when it was the last one missing. */
  sealed(shard: Shard): void {
    if (shard.set_id === undefined) return;
    const members = this.members(shard.set_id);
    // Sealing a set of n costs n reads of its members; its digest is worked out once, at the last.
    if (members.length < shard.total_shards!) return;
    const s = setStatus(shard.set_id, members);
    if (s?.state !== "ready") return;
    this.#audit.record("ShardSetReady", {
      set_id: s.set_id,
      total_shards: s.total_shards,
      set_digest: s.set_digest,
      set_digest_algorithm: SET_DIGEST_ALG,
      members: s.members.map((m) => ({ shard_index: m.shard_index, shard_id: m.shard_id, lease_id: m.lease_id, gpu_device: m.gpu_device })),
      shard_id: shard.shard_id,
      lease_id: shard.lease_id,
      worker_id: shard.worker_id,
    });
  }

  /** A member failed verification: the set has failed (critical, as the member's own event). */
  failed(shard: Shard): void {
    const s = this.#of(shard);
    if (s === undefined) return;
    this.#audit.record("ShardSetFailed", {
      set_id: s.set_id,
      total_shards: s.total_shards,
      shard_id: shard.shard_id,
      shard_index: shard.shard_index,
      gpu_device: shard.gpu_device,
      reason: shard.failure,
      severity: "CRITICAL",
      lease_id: shard.lease_id,
      worker_id: shard.worker_id,
    });
  }

  /** A member was released (deleted, its lease ended, the bridge stopped): the set lacks its index again. */
  released(shard: Shard, reason: string): void {
    if (shard.set_id === undefined) return;
    const s = this.status(shard.set_id);
    this.#audit.record("ShardSetIncomplete", {
      set_id: shard.set_id,
      total_shards: shard.total_shards,
      shard_id: shard.shard_id,
      shard_index: shard.shard_index,
      reason,
      missing: s?.missing ?? Array.from({ length: shard.total_shards! }, (_, i) => i),
      members_held: s?.members.length ?? 0,
      lease_id: shard.lease_id,
      worker_id: shard.worker_id,
    });
  }

  #of(shard: Shard): ShardSetStatus | undefined {
    return shard.set_id === undefined ? undefined : this.status(shard.set_id);
  }
}

/** A set with how fresh its members' verifications are: what the set routes show. */
export interface ShardSetView extends ShardSetStatus {
  /** Members whose last full verification is not newer than `max_age_ms` (an execute-check verifies them first), by index. */
  readonly stale: readonly number[];
  readonly max_age_ms: number;
}

/** `status` judged at `now` against `--verify-max-age-ms` (a read: nothing is verified). */
export function setView(status: ShardSetStatus, now: number, maxAgeMs: number): ShardSetView {
  const stale = status.members.filter((m) => now - m.full_verified_at >= maxAgeMs).map((m) => m.shard_index!);
  return { ...status, stale, max_age_ms: maxAgeMs };
}
