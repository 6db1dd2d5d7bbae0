/**
 * What the bridge does with lines the VM's clients wrote (docs/protocol.md#12-what-the-vm-writes-back), found by
 * read-back (each line once: the mirror, persisted, remembers what was read):
 * - `lease`: a `gpu-lease/v1` record, read strictly (src/lease/vm-record.ts), is a request: an
 *   ACTIVE record for a new worker (a Queen spawn) is adopted as a host lease, or, when it does
 *   not fit, released at once with the reason in the ctl log; a live lease's own ACTIVE record
 *   renews it for its own TTL, one with other terms is admitted like a grant; a RELEASED record
 *   that repeats the lease's terms ends it; anything else is refused with a status line.
 * - `ctl`: `LEASE`, `RELEASE`, `PRIORITY`, `RESET` lines are applied exactly as if posted to
 *   `POST /v1/gpus/{id}/ctl`; a refusal or a malformed line comes back as a status line.
 * - `job` (the VM variant where a worker-gpu with a 9P mount appends descriptors): each runs
 *   under the live lease of the worker its output path names; otherwise it is refused with a
 *   status line.
 * - `status`: kept (breadcrumbs).
 */
import { type HostState, JobError } from "../host/state.ts";
import { workerOfOutput } from "../job/cohesix.ts";
import { ctlReleaseLine, leaseRecord, statusLine } from "../lease/records.ts";
import { parseVmLeaseRecord, termsDiff, type VmLeaseRecord } from "../lease/vm-record.ts";
import { LeaseError } from "../lease/types.ts";
import { SAFE_ID } from "../contract/ids.ts";
import { LIMITS } from "../contract/limits.ts";
import type { Logger } from "../util/log.ts";
import type { VmFile } from "../contract/limits.ts";
import { type AppliedLines, lineIdentities, type VmLinePlace } from "./applied.ts";

const CONTROL_VERB = /^(LEASE|RELEASE|PRIORITY|RESET)(\s|$)/;
/**
 * A line the bridge writes back because of what the VM wrote (a refusal) is one echo payload
 * at most: it goes as a single append, so a VM writing nonsense cannot make the bridge
 * republish whole snapshots line after line.
 */
const REPLY_BYTES = LIMITS.echoPayloadBytes;

/** Applies each line at most once: where the lines sit in the VM, and the ledger of those acted on. */
export interface ApplyOnce {
  readonly place: VmLinePlace;
  readonly ledger: AppliedLines;
}

/**
 * Acts on `lines`, new in the VM's `file` of `gpuId`, oldest first. With `once`, a line whose
 * identity (src/vm/applied.ts) the ledger holds was acted on already and is skipped, and the
 * others are recorded before they are acted on.
 */
export function applyVmLines(
  host: HostState,
  log: Logger,
  gpuId: string,
  file: VmFile,
  lines: readonly string[],
  once?: ApplyOnce,
): void {
  if (once !== undefined && file !== "status" && once.place.at.length === lines.length) {
    const keys = lineIdentities(gpuId, file, once.place);
    const fresh = lines.filter((_, i) => !once.ledger.has(keys[i]!));
    if (fresh.length < lines.length) {
      log.warn(`/gpu/${gpuId}/${file}: ${lines.length - fresh.length} lines read back again were acted on before; skipped`);
    }
    try {
      once.ledger.record(keys);
    } catch (error) {
      // Acting on them is the lesser harm than dropping a RESET the VM's clients asked for.
      log.error(`cannot record the VM lines about to be applied (${(error as Error).message}); a crash now could apply them again`);
    }
    lines = fresh;
  }
  const misread = new Set<string>();
  for (const line of lines) {
    log.info(`VM wrote /gpu/${gpuId}/${file}: ${line}`);
    if (file === "lease") leaseLine(host, log, gpuId, line, misread);
    else if (file === "ctl") controlLine(host, log, gpuId, line);
    else if (file === "job") jobLine(host, log, gpuId, line);
  }
  restate(host, gpuId, misread);
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
    const r = parseVmLeaseRecord(line, gpuId);
    if (r.ok) last.set(r.record.worker_id, { line, active: r.record.state === "ACTIVE" });
  }
  const misread = new Set<string>();
  for (const [worker, { line, active }] of last) {
    if (!active || host.leases.ofWorker(gpuId, worker) !== undefined) continue; // ended, or restored from the journal
    leaseLine(host, log, gpuId, line, misread);
  }
  restate(host, gpuId, misread);
}

/**
 * Writes the ACTIVE line of each live lease in `workers` again, once per batch of VM lines
 * however many of them were refused: the last record the VM's clients read for it is then
 * the host's again.
 */
function restate(host: HostState, gpuId: string, workers: ReadonlySet<string>): void {
  for (const worker of workers) {
    const live = host.leases.ofWorker(gpuId, worker);
    if (live !== undefined) host.logsOf(gpuId).appendActive(live.id, leaseRecord(live, "ACTIVE"));
  }
  if (workers.size > 0) host.changed();
}

/**
 * A lease record the VM wrote is a request: a new worker's ACTIVE record is granted like any
 * lease or released at once; a live lease's ACTIVE record with its own terms renews it for its
 * own TTL, with other terms is admitted like a grant of those terms; a RELEASED record ends the
 * lease whose terms it repeats. Anything else is refused with the reason in the VM's status
 * log, and a live lease's own ACTIVE line is written again, so the last record the VM's
 * clients read for it is what the host accounts and the API shows.
 */
