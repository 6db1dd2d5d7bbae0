/**
 * `serve --mps`: one MPS control daemon per GPU, each with its pipe and log folders under the
 * state folder (`<state>/mps/<gpu id>/pipe`, `.../log`) and `CUDA_VISIBLE_DEVICES` set to that
 * GPU's UUID, so a client joining through that pipe folder sees exactly that GPU as its device 0.
 * A daemon already answering on a GPU's pipe folder (a previous run that crashed, an operator's)
 * is adopted and left running at the stop; one this bridge started is told `quit`. A GPU whose
 * daemon cannot run keeps the reason, which its leases' CDI devices and `doctor` report.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Child, Runtime } from "../runtime/types.ts";
import type { Clock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";

/** What became of a GPU's daemon. */
export type MpsState = "started" | "adopted" | "failed" | "skipped";

export interface MpsDaemon {
  readonly gpu_id: string;
  readonly uuid: string | null;
  readonly state: MpsState;
  readonly pipe_dir: string;
  readonly log_dir: string;
  /** Why it is not running (failed), or why it was not tried (skipped). */
  readonly reason?: string;
}

/** A GPU as the daemons need it: the bridge's id, its UUID, whether it is in MIG mode. */
export interface MpsGpu {
  readonly id: string;
  readonly uuid: string | null;
  readonly migMode: "enabled" | "disabled" | null;
}

/** What the daemons tell the rest of the bridge (its record of changes). */
export type MpsEvent = { readonly type: "mps.started" | "mps.adopted" | "mps.failed" | "mps.stopped"; readonly daemon: MpsDaemon };

export interface MpsOptions {
  readonly stateDir: string;
  /** The control program (GPU_BRIDGE_MPS_CONTROL, else nvidia-cuda-mps-control on PATH). */
  readonly binary: string;
  readonly spawn: Runtime["spawn"];
  readonly log: Logger;
  readonly clock: Clock;
  /** How long one call of the control program may take (default 10 s). */
  readonly timeoutMs?: number;
  readonly onEvent?: (e: MpsEvent) => void;
}

/** The folders of `gpuId`'s daemon under the state folder. */
export function mpsFolders(stateDir: string, gpuId: string): { pipe: string; log: string } {
  const base = join(stateDir, "mps", gpuId);
  return { pipe: join(base, "pipe"), log: join(base, "log") };
}

interface Run {
  readonly code: number | null;
  readonly out: string;
}

/** The first non-empty line of what a run printed, or its exit status. */
const said = (r: Run) => r.out.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? `exit status ${r.code}`;

export class MpsDaemons {
  readonly #o: MpsOptions;
  readonly #daemons = new Map<string, MpsDaemon>();

  constructor(o: MpsOptions) {
    this.#o = o;
  }

  /** Starts (or adopts) a daemon for each GPU; never throws: a GPU that cannot have one keeps why. */
  async start(gpus: readonly MpsGpu[]): Promise<void> {
    for (const gpu of gpus) this.#set(await this.#startOne(gpu));
  }

  /** Every GPU's daemon, in the order the GPUs were given. */
  list(): MpsDaemon[] {
    return [...this.#daemons.values()];
  }

  get(gpuId: string): MpsDaemon | undefined {
    return this.#daemons.get(gpuId);
  }

  /** Tells each daemon this bridge started to quit; adopted ones are left running. */
  async stop(): Promise<void> {
    for (const d of this.#daemons.values()) {
      if (d.state !== "started") continue;
      const r = await this.#run([this.#o.binary], "quit\n", d);
      if (r.code === 0) {
        this.#o.log.info(`MPS control daemon of ${d.gpu_id} stopped`);
        this.#o.onEvent?.({ type: "mps.stopped", daemon: d });
      } else this.#o.log.warn(`Cannot stop the MPS control daemon of ${d.gpu_id} (pipe ${d.pipe_dir}): ${said(r)}`);
    }
    this.#daemons.clear();
  }

  async #startOne(gpu: MpsGpu): Promise<MpsDaemon> {
    const dirs = mpsFolders(this.#o.stateDir, gpu.id);
    const base = { gpu_id: gpu.id, uuid: gpu.uuid, pipe_dir: dirs.pipe, log_dir: dirs.log };
    if (gpu.migMode === "enabled") {
      return { ...base, state: "skipped", reason: `${gpu.id} is in MIG mode: a lease takes one of its MIG devices (by UUID) instead` };
    }
    if (gpu.uuid === null) {
      return { ...base, state: "failed", reason: `the backend gives no UUID for ${gpu.id}, so no daemon can be bound to it` };
    }
    // A daemon already answering on this pipe folder is adopted, not started twice.
    const probe = await this.#run([this.#o.binary], "get_server_list\n", base);
    if (probe.code === 0) return { ...base, state: "adopted" };
    // Null: the program could not start, or hung; either way -d would fare no better.
    if (probe.code === null) return { ...base, state: "failed", reason: probe.out };
    try {
      mkdirSync(join(dirs.pipe, ".."), { recursive: true, mode: 0o755 });
    } catch (error) {
      return { ...base, state: "failed", reason: `Cannot create ${join(dirs.pipe, "..")}: ${errorText(error)}` };
    }
    const r = await this.#run([this.#o.binary, "-d"], "", base, gpu.uuid);
    if (r.code !== 0) return { ...base, state: "failed", reason: `${this.#o.binary} -d failed: ${said(r)}` };
    return { ...base, state: "started" };
  }

  #set(d: MpsDaemon): void {
    this.#daemons.set(d.gpu_id, d);
    const log = this.#o.log;
    if (d.state === "failed") log.warn(`No MPS for ${d.gpu_id}: ${d.reason}; its leases get no CDI device while --mps is on`);
    else if (d.state === "skipped") log.info(`No MPS for ${d.gpu_id}: ${d.reason}`);
    else log.info(`MPS control daemon of ${d.gpu_id} ${d.state} (pipe ${d.pipe_dir})`);
    if (d.state !== "skipped") this.#o.onEvent?.({ type: `mps.${d.state}`, daemon: d });
  }

  /** Runs the control program for `d`'s folders; a program that cannot start reads as code null. */
  async #run(cmd: string[], stdin: string, d: Pick<MpsDaemon, "pipe_dir" | "log_dir">, uuid?: string): Promise<Run> {
    const env: Record<string, string> = { CUDA_MPS_PIPE_DIRECTORY: d.pipe_dir, CUDA_MPS_LOG_DIRECTORY: d.log_dir };
    if (uuid !== undefined) env.CUDA_VISIBLE_DEVICES = uuid;
    let child: Child;
    try {
      child = this.#o.spawn(cmd, new TextEncoder().encode(stdin), env);
    } catch (error) {
      return {
        code: null,
        out: `Cannot run ${cmd[0]}: ${errorText(error)} (install the NVIDIA driver's MPS tools, or set GPU_BRIDGE_MPS_CONTROL)`,
      };
    }
    const ms = this.#o.timeoutMs ?? 10_000;
    let timer: unknown;
    const timeout = new Promise<Run>((resolve) => {
      timer = this.#o.clock.setTimer(ms, () => {
        child.kill();
        resolve({ code: null, out: `${cmd.join(" ")}${stdin === "" ? "" : ` (${stdin.trim()})`} did not answer within ${ms} ms` });
      });
    });
    const done = child.done.then((r) => ({ code: r.code, out: `${r.stderr}\n${r.stdout}` }));
    try {
      return await Promise.race([done, timeout]);
    } finally {
      this.#o.clock.clearTimer(timer);
    }
  }
}
