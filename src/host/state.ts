/**
 * The host side of GPU sharing: leases, control verbs, jobs and the per-GPU logs they write,
 * which become the `ctl`, `lease` and `status` payloads the VM sees. Every change calls
 * `onChange`, which the daemon turns into a republish.
 */
import { type JobProblem, type LaunchLimits, type ShardInput, validateJob } from "../job/descriptor.ts";
import { writeJobOutput } from "../job/output.ts";
import type { Runner } from "../job/runner.ts";
import { type JobRecord, JobScheduler, type SchedulerOptions } from "../job/scheduler.ts";
import type { RetentionPolicy } from "../job/retention.ts";
import { parseControl } from "../lease/control.ts";
import { COMPACT_AFTER, type LeaseJournal } from "../lease/journal.ts";
import { GpuLogs } from "../lease/logs.ts";
import { LeaseManager } from "../lease/manager.ts";
import { type LeasePolicy, policyProblem, withDefaults } from "../lease/policy.ts";
import { ctlLeaseLine, ctlPriorityLine, ctlReleaseLine, leaseRecord, statusLine } from "../lease/records.ts";
import { type Clock, type Lease, LeaseError, type LeaseEvent, type LeaseRequest } from "../lease/types.ts";
import type { GpuInfo } from "../inventory/types.ts";
import type { JobKernel } from "../config/defaults.ts";
import type { Logger } from "../util/log.ts";
import { LIMITS, PRIORITY } from "../contract/limits.ts";
import type { NodeLogs } from "../contract/namespace.ts";
import { DiskWriteError } from "../util/files.ts";
import { byteLength } from "../util/bytes.ts";

/** A refused job submission; `problems` name the fields. */
export class JobError extends Error {
  override name = "JobError";
  /** `not_sealed`, `integrity_violation`: a shard input the lease does not hold, or that failed verification. */
  readonly code: "invalid" | "conflict" | "permission" | "not_found" | "busy" | "not_sealed" | "integrity_violation";
  readonly problems: readonly JobProblem[];
  constructor(code: JobError["code"], message: string, problems: JobProblem[] = []) {
    super(message, problems[0]?.cause !== undefined ? { cause: problems[0].cause } : undefined);
    this.code = code;
    this.problems = problems;
  }
}

/** A LEASE control line's name for each lease term. */
const CTL_KEYS = { mem_mb: "mem", streams: "streams", ttl_s: "ttl" } as const;

export interface HostOptions {
  /** The latest inventory (what can be leased). */
  readonly gpus: () => readonly GpuInfo[];
  readonly runner: Runner;
  readonly runnerKind: "cpu" | "cuda";
  readonly log: Logger;
  readonly onChange: () => void;
  /** Told of each job's every state (after its status line is written). */
  readonly onJobChange?: (job: JobRecord) => void;
  readonly clock?: Clock;
  readonly maxStreamsPerGpu?: number;
  /** How long finished jobs and their results are kept (src/job/retention.ts). */
  readonly retention?: Partial<RetentionPolicy>;
  readonly bundleDir?: string;
  readonly journal?: LeaseJournal;
  readonly limits?: (gpuId: string) => LaunchLimits | undefined;
  readonly deviceOf?: (gpuId: string) => number | undefined;
  /** The check before each job of a lease (sealed VRAM shards). */
  readonly gate?: (leaseId: string) => Promise<{ detail: string; message: string } | null> | null;
  /** A sealed shard of lease `leaseId` (undefined for another lease's): what a job may name as operand b. */
  readonly shardOf?: (leaseId: string, shardId: string) => ShardInput | undefined;
  /** Verifies and reads a job's shard operand when it starts (SchedulerOptions.shardOperand). */
  readonly shardOperand?: SchedulerOptions["shardOperand"];
  /** The MIG devices a lease may name (LeaseManagerOptions.migDevices). */
  readonly migDevices?: () => ReadonlyMap<string, string>;
  /** The operator's lease maxima and defaults (default DEFAULT_LEASE_POLICY). */
  readonly policy?: LeasePolicy;
  /** The kinds of job this bridge runs (`--allowed-kernels`; default all). */
  readonly allowedKernels?: readonly JobKernel[];
}

export class HostState {
  readonly leases: LeaseManager;
  readonly jobs: JobScheduler;
  readonly #o: HostOptions;
  readonly #logs = new Map<string, GpuLogs>();
  /** Told of every line the bridge logs for a GPU (the VM sync appends it in the VM). */
  onLogLine: ((gpuId: string, file: "ctl" | "lease" | "status", text: string) => void) | null = null;
  /**
   * Set while taking terms the VM wrote (a Queen spawn, a VM renewal with new terms): the VM
   * already holds that ACTIVE line (a VM record is taken only in the bridge's own canonical
   * form, so it is the line the bridge would write), and the bridge writes none.
   */
  #adopting = false;
  /** Leases ended because their grant could not be journaled: their release is not journaled either. */
  readonly #unjournaled = new Set<string>();

