/**
 * Device memory that outlives a call: the façade behind sealed shards. It owns every device
 * pointer it allocates; callers hold opaque `DeviceBuffer` handles, so no pointer can reach a
 * log, an error or an API answer. It also runs the tree kernels (sha256_tree.ptx) over a buffer.
 *
 * This runs inside the bridge's own process (a shard's VRAM must live as long as the bridge holds
 * it), unlike user kernels, which run in a child: the only kernels launched here are the bridge's
 * own, over buffers it allocated, with their bounds checked before each launch.
 */
import { callCuda, CudaExecError, EXEC } from "./cuda-exec.ts";
import { openFirst } from "./loader.ts";
import { parsePtxHeader, type PtxHeader } from "./ptx-header.ts";
import type { FfiAdapter, NativeLibrary, SymbolTable } from "./types.ts";

const VRAM: SymbolTable = {
  ...EXEC,
  cuDeviceGetAttribute: { args: ["buf", "i32", "i32"], returns: "i32" },
  cuDriverGetVersion: { args: ["buf"], returns: "i32" },
  cuMemGetInfo_v2: { args: ["buf", "buf"], returns: "i32" },
  cuMemsetD8_v2: { args: ["u64", "u32", "u64"], returns: "i32" },
  cuPointerGetAttribute: { args: ["buf", "i32", "u64"], returns: "i32" },
  // virtual memory management (CUDA 10.2+): shareable allocations (docs/vram-sharing.md)
  cuMemGetAllocationGranularity: { args: ["buf", "buf", "i32"], returns: "i32" },
  cuMemCreate: { args: ["buf", "u64", "buf", "u64"], returns: "i32" },
  cuMemRelease: { args: ["u64"], returns: "i32" },
  cuMemExportToShareableHandle: { args: ["buf", "u64", "i32", "u64"], returns: "i32" },
  cuMemAddressReserve: { args: ["buf", "u64", "u64", "u64", "u64"], returns: "i32" },
  cuMemAddressFree: { args: ["u64", "u64"], returns: "i32" },
  cuMemMap: { args: ["u64", "u64", "u64", "u64", "u64"], returns: "i32" },
  cuMemSetAccess: { args: ["u64", "u64", "buf", "u64"], returns: "i32" },
  cuMemUnmap: { args: ["u64", "u64"], returns: "i32" },
};
/** Device attributes that say whether VMM allocations can be exported as POSIX file descriptors. */
export const CU_SHARE_ATTR = Object.freeze({ integrated: 18, vmm: 102, posix_fd: 103 });
/** CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, CU_MEM_ACCESS_FLAGS_PROT_READWRITE. */
const HANDLE_POSIX_FD = 1;
const PROT_READWRITE = 3;

/** cuPointerGetAttribute attributes and CUmemorytype values (cuda.h 13.0). */
export const CU_POINTER = Object.freeze({ MEMORY_TYPE: 2, HOST_POINTER: 4, IS_MANAGED: 8, DEVICE_ORDINAL: 9 });
export const CU_MEMORYTYPE = Object.freeze({ 1: "host", 2: "device", 3: "array", 4: "unified" } as Record<number, string>);
/** Device attributes recorded in an attestation. */
export const CU_DEVICE_EVIDENCE = Object.freeze({
  integrated: 18,
  can_map_host_memory: 19,
  ecc_enabled: 32,
  unified_addressing: 41,
  managed_memory: 83,
  pageable_memory_access: 88,
  concurrent_managed_access: 89,
  pageable_memory_access_uses_host_page_tables: 100,
});