function leaseLine(host: HostState, log: Logger, gpuId: string, line: string, misread: Set<string>): void {
  const parsed = parseVmLeaseRecord(line, gpuId);
  const refuse = (worker: string | undefined, why: string, more = "") => {
    refuseRecord(host, log, gpuId, worker, why, more);
    if (worker !== undefined) misread.add(worker);
  };
  if (!parsed.ok) return refuse(parsed.worker, parsed.why);
  const r = parsed.record;
  misread.delete(r.worker_id); // taken or refused below; a later record of the batch decides
  const live = host.leases.ofWorker(gpuId, r.worker_id);
  const diff = live === undefined ? null : termsDiff(live, r);
  if (r.state === "RELEASED") {
    if (live === undefined) {
      return log.debug(`/gpu/${gpuId}/lease: a RELEASED record for ${r.worker_id}, who holds no lease; nothing to end`);
    }
    if (diff !== null) return refuse(r.worker_id, `RELEASED terms differ from the lease (${diff})`);
    host.leases.release(live.id, "released in the VM");
    return;
  }
  if (live === undefined) return adoptRecord(host, log, gpuId, r);
  if (diff === null) {
    host.leases.renew(live.id);
    log.info(`lease ${live.id} (${r.worker_id} on ${gpuId}) renewed by the VM for its ${live.ttl_s} s`, {
      lease: live.id,
      worker: r.worker_id,
      gpu: gpuId,
    });
    return;
  }
  try {
    host.adoptTerms(live.id, r);
    log.info(`lease ${live.id} (${r.worker_id} on ${gpuId}) takes the VM's new terms: ${diff}`, {
      lease: live.id,
      worker: r.worker_id,
      gpu: gpuId,
    });
  } catch (error) {
    if (!(error instanceof LeaseError)) throw error;
    refuse(r.worker_id, `terms refused: ${error.message}`, ` (${diff})`);
  }
}

function adoptRecord(host: HostState, log: Logger, gpuId: string, r: VmLeaseRecord): void {
  const req = { gpu_id: gpuId, worker_id: r.worker_id, mem_mb: r.mem_mb, streams: r.streams, ttl_s: r.ttl_s, priority: r.priority };
  try {
    const lease = host.adopt(req);
    log.info(
      `adopted the VM's lease of ${r.worker_id} on ${gpuId} as ${lease.id}: ${r.mem_mb} MiB, ${r.streams} streams, ${r.ttl_s} s from now`,
      { lease: lease.id, worker: r.worker_id, gpu: gpuId },
    );
  } catch (error) {
    if (!(error instanceof LeaseError)) throw error;
    // Host policy wins, and the VM's record is made true: a RELEASED line ends the VM's lease.
    log.warn(`the VM's lease of ${r.worker_id} on ${gpuId} is released at once: ${error.message}`, { worker: r.worker_id, gpu: gpuId });
    const logs = host.logsOf(gpuId);
    logs.appendCtl(ctlReleaseLine(r.worker_id, `refused: ${error.message}`, REPLY_BYTES));
    const record = { id: "", ...req, state: "RELEASED" as const, granted_at: 0, expires_at: 0 };
    logs.appendReleased("", leaseRecord(record, "RELEASED"));
    host.changed();
  }
}

/** Says in the VM's status log why a record was refused. */
function refuseRecord(host: HostState, log: Logger, gpuId: string, worker: string | undefined, why: string, more: string): void {
  log.warn(`/gpu/${gpuId}/lease: refused a record the VM wrote${worker === undefined ? "" : ` for ${worker}`}: ${why}${more}`, {
    gpu: gpuId,
    ...(worker !== undefined && { worker }),
  });
  host.logsOf(gpuId).appendStatus(statusLine("lease", "ERR", `${worker ?? "record"}: ${why}`, REPLY_BYTES));
  host.changed();
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
    log.info(`applied the VM's control line on ${gpuId}: ${text} (${message})`, { gpu: gpuId });
  } catch (error) {
    if (!(error instanceof LeaseError)) throw error;
    log.warn(`refused the VM's control line on ${gpuId}: ${text}: ${error.message}`, { gpu: gpuId });
    host.logsOf(gpuId).appendStatus(statusLine("ctl", "ERR", `${text}: ${error.message}`, REPLY_BYTES));
    host.changed();
  }
}

function jobLine(host: HostState, log: Logger, gpuId: string, line: string): void {
  const refuse = (job: string, why: string) => {
    log.warn(`refused the VM's job descriptor on ${gpuId}: ${why}`, { gpu: gpuId });
    host.logsOf(gpuId).appendStatus(statusLine(job, "ERR", why, REPLY_BYTES));
    host.changed();
  };
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return refuse("job", "the descriptor is not JSON");
  }
  const d = (typeof raw === "object" && raw !== null ? raw : {}) as { job?: unknown; outputs?: unknown };
  const id = typeof d.job === "string" && SAFE_ID.test(d.job) ? d.job : "job";
  const output = Array.isArray(d.outputs) && typeof d.outputs[0] === "string" ? d.outputs[0] : undefined;
  const worker = output === undefined ? null : workerOfOutput(output);
  if (worker === null) return refuse(id, `outputs[0] must name the worker: /shard/<xx>/worker/<id>/result or /worker/<id>/result`);
  const lease = host.leases.ofWorker(gpuId, worker);
  if (lease === undefined) return refuse(id, `${worker} holds no live lease on ${gpuId}`);
  try {
    host.submitJob(lease.id, raw);
    log.info(`queued the VM's job ${id} under ${lease.id} (${worker} on ${gpuId})`, { job: id, lease: lease.id, worker, gpu: gpuId });
  } catch (error) {
    if (!(error instanceof JobError)) throw error;
    refuse(id, error.message);
  }
}