  constructor(o: HostOptions) {
    this.#o = o;
    this.leases = new LeaseManager({
      gpus: () => o.gpus().map((g) => ({ id: g.id, memory_mb: g.memory_mb })),
      ...(o.clock !== undefined && { clock: o.clock }),
      ...(o.maxStreamsPerGpu !== undefined && { maxStreamsPerGpu: o.maxStreamsPerGpu }),
      ...(o.migDevices !== undefined && { migDevices: o.migDevices }),
      ...(o.policy !== undefined && { policy: o.policy }),
      admit: (gpuId, live, candidate) => {
        // Counted at the widest priority: a later PRIORITY line at PRIORITY.max rewrites every live lease's
        // pinned ACTIVE line, and must not push the log past the VM's cap.
        let need = 0;
        for (const l of [...live, candidate]) need += byteLength(leaseRecord({ ...l, priority: PRIORITY.max }, "ACTIVE")) + 1;
        return need <= LIMITS.leaseLogBytes
          ? null
          : `lease log full on ${gpuId}: the VM's ${LIMITS.leaseLogBytes}-byte lease log cannot hold another live lease; release one first`;
      },
    });
    this.jobs = new JobScheduler({
      runner: o.runner,
      kind: o.runnerKind,
      ...(o.clock !== undefined && { clock: o.clock }),
      ...(o.deviceOf !== undefined && { deviceOf: o.deviceOf }),
      ...(o.gate !== undefined && { gate: o.gate }),
      ...(o.shardOperand !== undefined && { shardOperand: o.shardOperand }),
      ...(o.retention !== undefined && { retention: o.retention }),
      onChange: (job) => {
        this.logsOf(job.gpu_id).appendStatus(statusLine(job.job, job.state, job.detail));
        if (job.state === "ERR") {
          o.log.warn(`job ${job.job} on ${job.gpu_id}: ERR ${job.detail}${job.message ? ` (${job.message})` : ""}`, {
            job: job.job,
            gpu: job.gpu_id,
          });
        }
        o.onJobChange?.(job);
        o.onChange();
      },
      onResult: (job, valid) => this.#writeResult(job, valid.descriptor.outputs[0]),
    });
    this.leases.on((e) => this.#onLeaseEvent(e));
  }

  /** A lease event in the GPU's files (ctl, lease, status) and in the journal; then the VM is told. */
  #onLeaseEvent(e: LeaseEvent): void {
    const o = this.#o;
    const logs = this.logsOf(e.lease.gpu_id);
    const j = o.journal;
    switch (e.type) {
      case "granted":
        logs.appendCtl(ctlLeaseLine(e.lease));
        if (!this.#adopting) logs.appendActive(e.lease.id, leaseRecord(e.lease, "ACTIVE"));
        try {
          j?.grant(e.lease);
        } catch (error) {
          // A lease the next start would not know is not granted: end it and say why (HTTP 507).
          if (!(error instanceof DiskWriteError)) throw error;
          this.#unjournaled.add(e.lease.id);
          this.leases.release(e.lease.id, "not-stored");
          throw error;
        }
        break;
      case "renewed":
        j?.renew(e.lease);
        break;
      case "amended":
        logs.appendCtl(ctlLeaseLine(e.lease));
        if (!this.#adopting) logs.appendActive(e.lease.id, leaseRecord(e.lease, "ACTIVE"));
        j?.grant(e.lease); // a later grant of the same id replaces the terms when replayed
        this.jobs.poke();
        break;
      case "priority":
        logs.appendActive(e.lease.id, leaseRecord(e.lease, "ACTIVE"));
        j?.priority(e.lease);
        this.jobs.poke();
        break;
      case "released":
        logs.appendCtl(ctlReleaseLine(e.lease.worker_id, e.reason));
        logs.appendReleased(e.lease.id, leaseRecord(e.lease, "RELEASED"));
        logs.appendStatus(statusLine(e.lease.worker_id, "LEASE-ENDED", e.reason));
        this.jobs.endLease(e.lease.id, "LEASE-ENDED");
        try {
          if (!this.#unjournaled.delete(e.lease.id)) j?.release(e.lease, e.reason);
        } catch (error) {
          // Released here all the same; the next start may restore it until its TTL runs out,
          // unless a compaction (which retries) lands first.
          if (!(error instanceof DiskWriteError)) throw error;
          o.log.warn(`journal: lease ${e.lease.id} released, but the release is not on disk: ${error.message}`, { lease: e.lease.id });
        }
        // The running journal is rewritten with the live leases now and then, so it stays
        // proportional to them however many leases come and go.
        try {
          if (j !== undefined && j.appended >= COMPACT_AFTER + 4 * this.leases.liveCount) j.compact(this.leases.live());
        } catch (error) {
          if (!(error instanceof DiskWriteError)) throw error;
          o.log.warn(`journal: not compacted (retried at the next release): ${error.message}`);
        }
        // Counted in the INFO summary.
        o.log.debug(`lease ${e.lease.id} (${e.lease.worker_id} on ${e.lease.gpu_id}) ended: ${e.reason}`, {
          lease: e.lease.id,
          worker: e.lease.worker_id,
          gpu: e.lease.gpu_id,
        });
        break;
    }
    o.onChange();
  }

  /** Adopts the journal's leases; those whose TTL passed while the bridge was down are released. */
  restore(): void {
    const journal = this.#o.journal;
    if (journal === undefined) return;
    const { leases, problems } = journal.load();
    for (const p of problems) this.#o.log.warn(p);
    const { restored, expired, refused } = this.leases.restore(leases);
    for (const r of refused) this.#o.log.warn(`journal: lease ${r.lease.id} not restored: ${r.why}`, { lease: r.lease.id });
    for (const l of restored) {
      // Kept as granted: the holder was promised these terms; it keeps them until it ends or
      // asks for new ones, which are held to the policy (docs/tenancy.md).
      const over = policyProblem(this.leases.policy, l);
      if (over !== null) this.#o.log.warn(`journal: lease ${l.id} restored with its terms, over today's policy: ${over}`, { lease: l.id });
      this.logsOf(l.gpu_id).appendCtl(ctlLeaseLine(l));
      this.logsOf(l.gpu_id).appendActive(l.id, leaseRecord(l, "ACTIVE"));
    }
    journal.compact(this.leases.live());
    if (restored.length + expired.length > 0) {
      this.#o.log.info(`journal: ${restored.length} leases restored, ${expired.length} expired while the bridge was down`);
    }
    this.#o.onChange();
  }

  logsOf(gpuId: string): GpuLogs {
    let logs = this.#logs.get(gpuId);
    if (logs === undefined) this.#logs.set(gpuId, logs = new GpuLogs(gpuId, (file, text) => this.onLogLine?.(gpuId, file, text)));
    return logs;
  }

  /** The payloads for `gpuId`, or undefined while it has no history (the seeds apply). */
  nodeLogs(gpuId: string): NodeLogs | undefined {
    return this.#logs.get(gpuId)?.payloads();
  }

  /** Whether `text` is the current ACTIVE line of a live lease of `gpuId` (it must stay in the VM). */
  isLiveActiveLine(gpuId: string, text: string): boolean {
    for (const l of this.leases.live(gpuId)) if (leaseRecord(l, "ACTIVE") === text) return true;
    return false;
  }

  /**
   * Takes a lease the VM granted (its ACTIVE record, in the bridge's own form) as a host lease:
   * admitted like any grant, accounted, journaled, expired on time; its TTL runs from now, when
   * the bridge first saw it. The VM holds the ACTIVE line already, so the bridge writes only
   * its ctl echo. Throws LeaseError when it does not fit.
   */
  adopt(req: LeaseRequest): Lease {
    return this.#asVmWrote(() => this.leases.grant(req));
  }

  /**
   * New terms for a live lease, from an ACTIVE record the VM wrote (in the bridge's own form):
   * admitted like a grant (LeaseManager.amend); the VM holds that line already. Throws
   * LeaseError when they do not fit, and nothing changes.
   */
  adoptTerms(id: string, terms: Pick<LeaseRequest, "mem_mb" | "streams" | "ttl_s" | "priority">): Lease {
    return this.#asVmWrote(() => this.leases.amend(id, terms));
  }

  #asVmWrote(f: () => Lease): Lease {
    this.#adopting = true;
    try {
      return f();
    } finally {
      this.#adopting = false;
    }
  }

  /** Tells the daemon that the logs changed outside a lease or job event. */
  changed(): void {
    this.#o.onChange();
  }

  grant(req: LeaseRequest): Lease {
    return this.leases.grant(req);
  }

  /** Applies one control line to `gpuId`; returns what it did. Throws LeaseError when refused. */
  control(gpuId: string, line: string): { message: string; lease?: Lease } {
    if (!this.#o.gpus().some((g) => g.id === gpuId)) throw new LeaseError("not_found", `Unknown GPU ${JSON.stringify(gpuId)}`, "gpu_id");
    const cmd = parseControl(line);
    switch (cmd.verb) {
      case "LEASE": {
        const asked = {
          gpu_id: gpuId,
          worker_id: cmd.worker,
          mem_mb: cmd.mem,
          streams: cmd.streams,
          ttl_s: cmd.ttl,
          priority: cmd.priority,
        };
        const lease = this.leases.grant(withDefaults(this.leases.policy, asked, (term) => `LEASE needs ${CTL_KEYS[term]}=<n>`));
        return { message: `leased ${gpuId} to ${cmd.worker} as ${lease.id} for ${lease.ttl_s} s`, lease };
      }
      case "RELEASE": {
        const lease = this.leases.ofWorker(gpuId, cmd.worker);
        if (lease === undefined) throw new LeaseError("not_found", `${cmd.worker} holds no lease on ${gpuId}`, "worker_id");
        this.leases.release(lease.id, cmd.reason);
        return { message: `released ${lease.id} (${cmd.reason})`, lease };
      }
      case "PRIORITY": {
        const targets = cmd.worker === undefined ? this.leases.live(gpuId) : [this.leases.ofWorker(gpuId, cmd.worker)];
        if (targets.some((l) => l === undefined)) {
          throw new LeaseError("not_found", `${cmd.worker} holds no lease on ${gpuId}`, "worker_id");
        }
        this.logsOf(gpuId).appendCtl(ctlPriorityLine(cmd.priority, cmd.worker));
        for (const l of targets) this.leases.setPriority(l!.id, cmd.priority);
        if (targets.length === 0) this.#o.onChange();
        return { message: `priority ${cmd.priority} for ${targets.length} lease(s) on ${gpuId}` };
      }
      case "RESET": {
        this.logsOf(gpuId).appendCtl("RESET");
        const ended = this.leases.releaseGpu(gpuId, "reset");
        this.#o.onChange();
        return { message: `reset ${gpuId}: ${ended.length} lease(s) released` };
      }
    }
  }

  /** Validates and queues a job under a live lease. */
  submitJob(leaseId: string, raw: unknown): JobRecord {
    const lease = this.leases.get(leaseId);
    if (lease === undefined) throw new JobError("not_found", `Unknown lease ${JSON.stringify(leaseId)}`);
    if (lease.state !== "ACTIVE") {
      throw new JobError("permission", `Lease ${leaseId} has ended (${lease.released_reason ?? "released"}); jobs under it are refused`);
    }
    const result = validateJob(raw, {
      ...(this.#o.bundleDir !== undefined && { bundleDir: this.#o.bundleDir }),
      ...(this.#o.limits?.(lease.gpu_id) !== undefined && { limits: this.#o.limits(lease.gpu_id)! }),
      shard: (id) => this.#o.shardOf?.(lease.id, id),
      ...(this.#o.allowedKernels !== undefined && { allowedKernels: this.#o.allowedKernels }),
    });
    if (!result.ok) {
      const first = result.problems[0]!;
      throw new JobError(first.code ?? "invalid", `Invalid job descriptor: ${first.field}: ${first.message}`, result.problems);
    }
    const id = result.job.descriptor.job;
    if (this.jobs.get(id) !== undefined) {
      throw new JobError("conflict", `Job ${id} already exists`, [{ field: "job", message: "job id in use" }]);
    }
    const full = this.jobs.refusal(lease.gpu_id, result.job);
    if (full !== null) throw new JobError("busy", full);
    return this.jobs.submit(lease, result.job);
  }

  close(): void {
    this.jobs.close();
    this.leases.close();
    this.#o.journal?.close();
  }

  /** Writes a succeeded job's result to its first output; returns why it could not, or null. */
  #writeResult(job: JobRecord, output: string | undefined): string | null {
    // A VM path (docs/protocol.md#12-what-the-vm-writes-back) is kept as given: the API serves the result.
    if (output === undefined || output.startsWith("/") || this.#o.bundleDir === undefined) return null;
    try {
      // Created under the bundle directory through folder handles, never following a link.
      writeJobOutput(
        this.#o.bundleDir,
        output,
        JSON.stringify({ job: job.job, gpu_id: job.gpu_id, state: "OK", result: job.result }, null, 2) + "\n",
      );
      return null;
    } catch (error) {
      return `cannot write its result to ${output}: ${(error as Error).message}`;
    }
  }
}
