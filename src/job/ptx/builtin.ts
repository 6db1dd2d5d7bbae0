/**
 * The shipped kernels' PTX (generated/vadd.ptx and matmul.ptx, embedded by generated/job-ptx.ts
 * so the compiled binary carries them; test/ptx/shipped.test.ts checks they match the files).
 * Used when a job names no staged .ptx bundle.
 */
import { MATMUL_PTX, VADD_PTX } from "./generated/job-ptx.ts";

export { MATMUL_PTX, VADD_PTX };

/** The built-in PTX of `kernel`. */
export function builtinPtx(kernel: "vadd" | "matmul"): string {
  return kernel === "vadd" ? VADD_PTX : MATMUL_PTX;
}
