/**
 * Job execution under leases: one queue per GPU ordered by lease priority (then arrival), at
 * most `streams` running jobs per lease, `timeout_ms` enforced by killing the job's process,
 * and a lease's end ending its queued and running jobs with `LEASE-ENDED`.
 */
import type { Lease } from "../lease/types.ts";
import type { JobState } from "../lease/records.ts";
import { type KernelSummary, workload } from "./kernels.ts";
import type { ValidJob } from "./descriptor.ts";
import type { Runner } from "./runner.ts";
import type { MappedShard } from "./cuda-runner.ts";
import type { ReadRecord } from "../vram/operand.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { builtinPtx } from "./ptx/builtin.ts";
import { operandBytes } from "./cohesix.ts";
import { sha256Hex } from "../util/sha256.ts";
import { JobRetention, type RetentionPolicy } from "./retention.ts";
import { DEFAULTS } from "../config/defaults.ts";

/** A job as the bridge tracks it. */
export interface JobRecord {
  readonly job: string;
  readonly lease_id: string;
  readonly gpu_id: string;
  readonly worker_id: string;
  readonly kernel: "vadd" | "matmul";
  state: Exclude<JobState, "LEASE-ENDED">;
  detail: string;
  readonly submitted_at: number;
  started_at: number | null;
  finished_at: number | null;
  result: KernelSummary | null;
  /** The result as little-endian f32 (served raw by the API); null until OK, or once freed (src/job/retention.ts). */
  output: Uint8Array | null;
  /** Byte count and SHA-256 of the result, kept after the bytes are freed. */
  output_bytes: number | null;
  output_sha256: string | null;
  message: string | null;
  /** The sealed shard the job read as operand `b`, and the verification it passed; null: none (yet). */
  input_shard: ShardRead | null;
}

/** A sealed shard read as a job's operand `b` (src/vram/operand.ts). */
export type ShardRead = ReadRecord;

/** A shard read as the API and the record of changes show it (the verification's time in ISO 8601). */
export function shardReadView(r: ShardRead) {
  return { ...r, verified_at: new Date(r.verified_at).toISOString() };
}

/**
 * A job's shard operand: its bytes (copied), or its memory as a descriptor the kernel's process
 * maps read-only (`release` once the run ends), with the record of how it was read; or why the
 * job cannot have it.
 */
export type ShardOperand =
  | { readonly ok: true; readonly bytes: Uint8Array; readonly read: ShardRead }
  | { readonly ok: true; readonly mapping: MappedShard & { release(): void }; readonly read: ShardRead }
  | { readonly ok: false; readonly detail: string; readonly message: string };

/** What a job that names a shard gives its runner. */
interface ShardInputs {
  readonly operands: Uint8Array | undefined;
  readonly shard?: MappedShard;
  readonly release?: () => void;
}

/** What finished jobs and their results may hold by default (src/job/retention.ts). */
export const DEFAULT_RETENTION: RetentionPolicy = {
  finishedJobs: DEFAULTS.jobKeepFinished,
  finishedAgeMs: DEFAULTS.jobKeepFinishedS * 1000,
  resultBytes: DEFAULTS.jobResultsMb * 1048576,
  resultAgeMs: DEFAULTS.jobResultsAgeS * 1000,
};

export interface SchedulerOptions {
  readonly runner: Runner;
  /** Which runner kind executes jobs: the CPU mock or the CUDA driver. */
  readonly kind: "cpu" | "cuda";
  /** Called on every state change (the status log and a republish follow). */
  readonly onChange: (job: JobRecord) => void;
  /**
   * Called when a job's kernel has succeeded, to write its output; returns why the output could
   * not be written (the job then ends ERR `OUTPUT_FAILED`), or null.
   */
  readonly onResult?: (job: JobRecord, valid: ValidJob) => string | null;
  /** The CUDA ordinal of a GPU id (for the CUDA runner). */
  readonly deviceOf?: (gpuId: string) => number | undefined;
  /** Times `timeout_ms` and stamps jobs (default: the system clock). */
  readonly clock?: Clock;
  /** How long finished jobs and their results are kept (default DEFAULT_RETENTION). */
  readonly retention?: Partial<RetentionPolicy>;
  /** Checked before each job starts (sealed VRAM shards verify): a refusal ends the job ERR; null: nothing to check. */
  readonly gate?: (leaseId: string) => Promise<{ detail: string; message: string } | null> | null;
  /**
   * Verifies and reads the sealed shard a job names as operand `b` (after the gate); `map`: the
   * runner can map a descriptor, so a shareable shard is handed over rather than copied. Without
   * it, such a job ends ERR `NOT-SEALED`.
   */
  readonly shardOperand?: (leaseId: string, shardId: string, map: boolean) => Promise<ShardOperand>;
}