/** What cuPointerGetAttribute said about one allocation. */
export interface PointerEvidence {
  readonly memory_type: string;
  readonly is_managed: boolean;
  /** The CUresult of the HOST_POINTER query: device memory answers INVALID_VALUE (1). */
  readonly host_pointer_query: number;
  readonly device_ordinal: number;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const BLOCK = 256;
/**
 * The CUresults with which cuModuleLoadData refuses PTX it cannot JIT-compile for this driver or
 * GPU: INVALID_IMAGE 200, NO_BINARY_FOR_GPU 209 (a GPU older than `.target`), INVALID_PTX 218,
 * UNSUPPORTED_PTX_VERSION 222 (an ISA newer than the driver knows).
 */
const PTX_REFUSALS: ReadonlySet<number> = new Set([200, 209, 218, 222]);

/**
 * The driver would not load the tree kernels on a device: the kernels cannot run there at all,
 * which says nothing about the bytes in VRAM (callers hash on the CPU instead).
 */
export class PtxRefusedError extends CudaExecError {
  override name = "PtxRefusedError";
  constructor(ordinal: number, header: PtxHeader, driverVersion: number, cc: string, cause: CudaExecError) {
    super("cuModuleLoadData", cause.code, "");
    const cuda = `${Math.floor(driverVersion / 1000)}.${(driverVersion % 1000) / 10}`;
    this.message = `The CUDA driver (CUDA ${cuda}) refused the tree kernels' PTX (ISA ${header.version}, ${header.target}) ` +
      `on device ${ordinal} (compute capability ${cc}): ${cause.message}`;
    this.cause = cause;
  }
}

/** An allocation on one device; the pointer stays inside the façade. */
export class DeviceBuffer {
  readonly ordinal: number;
  readonly bytes: number;
  /** Why it cannot be exported to another process; null when it can (a VMM allocation with a POSIX-fd handle). */
  readonly shareRefusal: string | null;
  /** The bytes an importer maps: `bytes` rounded up to the allocation granularity. */
  readonly mappedBytes: number;
  #freed = false;
  constructor(ordinal: number, bytes: number, shareRefusal: string | null = "allocated with cuMemAlloc_v2", mappedBytes = bytes) {
    this.ordinal = ordinal;
    this.bytes = bytes;
    this.shareRefusal = shareRefusal;
    this.mappedBytes = mappedBytes;
  }
  get freed(): boolean {
    return this.#freed;
  }
  /** @internal */ markFreed(): void {
    this.#freed = true;
  }
}

/** The CUDA driver with one primary context per device used. */
export class CudaVram {
  readonly #lib: NativeLibrary;
  readonly #ffi: FfiAdapter;
  readonly #ctx = new Map<number, bigint>();
  readonly #ptr = new WeakMap<DeviceBuffer, bigint>();
  /** The VMM handle behind a shareable buffer. */
  readonly #vmm = new WeakMap<DeviceBuffer, bigint>();
  readonly #fns = new Map<number, { leaves: bigint; level: bigint; module: bigint }>();
  /** Devices whose driver refused the PTX: asked once, not on every digest. */
  readonly #refused = new Map<number, PtxRefusedError>();
  readonly #ptx: Uint8Array;
  readonly #header: PtxHeader;

  private constructor(lib: NativeLibrary, ffi: FfiAdapter, ptx: string) {
    this.#lib = lib;
    this.#ffi = ffi;
    const text = new TextEncoder().encode(ptx);
    this.#ptx = new Uint8Array(text.length + 1);
    this.#ptx.set(text);
    this.#header = parsePtxHeader(ptx);
  }

  /** Opens the driver; `ptx` is the tree kernels' source (loaded per device on first use). */
  static open(ffi: FfiAdapter, candidates: string[], ptx: string): CudaVram {
    const lib = openFirst(ffi, "the CUDA driver (libcuda.so.1)", candidates, VRAM);
    const vram = new CudaVram(lib, ffi, ptx);
    vram.#call("cuInit", 0);
    return vram;
  }

  /** The driver's free and total bytes on `ordinal`. */
  memInfo(ordinal: number): { free: number; total: number } {
    this.#use(ordinal);
    const free = new Uint8Array(8);
    const total = new Uint8Array(8);
    this.#call("cuMemGetInfo_v2", free, total);
    return { free: Number(view(free).getBigUint64(0, true)), total: Number(view(total).getBigUint64(0, true)) };
  }

  /** cuDriverGetVersion: the newest CUDA release the driver supports, 1000*major + 10*minor. */
  driverVersion(): number {
    const out = new Uint8Array(4);
    this.#call("cuDriverGetVersion", out);
    return view(out).getInt32(0, true);
  }

