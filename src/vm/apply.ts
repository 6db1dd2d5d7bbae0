/**
 * What the bridge does with lines the VM's clients wrote (docs/protocol.md#12-what-the-vm-writes-back), found by
 * read-back (each line once: the mirror, persisted, remembers what was read):
 * - `lease`: an ACTIVE `gpu-lease/v1` line the bridge did not write is a lease the VM granted
 *   (a Queen spawn): it is adopted as a host lease, or, when it does not fit, released at once
 *   with the reason in the ctl log; a repeated ACTIVE line for a live lease renews it; a
 *   RELEASED line ends it.
 * - `ctl`: `LEASE`, `RELEASE`, `PRIORITY`, `RESET` lines are applied exactly as if posted to
 *   `POST /v1/gpus/{id}/ctl`; a refusal or a malformed line comes back as a status line.
 * - `job` (the VM variant where a worker-gpu with a 9P mount appends descriptors): each runs
 *   under the live lease of the worker its output path names; otherwise it is refused with a
 *   status line.
 * - `status`: kept (breadcrumbs).
 */
import * as v from "valibot";
import { type HostState, JobError } from "../host/state.ts";
import { workerOfOutput } from "../job/cohesix.ts";
import { ctlReleaseLine, leaseRecord, statusLine } from "../lease/records.ts";
import { truncateUtf8 } from "../util/bytes.ts";
import { LeaseError } from "../lease/types.ts";
import type { Logger } from "../util/log.ts";
import type { VmFile } from "../contract/limits.ts";

const VmLease = v.object({
  schema: v.literal("gpu-lease/v1"),
  state: v.picklist(["ACTIVE", "RELEASED"]),
  gpu_id: v.string(),
  worker_id: v.pipe(v.string(), v.minLength(1)),
  mem_mb: v.pipe(v.number(), v.integer(), v.minValue(1)),
  streams: v.pipe(v.number(), v.integer(), v.minValue(1)),
  ttl_s: v.pipe(v.number(), v.integer(), v.minValue(1)),
  priority: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(255)), 0),
});

const CONTROL_VERB = /^(LEASE|RELEASE|PRIORITY|RESET)(\s|$)/;
/** A status line the VM can take as one append and `coh gpu status` can show. */
const DETAIL_BYTES = 200;

/** Acts on `lines`, new in the VM's `file` of `gpuId`, oldest first. */
export function applyVmLines(host: HostState, log: Logger, gpuId: string, file: VmFile, lines: readonly string[]): void {
  for (const line of lines) {
    log.info(`VM wrote /gpu/${gpuId}/${file}: ${line}`);
    if (file === "lease") leaseLine(host, log, gpuId, line);
    else if (file === "ctl") controlLine(host, log, gpuId, line);
    else if (file === "job") jobLine(host, log, gpuId, line);
  }
}

/**
 * Lines found in the VM by a bridge without a stored mirror (src/vm/sync.ts): history. Nothing
 * is applied again; the leases it shows live (a worker's last record ACTIVE) and the host does
 * not hold are adopted, so a Queen's lease survives a bridge that lost its state.
 */
