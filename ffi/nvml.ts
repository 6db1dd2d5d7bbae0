/**
 * NVML (`libnvidia-ml.so.1`) behind a typed façade that owns every buffer. Only the symbols
 * the info payload needs are required; everything else is probed one by one, and a missing
 * one answers NOT_SUPPORTED like the hardware does.
 */
import { cText } from "./cstring.ts";
import { openFirst, type OptionalSymbols, probeOptional } from "./loader.ts";
import type { FfiAdapter, NativeFn, NativeLibrary, SymbolTable } from "./types.ts";

export const NVML = Object.freeze({
  SUCCESS: 0,
  UNINITIALIZED: 1,
  INVALID_ARGUMENT: 2,
  NOT_SUPPORTED: 3,
  NO_PERMISSION: 4,
  NOT_FOUND: 6,
  INSUFFICIENT_SIZE: 7,
  DRIVER_NOT_LOADED: 9,
  LIBRARY_NOT_FOUND: 12,
  FUNCTION_NOT_FOUND: 13,
  TIMEOUT: 10,
  GPU_IS_LOST: 15,
  UNKNOWN: 999,
});

const REQUIRED: SymbolTable = {
  nvmlInit_v2: { args: [], returns: "i32" },
  nvmlShutdown: { args: [], returns: "i32" },
  nvmlErrorString: { args: ["i32"], returns: "cstr" },
  nvmlDeviceGetCount_v2: { args: ["buf"], returns: "i32" },
  nvmlDeviceGetHandleByIndex_v2: { args: ["u32", "buf"], returns: "i32" },
  nvmlDeviceGetName: { args: ["u64", "buf", "u32"], returns: "i32" },
  nvmlDeviceGetUUID: { args: ["u64", "buf", "u32"], returns: "i32" },
  nvmlSystemGetDriverVersion: { args: ["buf", "u32"], returns: "i32" },
  nvmlDeviceGetPciInfo_v3: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetMemoryInfo: { args: ["u64", "buf"], returns: "i32" },
};

const OPTIONAL: SymbolTable = {
  nvmlSystemGetCudaDriverVersion_v2: { args: ["buf"], returns: "i32" },
  nvmlSystemGetCudaDriverVersion: { args: ["buf"], returns: "i32" },
  nvmlDeviceGetMemoryInfo_v2: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetUtilizationRates: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetTemperature: { args: ["u64", "i32", "buf"], returns: "i32" },
  nvmlDeviceGetPowerUsage: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetEnforcedPowerLimit: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetTotalEnergyConsumption: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetClockInfo: { args: ["u64", "i32", "buf"], returns: "i32" },
  nvmlDeviceGetCudaComputeCapability: { args: ["u64", "buf", "buf"], returns: "i32" },
  nvmlDeviceGetMigMode: { args: ["u64", "buf", "buf"], returns: "i32" },
  nvmlDeviceGetComputeRunningProcesses_v3: { args: ["u64", "buf", "buf"], returns: "i32" },
  // For CDI specs: device minor numbers and MIG devices.
  nvmlDeviceGetMinorNumber: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetMaxMigDeviceCount: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetMigDeviceHandleByIndex: { args: ["u64", "u32", "buf"], returns: "i32" },
  nvmlDeviceGetGpuInstanceId: { args: ["u64", "buf"], returns: "i32" },
  nvmlDeviceGetComputeInstanceId: { args: ["u64", "buf"], returns: "i32" },
  // Health events (critical XIDs, ECC errors) for the device plugin.
  nvmlDeviceGetSupportedEventTypes: { args: ["u64", "buf"], returns: "i32" },
  nvmlEventSetCreate: { args: ["buf"], returns: "i32" },
  nvmlDeviceRegisterEvents: { args: ["u64", "u64", "u64"], returns: "i32" },
  nvmlEventSetWait_v2: { args: ["u64", "buf", "u32"], returns: "i32" },
  nvmlEventSetFree: { args: ["u64"], returns: "i32" },
};