  attribute(ordinal: number, attr: number): number {
    const out = new Uint8Array(4);
    this.#call("cuDeviceGetAttribute", out, attr, this.#device(ordinal));
    return view(out).getInt32(0, true);
  }

  /** cuMemAlloc_v2: memory no other process can map (`refusal` says why, for a shard's answer). */
  alloc(ordinal: number, bytes: number, refusal?: string): DeviceBuffer {
    this.#use(ordinal);
    const out = new Uint8Array(8);
    this.#call("cuMemAlloc_v2", out, BigInt(bytes));
    const buf = new DeviceBuffer(ordinal, bytes, refusal);
    this.#ptr.set(buf, view(out).getBigUint64(0, true));
    return buf;
  }

  /**
   * An allocation another process can map: cuMemCreate with a POSIX-fd handle, reserved, mapped
   * and made readable and writable here. Where the device cannot export, a plain cuMemAlloc_v2
   * allocation whose `shareRefusal` says why (never a weaker sharing in its place).
   */
  allocShareable(ordinal: number, bytes: number): DeviceBuffer {
    const refusal = this.shareRefusal(ordinal);
    if (refusal !== null) return this.alloc(ordinal, bytes, refusal);
    this.#use(ordinal);
    const prop = new Uint8Array(32);
    const pv = view(prop);
    pv.setInt32(0, 1, true); // CU_MEM_ALLOCATION_TYPE_PINNED
    pv.setInt32(4, HANDLE_POSIX_FD, true);
    pv.setInt32(8, 1, true); // CU_MEM_LOCATION_TYPE_DEVICE
    pv.setInt32(12, ordinal, true);
    const out = new Uint8Array(8);
    this.#call("cuMemGetAllocationGranularity", out, prop, 0);
    const gran = view(out).getBigUint64(0, true);
    const size = ((BigInt(bytes) + gran - 1n) / gran) * gran;
    this.#call("cuMemCreate", out, size, prop, 0n);
    const handle = view(out).getBigUint64(0, true);
    let ptr = 0n;
    try {
      this.#call("cuMemAddressReserve", out, size, 0n, 0n, 0n);
      ptr = view(out).getBigUint64(0, true);
      this.#call("cuMemMap", ptr, size, 0n, handle, 0n);
      const desc = new Uint8Array(12);
      view(desc).setInt32(0, 1, true);
      view(desc).setInt32(4, ordinal, true);
      view(desc).setInt32(8, PROT_READWRITE, true);
      this.#call("cuMemSetAccess", ptr, size, desc, 1n);
    } catch (error) {
      if (ptr !== 0n) {
        this.#lib.fns.cuMemUnmap!(ptr, size);
        this.#lib.fns.cuMemAddressFree!(ptr, size);
      }
      this.#lib.fns.cuMemRelease!(handle);
      throw error;
    }
    const buf = new DeviceBuffer(ordinal, bytes, null, Number(size));
    this.#ptr.set(buf, ptr);
    this.#vmm.set(buf, handle);
    return buf;
  }

  /** Why memory on `ordinal` cannot be exported as a POSIX file descriptor; null when it can (three attribute reads: no cache). */
  shareRefusal(ordinal: number): string | null {
    try {
      return this.attribute(ordinal, CU_SHARE_ATTR.integrated) === 1
        ? `device ${ordinal} is an integrated (Tegra) GPU: its driver exports no POSIX file descriptors`
        : this.attribute(ordinal, CU_SHARE_ATTR.vmm) !== 1
        ? `device ${ordinal} lacks virtual memory management (CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED is 0)`
        : this.attribute(ordinal, CU_SHARE_ATTR.posix_fd) !== 1
        ? `device ${ordinal} cannot export POSIX file descriptors (CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED is 0)`
        : null;
    } catch (error) {
      return `the driver does not say whether device ${ordinal} can export memory: ${(error as Error).message}`;
    }
  }

