/**
 * The text lines of docs/protocol.md#7-leases-control-lines-and-jobs: lease records, control lines and job status lines,
 * with keys in the contract's order, escaped as docs/protocol.md#4-the-list-json-and-escaping says.
 *
 * These are the only writers of lines the bridge puts into the VM's node files, and they hold
 * whatever they are given to one line within its file's line cap (LINE_BYTES): ids and texts
 * that are not the bridge's own (a refused worker id, a VM client's control line, an error
 * naming a field) are escaped (src/contract/escape.ts) and cut, never written raw.
 */
import { ctlText, ctlToken, quoteForVm } from "../contract/escape.ts";
import { LIMITS } from "../contract/limits.ts";
import { byteLength } from "../util/bytes.ts";
import type { Lease } from "./types.ts";

/**
 * The longest line the bridge writes into each node file: a console command for `ctl` and
 * `lease` (the longest lease record, with 32-byte GPU and 64-byte worker ids, is about 230
 * bytes), a breadcrumb's 512 bytes for `status`. Lines written because of what the VM wrote (a
 * refusal) are held to one echo payload (LIMITS.echoPayloadBytes), so they go as single
 * appends and a VM that writes nonsense cannot make the bridge republish for each line.
 */
export const LINE_BYTES = Object.freeze({ ctl: LIMITS.commandBytes, lease: LIMITS.commandBytes, status: 512 });

/** `{"schema":"gpu-lease/v1","state":…,"gpu_id":…,"worker_id":…,"mem_mb":…,"streams":…,"ttl_s":…,"priority":…}` */
export function leaseRecord(lease: Lease, state: "ACTIVE" | "RELEASED"): string {
  return `{"schema":"gpu-lease/v1","state":"${state}","gpu_id":${quoteForVm(lease.gpu_id, 40)},` +
    `"worker_id":${quoteForVm(lease.worker_id, 72)},"mem_mb":${int(lease.mem_mb)},"streams":${int(lease.streams)},` +
    `"ttl_s":${int(lease.ttl_s)},"priority":${int(lease.priority)}}`;
}

/** `LEASE <worker> mem=<m> streams=<s> priority=<p>` */
export function ctlLeaseLine(lease: Lease): string {
  return `LEASE ${ctlToken(lease.worker_id, 72)} mem=${int(lease.mem_mb)} streams=${int(lease.streams)} priority=${int(lease.priority)}`;
}

/** `RELEASE <worker> <reason>`, at most `maxBytes`: the reason is cut to fit. */
export function ctlReleaseLine(workerId: string, reason: string, maxBytes: number = LINE_BYTES.ctl): string {
  const head = `RELEASE ${ctlToken(workerId, 72)} `; // printable ASCII: its length is its size
  return head + (ctlText(reason, maxBytes - head.length) || "released");
}

/** `PRIORITY <n>[ worker=<w>]` */
export function ctlPriorityLine(priority: number, workerId?: string): string {
  return `PRIORITY ${int(priority)}${workerId === undefined ? "" : ` worker=${ctlToken(workerId, 72)}`}`;
}

export type JobState = "QUEUED" | "RUNNING" | "OK" | "ERR" | "LEASE-ENDED";

/** `{"job":"<id>","state":"<STATE>","detail":"<detail>"}`, at most `maxBytes`: the detail is cut to fit. */
export function statusLine(job: string, state: JobState, detail: string, maxBytes: number = LINE_BYTES.status): string {
  const head = `{"job":${quoteForVm(job, 72)},"state":"${state}","detail":`;
  return `${head}${quoteForVm(detail, maxBytes - byteLength(head) - 1)}}`;
}

/** A count as JSON: a lease's numbers are checked integers; anything else would break the line. */
function int(n: number): number {
  return Number.isSafeInteger(n) ? n : 0;
}
