/**
 * `--allowed-kernels`: the kinds of job an operator lets this bridge run. A job runs the
 * bridge's own `vadd` or `matmul`, or a staged PTX bundle (`ptx`: inputs[0] names a staged
 * `.ptx` file, whatever its `kernel` says, since that names only its operands' layout).
 */
import type { JobKernel } from "../config/defaults.ts";

/** What the check needs of a validated job (descriptor.ts's ValidJob, which imports this file). */
interface JobKind {
  readonly descriptor: { readonly kernel: "vadd" | "matmul"; readonly inputs: readonly string[] };
  /** A staged PTX bundle's text; null: the bridge's own kernel. */
  readonly ptx: Uint8Array | null;
}

/** What `job` runs: `ptx` for a staged bundle, else the bridge's kernel its descriptor names. */
export const kernelOf = (job: JobKind): JobKernel => job.ptx !== null ? "ptx" : job.descriptor.kernel;

/** Why `job` is refused under `allowed`, naming the kernel and the setting; null when it may run. */
export function kernelProblem(job: JobKind, allowed: readonly JobKernel[]): { field: string; message: string } | null {
  const kernel = kernelOf(job);
  if (allowed.includes(kernel)) return null;
  // Short, what matters first: a refusal sent back to the VM is cut at one echo payload.
  const what = kernel === "ptx"
    ? `kernel ptx (the staged bundle ${JSON.stringify(job.descriptor.inputs[0])})`
    : `kernel ${JSON.stringify(kernel)}`;
  return {
    field: kernel === "ptx" ? "inputs.0" : "kernel",
    message: `${what} is not in allowed-kernels (${allowed.join(",")}), a serve flag and --config key`,
  };
}