/** nvml.h's event types. */
export const NVML_EVENT = Object.freeze({ SINGLE_BIT_ECC: 0x1n, DOUBLE_BIT_ECC: 0x2n, XID_CRITICAL: 0x8n });

/** One event from nvmlEventSetWait_v2: the device, the type and its data (the XID number for an XID event). */
export interface NvmlEvent {
  readonly device: NvmlHandle;
  readonly type: bigint;
  readonly data: bigint;
}

/** An NVML call that did not return SUCCESS. */
export class NvmlError extends Error {
  override name = "NvmlError";
  readonly code: number;
  constructor(fn: string, code: number, text: string) {
    super(`${fn} failed: ${text} (NVML error ${code})`);
    this.code = code;
  }
  /** The hardware or driver does not offer this: report the field as null. */
  get unsupported(): boolean {
    return this.code === NVML.NOT_SUPPORTED || this.code === NVML.FUNCTION_NOT_FOUND || this.code === NVML.NO_PERMISSION;
  }
  /** The GPU is gone (lost, or vanished since it was enumerated). */
  get gone(): boolean {
    return this.code === NVML.GPU_IS_LOST || this.code === NVML.NOT_FOUND || this.code === NVML.INVALID_ARGUMENT;
  }
}

export type NvmlHandle = bigint;

const view = (buf: Uint8Array) => new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

/** An initialised NVML; `close()` shuts it down. */
export class Nvml {
  readonly path: string;
  readonly #lib: NativeLibrary;
  readonly #opt: Record<string, NativeFn>;
  readonly #optLibs: OptionalSymbols;

  private constructor(lib: NativeLibrary, opt: OptionalSymbols) {
    this.path = lib.path;
    this.#lib = lib;
    this.#opt = opt.fns;
    this.#optLibs = opt;
  }

  /** Loads the first usable library among `candidates` and initialises it. */
  static open(adapter: FfiAdapter, candidates: string[]): Nvml {
    const lib = openFirst(adapter, "NVML (libnvidia-ml.so.1)", candidates, REQUIRED);
    const nvml = new Nvml(lib, probeOptional(adapter, lib.path, OPTIONAL));
    try {
      nvml.#check("nvmlInit_v2", lib.fns.nvmlInit_v2!() as number);
    } catch (error) {
      nvml.#optLibs.close();
      lib.close();
      throw error;
    }
    return nvml;
  }

  close(): void {
    this.#lib.fns.nvmlShutdown!();
    this.#optLibs.close();
    this.#lib.close();
  }

  deviceCount(): number {
    const out = new Uint8Array(4);
    this.#call("nvmlDeviceGetCount_v2", out);
    return view(out).getUint32(0, true);
  }

  handle(index: number): NvmlHandle {
    const out = new Uint8Array(8);
    this.#call("nvmlDeviceGetHandleByIndex_v2", index, out);
    return view(out).getBigUint64(0, true);
  }

  name(h: NvmlHandle): string {
    return this.#string("nvmlDeviceGetName", h, 96);
  }

  uuid(h: NvmlHandle): string {
    return this.#string("nvmlDeviceGetUUID", h, 96);
  }

  /** The PCI bus id, `%08X:%02X:%02X.0`. */
  pciBusId(h: NvmlHandle): string {
    const pci = new Uint8Array(68);
    this.#call("nvmlDeviceGetPciInfo_v3", h, pci);
    return cText(pci.subarray(36, 68));
  }

  driverVersion(): string {
    const buf = new Uint8Array(80);
    this.#call("nvmlSystemGetDriverVersion", buf, buf.length);
    return cText(buf);
  }

  /** 1000*major + 10*minor. */
  cudaDriverVersion(): number {
    const out = new Uint8Array(4);
    const fn = this.#opt.nvmlSystemGetCudaDriverVersion_v2 !== undefined
      ? "nvmlSystemGetCudaDriverVersion_v2"
      : "nvmlSystemGetCudaDriverVersion";
    this.#call(fn, out);
    return view(out).getInt32(0, true);
  }

