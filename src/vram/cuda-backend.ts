/**
 * Shards in GPU memory through the CUDA driver: allocations with cuMemAlloc_v2, the tree digest
 * by the PTX kernels on the GPU, or (path "cpu") by worker threads over device-to-host copies.
 */
import { CU_DEVICE_EVIDENCE, CudaVram, DeviceBuffer, type PointerEvidence, PtxRefusedError } from "../../ffi/cuda-vram.ts";
import { CudaExecError } from "../../ffi/cuda-exec.ts";
import { type DeviceEvidence, VramAllocError, type VramBackend, type VramBuffer } from "./backend.ts";
import { LEAF_BYTES } from "./tree.ts";
import type { TreePool } from "./tree-pool.ts";

export class CudaVramBackend implements VramBackend {
  readonly kind = "cuda" as const;
  readonly note = "device memory allocated with cuMemCreate (exportable) or cuMemAlloc_v2";
  readonly #vram: CudaVram;
  readonly #pool: TreePool;
  readonly #evidence = new Map<number, DeviceEvidence>();

  constructor(vram: CudaVram, pool: TreePool) {
    this.#vram = vram;
    this.#pool = pool;
  }

  memInfo(ordinal: number): { free: number; total: number } {
    return this.#vram.memInfo(ordinal);
  }

  alloc(ordinal: number, bytes: number): VramBuffer {
    try {
      return this.#vram.allocShareable(ordinal, bytes);
    } catch (error) {
      if (error instanceof CudaExecError) throw new VramAllocError(error.message, error.code === 2, error);
      throw error;
    }
  }

  free(buf: VramBuffer): void {
    this.#vram.free(buf as DeviceBuffer);
  }

  write(buf: VramBuffer, offset: number, src: Uint8Array): void {
    this.#vram.write(buf as DeviceBuffer, offset, src);
  }

  read(buf: VramBuffer, offset: number, dst: Uint8Array): void {
    this.#vram.read(buf as DeviceBuffer, offset, dst);
  }

  memset(buf: VramBuffer, offset: number, value: number, count: number): void {
    this.#vram.memset(buf as DeviceBuffer, offset, value, count);
  }

  async treeDigest(buf: VramBuffer, length: number, path: "gpu" | "cpu"): Promise<{ digest: Uint8Array; path: "gpu" | "cpu" }> {
    if (path === "gpu") {
      try {
        return { digest: this.#vram.treeDigest(buf as DeviceBuffer, length, LEAF_BYTES), path };
      } catch (error) {
        // A driver or GPU that cannot JIT the kernels (kernelRefusal says why) is no sign of
        // corrupt VRAM: the same digest comes from the CPU path, and the answer names that path.
        if (!(error instanceof PtxRefusedError)) throw error;
      }
    }
    return { digest: await this.#pool.digest(length, (off, dst) => this.read(buf, off, dst)), path: "cpu" };
  }

  /** Why the driver refused the GPU tree kernels on `ordinal` (digests there use the CPU path); null if it did not. */
  kernelRefusal(ordinal: number): string | null {
    return this.#vram.kernelRefusal(ordinal)?.message ?? null;
  }

  pointerEvidence(buf: VramBuffer): PointerEvidence {
    return this.#vram.pointerEvidence(buf as DeviceBuffer);
  }

  exportFd(buf: VramBuffer): { fd: number; owned: boolean } {
    return { fd: this.#vram.exportFd(buf as DeviceBuffer), owned: true };
  }

  deviceEvidence(ordinal: number): DeviceEvidence {
    let e = this.#evidence.get(ordinal);
    if (e === undefined) {
      const attributes: Record<string, number> = {};
      for (const [name, attr] of Object.entries(CU_DEVICE_EVIDENCE)) {
        try {
          attributes[name] = this.#vram.attribute(ordinal, attr);
        } catch {
          // an attribute this driver does not know is left out, never guessed
        }
      }
      e = { integrated: attributes.integrated === 1, attributes };
      this.#evidence.set(ordinal, e);
    }
    return e;
  }

  close(): void {
    this.#vram.close();
  }
}