  /** A new file descriptor for a shareable buffer's memory (cuMemExportToShareableHandle); the caller closes it. */
  exportFd(buf: DeviceBuffer): number {
    const handle = this.#vmm.get(buf);
    if (handle === undefined || buf.freed) throw new RangeError(`Cannot export this buffer: ${buf.shareRefusal ?? "it was freed"}`);
    this.#use(buf.ordinal);
    const out = new Uint8Array(4);
    this.#call("cuMemExportToShareableHandle", out, handle, HANDLE_POSIX_FD, 0n);
    return view(out).getInt32(0, true);
  }

  free(buf: DeviceBuffer): void {
    if (buf.freed) return;
    this.#use(buf.ordinal);
    const handle = this.#vmm.get(buf);
    if (handle === undefined) {
      this.#call("cuMemFree_v2", this.#p(buf, 0, 0));
    } else {
      const ptr = this.#p(buf, 0, 0);
      const size = BigInt(buf.mappedBytes);
      this.#call("cuMemUnmap", ptr, size);
      this.#call("cuMemAddressFree", ptr, size);
      this.#call("cuMemRelease", handle);
    }
    buf.markFreed();
  }

  write(buf: DeviceBuffer, offset: number, src: Uint8Array): void {
    this.#use(buf.ordinal);
    this.#call("cuMemcpyHtoD_v2", this.#p(buf, offset, src.length), src, BigInt(src.length));
  }

  read(buf: DeviceBuffer, offset: number, dst: Uint8Array): void {
    this.#use(buf.ordinal);
    this.#call("cuMemcpyDtoH_v2", dst, this.#p(buf, offset, dst.length), BigInt(dst.length));
  }

  memset(buf: DeviceBuffer, offset: number, value: number, count: number): void {
    this.#use(buf.ordinal);
    this.#call("cuMemsetD8_v2", this.#p(buf, offset, count), value & 0xff, BigInt(count));
  }

  /** What the driver says this allocation is. */
  pointerEvidence(buf: DeviceBuffer): PointerEvidence {
    this.#use(buf.ordinal);
    const p = this.#p(buf, 0, 0);
    const out = new Uint8Array(8);
    this.#call("cuPointerGetAttribute", out, CU_POINTER.MEMORY_TYPE, p);
    const type = view(out).getUint32(0, true);
    out.fill(0);
    this.#call("cuPointerGetAttribute", out, CU_POINTER.IS_MANAGED, p);
    const managed = out[0] !== 0;
    out.fill(0);
    this.#call("cuPointerGetAttribute", out, CU_POINTER.DEVICE_ORDINAL, p);
    const ordinal = view(out).getInt32(0, true);
    const hostRc = this.#lib.fns.cuPointerGetAttribute!(new Uint8Array(8), CU_POINTER.HOST_POINTER, p) as number;
    return {
      memory_type: CU_MEMORYTYPE[type] ?? `unknown(${type})`,
      is_managed: managed,
      host_pointer_query: hostRc,
      device_ordinal: ordinal,
    };
  }

  /**
   * The tree digest of `buf`'s first `length` bytes, computed on the GPU: one launch hashes every
   * leaf, then one launch per level halves the hashes until one is left (copied back: 32 bytes).
   */
  treeDigest(buf: DeviceBuffer, length: number, leafBytes: number): Uint8Array {
    if (length < 1 || length > buf.bytes) throw new RangeError(`Cannot hash ${length} bytes of a ${buf.bytes}-byte buffer`);
    const fns = this.#kernels(buf.ordinal);
    const leaves = Math.ceil(length / leafBytes);
    const a = this.alloc(buf.ordinal, leaves * 32);
    const b = leaves > 1 ? this.alloc(buf.ordinal, Math.ceil(leaves / 2) * 32) : null;
    try {
      this.#launch(fns.leaves, leaves, [u64(this.#p(buf, 0, length)), u64(BigInt(length)), u64(this.#p(a, 0, leaves * 32)), u32(leaves)]);
      let [src, dst, n] = [a, b, leaves];
      while (n > 1) {
        const parents = Math.ceil(n / 2);
        this.#launch(fns.level, parents, [u64(this.#p(src, 0, n * 32)), u64(this.#p(dst!, 0, parents * 32)), u32(n)]);
        [src, dst, n] = [dst!, src, parents];
      }
      this.#call("cuCtxSynchronize");
      const root = new Uint8Array(32);
      this.read(src, 0, root);
      return root;
    } finally {
      this.free(a);
      if (b !== null) this.free(b);
    }
  }