  /** Memory in bytes; prefers the v2 struct, which separates reserved memory from used. */
  memory(h: NvmlHandle): { total: number; free: number; used: number } {
    if (this.#opt.nvmlDeviceGetMemoryInfo_v2 !== undefined) {
      const s = new Uint8Array(40);
      view(s).setUint32(0, 0x02000028, true);
      const rc = this.#opt.nvmlDeviceGetMemoryInfo_v2(h, s) as number;
      if (rc === NVML.SUCCESS) {
        const v = view(s);
        return { total: Number(v.getBigUint64(8, true)), free: Number(v.getBigUint64(24, true)), used: Number(v.getBigUint64(32, true)) };
      }
    }
    const s = new Uint8Array(24);
    this.#call("nvmlDeviceGetMemoryInfo", h, s);
    const v = view(s);
    return { total: Number(v.getBigUint64(0, true)), free: Number(v.getBigUint64(8, true)), used: Number(v.getBigUint64(16, true)) };
  }

  utilization(h: NvmlHandle): { gpu: number; memory: number } {
    const s = new Uint8Array(8);
    this.#call("nvmlDeviceGetUtilizationRates", h, s);
    return { gpu: view(s).getUint32(0, true), memory: view(s).getUint32(4, true) };
  }

  temperatureC(h: NvmlHandle): number {
    return this.#u32("nvmlDeviceGetTemperature", h, 0);
  }

  powerMw(h: NvmlHandle): number {
    return this.#u32("nvmlDeviceGetPowerUsage", h);
  }

  powerLimitMw(h: NvmlHandle): number {
    return this.#u32("nvmlDeviceGetEnforcedPowerLimit", h);
  }

  energyMj(h: NvmlHandle): number {
    const out = new Uint8Array(8);
    this.#call("nvmlDeviceGetTotalEnergyConsumption", h, out);
    return Number(view(out).getBigUint64(0, true));
  }

  /** Clock in MHz: 0 graphics, 1 SM, 2 memory. */
  clockMhz(h: NvmlHandle, type: 0 | 1 | 2): number {
    return this.#u32("nvmlDeviceGetClockInfo", h, type);
  }

  computeCapability(h: NvmlHandle): [number, number] {
    const major = new Uint8Array(4);
    const minor = new Uint8Array(4);
    this.#call("nvmlDeviceGetCudaComputeCapability", h, major, minor);
    return [view(major).getInt32(0, true), view(minor).getInt32(0, true)];
  }

  migMode(h: NvmlHandle): { current: number; pending: number } {
    const current = new Uint8Array(4);
    const pending = new Uint8Array(4);
    this.#call("nvmlDeviceGetMigMode", h, current, pending);
    return { current: view(current).getUint32(0, true), pending: view(pending).getUint32(0, true) };
  }

  /** The device's minor number: `/dev/nvidia<minor>` (not the index). */
  minorNumber(h: NvmlHandle): number {
    return this.#u32("nvmlDeviceGetMinorNumber", h);
  }

