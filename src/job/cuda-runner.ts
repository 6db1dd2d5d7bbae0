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

/** A sealed shard handed to this process as a descriptor: operand `b`, mapped read-only. */
export interface MappedShard {
  readonly fd: number;
  /** What the importer maps (the shard's size rounded up to the allocation granularity). */
  readonly mappedBytes: number;
  /** The shard's own size: operand `b`'s bytes. */
  readonly bytes: number;
}

/**
 * Runs `spec` on CUDA device `ordinal` with the PTX in `payloadB64` on `ops`; returns c, and b.
 * With `shard`, operand `b` is not copied in: the kernel reads the shard's memory through a
 * read-only mapping of it (`ops.b` is ignored), and `b` is copied out of that mapping for the
 * caller's check of the result.
 */
export async function launchOnCuda(
  spec: KernelSpec,
  payloadB64: string,
  ordinal: number,
  ops: Operands,
  shard?: MappedShard,
): Promise<{ out: Float32Array; b: Float32Array }> {
  const ptx = decodeBase64(payloadB64);
  if (ptx === null || ptx.length === 0) throw Object.assign(new Error("the job carries no PTX"), { detail: "INVALID_PTX" });
  const out = new Float32Array(spec.kernel === "vadd" ? ops.n : ops.n * ops.n);
  const device = CudaDevice.open(await loadFfiAdapter(), cudaCandidates(process.env), ordinal);
  try {
    const fn = device.loadFunction(ptx, spec.kernel);
    const bytes = ops.a.byteLength;
    const [da, dc] = [device.alloc(bytes), device.alloc(out.byteLength)];
    device.copyIn(da, new Uint8Array(ops.a.buffer, ops.a.byteOffset, ops.a.byteLength));
    let b = ops.b;
    let db: bigint;
    if (shard === undefined) {
      db = device.alloc(bytes);
      device.copyIn(db, new Uint8Array(ops.b.buffer, ops.b.byteOffset, ops.b.byteLength));
    } else {
      if (shard.bytes !== bytes) {
        throw Object.assign(new Error(`the shard holds ${shard.bytes} bytes, operand a ${bytes}`), { detail: "INVALID_PAYLOAD" });
      }
      db = device.importReadOnly(shard.fd, shard.mappedBytes);
      b = new Float32Array(bytes / 4);
      device.copyOut(new Uint8Array(b.buffer), db);
    }
    device.launch(fn, spec.grid, spec.block, [u64Arg(da), u64Arg(db), u64Arg(dc), u32Arg(ops.n)]);
    device.copyOut(new Uint8Array(out.buffer), dc);
    return { out, b };
  } finally {
    device.close();
  }
}