  close(): void {
    for (const [ordinal, f] of this.#fns) {
      this.#use(ordinal);
      this.#lib.fns.cuModuleUnload!(f.module);
    }
    for (const ordinal of this.#ctx.keys()) this.#lib.fns.cuDevicePrimaryCtxRelease_v2!(this.#device(ordinal));
    this.#lib.close();
  }

  #launch(fn: bigint, threads: number, args: Uint8Array[]): void {
    const params = new Uint8Array(8 * args.length);
    args.forEach((a, i) => view(params).setBigUint64(i * 8, this.#ffi.addressOf(a), true));
    const grid = Math.max(1, Math.ceil(threads / BLOCK));
    this.#call("cuLaunchKernel", fn, grid, 1, 1, BLOCK, 1, 1, 0, 0n, params, 0n);
  }

  /** Why the driver refused the tree kernels on `ordinal`, once a digest has tried them; null otherwise. */
  kernelRefusal(ordinal: number): PtxRefusedError | null {
    return this.#refused.get(ordinal) ?? null;
  }

  #kernels(ordinal: number): { leaves: bigint; level: bigint; module: bigint } {
    let f = this.#fns.get(ordinal);
    if (f !== undefined) return f;
    const refused = this.#refused.get(ordinal);
    if (refused !== undefined) throw refused;
    this.#use(ordinal);
    const mod = new Uint8Array(8);
    try {
      this.#call("cuModuleLoadData", mod, this.#ptx);
    } catch (error) {
      if (!(error instanceof CudaExecError) || !PTX_REFUSALS.has(error.code)) throw error;
      const cc = `${this.attribute(ordinal, 75)}.${this.attribute(ordinal, 76)}`;
      const e = new PtxRefusedError(ordinal, this.#header, this.driverVersion(), cc, error);
      this.#refused.set(ordinal, e);
      throw e;
    }
    const module = view(mod).getBigUint64(0, true);
    const get = (name: string) => {
      const out = new Uint8Array(8);
      this.#call("cuModuleGetFunction", out, module, new TextEncoder().encode(name + "\0"));
      return view(out).getBigUint64(0, true);
    };
    f = { leaves: get("vram_tree_leaves"), level: get("vram_tree_level"), module };
    this.#fns.set(ordinal, f);
    return f;
  }

  /** The device pointer at `offset`, after checking [offset, offset+length) lies inside `buf`. */
  #p(buf: DeviceBuffer, offset: number, length: number): bigint {
    const p = this.#ptr.get(buf);
    if (p === undefined || buf.freed) throw new RangeError("Cannot use a device buffer that was freed");
    if (offset < 0 || length < 0 || offset + length > buf.bytes) {
      throw new RangeError(`Cannot reach bytes ${offset}..${offset + length} of a ${buf.bytes}-byte device buffer`);
    }
    return p + BigInt(offset);
  }

  #device(ordinal: number): number {
    const out = new Uint8Array(4);
    this.#call("cuDeviceGet", out, ordinal);
    return view(out).getInt32(0, true);
  }

  #use(ordinal: number): void {
    let ctx = this.#ctx.get(ordinal);
    if (ctx === undefined) {
      const out = new Uint8Array(8);
      this.#call("cuDevicePrimaryCtxRetain", out, this.#device(ordinal));
      ctx = view(out).getBigUint64(0, true);
      this.#ctx.set(ordinal, ctx);
    }
    this.#call("cuCtxSetCurrent", ctx);
  }

  #call(fn: string, ...args: (number | bigint | Uint8Array)[]): void {
    callCuda(this.#lib, this.#ffi, fn, ...args);
  }
}

const u64 = (v: bigint) => {
  const b = new Uint8Array(8);
  view(b).setBigUint64(0, v, true);
  return b;
};
const u32 = (v: number) => {
  const b = new Uint8Array(4);
  view(b).setUint32(0, v, true);
  return b;
};
