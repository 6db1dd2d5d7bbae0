/**
 * The text lines of contract section 7: lease records, control lines, job status lines and
 * host-run breadcrumbs, with keys in the contract's order and section 4's escaping.
 */
import { quote } from "../contract/escape.ts";
import type { Lease } from "./types.ts";
import { byteLength } from "../util/bytes.ts";

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

const MAX_BREADCRUMB = 512;
const MAX_COMMAND = 256;

/** A host-run breadcrumb, at most 512 bytes, with the command cut to 256 bytes. */
export function breadcrumb(
  event: "START" | "EXIT",
  command: string,
  status: "RUNNING" | "OK" | "ERR",
  exitCode?: number,
): string {
  const cmd = truncateUtf8(command, MAX_COMMAND);
  const line = `{"schema":"gpu-breadcrumb/v1","event":"${event}","command":${quote(cmd)},"status":"${status}"` +
    (exitCode === undefined ? "" : `,"exit_code":${exitCode}`) + "}";
  // Escaping can grow the command; cut it further until the line fits.
  if (byteLength(line) <= MAX_BREADCRUMB) return line;
  return breadcrumb(event, truncateUtf8(cmd, Math.floor(cmd.length / 2)), status, exitCode);
}

/** The longest prefix of `text` of at most `maxBytes` UTF-8 bytes, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}
