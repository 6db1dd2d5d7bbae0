/**
 * Jobs without operands (the seed's descriptor): inputs generated deterministically from the
 * index, sized by the grid and block, and the reference their result is verified against.
 * Jobs with operands compute and check through src/job/cohesix.ts.
 */

export type Dims = readonly [number, number, number];
export interface KernelSpec {
  readonly kernel: "vadd" | "matmul";
  readonly grid: Dims;
  readonly block: Dims;
}

/** What a run computed, for the status detail and the job's output. */
export interface KernelSummary {
  readonly kernel: "vadd" | "matmul";
  /** vadd: elements; matmul: N (the matrices are N×N). */
  readonly size: number;
  readonly checksum: number;
  readonly max_abs_error: number;
  readonly verified: number;
  readonly duration_ms: number;
}

/** vadd covers grid×block threads; matmul is N×N with N = grid.x × block.x. */
export function workload(spec: KernelSpec): { size: number; bytes: number } {
  if (spec.kernel === "vadd") {
    const n = spec.grid[0] * spec.grid[1] * spec.grid[2] * spec.block[0] * spec.block[1] * spec.block[2];
    return { size: n, bytes: 3 * 4 * n };
  }
  const n = spec.grid[0] * spec.block[0];
  return { size: n, bytes: 3 * 4 * n * n };
}

export const vaddA = (i: number) => (i % 1024) * 0.5;
export const vaddB = (i: number) => ((i * 7) % 1024) * 0.25;
export const matA = (r: number, c: number) => ((r * 3 + c) % 17) * 0.125;
export const matB = (r: number, c: number) => ((r + c * 5) % 13) * 0.25;

/** Fills the inputs of `spec` as Float32Arrays (a, b). */
export function inputs(spec: KernelSpec): { a: Float32Array; b: Float32Array; size: number } {
  const { size } = workload(spec);
  if (spec.kernel === "vadd") {
    const a = new Float32Array(size);
    const b = new Float32Array(size);
    for (let i = 0; i < size; i++) (a[i] = vaddA(i), b[i] = vaddB(i));
    return { a, b, size };
  }
  const a = new Float32Array(size * size);
  const b = new Float32Array(size * size);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) (a[r * size + c] = matA(r, c), b[r * size + c] = matB(r, c));
  }
  return { a, b, size };
}

/** Checks `out` against an independent float64 computation; samples matmul entries. */
export function verify(spec: KernelSpec, out: Float32Array, size: number, started: number): KernelSummary {
  let checksum = 0;
  for (let i = 0; i < out.length; i++) checksum += out[i]!;
  let maxErr = 0;
  let verified = 0;
  if (spec.kernel === "vadd") {
    for (let i = 0; i < size; i++, verified++) maxErr = Math.max(maxErr, Math.abs(out[i]! - (vaddA(i) + vaddB(i))));
  } else {
    const step = Math.max(1, Math.floor((size * size) / 4096));
    for (let k = 0; k < size * size; k += step, verified++) {
      const r = Math.floor(k / size);
      const c = k % size;
      let dot = 0;
      for (let j = 0; j < size; j++) dot += matA(r, j) * matB(j, c);
      maxErr = Math.max(maxErr, Math.abs(out[k]! - dot) / Math.max(1, Math.abs(dot)));
    }
  }
  return { kernel: spec.kernel, size, checksum, max_abs_error: maxErr, verified, duration_ms: performance.now() - started };
}

/** Tolerance for a kernel's result: float32 sums drift with N. */
export const TOLERANCE = 1e-3;
