/**
 * The CUDA runner, inside the `run-kernel` child: loads the job's PTX, allocates within the
 * lease (checked by the caller), launches with the descriptor's grid and block (the shipped
 * kernels loop grid-stride, so any grid covers every element) and copies the result back;
 * the caller checks it against the CPU.
 */
import process from "node:process";
import { CudaDevice, u32Arg, u64Arg } from "../../ffi/cuda-exec.ts";
import { cudaCandidates, loadFfiAdapter } from "../../ffi/loader.ts";
import { decodeBase64 } from "../util/base64.ts";
import type { Operands } from "./cohesix.ts";
import type { KernelSpec } from "./kernels.ts";

/** Runs `spec` on CUDA device `ordinal` with the PTX in `payloadB64` on `ops`; returns c. */
export async function launchOnCuda(spec: KernelSpec, payloadB64: string, ordinal: number, ops: Operands): Promise<Float32Array> {
  const ptx = decodeBase64(payloadB64);
  if (ptx === null || ptx.length === 0) throw Object.assign(new Error("the job carries no PTX"), { detail: "INVALID_PTX" });
  const out = new Float32Array(spec.kernel === "vadd" ? ops.n : ops.n * ops.n);
  const device = CudaDevice.open(await loadFfiAdapter(), cudaCandidates(process.env), ordinal);
  try {
    const fn = device.loadFunction(ptx, spec.kernel);
    const bytes = ops.a.byteLength;
    const [da, db, dc] = [device.alloc(bytes), device.alloc(bytes), device.alloc(out.byteLength)];
    device.copyIn(da, new Uint8Array(ops.a.buffer, ops.a.byteOffset, ops.a.byteLength));
    device.copyIn(db, new Uint8Array(ops.b.buffer, ops.b.byteOffset, ops.b.byteLength));
    device.launch(fn, spec.grid, spec.block, [u64Arg(da), u64Arg(db), u64Arg(dc), u32Arg(ops.n)]);
    device.copyOut(new Uint8Array(out.buffer), dc);
  } finally {
    device.close();
  }
  return out;
}
