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
