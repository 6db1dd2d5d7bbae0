/**
 * The CUDA driver API (`libcuda.so.1`) behind a typed façade, for what NVML cannot tell (SM
 * count) and for machines without NVML (Jetson). `_v2` symbols where they exist.
 */
import { cText } from "./cstring.ts";
import { openFirst } from "./loader.ts";
import type { FfiAdapter, NativeLibrary, SymbolTable } from "./types.ts";

export const CU_ATTR = Object.freeze({
  MAX_THREADS_PER_BLOCK: 1,
  MAX_BLOCK_DIM_X: 2,
  MAX_BLOCK_DIM_Y: 3,
  MAX_BLOCK_DIM_Z: 4,
  MAX_GRID_DIM_X: 5,
  MAX_GRID_DIM_Y: 6,
  MAX_GRID_DIM_Z: 7,
  CLOCK_RATE: 13,
  MULTIPROCESSOR_COUNT: 16,
  INTEGRATED: 18,
  PCI_BUS_ID: 33,
  PCI_DOMAIN_ID: 50,
  COMPUTE_CAPABILITY_MAJOR: 75,
  COMPUTE_CAPABILITY_MINOR: 76,
  /** cuMemCreate / cuMemMap (the VMM API) work on the device. */
  VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: 102,
  /** VMM allocations can be exported as a POSIX file descriptor (shared with another process). */
  HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED: 103,
});

const REQUIRED: SymbolTable = {
  cuInit: { args: ["u32"], returns: "i32" },
  cuDriverGetVersion: { args: ["buf"], returns: "i32" },
  cuDeviceGetCount: { args: ["buf"], returns: "i32" },
  cuDeviceGet: { args: ["buf", "i32"], returns: "i32" },
  cuDeviceGetName: { args: ["buf", "i32", "i32"], returns: "i32" },
  cuDeviceGetUuid: { args: ["buf", "i32"], returns: "i32" },
  cuDeviceGetPCIBusId: { args: ["buf", "i32", "i32"], returns: "i32" },
  cuDeviceTotalMem_v2: { args: ["buf", "i32"], returns: "i32" },
  cuDeviceGetAttribute: { args: ["buf", "i32", "i32"], returns: "i32" },
  cuGetErrorName: { args: ["i32", "buf"], returns: "i32" },
};

/** A CUDA driver call that did not return CUDA_SUCCESS. */
export class CudaError extends Error {
  override name = "CudaError";
  readonly code: number;
  constructor(fn: string, code: number, errorName: string) {
    super(`${fn} failed: ${errorName} (CUresult ${code})`);
    this.code = code;
  }
}

const view = (buf: Uint8Array) => new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

/** An initialised CUDA driver. */
export class Cuda {
  readonly path: string;
  readonly #lib: NativeLibrary;
  readonly #adapter: FfiAdapter;

  private constructor(lib: NativeLibrary, adapter: FfiAdapter) {
    this.path = lib.path;
    this.#lib = lib;
    this.#adapter = adapter;
  }

  /** Loads the first usable library among `candidates` and calls `cuInit(0)`. */
  static open(adapter: FfiAdapter, candidates: string[]): Cuda {
    const lib = openFirst(adapter, "the CUDA driver (libcuda.so.1)", candidates, REQUIRED);
    const cuda = new Cuda(lib, adapter);
    try {
      cuda.#call("cuInit", 0);
    } catch (error) {
      lib.close();
      throw error;
    }
    return cuda;
  }

  close(): void {
    this.#lib.close();
  }

  /** 1000*major + 10*minor. */
  driverVersion(): number {
    return this.#i32("cuDriverGetVersion");
  }

  deviceCount(): number {
    return this.#i32("cuDeviceGetCount");
  }

  /** The CUdevice of `ordinal`. */
  device(ordinal: number): number {
    return this.#i32("cuDeviceGet", ordinal);
  }

  name(dev: number): string {
    const buf = new Uint8Array(256);
    this.#call("cuDeviceGetName", buf, buf.length, dev);
    return cText(buf);
  }

  /** The UUID as NVML prints it: `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
  uuid(dev: number): string {
    const raw = new Uint8Array(16);
    this.#call("cuDeviceGetUuid", raw, dev);
    const hex = [...raw].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `GPU-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** The PCI bus id, `%04x:%02x:%02x.0`. */
  pciBusId(dev: number): string {
    const buf = new Uint8Array(32);
    this.#call("cuDeviceGetPCIBusId", buf, buf.length, dev);
    return cText(buf);
  }

  totalMemBytes(dev: number): number {
    const out = new Uint8Array(8);
    this.#call("cuDeviceTotalMem_v2", out, dev);
    return Number(view(out).getBigUint64(0, true));
  }

  attribute(attr: number, dev: number): number {
    const out = new Uint8Array(4);
    this.#call("cuDeviceGetAttribute", out, attr, dev);
    return view(out).getInt32(0, true);
  }

  #i32(fn: string, ...args: number[]): number {
    const out = new Uint8Array(4);
    this.#call(fn, out, ...args);
    return view(out).getInt32(0, true);
  }

  #call(fn: string, ...args: (number | Uint8Array)[]): void {
    const rc = this.#lib.fns[fn]!(...args) as number;
    if (rc !== 0) throw new CudaError(fn, rc, this.#errorName(rc));
  }

  #errorName(rc: number): string {
    const out = new Uint8Array(8);
    if ((this.#lib.fns.cuGetErrorName!(rc, out) as number) !== 0) return "unknown error";
    const ptr = view(out).getBigUint64(0, true);
    return ptr === 0n ? "unknown error" : this.#adapter.cstring(ptr);
  }
}
