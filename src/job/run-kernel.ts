/**
 * `gpu-bridge-host run-kernel` (internal): runs one job in its own process, so a timeout can
 * kill it and a faulting kernel cannot take the bridge down. Reads a RunRequest as JSON on
 * stdin and prints a RunOutcome as JSON on stdout.
 */
import { type KernelSpec, runOnCpu, TOLERANCE, workload } from "./kernels.ts";
import type { RunOutcome } from "./runner.ts";

/** What the child is asked to do. */
export interface RunRequestWire {
  readonly spec: KernelSpec;
  readonly runner: "cpu" | "cuda";
  readonly memLimitBytes: number;
  readonly payloadB64?: string;
  readonly device?: number;
  /** The bridge's pid: the child dies with it (see `armParentDeath`). */
  readonly parentPid?: number;
}

/**
 * Makes this child die with the bridge that started it, even mid-kernel: SIGKILL from the
 * kernel when the parent exits (Linux), and an exit now if it has already gone. Where libc
 * cannot be opened the parent's own kill on timeout, lease end and shutdown remains.
 */
export async function armParentDeath(parentPid: number | undefined): Promise<void> {
  if (parentPid === undefined) return;
  const [{ loadFfiAdapter }, { dieWithParent }] = await Promise.all([import("../../ffi/loader.ts"), import("../../ffi/libc.ts")]);
  let alive: boolean;
  try {
    alive = dieWithParent(await loadFfiAdapter(), parentPid);
  } catch {
    return;
  }
  if (!alive) throw new Error(`The bridge (pid ${parentPid}) is gone; not running its job`);
}

/** Runs the request; never throws (failures are outcomes). */
export async function runKernel(req: RunRequestWire): Promise<RunOutcome> {
  const need = workload(req.spec).bytes;
  if (need > req.memLimitBytes) {
    return {
      ok: false,
      detail: "OUT_OF_MEMORY",
      message: `${req.spec.kernel} needs ${Math.ceil(need / 1048576)} MiB, over the lease's ${Math.floor(req.memLimitBytes / 1048576)} MiB`,
    };
  }
  try {
    const summary = req.runner === "cpu"
      ? runOnCpu(req.spec)
      : await (await import("./cuda-runner.ts")).runOnCuda(req.spec, req.payloadB64 ?? "", req.device ?? 0);
    if (summary.max_abs_error > TOLERANCE) {
      return { ok: false, detail: "WRONG_RESULT", message: `max error ${summary.max_abs_error} over ${TOLERANCE}` };
    }
    return { ok: true, summary };
  } catch (error) {
    const detail = (error as { detail?: string }).detail ?? "RUNNER_ERROR";
    return { ok: false, detail, message: error instanceof Error ? error.message : String(error) };
  }
}
