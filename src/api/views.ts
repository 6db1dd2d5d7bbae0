/** Leases and jobs as the API shows them: ISO times, no internal fields. */
import { type JobRecord, shardReadView } from "../job/scheduler.ts";
import type { Lease } from "../lease/types.ts";
import type { BridgeFacade } from "./facade.ts";

const iso = (ms: number) => new Date(ms).toISOString();

/** A lease as the API shows it. */
export function leaseView(l: Lease) {
  return {
    id: l.id,
    gpu_id: l.gpu_id,
    ...(l.mig_uuid !== undefined && { mig_uuid: l.mig_uuid }),
    worker_id: l.worker_id,
    ...(l.principal !== undefined && { principal: l.principal }),
    mem_mb: l.mem_mb,
    streams: l.streams,
    ttl_s: l.ttl_s,
    priority: l.priority,
    state: l.state,
    granted_at: iso(l.granted_at),
    expires_at: iso(l.expires_at),
    ...(l.released_reason !== undefined && { released_reason: l.released_reason }),
  };
}

/** `leaseView`, plus `cdi_device` for a live lease while the bridge keeps a CDI spec. */
export function leaseViewWithCdi(bridge: Pick<BridgeFacade, "cdi">): (l: Lease) => ReturnType<typeof leaseView> & { cdi_device?: string } {
  return (l) => {
    const device = l.state === "ACTIVE" ? bridge.cdi?.deviceFor(l.id) ?? null : null;
    return device === null ? leaseView(l) : { ...leaseView(l), cdi_device: device };
  };
}

/** A job as the API shows it. */
export function jobView(j: JobRecord) {
  return {
    job: j.job,
    state: j.state,
    detail: j.detail,
    lease_id: j.lease_id,
    gpu_id: j.gpu_id,
    worker_id: j.worker_id,
    kernel: j.kernel,
    submitted_at: iso(j.submitted_at),
    started_at: j.started_at === null ? null : iso(j.started_at),
    finished_at: j.finished_at === null ? null : iso(j.finished_at),
    result: j.result,
    ...(j.output_bytes !== null && {
      output: { bytes: j.output_bytes, sha256: j.output_sha256, href: `/v1/jobs/${j.job}/result`, available: j.output !== null },
    }),
    message: j.message,
    ...(j.input_shard !== null && { input_shard: shardReadView(j.input_shard) }),
  };
}
