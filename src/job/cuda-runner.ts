/**
 * The CUDA runner, inside the `run-kernel` child: loads the job's PTX, allocates within the
 * lease (checked by the caller), launches with the descriptor's grid and block, and checks
 * the answer against the CPU reference.
 */
import process from "node:process";
import { CudaDevice, u32Arg, u64Arg } from "../../ffi/cuda-exec.ts";
import { cudaCandidates, loadFfiAdapter } from "../../ffi/loader.ts";
import { decodeBase64 } from "../util/base64.ts";
import { inputs, type KernelSpec, type KernelSummary, verify } from "./kernels.ts";

/** Runs `spec` on CUDA device `ordinal` with the PTX in `payloadB64`. */
export async function runOnCuda(spec: KernelSpec, payloadB64: string, ordinal: number): Promise<KernelSummary> {
  const ptx = decodeBase64(payloadB64);
  if (ptx === null || ptx.length === 0) throw Object.assign(new Error("the job carries no PTX"), { detail: "INVALID_PTX" });
  const started = performance.now();
  const { a, b, size } = inputs(spec);
  const out = new Float32Array(a.length);
  const device = CudaDevice.open(await loadFfiAdapter(), cudaCandidates(process.env), ordinal);
  try {
    const fn = device.loadFunction(ptx, spec.kernel);
    const bytes = a.byteLength;
    const [da, db, dc] = [device.alloc(bytes), device.alloc(bytes), device.alloc(bytes)];
    device.copyIn(da, new Uint8Array(a.buffer));
    device.copyIn(db, new Uint8Array(b.buffer));
    device.launch(fn, spec.grid, spec.block, [u64Arg(da), u64Arg(db), u64Arg(dc), u32Arg(size)]);
    device.copyOut(new Uint8Array(out.buffer), dc);
  } finally {
    device.close();
  }
  return verify(spec, out, size, started);
}