export function applyVmHistory(host: HostState, log: Logger, gpuId: string, file: VmFile, lines: readonly string[]): void {
  if (file !== "lease") return;
  const last = new Map<string, { line: string; active: boolean }>();
  for (const line of lines) {
    const r = v.safeParse(VmLease, safeJson(line));
    if (r.success && r.output.gpu_id === gpuId) last.set(r.output.worker_id, { line, active: r.output.state === "ACTIVE" });
  }
  for (const [worker, { line, active }] of last) {
    if (!active || host.leases.ofWorker(gpuId, worker) !== undefined) continue; // ended, or restored from the journal
    leaseLine(host, log, gpuId, line);
  }
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

function leaseLine(host: HostState, log: Logger, gpuId: string, line: string): void {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    log.warn(`/gpu/${gpuId}/lease: a line the VM wrote is not JSON; kept, not acted on: ${line}`);
    return;
  }
  const parsed = v.safeParse(VmLease, raw);
  if (!parsed.success) {
    log.warn(`/gpu/${gpuId}/lease: not a gpu-lease/v1 record (${parsed.issues[0].message}); kept, not acted on`);
    return;
  }
  const r = parsed.output;
  if (r.gpu_id !== gpuId) {
    log.warn(`/gpu/${gpuId}/lease: a record for ${r.gpu_id} is in the wrong file; kept, not acted on`);
    return;
  }
  const live = host.leases.ofWorker(gpuId, r.worker_id);
  if (r.state === "RELEASED") {
    if (live !== undefined) host.leases.release(live.id, "released in the VM");
    return;
  }
  if (live !== undefined) {
    host.leases.renew(live.id, Math.min(r.ttl_s, 7 * 24 * 3600));
    host.vmActiveLines.set(live.id, line);
    log.info(`lease ${live.id} (${r.worker_id} on ${gpuId}) renewed by the VM for ${r.ttl_s} s`);
    return;
  }
  const req = { gpu_id: gpuId, worker_id: r.worker_id, mem_mb: r.mem_mb, streams: r.streams, ttl_s: r.ttl_s, priority: r.priority };
  try {
    const lease = host.adopt(req, line);
    log.info(
      `adopted the VM's lease of ${r.worker_id} on ${gpuId} as ${lease.id}: ${r.mem_mb} MiB, ${r.streams} streams, ${r.ttl_s} s from now`,
    );
  } catch (error) {
    if (!(error instanceof LeaseError)) throw error;
    // Host policy wins, and the VM's record is made true: a RELEASED line ends the VM's lease.
    const reason = `refused: ${error.message}`;
    log.warn(`the VM's lease of ${r.worker_id} on ${gpuId} is released at once: ${error.message}`);
    const logs = host.logsOf(gpuId);
    logs.appendCtl(ctlReleaseLine(r.worker_id, truncateUtf8(reason, DETAIL_BYTES)));
    const record = { id: "", ...req, state: "RELEASED" as const, granted_at: 0, expires_at: 0 };
    logs.appendReleased("", leaseRecord(record, "RELEASED"));
    host.changed();
  }
}

function controlLine(host: HostState, log: Logger, gpuId: string, line: string): void {
  const text = line.trim();
  if (!CONTROL_VERB.test(text)) {
    // Any text may be appended to ctl; only the control verbs are acted on.
    log.debug(`/gpu/${gpuId}/ctl: not a control line, kept: ${line}`);
    return;
  }
  try {
    const { message } = host.control(gpuId, text);
    log.info(`applied the VM's control line on ${gpuId}: ${text} (${message})`);
  } catch (error) {
    if (!(error instanceof LeaseError)) throw error;
    log.warn(`refused the VM's control line on ${gpuId}: ${text}: ${error.message}`);
    host.logsOf(gpuId).appendStatus(statusLine("ctl", "ERR", truncateUtf8(`${text}: ${error.message}`, DETAIL_BYTES)));
    host.changed();
  }
}

function jobLine(host: HostState, log: Logger, gpuId: string, line: string): void {
  const refuse = (job: string, why: string) => {
    log.warn(`refused the VM's job descriptor on ${gpuId}: ${why}`);
    host.logsOf(gpuId).appendStatus(statusLine(job, "ERR", truncateUtf8(why, DETAIL_BYTES)));
    host.changed();
  };
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return refuse("job", "the descriptor is not JSON");
  }
  const d = (typeof raw === "object" && raw !== null ? raw : {}) as { job?: unknown; outputs?: unknown };
  const id = typeof d.job === "string" && d.job.length <= 64 ? d.job : "job";
  const output = Array.isArray(d.outputs) && typeof d.outputs[0] === "string" ? d.outputs[0] : undefined;
  const worker = output === undefined ? null : workerOfOutput(output);
  if (worker === null) return refuse(id, `outputs[0] must name the worker: /shard/<xx>/worker/<id>/result or /worker/<id>/result`);
  const lease = host.leases.ofWorker(gpuId, worker);
  if (lease === undefined) return refuse(id, `${worker} holds no live lease on ${gpuId}`);
  try {
    host.submitJob(lease.id, raw);
    log.info(`queued the VM's job ${id} under ${lease.id} (${worker} on ${gpuId})`);
  } catch (error) {
    if (!(error instanceof JobError)) throw error;
    refuse(id, error.message);
  }
}
