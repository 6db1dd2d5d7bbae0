/**
 * "May I execute now?" for a tensor-parallel set: yes only when every index is held, no member
 * has failed, and each member passes its own execute-check (execute-check.ts: a verification
 * newer than the limit, run now where needed). Members are checked side by side (they are
 * usually on different GPUs); one that fails is marked FAILED, and the set with it.
 */
import { type ExecuteCheck, executeCheck, type ExecuteCheckOptions } from "./execute-check.ts";
import { unknownSet } from "./sets.ts";
import type { ShardStore } from "./shards.ts";

/** The answer: `may_execute` with every member's answer, or a refusal naming what stands in the way. */
export type SetExecuteCheck =
  | {
    ok: true;
    may_execute: true;
    set_id: string;
    total_shards: number;
    set_digest: string;
    members: ExecuteCheck[];
    max_age_ms: number;
  }
  | {
    ok: false;
    may_execute: false;
    set_id: string;
    code: "set_incomplete" | "seal_verification_failed" | "stale_verification";
    message: string;
    retryable: boolean;
    missing: number[];
    failed: number[];
    members: ExecuteCheck[];
    max_age_ms: number;
  };

/** The execute-check of set `setId`; a set with no member held here is unknown (404). */
export async function executeCheckSet(
  store: ShardStore,
  setId: string,
  o: ExecuteCheckOptions,
): Promise<SetExecuteCheck> {
  const before = store.sets.status(setId);
  if (before === undefined) throw unknownSet(setId);
  const set = JSON.stringify(setId);
  const base = { ok: false as const, may_execute: false as const, set_id: setId, max_age_ms: o.maxAgeMs };
  const refuse = (members: ExecuteCheck[], missing: readonly number[], failed: number[], changed = false): SetExecuteCheck => {
    if (failed.length > 0) {
      return {
        ...base,
        code: "seal_verification_failed",
        message: `Cannot execute from set ${set}: member(s) ${
          failed.join(", ")
        } failed verification; stop serving the set and seal them again`,
        retryable: false,
        missing: [...missing],
        failed,
        members,
      };
    }
    if (missing.length > 0 || changed) {
      return {
        ...base,
        code: "set_incomplete",
        message: missing.length > 0
          ? `Cannot execute from set ${set} yet: shard_index ${missing.join(", ")} of ${before.total_shards} not sealed; seal them first`
          : `Cannot execute from set ${set} yet: its members changed while they were checked; ask again`,
        retryable: true,
        missing: [...missing],
        failed,
        members,
      };
    }
    const stale = members.flatMap((m, i) => (m.ok ? [] : [before.members[i]!.shard_index!]));
    return {
      ...base,
      code: "stale_verification",
      message: `Cannot execute from set ${set} yet: member(s) ${stale.join(", ")} lack a full verification newer than ${o.maxAgeMs} ms; ` +
        "retry after the next sweep, or verify them in full",
      retryable: true,
      missing: [],
      failed,
      members,
    };
  };
  if (before.state !== "ready") return refuse([], before.missing, before.failed.map((f) => f.shard_index));
  const members = await Promise.all(before.members.map((m) => executeCheck(store, m.shard_id, o)));
  // A member released or failed while the others were checked changes the answer.
  const after = store.sets.status(setId);
  const same = after !== undefined && after.members.length === before.members.length &&
    after.members.every((m, i) => m === before.members[i]);
  const failed = after?.failed.map((f) => f.shard_index) ?? [];
  if (!same || after.state !== "ready" || members.some((m) => !m.ok)) {
    return refuse(members, after?.missing ?? before.members.map((m) => m.shard_index!), failed, !same);
  }
  return {
    ok: true,
    may_execute: true,
    set_id: setId,
    total_shards: after.total_shards,
    set_digest: after.set_digest!,
    members,
    max_age_ms: o.maxAgeMs,
  };
}