  /** The MIG devices of a GPU in MIG mode: handle, GPU instance and compute instance ids. */
  migDevices(h: NvmlHandle): { handle: NvmlHandle; gi: number; ci: number }[] {
    const max = this.#u32("nvmlDeviceGetMaxMigDeviceCount", h);
    const out: { handle: NvmlHandle; gi: number; ci: number }[] = [];
    for (let i = 0; i < max; i++) {
      const buf = new Uint8Array(8);
      const rc = this.#optional("nvmlDeviceGetMigDeviceHandleByIndex")(h, i, buf) as number;
      if (rc === NVML.NOT_FOUND) continue; // a slot with no MIG device in it
      this.#check("nvmlDeviceGetMigDeviceHandleByIndex", rc);
      const mig = view(buf).getBigUint64(0, true);
      out.push({ handle: mig, gi: this.#u32("nvmlDeviceGetGpuInstanceId", mig), ci: this.#u32("nvmlDeviceGetComputeInstanceId", mig) });
    }
    return out;
  }

  /** The event types `h` can report (a bit mask of NVML_EVENT). */
  supportedEvents(h: NvmlHandle): bigint {
    const out = new Uint8Array(8);
    this.#call("nvmlDeviceGetSupportedEventTypes", h, out);
    return view(out).getBigUint64(0, true);
  }

  /** A new event set (free it with eventSetFree). */
  eventSetCreate(): bigint {
    const out = new Uint8Array(8);
    this.#call("nvmlEventSetCreate", out);
    return view(out).getBigUint64(0, true);
  }

  registerEvents(h: NvmlHandle, types: bigint, set: bigint): void {
    this.#call("nvmlDeviceRegisterEvents", h, types, set);
  }

  /** The next event in `set`, or null when none came within `timeoutMs` (0: do not wait; the call blocks the thread). */
  eventWait(set: bigint, timeoutMs: number): NvmlEvent | null {
    const data = new Uint8Array(32); // nvmlEventData_t: device, eventType, eventData, gpuInstanceId, computeInstanceId
    const rc = this.#optional("nvmlEventSetWait_v2")(set, data, timeoutMs) as number;
    if (rc === NVML.TIMEOUT) return null;
    this.#check("nvmlEventSetWait_v2", rc);
    const v = view(data);
    return { device: v.getBigUint64(0, true), type: v.getBigUint64(8, true), data: v.getBigUint64(16, true) };
  }

  eventSetFree(set: bigint): void {
    this.#call("nvmlEventSetFree", set);
  }

  /** Compute processes and the bytes each uses; sized by a first call with count 0. */
  processes(h: NvmlHandle): { pid: number; usedBytes: number }[] {
    const fn = "nvmlDeviceGetComputeRunningProcesses_v3";
    const count = new Uint8Array(4);
    for (let tries = 0; tries < 3; tries++) {
      const n = view(count).getUint32(0, true);
      const entries = new Uint8Array(Math.max(1, n) * 24);
      const rc = this.#optional(fn)(h, count, entries) as number;
      if (rc === NVML.INSUFFICIENT_SIZE) continue; // a process started in between: size again
      this.#check(fn, rc);
      const got = view(count).getUint32(0, true);
      const v = view(entries);
      return Array.from({ length: got }, (_, i) => ({
        pid: v.getUint32(i * 24, true),
        usedBytes: Number(v.getBigUint64(i * 24 + 8, true)),
      }));
    }
    throw new NvmlError(fn, NVML.INSUFFICIENT_SIZE, "the process list kept growing");
  }

  #u32(fn: string, h: NvmlHandle, arg?: number): number {
    const out = new Uint8Array(4);
    if (arg === undefined) this.#call(fn, h, out);
    else this.#call(fn, h, arg, out);
    return view(out).getUint32(0, true);
  }

  #string(fn: string, h: NvmlHandle, size: number): string {
    const buf = new Uint8Array(size);
    this.#call(fn, h, buf, size);
    return cText(buf);
  }

  #optional(fn: string): NativeFn {
    const f = this.#lib.fns[fn] ?? this.#opt[fn];
    if (f === undefined) throw new NvmlError(fn, NVML.FUNCTION_NOT_FOUND, "not in this driver's NVML");
    return f;
  }

  #call(fn: string, ...args: Parameters<NativeFn>): void {
    this.#check(fn, this.#optional(fn)(...args) as number);
  }

  #check(fn: string, rc: number): void {
    if (rc === NVML.SUCCESS) return;
    const message = (this.#lib.fns.nvmlErrorString!(rc) as string | null) ?? "unknown error";
    throw new NvmlError(fn, rc, message);
  }
}
