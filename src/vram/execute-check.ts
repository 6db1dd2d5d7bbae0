/**
 * "May I execute now?": the consumer's question before it computes from a shard it mapped
 * (the consumers verify before every execution). The answer is yes only after a verification
 * newer than `maxAgeMs`:
 * - gate `full`: a full verification from VRAM not newer than that is run now;
 * - gate `sampled`: k sampled leaves are rehashed now, and the last full verification (the
 *   background sweep's, or one asked for) must be newer than `maxAgeMs`, else the answer is no,
 *   `stale_verification`, which retrying after the next sweep or a POST .../verify can mend;
 * - `maxAgeMs` 0: a full verification on every check, whatever the gate.
 * A failed verification marks the shard FAILED (shards.ts), which revokes its hand-outs.
 */
import type { ShardStore } from "./shards.ts";

export interface ExecuteCheckOptions {
  readonly maxAgeMs: number;
  readonly mode: "full" | "sampled";
  readonly now: () => number;
}

/** The answer: `may_execute` with what was checked and when, or a refusal with the consumers' error kind. */
export type ExecuteCheck =
  | {
    ok: true;
    may_execute: true;
    shard_id: string;
    mode: "full" | "sampled";
    verified_now: boolean;
    leaves_checked: number | null;
    full_verified_at: string;
    age_ms: number;
    max_age_ms: number;
  }
  | {
    ok: false;
    may_execute: false;
    code: "not_sealed" | "seal_verification_failed" | "stale_verification";
    message: string;
    retryable: boolean;
    shard_id: string;
    full_verified_at?: string;
    max_age_ms: number;
  };

export async function executeCheck(store: ShardStore, id: string, o: ExecuteCheckOptions): Promise<ExecuteCheck> {
  const s = store.get(id);
  const base = { ok: false as const, may_execute: false as const, shard_id: id, max_age_ms: o.maxAgeMs };
  if (s === undefined) return { ...base, code: "not_sealed", message: `Shard ${JSON.stringify(id)} is not sealed here`, retryable: false };
  const failed = (reason: string): ExecuteCheck => ({
    ...base,
    code: "seal_verification_failed",
    message: `Cannot execute from shard ${id}: ${reason}; stop serving it and seal it again`,
    retryable: false,
  });
  if (s.state === "FAILED") return failed(`it failed verification (${s.failure})`);
  const mode = o.maxAgeMs === 0 ? "full" : o.mode;
  const stale = () => o.now() - s.full_verified_at >= o.maxAgeMs;
  let verifiedNow = false;
  let leaves: number | null = null;
  if (mode === "sampled" || stale()) {
    const r = await store.verify(id, mode);
    if (!r.ok) return failed(r.reason);
    verifiedNow = true;
    leaves = r.leaves_checked;
  }
  const age = o.now() - s.full_verified_at;
  const at = new Date(s.full_verified_at).toISOString();
  if (mode === "sampled" && stale()) {
    return {
      ...base,
      code: "stale_verification",
      message: `Cannot execute from shard ${id} yet: its last full verification (${at}) is ${age} ms old, not under ${o.maxAgeMs} ms; ` +
        "retry after the next sweep, or verify it in full (POST /v1/shards/{id}/verify)",
      retryable: true,
      full_verified_at: at,
    };
  }
  return {
    ok: true,
    may_execute: true,
    shard_id: id,
    mode,
    verified_now: verifiedNow,
    leaves_checked: leaves,
    full_verified_at: at,
    age_ms: age,
    max_age_ms: o.maxAgeMs,
  };
}
