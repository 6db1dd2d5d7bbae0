/**
 * Running code on a GPU through the CUDA driver API: the primary context, device memory, PTX
 * modules and launches. Used only inside the `run-kernel` child process, because after an
 * illegal address or a launch failure the context is unusable until the process exits.
 */
import { openFirst } from "./loader.ts";
import type { FfiAdapter, NativeLibrary, SymbolTable } from "./types.ts";

/** The driver symbols a kernel launch needs (cuda-vram.ts adds its own to these). */
export const EXEC: SymbolTable = {
  cuInit: { args: ["u32"], returns: "i32" },
  cuDeviceGet: { args: ["buf", "i32"], returns: "i32" },
  cuDevicePrimaryCtxRetain: { args: ["buf", "i32"], returns: "i32" },
  cuDevicePrimaryCtxRelease_v2: { args: ["i32"], returns: "i32" },
  cuCtxSetCurrent: { args: ["u64"], returns: "i32" },
  cuCtxSynchronize: { args: [], returns: "i32" },
  cuMemAlloc_v2: { args: ["buf", "u64"], returns: "i32" },
  cuMemFree_v2: { args: ["u64"], returns: "i32" },
  cuMemcpyHtoD_v2: { args: ["u64", "buf", "u64"], returns: "i32" },
  cuMemcpyDtoH_v2: { args: ["buf", "u64", "u64"], returns: "i32" },
  cuModuleLoadData: { args: ["buf", "buf"], returns: "i32" },
  cuModuleGetFunction: { args: ["buf", "u64", "buf"], returns: "i32" },
  cuModuleUnload: { args: ["u64"], returns: "i32" },
  cuLaunchKernel: {
    args: ["u64", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u64", "buf", "u64"],
    returns: "i32",
  },
  cuGetErrorName: { args: ["i32", "buf"], returns: "i32" },
};

/**
 * The driver symbols that map another process's exported memory (CUDA 10.2+ VMM), opened only
 * when a job reads a sealed shard through its descriptor, so a driver without them still runs
 * every other job.
 */
const IMPORT: SymbolTable = {
  cuMemImportFromShareableHandle: { args: ["buf", "u64", "i32"], returns: "i32" },
  cuMemAddressReserve: { args: ["buf", "u64", "u64", "u64", "u64"], returns: "i32" },
  cuMemAddressFree: { args: ["u64", "u64"], returns: "i32" },
  cuMemMap: { args: ["u64", "u64", "u64", "u64", "u64"], returns: "i32" },
  cuMemSetAccess: { args: ["u64", "u64", "buf", "u64"], returns: "i32" },
  cuMemUnmap: { args: ["u64", "u64"], returns: "i32" },
  cuMemRelease: { args: ["u64"], returns: "i32" },
  cuGetErrorName: { args: ["i32", "buf"], returns: "i32" },
};
/** CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, CU_MEM_LOCATION_TYPE_DEVICE, CU_MEM_ACCESS_FLAGS_PROT_READ. */
const HANDLE_POSIX_FD = 1;
const LOCATION_DEVICE = 1;
const PROT_READ = 1;

/** CUresult codes and the job status detail each becomes. */
export function cudaDetail(code: number): string {
  // 500: cuModuleGetFunction found no such entry: the PTX does not define the kernel asked for.
  if ([200, 209, 218, 222, 500].includes(code)) return "INVALID_PTX";
  if (code === 2) return "OUT_OF_MEMORY";
  if ([700, 701, 702, 719].includes(code)) return "LAUNCH_FAILED";
  if (code === 100 || code === 101) return "NO_DEVICE";
  return "CUDA_ERROR";
}

/** A failed driver call, carrying the status detail for the job. */
export class CudaExecError extends Error {
  override name = "CudaExecError";
  readonly code: number;
  readonly detail: string;
  constructor(fn: string, code: number, errorName: string) {
    super(`${fn} failed: ${errorName} (CUresult ${code})`);
    this.code = code;
    this.detail = cudaDetail(code);
  }
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** A device with its primary context made current; `close()` releases everything it made. */
export class CudaDevice {
  readonly #lib: NativeLibrary;
  readonly #ffi: FfiAdapter;
  readonly #dev: number;
  readonly #allocations = new Set<bigint>();
  readonly #modules = new Set<bigint>();
  /** Imported mappings (ptr, size, handle) and the library handle that made them. */
  readonly #imports: { ptr: bigint; size: bigint; handle: bigint }[] = [];
  #vmm: NativeLibrary | null = null;

  private constructor(lib: NativeLibrary, ffi: FfiAdapter, dev: number) {
    this.#lib = lib;
    this.#ffi = ffi;
    this.#dev = dev;
  }

  /** Opens the driver, picks device `ordinal` and makes its primary context current. */
  static open(ffi: FfiAdapter, candidates: string[], ordinal: number): CudaDevice {
    const lib = openFirst(ffi, "the CUDA driver (libcuda.so.1)", candidates, EXEC);
    const probe = new CudaDevice(lib, ffi, -1);
    probe.#call("cuInit", 0);
    const devOut = new Uint8Array(4);
    probe.#call("cuDeviceGet", devOut, ordinal);
    const device = new CudaDevice(lib, ffi, view(devOut).getInt32(0, true));
    const ctx = new Uint8Array(8);
    device.#call("cuDevicePrimaryCtxRetain", ctx, device.#dev);
    device.#call("cuCtxSetCurrent", view(ctx).getBigUint64(0, true));
    return device;
  }

  alloc(bytes: number): bigint {
    const out = new Uint8Array(8);
    this.#call("cuMemAlloc_v2", out, BigInt(bytes));
    const ptr = view(out).getBigUint64(0, true);
    this.#allocations.add(ptr);
    return ptr;
  }

  copyIn(dst: bigint, src: Uint8Array): void {
    this.#call("cuMemcpyHtoD_v2", dst, src, BigInt(src.byteLength));
  }

  copyOut(dst: Uint8Array, src: bigint): void {
    this.#call("cuMemcpyDtoH_v2", dst, src, BigInt(dst.byteLength));
  }

  /**
   * Maps the memory another process exported as descriptor `fd` (`mappedBytes`, a multiple of
   * the granularity) into this context **read-only** (cuMemSetAccess with PROT_READ): kernels
   * and copies read it; a copy into it fails (ILLEGAL_ADDRESS) and a store faults. The caller
   * keeps `fd` (the driver takes its own reference). Undone by `close()`.
   */
  importReadOnly(fd: number, mappedBytes: number): bigint {
    const vmm = this.#vmm ??= this.#ffi.open(this.#lib.path, IMPORT);
    const call = (fn: string, ...args: (number | bigint | Uint8Array)[]) => callCuda(vmm, this.#ffi, fn, ...args);
    const size = BigInt(mappedBytes);
    const out = new Uint8Array(8);
    call("cuMemImportFromShareableHandle", out, BigInt(fd), HANDLE_POSIX_FD);
    const handle = view(out).getBigUint64(0, true);
    let ptr = 0n;
    let mapped = false;
    try {
      call("cuMemAddressReserve", out, size, 0n, 0n, 0n);
      ptr = view(out).getBigUint64(0, true);
      call("cuMemMap", ptr, size, 0n, handle, 0n);
      mapped = true;
      const desc = new Uint8Array(12);
      view(desc).setInt32(0, LOCATION_DEVICE, true);
      view(desc).setInt32(4, this.#dev, true);
      view(desc).setInt32(8, PROT_READ, true);
      call("cuMemSetAccess", ptr, size, desc, 1n);
    } catch (error) {
      if (mapped) vmm.fns.cuMemUnmap!(ptr, size);
      if (ptr !== 0n) vmm.fns.cuMemAddressFree!(ptr, size);
      vmm.fns.cuMemRelease!(handle);
      throw error;
    }
    this.#imports.push({ ptr, size, handle });
    return ptr;
  }

  /** Loads PTX text (NUL-terminated here) and returns the function `name`. */
  loadFunction(ptx: Uint8Array, name: string): bigint {
    const image = new Uint8Array(ptx.length + 1);
    image.set(ptx);
    const mod = new Uint8Array(8);
    this.#call("cuModuleLoadData", mod, image);
    const module = view(mod).getBigUint64(0, true);
    this.#modules.add(module);
    const fn = new Uint8Array(8);
    this.#call("cuModuleGetFunction", fn, module, new TextEncoder().encode(name + "\0"));
    return view(fn).getBigUint64(0, true);
  }

  /**
   * Launches `fn` and waits for it. Each argument is one value buffer; the params array holds
   * their addresses. `args` keeps the buffers referenced until the launch has returned, and the
   * driver copies the argument values during cuLaunchKernel, so nothing outlives this call.
   */
  launch(fn: bigint, grid: readonly number[], block: readonly number[], args: Uint8Array[]): void {
    const params = new Uint8Array(8 * args.length);
    args.forEach((a, i) => view(params).setBigUint64(i * 8, this.#ffi.addressOf(a), true));
    this.#call("cuLaunchKernel", fn, grid[0]!, grid[1]!, grid[2]!, block[0]!, block[1]!, block[2]!, 0, 0n, params, 0n);
    this.#call("cuCtxSynchronize");
  }

  close(): void {
    for (const m of this.#imports.splice(0)) {
      this.#vmm!.fns.cuMemUnmap!(m.ptr, m.size);
      this.#vmm!.fns.cuMemAddressFree!(m.ptr, m.size);
      this.#vmm!.fns.cuMemRelease!(m.handle);
    }
    this.#vmm?.close();
    for (const p of this.#allocations) this.#lib.fns.cuMemFree_v2!(p);
    for (const m of this.#modules) this.#lib.fns.cuModuleUnload!(m);
    this.#lib.fns.cuDevicePrimaryCtxRelease_v2!(this.#dev);
    this.#lib.close();
  }

  #call(fn: string, ...args: (number | bigint | Uint8Array)[]): void {
    callCuda(this.#lib, this.#ffi, fn, ...args);
  }
}

/**
 * Calls driver function `fn` of `lib`; a non-zero CUresult throws CudaExecError with the
 * driver's name for it (cuGetErrorName). Shared by this façade and cuda-vram.ts.
 */
export function callCuda(lib: NativeLibrary, ffi: FfiAdapter, fn: string, ...args: (number | bigint | Uint8Array)[]): void {
  const rc = lib.fns[fn]!(...args) as number;
  if (rc === 0) return;
  const out = new Uint8Array(8);
  let name = "unknown error";
  if ((lib.fns.cuGetErrorName!(rc, out) as number) === 0) {
    const p = view(out).getBigUint64(0, true);
    if (p !== 0n) name = ffi.cstring(p);
  }
  throw new CudaExecError(fn, rc, name);
}

/** A little-endian u64 argument buffer (device pointers). */
export const u64Arg = (v: bigint) => {
  const b = new Uint8Array(8);
  view(b).setBigUint64(0, v, true);
  return b;
};
/** A little-endian u32 argument buffer. */
export const u32Arg = (v: number) => {
  const b = new Uint8Array(4);
  view(b).setUint32(0, v, true);
  return b;
};