interface Queued {
  readonly record: JobRecord;
  readonly lease: Lease;
  readonly valid: ValidJob;
  readonly seq: number;
}

let seq = 0;

/** Jobs one GPU may have waiting; a submission past it is refused (busy), not queued. */
export const MAX_QUEUED_PER_GPU = 256;
/**
 * Bytes all queued jobs may hold together (four maximal 16 MiB payloads): their operands, and
 * on the CUDA runner a staged kernel. The CPU runner needs no kernel, so there a queued job
 * holds only its operands (none in the seed's form, whose operands come from the launch shape).
 */
export const MAX_QUEUED_PAYLOAD_BYTES = 64 * 1024 * 1024;

const NO_BYTES = new Uint8Array(0);

export class JobScheduler {
  readonly #o: SchedulerOptions;
  readonly #jobs = new Map<string, JobRecord>();
  readonly #queues = new Map<string, Queued[]>();
  readonly #running = new Map<string, { lease: Lease; abort: AbortController }>();
  readonly #retention: JobRetention<JobRecord>;
  /** The runs in progress (each settles once its child has exited): what a stop waits for. */
  readonly #runs = new Set<Promise<void>>();
  #closed = false;
  /** Bytes the running jobs of each lease use, so together they stay within its `mem_mb`. */
  readonly #memInUse = new Map<string, number>();
  #queuedPayloadBytes = 0;

  constructor(options: SchedulerOptions) {
    this.#o = options;
    this.policy = { ...DEFAULT_RETENTION, ...options.retention };
    this.#retention = new JobRetention(this.policy, options.clock ?? systemClock, (job) => this.#jobs.delete(job));
  }

  /** How long finished jobs and results are kept. */
  readonly policy: RetentionPolicy;

