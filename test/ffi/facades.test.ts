/**
 * The NVML and CUDA façades against an in-memory FFI adapter that behaves like dlopen: opening
 * fails when any symbol of the table is missing, and every open is a handle to close.
 */
import { describe, expect, test } from "bun:test";
import { Cuda } from "../../ffi/cuda.ts";
import { cText } from "../../ffi/cstring.ts";
import { Nvml } from "../../ffi/nvml.ts";
import type { FfiAdapter, NativeArg, NativeFn, SymbolTable } from "../../ffi/types.ts";

/** A fake library: `impl` holds the symbols it exports. */
function fakeAdapter(impl: Record<string, NativeFn>) {
  const opened: string[][] = [];
  let closed = 0;
  const adapter: FfiAdapter = {
    name: "bun",
    open(path: string, table: SymbolTable) {
      const missing = Object.keys(table).filter((n) => impl[n] === undefined);
      if (missing.length > 0) throw new Error(`${path}: undefined symbol: ${missing[0]}`);
      opened.push(Object.keys(table));
      const fns: Record<string, NativeFn> = {};
      for (const n of Object.keys(table)) fns[n] = impl[n]!;
      return { path, fns, close: () => void closed++ };
    },
    cstring: () => "error text",
    addressOf: () => 0n,
  };
  return { adapter, opened, closes: () => closed };
}

/** Writes `text` into the caller's buffer with no NUL, filling it (a driver at the edge). */
const fill = (buf: NativeArg, text: string) => {
  const b = buf as Uint8Array;
  b.set(new TextEncoder().encode(text.padEnd(b.length, "x")).subarray(0, b.length));
  return 0;
};

const nvmlBase: Record<string, NativeFn> = {
  nvmlInit_v2: () => 0,
  nvmlShutdown: () => 0,
  nvmlErrorString: () => "error",
  nvmlDeviceGetCount_v2: (out) => ((out as Uint8Array)[0] = 1, 0),
  nvmlDeviceGetHandleByIndex_v2: () => 0,
  nvmlDeviceGetName: (_h, buf) => fill(buf, "N"),
  nvmlDeviceGetUUID: (_h, buf) => ((buf as Uint8Array).set([0x47, 0, 0x58]), 0),
  nvmlSystemGetDriverVersion: (buf) => ((buf as Uint8Array).set(new TextEncoder().encode("555.42\0junk")), 0),
  nvmlDeviceGetPciInfo_v3: () => 0,
  nvmlDeviceGetMemoryInfo: () => 0,
};

describe("cText()", () => {
  test("reads up to the first NUL, or the whole buffer when there is none", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(cText(enc("abc\0def"))).toBe("abc");
    expect(cText(enc("\0abc"))).toBe("");
    expect(cText(enc("abcd"))).toBe("abcd");
    expect(cText(new Uint8Array(0))).toBe("");
    expect(cText(enc("ü\0"))).toBe("ü");
  });
});

describe("C strings in the façades", () => {
  test("NVML: a name that fills its buffer with no NUL is read whole, and strings stop at the NUL", () => {
    const { adapter } = fakeAdapter(nvmlBase);
    const nvml = Nvml.open(adapter, ["libnvidia-ml.so.1"]);
    expect(nvml.name(1n)).toBe("N".padEnd(96, "x"));
    expect(nvml.uuid(1n)).toBe("G");
    expect(nvml.driverVersion()).toBe("555.42");
    nvml.close();
  });

  test("CUDA: a name that fills its buffer with no NUL keeps its last byte", () => {
    const { adapter } = fakeAdapter({
      cuInit: () => 0,
      cuDriverGetVersion: () => 0,
      cuDeviceGetCount: () => 0,
      cuDeviceGet: () => 0,
      cuDeviceGetName: (buf) => fill(buf, "Orin"),
      cuDeviceGetUuid: () => 0,
      cuDeviceGetPCIBusId: (buf) => ((buf as Uint8Array).set(new TextEncoder().encode("0000:01:00.0\0")), 0),
      cuDeviceTotalMem_v2: () => 0,
      cuDeviceGetAttribute: () => 0,
      cuGetErrorName: () => 0,
    });
    const cuda = Cuda.open(adapter, ["libcuda.so.1"]);
    expect(cuda.name(0)).toBe("Orin".padEnd(256, "x"));
    expect(cuda.pciBusId(0)).toBe("0000:01:00.0");
    cuda.close();
  });
});

describe("NVML's optional symbols", () => {
  test("are bound with one more open when all are present, and every handle is closed", () => {
    const all: Record<string, NativeFn> = { ...nvmlBase };
    for (
      const n of [
        "nvmlSystemGetCudaDriverVersion_v2",
        "nvmlSystemGetCudaDriverVersion",
        "nvmlDeviceGetMemoryInfo_v2",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetClockInfo",
        "nvmlDeviceGetCudaComputeCapability",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetComputeRunningProcesses_v3",
        // CDI's (minor numbers and MIG devices)
        "nvmlDeviceGetMinorNumber",
        "nvmlDeviceGetMaxMigDeviceCount",
        "nvmlDeviceGetMigDeviceHandleByIndex",
        "nvmlDeviceGetGpuInstanceId",
        "nvmlDeviceGetComputeInstanceId",
        // the device plugin's health events
        "nvmlDeviceGetSupportedEventTypes",
        "nvmlEventSetCreate",
        "nvmlDeviceRegisterEvents",
        "nvmlEventSetWait_v2",
        "nvmlEventSetFree",
      ]
    ) all[n] = () => 0;
    const { adapter, opened, closes } = fakeAdapter(all);
    const nvml = Nvml.open(adapter, ["libnvidia-ml.so.1"]);
    expect(opened.length).toBe(2); // the required table, then every optional symbol at once
    nvml.close();
    expect(closes()).toBe(opened.length);
  });

  test("a missing optional symbol is left out, the rest are bound, and every handle is closed", () => {
    const { adapter, opened, closes } = fakeAdapter({ ...nvmlBase, nvmlDeviceGetPowerUsage: () => 0, nvmlDeviceGetTemperature: () => 0 });
    const nvml = Nvml.open(adapter, ["libnvidia-ml.so.1"]);
    expect(opened.flat()).toContain("nvmlDeviceGetPowerUsage");
    expect(opened.flat()).toContain("nvmlDeviceGetTemperature");
    nvml.close();
    expect(closes()).toBe(opened.length);
  });
});
