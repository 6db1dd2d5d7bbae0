/**
 * The text lines of docs/protocol.md#7-leases-control-lines-and-jobs: lease records, control lines and job status lines,
 * with keys in the contract's order, escaped as docs/protocol.md#4-the-list-json-and-escaping says.
 */
import { quote } from "../contract/escape.ts";
import type { Lease } from "./types.ts";

/** `{"schema":"gpu-lease/v1","state":…,"gpu_id":…,"worker_id":…,"mem_mb":…,"streams":…,"ttl_s":…,"priority":…}` */
export function leaseRecord(lease: Lease, state: "ACTIVE" | "RELEASED"): string {
  return `{"schema":"gpu-lease/v1","state":"${state}","gpu_id":${quote(lease.gpu_id)},"worker_id":${quote(lease.worker_id)},` +
    `"mem_mb":${lease.mem_mb},"streams":${lease.streams},"ttl_s":${lease.ttl_s},"priority":${lease.priority}}`;
}

/** `LEASE <worker> mem=<m> streams=<s> priority=<p>` */
export function ctlLeaseLine(lease: Lease): string {
  return `LEASE ${lease.worker_id} mem=${lease.mem_mb} streams=${lease.streams} priority=${lease.priority}`;
}

/** `RELEASE <worker> <reason>` */
export function ctlReleaseLine(workerId: string, reason: string): string {
  return `RELEASE ${workerId} ${reason}`;
}

export type JobState = "QUEUED" | "RUNNING" | "OK" | "ERR" | "LEASE-ENDED";

/** `{"job":"<id>","state":"<STATE>","detail":"<detail>"}` */
export function statusLine(job: string, state: JobState, detail: string): string {
  return `{"job":${quote(job)},"state":"${state}","detail":${quote(detail)}}`;
}
