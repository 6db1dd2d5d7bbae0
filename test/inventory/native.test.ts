/** The real FFI code (bun:ffi, façades, backends) against the fake NVML and CUDA in mock/native. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bunFfi } from "../../ffi/bun.ts";
import type { FfiAdapter } from "../../ffi/types.ts";
import { InventoryError } from "../../src/inventory/errors.ts";
import { openNativeBackend } from "../../src/inventory/native.ts";
import type { InventoryBackend } from "../../src/inventory/types.ts";
import { memoryLogger, tempDir } from "../helpers.ts";
import { FAKE_CUDA, fakeEnv, ORIN_ROOT, scriptFakes } from "./fakes.ts";

let backend: InventoryBackend | null = null;
const open = (kind: "auto" | "nvml" | "cuda" | "jetson" = "auto", env: Record<string, string> = fakeEnv, sysRoot = "/") => {
  const { log, lines } = memoryLogger();
  backend = openNativeBackend({ kind, adapter: bunFfi, env, sysRoot, log });
  return { backend, lines };
};
beforeEach(() => scriptFakes({}));
afterEach(() => {
  backend?.close();
  backend = null;
});

describe("the NVML backend", () => {
  test("lists GPUs in NVML order with SM counts joined from CUDA by UUID, though CUDA's order differs", async () => {
    const { backend: b } = open();
    expect(b.name).toBe("nvml");
    expect(await b.list()).toEqual([
      { id: "GPU-0", name: "NVIDIA A100-SXM4-40GB", memory_mb: 40960, sm_count: 108, driver_version: "550.54.15", runtime_version: "12.4" },
      { id: "GPU-1", name: "NVIDIA H100 80GB HBM3", memory_mb: 81559, sm_count: 132, driver_version: "550.54.15", runtime_version: "12.4" },
    ]);
  });

  test("joins by PCI bus id when CUDA's UUIDs are useless", async () => {
    scriptFakes({ cuda_uuid_zero: 1 });
    const { backend: b } = open();
    expect((await b.list()).map((g) => g.sm_count)).toEqual([108, 132]);
  });

  test("reports live stats, with v2 memory, processes, MIG mode and compute capability", async () => {
    const { backend: b } = open();
    const [a100, h100] = await b.stats();
    expect(a100).toMatchObject({
      id: "GPU-0",
      uuid: "GPU-11111111-2222-3333-4444-55556666aaaa",
      pci_bus_id: "00000000:17:00.0",
      utilization_gpu_pct: 37,
      utilization_memory_pct: 12,
      memory_total_mib: 40960,
      memory_used_mib: 1024,
      memory_free_mib: 40960 - 1024 - 256, // v2 separates the 256 MiB reserved
      temperature_c: 41,
      power_w: 85.25,
      power_limit_w: 400,
      energy_mj: 123456789,
      clock_graphics_mhz: 1410,
      clock_sm_mhz: 1410,
      clock_memory_mhz: 1215,
      compute_capability: "8.0",
      mig_mode: "disabled",
      processes: [{ pid: 4242, used_memory_mib: 256 }, { pid: 4243, used_memory_mib: 512 }],
      source: "nvml",
    });
    expect(h100).toMatchObject({ compute_capability: "9.0", mig_mode: "enabled", processes: [] });
  });

  test("answers null, not an error, for what the hardware does not support", async () => {
    scriptFakes({ notsup: 1 });
    const { backend: b } = open();
    const [s] = await b.stats();
    expect(s).toMatchObject({ utilization_gpu_pct: null, temperature_c: null, power_w: null, mig_mode: null, processes: null });
    expect(s!.memory_total_mib).toBe(40960);
    expect((await b.list()).length).toBe(2);
  });

  test("drops a lost GPU with one warning, and takes it back when it answers again", async () => {
    const { backend: b, lines } = open();
    scriptFakes({ lost: "1" });
    expect((await b.list()).map((g) => g.id)).toEqual(["GPU-0"]);
    expect((await b.stats()).map((g) => g.id)).toEqual(["GPU-0"]);
    await b.list();
    const warnings = lines.filter((l) => l.includes("GPU-1 dropped from the inventory"));
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toContain("GPU is lost (NVML error 15)");
    scriptFakes({});
    expect((await b.list()).map((g) => g.id)).toEqual(["GPU-0", "GPU-1"]);
    expect(lines.some((l) => l.includes("GPU-1 is answering again"))).toBe(true);
  });

  test("drops a GPU that vanished between polls", async () => {
    const { backend: b } = open();
    expect((await b.list()).length).toBe(2);
    scriptFakes({ count: 1 });
    expect((await b.list()).map((g) => g.name)).toEqual(["NVIDIA A100-SXM4-40GB"]);
  });
});

describe("backend selection", () => {
  test("auto falls back to CUDA when the NVML driver is not loaded, ordering by PCI bus id", async () => {
    scriptFakes({ init_error: 9 });
    const root = tempDir("gbh-proc-");
    mkdirSync(join(root.path, "proc/driver/nvidia"), { recursive: true });
    writeFileSync(
      join(root.path, "proc/driver/nvidia/version"),
      "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n",
    );
    try {
      const { backend: b, lines } = open("auto", fakeEnv, root.path);
      expect(b.name).toBe("cuda");
      expect(await b.list()).toEqual([
        {
          id: "GPU-0",
          name: "NVIDIA A100-SXM4-40GB",
          memory_mb: 40960,
          sm_count: 108,
          driver_version: "550.54.15",
          runtime_version: "12.4",
        },
        {
          id: "GPU-1",
          name: "NVIDIA H100 80GB HBM3",
          memory_mb: 81559,
          sm_count: 132,
          driver_version: "550.54.15",
          runtime_version: "12.4",
        },
      ]);
      expect(lines.some((l) => l.includes("Driver Not Loaded (NVML error 9)"))).toBe(true);
      expect((await b.stats())[1]).toMatchObject({ compute_capability: "9.0", utilization_gpu_pct: null, source: "cuda" });
    } finally {
      root.cleanup();
    }
  });

  test("auto picks the Jetson backend for an integrated GPU whose NVML answers NOT_SUPPORTED", async () => {
    scriptFakes({ jetson: 1 });
    const { backend: b } = open("auto", fakeEnv, ORIN_ROOT);
    expect(b.name).toBe("jetson");
    expect(await b.list()).toEqual([
      { id: "GPU-0", name: "Orin", memory_mb: 7441, sm_count: 16, driver_version: "R36.3.0", runtime_version: "12.2" },
    ]);
    expect((await b.stats())[0]).toMatchObject({
      utilization_gpu_pct: 42.3,
      temperature_c: 45.5,
      memory_total_mib: 7441,
      memory_free_mib: 5000,
      memory_used_mib: 2441,
      clock_graphics_mhz: 918,
      gpu_freq_hz: { cur: 918000000, min: 306000000, max: 918000000 },
      governor: "nvhost_podgov",
      compute_capability: "8.7",
      power_w: null,
      source: "jetson",
    });
  });

  test("--backend jetson works with no NVML at all", async () => {
    scriptFakes({ jetson: 1 });
    const { backend: b } = open("jetson", { GPU_BRIDGE_CUDA_LIB: FAKE_CUDA }, ORIN_ROOT);
    expect((await b.list())[0]!.name).toBe("Orin");
  });

  test("when nothing loads, the error lists every path tried and suggests --mock", () => {
    const env = { GPU_BRIDGE_NVML_LIB: "/nonexistent/libnvidia-ml.so.1", GPU_BRIDGE_CUDA_LIB: "/nonexistent/libcuda.so.1" };
    // A machine without a driver, whatever this one has: the loader's own search (a bare name)
    // and the Jetson paths find nothing; the /nonexistent paths go to the real dlopen.
    const noDriver: FfiAdapter = {
      ...bunFfi,
      open: (path, table) => {
        if (!path.startsWith("/nonexistent/")) throw new Error(`${path}: cannot open shared object file: No such file or directory`);
        return bunFfi.open(path, table);
      },
    };
    let error: unknown;
    try {
      backend = openNativeBackend({ kind: "cuda", adapter: noDriver, env, sysRoot: "/", platform: { arch: "arm64" } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InventoryError);
    expect((error as Error).message.split("\n")).toEqual([
      "Cannot discover GPUs (backend cuda): CUDA could not be used.",
      "CUDA: GPU_BRIDGE_CUDA_LIB=/nonexistent/libcuda.so.1: no such file; libcuda.so.1 not found by the dynamic loader " +
      "(ld.so.cache, LD_LIBRARY_PATH), nor in /usr/lib/aarch64-linux-gnu/tegra or /usr/lib/aarch64-linux-gnu/nvidia (Jetson)",
      "If the driver is installed elsewhere, set GPU_BRIDGE_CUDA_LIB to the library's full path; without an NVIDIA GPU, add --mock for the mock inventory.",
    ]);
  });

  test("a missing required symbol makes the library unusable, naming the path", () => {
    expect(() => openNativeBackend({ kind: "nvml", adapter: bunFfi, env: { GPU_BRIDGE_NVML_LIB: FAKE_CUDA }, sysRoot: "/" }))
      .toThrow(`${FAKE_CUDA}:`);
  });
});
