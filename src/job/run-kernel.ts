/**
 * `gpu-bridge-host run-kernel` (internal): runs one job in its own process, so a timeout can
 * kill it and a faulting kernel cannot take the bridge down. Reads a RunRequest as JSON on
 * stdin and prints a RunOutcome as JSON on stdout, the result as base64 little-endian f32.
 */
import { decodeBase64, encodeBase64 } from "../util/base64.ts";
import { CHILD_RESULT_BYTES } from "../util/stream.ts";
import { computeOnCpu, decodeOperands, f32Bytes, operandBytes, operandError, type Operands } from "./cohesix.ts";
import type { MappedShard } from "./cuda-runner.ts";
import { inputs, type KernelSpec, type KernelSummary, TOLERANCE, verify, workload } from "./kernels.ts";

/** What the child is asked to do. */
export interface RunRequestWire {
  readonly spec: KernelSpec;
  readonly runner: "cpu" | "cuda";
  readonly memLimitBytes: number;
  readonly payloadB64?: string;
  /** The job's operands (docs/protocol.md#12-what-the-vm-writes-back); absent: generated from the grid and block. */
  readonly operandsB64?: string;
  readonly device?: number;
  /**
   * Operand `b` is a sealed shard handed over as this descriptor (the CUDA runner maps it
   * read-only); `operandsB64` then holds `a` alone.
   */
  readonly shardB?: MappedShard;
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

/** What the child answers. */
export type RunOutcomeWire =
  | { readonly ok: true; readonly summary: KernelSummary; readonly outputB64?: string }
  | { readonly ok: false; readonly detail: string; readonly message?: string };

/** Runs the request; never throws (failures are outcomes). */
export async function runKernel(req: RunRequestWire): Promise<RunOutcomeWire> {
  const kernel = req.spec.kernel;
  let ops: Operands;
  let given = false;
  if (req.operandsB64 !== undefined) {
    const bytes = decodeBase64(req.operandsB64);
    const decoded = bytes === null ? { error: "payload_b64 is not valid base64" } : decodeOperands(kernel, bytes, req.shardB ? 1 : 2);
    if ("error" in decoded) return { ok: false, detail: "INVALID_PAYLOAD", message: decoded.error };
    ops = decoded;
    given = true;
  } else {
    const { a, b, size } = inputs(req.spec);
    ops = { a, b, n: size };
  }
  const need = given ? operandBytes(kernel, ops.n) : workload(req.spec).bytes;
  if (need > req.memLimitBytes) {
    return {
      ok: false,
      detail: "OUT_OF_MEMORY",
      message: `${kernel} needs ${Math.ceil(need / 1048576)} MiB, over the lease's ${Math.floor(req.memLimitBytes / 1048576)} MiB`,
    };
  }
  if (req.shardB !== undefined && req.runner !== "cuda") {
    return { ok: false, detail: "INVALID_PAYLOAD", message: "a shard is mapped only by the CUDA runner; the CPU runner gets its bytes" };
  }
  try {
    const started = performance.now();
    let out: Float32Array;
    if (req.runner === "cpu") out = computeOnCpu(kernel, ops);
    else {
      const ran = await (await import("./cuda-runner.ts")).launchOnCuda(req.spec, req.payloadB64 ?? "", req.device ?? 0, ops, req.shardB);
      out = ran.out;
      ops = { ...ops, b: ran.b }; // the shard's bytes as the kernel read them, for the check below
    }
    let summary: KernelSummary;
    if (given) {
      let checksum = 0;
      for (let i = 0; i < out.length; i++) checksum += out[i]!;
      const err = operandError(kernel, ops, out);
      summary = { kernel, size: ops.n, checksum, max_abs_error: err, verified: out.length, duration_ms: performance.now() - started };
    } else {
      summary = verify(req.spec, out, ops.n, started);
    }
    if (summary.max_abs_error > TOLERANCE) {
      return { ok: false, detail: "WRONG_RESULT", message: `max error ${summary.max_abs_error} over ${TOLERANCE}` };
    }
    // A result past what the parent reads back (only the seed's form, sized by its grid, gets
    // there) is verified and summarised, not sent.
    const bytes = out.length * 4;
    return bytes > CHILD_RESULT_BYTES ? { ok: true, summary } : { ok: true, summary, outputB64: encodeBase64(f32Bytes(out)) };
  } catch (error) {
    const detail = (error as { detail?: string }).detail ?? "RUNNER_ERROR";
    return { ok: false, detail, message: error instanceof Error ? error.message : String(error) };
  }
}