  /** Results held in memory: how many and their bytes (for metrics). */
  results(): { count: number; bytes: number } {
    return { count: this.#retention.resultCount, bytes: this.#retention.resultBytes };
  }

  get(job: string): JobRecord | undefined {
    return this.#jobs.get(job);
  }

  /** Jobs of a lease, or all known jobs. */
  list(leaseId?: string): JobRecord[] {
    return [...this.#jobs.values()].filter((j) => leaseId === undefined || j.lease_id === leaseId);
  }

  /** Counts by state, for metrics. */
  counts(): Record<string, number> {
    const c: Record<string, number> = { QUEUED: 0, RUNNING: 0, OK: 0, ERR: 0 };
    for (const j of this.#jobs.values()) c[j.state] = (c[j.state] ?? 0) + 1;
    return c;
  }

  /** Why `job` cannot be queued on `gpuId` now, or null. */
  refusal(gpuId: string, job: ValidJob): string | null {
    const queued = this.#queues.get(gpuId)?.length ?? 0;
    if (this.#closed) return "The bridge is stopping; no new jobs";
    if (queued >= MAX_QUEUED_PER_GPU) return `Job queue of ${gpuId} is full (${queued} jobs waiting); retry later`;
    const bytes = heldBytes(this.#held(job));
    if (this.#queuedPayloadBytes + bytes > MAX_QUEUED_PAYLOAD_BYTES) {
      return `Queued jobs already hold ${this.#queuedPayloadBytes} bytes of operands and kernels (at most ${MAX_QUEUED_PAYLOAD_BYTES}); retry later`;
    }
    return null;
  }

  /** What a queued `job` keeps: its operands, and its staged kernel only where the runner loads one. */
  #held(job: ValidJob): ValidJob {
    return {
      descriptor: job.descriptor,
      payload: NO_BYTES,
      operands: job.operands,
      ptx: this.#o.kind === "cuda" ? job.ptx : null,
      ...(job.shard !== undefined && { shard: job.shard }),
    };
  }

  /** Jobs waiting, and the kernel bytes they hold. */
  queued(): { jobs: number; payloadBytes: number } {
    let jobs = 0;
    for (const q of this.#queues.values()) jobs += q.length;
    return { jobs, payloadBytes: this.#queuedPayloadBytes };
  }

  /** Queues a validated job under a live lease; the caller has checked the lease is live. */
  submit(lease: Lease, job: ValidJob): JobRecord {
    // Only what the runner reads is kept: a queued job must not pin up to 16 MiB for nothing.
    const valid = this.#held(job);
    this.#queuedPayloadBytes += heldBytes(valid);
    const d = valid.descriptor;
    const record: JobRecord = {
      job: d.job,
      lease_id: lease.id,
      gpu_id: lease.gpu_id,
      worker_id: lease.worker_id,
      kernel: d.kernel,
      state: "QUEUED",
      detail: "accepted",
      submitted_at: this.#now(),
      started_at: null,
      finished_at: null,
      result: null,
      output: null,
      output_bytes: null,
      output_sha256: null,
      message: null,
      input_shard: null,
    };
    this.#jobs.set(d.job, record);
    let q = this.#queues.get(lease.gpu_id);
    if (q === undefined) this.#queues.set(lease.gpu_id, q = []);
    q.push({ record, lease, valid, seq: ++seq });
    this.#o.onChange(record);
    this.#pump(lease.gpu_id);
    return record;
  }

  /** Ends every queued and running job of a lease with ERR and `detail`. */
  endLease(leaseId: string, detail: string): void {
    for (const [gpu, q] of this.#queues) {
      const keep = q.filter((e) => e.lease.id !== leaseId);
      for (const e of q) {
        if (e.lease.id !== leaseId) continue;
        this.#queuedPayloadBytes -= heldBytes(e.valid);
        this.#finish(e.record, "ERR", detail, null);
      }
      this.#queues.set(gpu, keep);
    }
    for (const [job, run] of this.#running) if (run.lease.id === leaseId) this.#running.get(job)?.abort.abort(detail);
  }

  /** Re-runs dispatch (after a priority change, say). */
  poke(): void {
    for (const gpu of this.#queues.keys()) this.#pump(gpu);
  }

  #pump(gpuId: string): void {
    const q = this.#queues.get(gpuId);
    if (q === undefined || q.length === 0 || this.#closed) return;
    // Highest lease priority first, then first come; skip leases already using all their streams.
    q.sort((a, b) => b.lease.priority - a.lease.priority || a.seq - b.seq);
    for (let i = 0; i < q.length;) {
      const e = q[i]!;
      const busy = [...this.#running.values()].filter((r) => r.lease.id === e.lease.id).length;
      // Memory is the lease's across its concurrent jobs, not per job: a job waits until what
      // its lease's running jobs use leaves room for it. Alone, it runs and its child reports
      // OUT_OF_MEMORY if the whole lease is too small.
      const inUse = this.#memInUse.get(e.lease.id) ?? 0;
      if (busy >= e.lease.streams || (busy > 0 && inUse + jobBytes(e) > e.lease.mem_mb * 1048576)) {
        i++;
        continue;
      }
      q.splice(i, 1);
      this.#queuedPayloadBytes -= heldBytes(e.valid);
      const run = this.#start(e);
      this.#runs.add(run);
      void run.finally(() => this.#runs.delete(run));
    }
  }

  async #start(e: Queued): Promise<void> {
    const { record, lease, valid } = e;
    const abort = new AbortController();
    this.#running.set(record.job, { lease, abort });
    const need = jobBytes(e);
    const inUse = this.#memInUse.get(lease.id) ?? 0;
    this.#memInUse.set(lease.id, inUse + need);
    record.state = "RUNNING";
    record.detail = "scheduled";
    record.started_at = this.#now();
    this.#o.onChange(record);
    const clock = this.#o.clock ?? systemClock;
    const timer = clock.setTimer(valid.descriptor.timeout_ms, () => abort.abort("TIMEOUT"));
    let input: ShardInputs | null = null;
    try {
      const check = this.#o.gate?.(lease.id) ?? null;
      const refused = check === null ? null : await check;
      if (refused !== null) {
        record.message = refused.message;
        this.#finish(record, "ERR", refused.detail, null);
        return;
      }
      // Only a job that names a shard waits here: the others reach the runner in this same turn.
      input = valid.shard === undefined
        ? { operands: valid.operands ?? undefined }
        : await this.#withShard(record, lease, valid.shard.id, valid);
      if (input === null) return;
      const { operands, shard } = input;
      const device = this.#o.deviceOf?.(lease.gpu_id);
      const outcome = await this.#o.runner.run(
        {
          spec: { kernel: valid.descriptor.kernel, grid: valid.descriptor.grid, block: valid.descriptor.block },
          runner: this.#o.kind,
          memLimitBytes: Math.max(0, lease.mem_mb * 1048576 - inUse),
          // A staged .ptx bundle the job names, else the bridge's own kernel.
          payload: valid.ptx ?? new TextEncoder().encode(builtinPtx(valid.descriptor.kernel)),
          ...(operands !== undefined && { operands }),
          ...(shard !== undefined && { shard }),
          ...(device !== undefined && { device }),
        },
        abort.signal,
      );
      if (outcome.ok) {
        record.result = outcome.summary;
        // Ended (its lease, a timeout, a stop) while the child was handing back its result:
        // the end stands, and nothing is kept or written for it.
        if (abort.signal.aborted) {
          this.#finish(record, "ERR", String(abort.signal.reason), null);
          return;
        }
        if (outcome.output !== undefined) this.#keepOutput(record, outcome.output);
        const problem = this.#o.onResult?.(record, valid) ?? null;
        if (problem === null) this.#finish(record, "OK", "completed", outcome.summary);
        else {
          record.message = problem;
          this.#finish(record, "ERR", "OUTPUT_FAILED", outcome.summary);
        }
      } else {
        record.message = outcome.message ?? null;
        this.#finish(record, "ERR", outcome.detail, null);
      }
    } catch (error) {
      record.message = error instanceof Error ? error.message : String(error);
      this.#finish(record, "ERR", "RUNNER_ERROR", null);
    } finally {
      input?.release?.();
      clock.clearTimer(timer);
      this.#running.delete(record.job);
      const left = (this.#memInUse.get(lease.id) ?? need) - need;
      if (left > 0) this.#memInUse.set(lease.id, left);
      else this.#memInUse.delete(lease.id);
      this.#pump(lease.gpu_id);
    }
  }

  /**
   * The inputs of a job that names a shard, verified by `shardOperand`: its `a`, then either
   * `b` copied from the shard (and checked against its seal), or, on a runner that maps it, the
   * shard's descriptor for the child to map read-only (released once the run ends); null: the
   * shard could not be used, and the job has ended ERR.
   */
  async #withShard(record: JobRecord, lease: Lease, shardId: string, valid: ValidJob): Promise<ShardInputs | null> {
    const map = this.#o.kind === "cuda" && this.#o.runner.passesFds === true;
    const got = this.#o.shardOperand === undefined
      ? { ok: false as const, detail: "NOT-SEALED", message: `shard ${shardId}: sealed shards are unavailable on this bridge` }
      : await this.#o.shardOperand(lease.id, shardId, map);
    if (!got.ok) {
      record.message = got.message;
      this.#finish(record, "ERR", got.detail, null);
      return null;
    }
    record.input_shard = got.read;
    const a = valid.operands ?? NO_BYTES; // validated: a job naming a shard carries a
    if ("mapping" in got) {
      const { release, ...shard } = got.mapping;
      return { operands: a, shard, release };
    }
    const both = new Uint8Array(a.length + got.bytes.length);
    both.set(a);
    both.set(got.bytes, a.length);
    return { operands: both };
  }

  #finish(record: JobRecord, state: "OK" | "ERR", detail: string, result: KernelSummary | null): void {
    if (record.state === "OK" || record.state === "ERR") return;
    record.state = state;
    record.detail = detail;
    record.result = result;
    record.finished_at = this.#now();
    this.#o.onChange(record);
    // After onChange: the table's count cap may drop the oldest finished job, never this one.
    this.#retention.finished(record);
  }

  /**
   * Stops: no job starts from now on, queued jobs end ERR `SHUTDOWN`, running ones are aborted
   * (their children killed). `idle()` says when the last child is gone.
   */
  close(): void {
    this.#closed = true;
    for (const [gpu, q] of this.#queues) {
      this.#queues.set(gpu, []);
      for (const e of q) {
        this.#queuedPayloadBytes -= heldBytes(e.valid);
        this.#finish(e.record, "ERR", "SHUTDOWN", null);
      }
    }
    for (const run of this.#running.values()) run.abort.abort("SHUTDOWN");
    this.#retention.close();
  }

  /** Resolves once no job runs (every child started has exited), or after `ms` on the clock: true if idle. */
  idle(ms: number): Promise<boolean> {
    if (this.#runs.size === 0) return Promise.resolve(true);
    const clock = this.#o.clock ?? systemClock;
    return new Promise<boolean>((resolve) => {
      const timer = clock.setTimer(ms, () => resolve(this.#runs.size === 0));
      const check = () => {
        if (this.#runs.size > 0) return void Promise.race(this.#runs).then(check, check);
        clock.clearTimer(timer);
        resolve(true);
      };
      check();
    });
  }

  #keepOutput(record: JobRecord, output: Uint8Array): void {
    record.output_bytes = output.length;
    record.output_sha256 = sha256Hex(output);
    this.#retention.keepResult(record, output);
  }

  #now(): number {
    return (this.#o.clock ?? systemClock).now();
  }
}

/** Bytes a job's kernel uses (its operands and result). */
function jobBytes(e: Queued): number {
  const ops = e.valid.operands;
  if (ops === null) return workload(e.valid.descriptor).bytes;
  // Validated operands: a then b, n floats each (vadd) or n×n (matmul); a alone when a shard is b.
  const kernel = e.valid.descriptor.kernel;
  const floatsOfA = e.valid.shard === undefined ? ops.length / 8 : ops.length / 4;
  return operandBytes(kernel, kernel === "vadd" ? floatsOfA : Math.sqrt(floatsOfA));
}

/** Bytes a queued job holds in memory. */
function heldBytes(job: ValidJob): number {
  return (job.operands?.length ?? 0) + (job.ptx?.length ?? 0);
}
