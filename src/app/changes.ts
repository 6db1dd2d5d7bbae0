/**
 * What feeds the record of changes (src/changes/record.ts): each part's own events turned into
 * changes, in one place, so the event stream, the audit trail and the metrics see one account.
 */
import type { ChangeInput, ChangeRecord } from "../changes/record.ts";
import type { GpuInfo } from "../contract/info.ts";
import type { HostState } from "../host/state.ts";
import { type JobRecord, shardReadView } from "../job/scheduler.ts";
import type { Lease, LeaseEvent } from "../lease/types.ts";
import type { AuditEvent } from "../vram/audit.ts";

/** What a lease change says of the lease. */
const leaseData = (l: Lease) => ({
  worker_id: l.worker_id,
  mem_mb: l.mem_mb,
  streams: l.streams,
  ttl_s: l.ttl_s,
  priority: l.priority,
  expires_at: new Date(l.expires_at).toISOString(),
});

/** A lease event as a change. */
export function leaseChange(e: LeaseEvent): ChangeInput {
  const base = { lease_id: e.lease.id, gpu_id: e.lease.gpu_id };
  if (e.type === "released") {
    return {
      ...base,
      type: e.reason === "expired" ? "lease.expired" : "lease.released",
      data: { worker_id: e.lease.worker_id, reason: e.reason },
    };
  }
  return { ...base, type: `lease.${e.type}`, data: leaseData(e.lease) };
}

/** A job's new state as a change. */
export function jobChange(job: JobRecord): ChangeInput {
  return {
    type: "job.state",
    lease_id: job.lease_id,
    gpu_id: job.gpu_id,
    ...(job.state === "ERR" && { severity: "warning" as const }),
    data: {
      job: job.job,
      worker_id: job.worker_id,
      kernel: job.kernel,
      state: job.state,
      detail: job.detail,
      ...(job.message !== null && { message: job.message }),
      ...(job.output_sha256 !== null && { output_sha256: job.output_sha256 }),
      ...(job.input_shard !== null && { input_shard: shardReadView(job.input_shard) }),
    },
  };
}

const SHARD_TYPES: Readonly<Record<AuditEvent, string>> = {
  VramAllocated: "shard.allocated",
  VramAllocationFailed: "shard.allocation_failed",
  VramSealed: "shard.sealed",
  SealVerified: "shard.verified",
  SealVerificationFailed: "shard.verify_failed",
  VramDeallocated: "shard.deallocated",
  PolicyViolation: "vram.policy_violation",
  ShareHandedOut: "shard.shared",
  ShareRevoked: "shard.share_revoked",
  ShardSetReady: "shard_set.ready",
  ShardSetFailed: "shard_set.failed",
  ShardSetIncomplete: "shard_set.incomplete",
};

/**
 * A VRAM audit event as a change: its fields, less the lease id, as data, with the event's own
 * name (`VramSealed`), which readers of the former `vram-audit.jsonl` select on.
 */
export function shardChange(event: AuditEvent, fields: Readonly<Record<string, unknown>>): ChangeInput {
  const { lease_id, gpu_id, severity, ...data } = fields;
  const critical = severity === "CRITICAL" || event === "PolicyViolation" || event === "SealVerificationFailed";
  return {
    type: SHARD_TYPES[event],
    ...(typeof lease_id === "string" && { lease_id }),
    ...(typeof gpu_id === "string" && { gpu_id }),
    ...(critical ? { severity: "critical" as const } : event === "VramAllocationFailed" ? { severity: "warning" as const } : {}),
    data: { event, ...data },
  };
}

/** The GPUs that left or came back between two inventory reads, as changes. */
export function healthChanges(before: readonly GpuInfo[], after: readonly GpuInfo[]): ChangeInput[] {
  const was = new Set(before.map((g) => g.id));
  const now = new Set(after.map((g) => g.id));
  const out: ChangeInput[] = [];
  for (const g of before) {
    if (!now.has(g.id)) {
      out.push({ type: "gpu.health", gpu_id: g.id, severity: "warning", data: { healthy: false, reason: "gone from the inventory" } });
    }
  }
  for (const g of after) {
    if (!was.has(g.id)) out.push({ type: "gpu.health", gpu_id: g.id, data: { healthy: true, reason: "back in the inventory" } });
  }
  return out;
}

/** Leases and jobs feed the record from now on. */
export function feedHostChanges(record: ChangeRecord, host: HostState): () => void {
  return host.leases.on((e) => record.append(leaseChange(e)));
}
